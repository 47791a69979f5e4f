"""Hardware catalog: accelerators, systems, cloud offers, achievable efficiencies and other prices.

Data lives in ``data/hardware/*.csv`` (units written in the cells: ``80 GiB``, ``3.35 TB/s``,
``989 TFLOP/s``); it is validated by pydantic on load and held in base units (bytes, bytes/s,
FLOP/s or integer ops/s, W, s, USD).

Interconnect bandwidths are PER DEVICE and ONE DIRECTION everywhere in this package:
NVIDIA's "NVLink 900 GB/s" (bidirectional) is stored as 450 GB/s. See ``docs/catalog.md``.

    >>> from hardware_catalog import default_catalog
    >>> cat = default_catalog()
    >>> cat.accelerator("h100-sxm5-80gb").peak("bf16")
    989000000000000.0
"""

from __future__ import annotations

from .catalog import EFFICIENCY_FALLBACK_ORDER, Catalog, default_catalog, load_catalog
from .loader import CatalogError
from .models import (
    EFFICIENCY_QUANTITIES,
    FLOAT_FORMATS,
    FORMAT_BITS,
    INT_FORMATS,
    KINDS,
    NUMBER_FORMATS,
    OTHER_PRICE_ITEMS,
    OTHER_PRICE_UNITS,
    PRICING_MODELS,
    Accelerator,
    EfficiencyPoint,
    Offer,
    OtherPrice,
    System,
)
from .units import UnitError, format_quantity, parse_quantity

__all__ = [
    "NUMBER_FORMATS",
    "FLOAT_FORMATS",
    "INT_FORMATS",
    "FORMAT_BITS",
    "KINDS",
    "PRICING_MODELS",
    "EFFICIENCY_QUANTITIES",
    "OTHER_PRICE_ITEMS",
    "OTHER_PRICE_UNITS",
    "EFFICIENCY_FALLBACK_ORDER",
    "CatalogError",
    "UnitError",
    "Accelerator",
    "System",
    "Offer",
    "EfficiencyPoint",
    "OtherPrice",
    "Catalog",
    "load_catalog",
    "default_catalog",
    "parse_quantity",
    "format_quantity",
]
