"""The catalog as the engine sees it: the shipped hardware data plus the fitted calibration, and
the per-system hardware table built from it (cached, since every plan and validation run joins
against the same one)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from hardware_catalog import Catalog, load_catalog
from hardware_catalog.paths import data_dir

from costmodel.tables.hardware import HardwareTable
from costmodel.tables.offers import OfferTable

_ENGINE_CATALOG: Catalog | None = None
_TABLES: OrderedDict[int, HardwareTable] = OrderedDict()
_MAX_TABLES = 8  # a long-running UI builds a catalog per set of overrides; keep the recent ones


def calibration_files() -> list[Path]:
    """Fitted efficiency rows (same schema as data/hardware/efficiency.csv), see data/calibration."""
    folder = data_dir() / "calibration"
    return sorted(folder.glob("*.csv")) if folder.is_dir() else []


def engine_catalog(extra_files: Sequence[str | Path] = (), mode: str = "merge") -> Catalog:
    """Shipped catalog merged with the calibration files, then the user's files on top."""
    global _ENGINE_CATALOG
    if not extra_files and mode == "merge":
        if _ENGINE_CATALOG is None:
            _ENGINE_CATALOG = load_catalog(calibration_files())
        return _ENGINE_CATALOG
    if mode == "replace":
        return load_catalog(list(extra_files), mode="replace")
    return load_catalog([*calibration_files(), *extra_files])


def hardware_table(catalog: Catalog) -> HardwareTable:
    """Cached ``HardwareTable`` of a catalog object. Assumption knobs (such as the GEMM kernel
    overhead) are not part of it: they travel as knob columns, so an override always applies."""
    key = id(catalog)
    table = _TABLES.get(key)
    if table is None or table.catalog is not catalog:  # ids are reused after garbage collection
        table = HardwareTable(catalog)
        _TABLES[key] = table
    _TABLES.move_to_end(key)
    while len(_TABLES) > _MAX_TABLES:
        _TABLES.popitem(last=False)
    return table


_OFFERS: OrderedDict[int, tuple[Catalog, OfferTable]] = OrderedDict()


def offer_table(catalog: Catalog) -> OfferTable:
    """Cached ``OfferTable`` of every priced offer of a catalog (the scalar and DataFrame APIs
    select from it; the planner builds its own, filtered by the scenario's constraints)."""
    key = id(catalog)
    hit = _OFFERS.get(key)
    if hit is None or hit[0] is not catalog:
        hit = (catalog, OfferTable.build(catalog, catalog.offers_frame(), hardware_table(catalog).system_code))
        _OFFERS[key] = hit
    _OFFERS.move_to_end(key)
    while len(_OFFERS) > _MAX_TABLES:
        _OFFERS.popitem(last=False)
    return hit[1]


def resolve_system(catalog: Catalog, accelerator: str, system: str | None = None):
    """(accelerator, system) rows of a catalog: the named system, or the part's default one; an
    error when the system holds another part."""
    acc = catalog.accelerator(accelerator)
    sys_ = catalog.system(system) if system else catalog.default_system(acc.id)
    if sys_.accelerator != acc.id:
        raise ValueError(f"system {sys_.id!r} holds {sys_.accelerator}, not {acc.id}")
    return acc, sys_
