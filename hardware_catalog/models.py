"""Pydantic models of the catalog rows. Every quantity is held in a base unit (bytes, bytes/s,
FLOP/s or integer ops/s, W, s, USD); the CSV files write the unit in the cell instead.

Bandwidth convention (read this before using any interconnect number)
---------------------------------------------------------------------
Every interconnect bandwidth in this catalog is **per device and in one direction**.
Vendors usually quote the bidirectional (duplex) sum: NVIDIA's "NVLink 900 GB/s" for H100 is
450 GB/s each way, AMD's "896 GB/s" Infinity Fabric for MI300X is 448 GB/s each way, Google's
"bidirectional ICI bandwidth per chip" must be halved too. A 400 Gb/s NIC per GPU is
50e9 bytes/s one way. Memory bandwidth (HBM/GDDR) is the vendor's figure as published (it is a
read+write total, there is no "direction").
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    "Accelerator",
    "System",
    "Offer",
    "EfficiencyPoint",
    "OtherPrice",
]

NUMBER_FORMATS: tuple[str, ...] = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")
"""Number formats a peak throughput can be given for, widest first."""

INT_FORMATS: tuple[str, ...] = ("int8", "int4")
"""Integer formats: their peaks are integer operations per second (TOPS), not FLOP/s."""

FLOAT_FORMATS: tuple[str, ...] = tuple(f for f in NUMBER_FORMATS if f not in INT_FORMATS)

FORMAT_BITS: dict[str, int] = {
    "fp64": 64,
    "fp32": 32,
    "tf32": 32,  # TF32 computes with a 10-bit mantissa but is stored as a 32-bit float
    "bf16": 16,
    "fp16": 16,
    "fp8": 8,
    "int8": 8,
    "int4": 4,
    "fp4": 4,
}
"""Storage bits of one element of each number format (tf32 counts as 32 for storage)."""

KINDS: tuple[str, ...] = ("gpu", "tpu", "fpga", "asic")

PRICING_MODELS: tuple[str, ...] = ("on-demand", "spot", "commit-1y", "commit-3y", "capacity-block")

EFFICIENCY_QUANTITIES: tuple[str, ...] = (
    "matmul",
    "memory_bandwidth",
    "scaleup_allreduce",
    "scaleup_allgather",
    "scaleup_alltoall",
    "scaleout_allreduce",
    "scaleout_alltoall",
    "attention",
)

OTHER_PRICE_ITEMS: tuple[str, ...] = ("object_storage", "block_storage", "egress", "electricity", "pue")

OTHER_PRICE_UNITS: dict[str, str] = {
    "object_storage": "USD/GB-month",
    "block_storage": "USD/GB-month",
    "egress": "USD/GB",
    "electricity": "USD/kWh",
    "pue": "ratio",
}
"""The one unit each kind of non-hourly price is written in."""

_AS_OF = re.compile(r"^(<=|>=|~)?\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?|-Q[1-4])?$")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _check_as_of(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("as_of is required (the date the figure was published or read)")
    if not _AS_OF.match(value):
        raise ValueError(
            f"as_of {value!r} is not a date: use YYYY-MM-DD, YYYY-MM, YYYY, YYYY-Qn, "
            "optionally prefixed by '<=' (undated source read on that day) or '~' (approximate)"
        )
    return value


def _check_source(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("source is required")
    return value


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Every row type carries as_of and source; the checks are declared once here.
    @field_validator("as_of", check_fields=False)
    @classmethod
    def _as_of(cls, v: str) -> str:
        return _check_as_of(v)

    @field_validator("source", check_fields=False)
    @classmethod
    def _source(cls, v: str) -> str:
        return _check_source(v)

    @field_validator("id", check_fields=False)
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"id {v!r} must be lowercase letters, digits, '.', '_' or '-'")
        return v


class Accelerator(_Row):
    """One accelerator (a GPU, TPU chip, FPGA card or ASIC), as one device the engine counts.

    Superchips are split per GPU (a GB200 row is one of its two B200-class GPUs)."""

    id: str = Field(description="Catalog id, lowercase, e.g. 'h100-sxm5-80gb'.")
    name: str = Field(description="Human-readable name.")
    vendor: str = Field(description="Manufacturer.")
    kind: Literal["gpu", "tpu", "fpga", "asic"] = Field(description="One of KINDS.")
    form_factor: str = Field(default="", description="SXM5, OAM, PCIe card, cloud-only chip, ...")
    release_year: int | None = Field(default=None, description="Year of launch/GA; None if not sourced.")
    memory_bytes: float = Field(gt=0, description="Device memory capacity in bytes (HBM/GDDR/DDR on the device).")
    memory_bandwidth_bytes_per_s: float = Field(gt=0, description="Peak device-memory bandwidth in bytes/s.")
    peak_flops_per_s: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Dense (no sparsity) peak throughput per number format: FLOP/s for float formats, "
            "integer ops/s for int8/int4. A format that is absent is not accelerated."
        ),
    )
    sparsity_pattern: str | None = Field(default=None, description="Structured sparsity the part accelerates, e.g. '2:4'; None = none.")
    sparsity_speedup: float | None = Field(default=None, gt=0, description="Peak multiplier with that sparsity (2.0 for 2:4); dimensionless.")
    onchip_memory_bytes: float | None = Field(default=None, gt=0, description="Largest on-chip SRAM/cache level (L2, Infinity Cache, SBUF) in bytes.")
    tdp_w: float | None = Field(default=None, gt=0, description="Board/module power (TDP, TBP or max power as the vendor names it) in W.")
    purchase_price_usd: float | None = Field(default=None, gt=0, description="Purchase price per device in USD where one is published (often a third-party estimate).")
    as_of: str = Field(description="Date of the source (ISO date, 'YYYY-MM', or '<=YYYY-MM-DD' for undated sources read on that day).")
    source: str = Field(description="Where every figure of the row was read; several sources separated by ';'.")
    notes: str = Field(default="", description="Curation decisions, disagreements between sources, labelled assumptions.")

    @field_validator("peak_flops_per_s")
    @classmethod
    def _peaks(cls, v: dict[str, float]) -> dict[str, float]:
        for fmt, value in v.items():
            if fmt not in NUMBER_FORMATS:
                raise ValueError(f"unknown number format {fmt!r}; valid: {', '.join(NUMBER_FORMATS)}")
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"peak for {fmt} must be a positive number, got {value!r}")
        return {f: float(v[f]) for f in NUMBER_FORMATS if f in v}

    @model_validator(mode="after")
    def _sparsity(self) -> "Accelerator":
        if self.sparsity_speedup is not None and not self.sparsity_pattern:
            raise ValueError("sparsity_speedup given without a sparsity_pattern")
        return self

    def peak(self, fmt: str) -> float | None:
        """Dense peak for ``fmt`` in FLOP/s (ops/s for int formats), or None if not accelerated."""
        if fmt not in NUMBER_FORMATS:
            raise ValueError(f"unknown number format {fmt!r}; valid: {', '.join(NUMBER_FORMATS)}")
        return self.peak_flops_per_s.get(fmt)

    def supports(self, fmt: str) -> bool:
        """True if the part has a dense peak for ``fmt``."""
        return self.peak(fmt) is not None


class System(_Row):
    """How devices are put together: a node, a VM shape, a TPU slice or a rack (NVL72).

    Bandwidths are PER DEVICE and ONE DIRECTION (see the module docstring): NVLink 4
    "900 GB/s" is stored as 450e9; a 400 Gb/s NIC per GPU is stored as 50e9."""

    id: str = Field(description="Catalog id of the system.")
    name: str = Field(description="Human-readable name.")
    accelerator: str = Field(description="Accelerator id of the devices in this system.")
    default: bool = Field(
        default=False,
        description="True for the system to assume when only the accelerator is named (see Catalog.default_system).",
    )
    devices_per_node: int = Field(gt=0, description="Devices in one host / VM / node (TPU: chips per host).")
    scaleup_fabric: str = Field(description="NVLink 4 + NVSwitch, Infinity Fabric, TPU ICI, PCIe Gen4 x16, ...")
    scaleup_domain_devices: int = Field(gt=0, description="Devices reachable over the scale-up fabric (8 for HGX, 72 for NVL72, the slice for TPUs, 1 if none).")
    scaleup_bandwidth_bytes_per_s: float = Field(gt=0, description="Scale-up bandwidth per device, ONE direction, bytes/s.")
    scaleup_latency_s: float = Field(gt=0, description="Small-message latency over the scale-up fabric, s (alpha of an alpha-beta model).")
    scaleout_fabric: str = Field(description="InfiniBand NDR, EFA v2, RoCE, DCN, ...")
    scaleout_bandwidth_bytes_per_s: float = Field(gt=0, description="Scale-out (network) bandwidth per device, ONE direction, bytes/s.")
    scaleout_latency_s: float = Field(gt=0, description="Small-message latency over the scale-out network, s.")
    host_memory_bytes: float | None = Field(default=None, gt=0, description="Host (CPU) memory of one node/VM in bytes; None if not sourced.")
    as_of: str = Field(description="Date of the source.")
    source: str = Field(description="Where the figures were read.")
    notes: str = Field(default="", description="Curation decisions and labelled assumptions.")




PRICE_TOLERANCE_USD = 0.005
"""usd_per_device_hour must equal usd_per_instance_hour / devices_per_instance within this many USD."""


class Offer(_Row):
    """A price at which a provider rents (or sells capacity of) an instance. Key = (provider, offer, region, pricing_model)."""

    provider: str = Field(description="AWS, GCP, Azure, Lambda, RunPod, CoreWeave, ...")
    offer: str = Field(description="Instance type / SKU name as the provider spells it.")
    accelerator: str = Field(description="Accelerator id actually sold in this instance.")
    system: str = Field(description="System id describing the node/slice the instance runs on.")
    devices_per_instance: int = Field(gt=0, description="Accelerators in one instance (TPU: chips in the slice).")
    region: str = Field(description="Provider region, or 'global' where one price applies everywhere.")
    pricing_model: Literal["on-demand", "spot", "commit-1y", "commit-3y", "capacity-block"] = Field(description="One of PRICING_MODELS.")
    usd_per_instance_hour: float = Field(gt=0, description="USD per instance-hour.")
    usd_per_device_hour: float = Field(gt=0, description="USD per device-hour = usd_per_instance_hour / devices_per_instance.")
    as_of: str = Field(description="Date the price was published or read.")
    source: str = Field(description="Where the price was read.")
    notes: str = Field(default="", description="Caveats: third-party figure, spot range across zones, ...")

    @model_validator(mode="after")
    def _consistent(self) -> "Offer":
        expected = self.usd_per_instance_hour / self.devices_per_instance
        if abs(self.usd_per_device_hour - expected) > PRICE_TOLERANCE_USD:
            raise ValueError(
                f"usd_per_device_hour {self.usd_per_device_hour:g} != usd_per_instance_hour "
                f"{self.usd_per_instance_hour:g} / devices_per_instance {self.devices_per_instance} "
                f"= {expected:.5f}"
            )
        return self

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.provider, self.offer, self.region, self.pricing_model)


class EfficiencyPoint(_Row):
    """An achievable fraction of a peak, with its source. Key = (accelerator, quantity, precision).

    ``accelerator`` is an accelerator id, or ``kind:<kind>`` for the documented default of a kind
    (used by :meth:`Catalog.efficiency_value` when a part has no row of its own)."""

    accelerator: str = Field(description="Accelerator id, or 'kind:gpu' / 'kind:tpu' / 'kind:asic' / 'kind:fpga' for a kind default.")
    precision: str = Field(default="", description="Number format the point applies to ('' = not applicable).")
    quantity: Literal[
        "matmul",
        "memory_bandwidth",
        "scaleup_allreduce",
        "scaleup_allgather",
        "scaleup_alltoall",
        "scaleout_allreduce",
        "scaleout_alltoall",
        "attention",
    ] = Field(
        description=(
            "matmul: achieved fraction of dense peak for a large GEMM of m=n=k=size; "
            "memory_bandwidth: achieved fraction of peak device-memory bandwidth for a large copy; "
            "scaleup_*/scaleout_*: nccl-tests busbw as a fraction of the system's one-direction per-device "
            "bandwidth; attention: fraction of bf16 dense peak for fused attention fwd+bwd."
        )
    )
    size: int | None = Field(default=None, gt=0, description="Problem size: m=n=k for matmul, bytes for copies/collectives; None if not a single size.")
    value: float = Field(gt=0, le=1, description="Fraction in (0, 1].")
    as_of: str = Field(description="Date of the measurement or source.")
    source: str = Field(description="Where the number comes from.")
    notes: str = Field(default="", description="How it was derived; the command if it is a measurement.")

    @field_validator("precision")
    @classmethod
    def _precision(cls, v: str) -> str:
        v = v.strip()
        if v and v not in NUMBER_FORMATS:
            raise ValueError(f"unknown precision {v!r}; valid: '' or one of {', '.join(NUMBER_FORMATS)}")
        return v

    @field_validator("accelerator")
    @classmethod
    def _acc(cls, v: str) -> str:
        if v.startswith("kind:") and v[5:] not in KINDS:
            raise ValueError(f"{v!r}: kind must be one of {', '.join(KINDS)}")
        return v

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.accelerator, self.quantity, self.precision)

    @property
    def is_kind_default(self) -> bool:
        return self.accelerator.startswith("kind:")


class OtherPrice(_Row):
    """A non-hourly price: storage, egress, electricity, or a PUE ratio. Key = (provider, item, region)."""

    provider: str = Field(description="AWS, GCP, US EIA, Uptime Institute, ...")
    item: Literal["object_storage", "block_storage", "egress", "electricity", "pue"] = Field(description="One of OTHER_PRICE_ITEMS.")
    region: str = Field(description="Region the price applies to ('global' if none).")
    unit: str = Field(description="USD/GB-month (storage), USD/GB (egress), USD/kWh (electricity), ratio (pue).")
    value: float = Field(gt=0, description="The price in `unit` (a PUE is >= 1).")
    as_of: str = Field(description="Date of the source.")
    source: str = Field(description="Where it was read.")
    notes: str = Field(default="", description="Tiering, sector, caveats.")

    @model_validator(mode="after")
    def _unit(self) -> "OtherPrice":
        expected = OTHER_PRICE_UNITS[self.item]
        if self.unit != expected:
            raise ValueError(f"unit {self.unit!r} for item {self.item!r}; expected {expected!r}")
        if self.item == "pue" and self.value < 1:
            raise ValueError(f"a PUE is >= 1, got {self.value}")
        return self

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.provider, self.item, self.region)
