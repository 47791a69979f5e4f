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

Ranges
------
Every number must be finite (no NaN, no infinity) and inside the range its field description
states; the limits are far beyond any real part or price, so that a typo (``1e400``, a missing
decimal point, a decimal comma read as thousands) is an error rather than a silent figure:

=============================  ==============================================================
quantity                       allowed range
=============================  ==============================================================
device counts                  1 .. MAX_DEVICES (1,000,000)
release_year                   MIN_YEAR .. MAX_YEAR (1950 .. 2100)
sizes (memory, SRAM, host)     1 B .. MAX_BYTES (2**60 B = 1 EiB)
bandwidths                     1 B/s .. MAX_BYTES_PER_S (1e18 B/s = 1 EB/s)
peaks                          1 .. MAX_PEAK (1e21 FLOP/s or ops/s)
latencies                      MIN_LATENCY_S .. MAX_LATENCY_S (1e-12 s .. 10 s)
power                          > 0 .. MAX_WATTS (1e6 W)
hourly prices (USD)            > 0 .. MAX_USD_PER_HOUR (1e6 USD per hour)
purchase price (USD)           > 0 .. MAX_PURCHASE_USD (1e9 USD)
sparsity speedup               > 0 .. MAX_SPARSITY_SPEEDUP (100)
efficiency size                1 .. MAX_SIZE (2**53)
efficiency value               > 0 .. 1
other prices                   > 0 .. MAX_OTHER_PRICE (1e6 in its unit; a PUE is 1 .. 10)
=============================  ==============================================================
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "MAX_DEVICES",
    "MIN_YEAR",
    "MAX_YEAR",
    "MAX_BYTES",
    "MAX_BYTES_PER_S",
    "MAX_PEAK",
    "MIN_LATENCY_S",
    "MAX_LATENCY_S",
    "MAX_WATTS",
    "MAX_USD_PER_HOUR",
    "MAX_PURCHASE_USD",
    "MAX_SPARSITY_SPEEDUP",
    "MAX_SIZE",
    "MAX_OTHER_PRICE",
    "MAX_PUE",
    "NUMBER_FORMATS",
    "FLOAT_FORMATS",
    "INT_FORMATS",
    "FORMAT_BITS",
    "KINDS",
    "PRICING_MODELS",
    "PRICE_QUALITIES",
    "COMMIT_TERM_HOURS",
    "PREEMPTIBLE_PRICING",
    "EFFICIENCY_QUANTITIES",
    "OTHER_PRICE_ITEMS",
    "OTHER_PRICE_UNITS",
    "Accelerator",
    "System",
    "Offer",
    "EfficiencyPoint",
    "OtherPrice",
]

MAX_DEVICES = 1_000_000
MIN_YEAR, MAX_YEAR = 1950, 2100
MAX_BYTES = float(2**60)
MAX_BYTES_PER_S = 1e18
MAX_PEAK = 1e21
MIN_LATENCY_S, MAX_LATENCY_S = 1e-12, 10.0
MAX_WATTS = 1e6
MAX_USD_PER_HOUR = 1e6
MAX_PURCHASE_USD = 1e9
MAX_SPARSITY_SPEEDUP = 100.0
MAX_SIZE = 2**53
MAX_OTHER_PRICE = 1e6
MAX_PUE = 10.0

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

COMMIT_TERM_HOURS: dict[str, float] = {"commit-1y": 365 * 24.0, "commit-3y": 3 * 365 * 24.0}
"""Hours of the term a committed price binds you to: 1 year = 365 days = 8,760 h and 3 years =
1,095 days = 26,280 h, as AWS defines the Reserved Instance / Savings Plans terms (31,536,000 s and
94,608,000 s, EC2 User Guide, "Reserved Instances": term). A committed price is owed for every hour
of the term whether or not the instances are used (GCP committed-use discounts: "billed monthly
... whether or not you use the services"; AWS Savings Plans: an hourly commitment for the term)."""

PREEMPTIBLE_PRICING: tuple[str, ...] = ("spot",)
"""Pricing models whose instances the provider may reclaim at any time (``preemption_risk`` applies)."""

PRICE_QUALITIES: tuple[str, ...] = ("first-party", "third-party", "user")
"""Where an offer's price was read: ``first-party`` = the provider's own price page, price API or
price list; ``third-party`` = an aggregator, blog, dataset or any transcription of the provider's
page (even a faithful one); ``user`` = a user's own file or an override (the default when a user
file has no ``price_quality`` column)."""

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
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

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
    release_year: int | None = Field(default=None, ge=MIN_YEAR, le=MAX_YEAR, description="Year of launch/GA, 1950..2100; None if not sourced.")
    memory_bytes: float = Field(ge=1, le=MAX_BYTES, description="Device memory capacity in bytes (HBM/GDDR/DDR on the device); 1 B .. 2**60 B (1 EiB).")
    memory_bandwidth_bytes_per_s: float = Field(ge=1, le=MAX_BYTES_PER_S, description="Peak device-memory bandwidth in bytes/s; 1 .. 1e18.")
    peak_flops_per_s: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Dense (no sparsity) peak throughput per number format: FLOP/s for float formats, "
            "integer ops/s for int8/int4; each finite, 1 .. 1e21. A format that is absent is not accelerated."
        ),
    )
    sparsity_pattern: str | None = Field(default=None, description="Structured sparsity the part accelerates, e.g. '2:4'; None = none.")
    sparsity_speedup: float | None = Field(default=None, gt=0, le=MAX_SPARSITY_SPEEDUP, description="Peak multiplier with that sparsity (2.0 for 2:4); dimensionless, > 0 .. 100.")
    onchip_memory_bytes: float | None = Field(default=None, ge=1, le=MAX_BYTES, description="Largest on-chip SRAM/cache level (L2, Infinity Cache, SBUF) in bytes; 1 B .. 2**60 B.")
    tdp_w: float | None = Field(default=None, gt=0, le=MAX_WATTS, description="Board/module power (TDP, TBP or max power as the vendor names it) in W; > 0 .. 1e6.")
    purchase_price_usd: float | None = Field(default=None, gt=0, le=MAX_PURCHASE_USD, description="Purchase price per device in USD where one is published (often a third-party estimate); > 0 .. 1e9.")
    as_of: str = Field(description="Date of the source (ISO date, 'YYYY-MM', or '<=YYYY-MM-DD' for undated sources read on that day).")
    source: str = Field(description="Where every figure of the row was read; several sources separated by ';'.")
    notes: str = Field(default="", description="Curation decisions, disagreements between sources, labelled assumptions.")

    @field_validator("peak_flops_per_s")
    @classmethod
    def _peaks(cls, v: dict[str, float]) -> dict[str, float]:
        for fmt, value in v.items():
            if fmt not in NUMBER_FORMATS:
                raise ValueError(f"unknown number format {fmt!r}; valid: {', '.join(NUMBER_FORMATS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"peak for {fmt} must be a number, got {value!r}")
            if not (-math.inf < value < math.inf and 1 <= value <= MAX_PEAK):
                raise ValueError(f"peak for {fmt} must be a finite number from 1 to {MAX_PEAK:g} (FLOP/s or ops/s), got {value!r}")
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
    devices_per_node: int = Field(ge=1, le=MAX_DEVICES, description="Devices in one host / VM / node (TPU: chips per host); 1 .. 1,000,000.")
    scaleup_fabric: str = Field(description="NVLink 4 + NVSwitch, Infinity Fabric, TPU ICI, PCIe Gen4 x16, ...")
    scaleup_domain_devices: int = Field(ge=1, le=MAX_DEVICES, description="Devices reachable over the scale-up fabric (8 for HGX, 72 for NVL72, the slice for TPUs, 1 if none); 1 .. 1,000,000.")
    scaleup_bandwidth_bytes_per_s: float = Field(ge=1, le=MAX_BYTES_PER_S, description="Scale-up bandwidth per device, ONE direction, bytes/s; 1 .. 1e18.")
    scaleup_latency_s: float = Field(ge=MIN_LATENCY_S, le=MAX_LATENCY_S, description="Small-message latency over the scale-up fabric, s (alpha of an alpha-beta model); 1e-12 .. 10 s.")
    scaleout_fabric: str = Field(description="InfiniBand NDR, EFA v2, RoCE, DCN, ...")
    scaleout_bandwidth_bytes_per_s: float = Field(ge=1, le=MAX_BYTES_PER_S, description="Scale-out (network) bandwidth per device, ONE direction, bytes/s; 1 .. 1e18.")
    scaleout_latency_s: float = Field(ge=MIN_LATENCY_S, le=MAX_LATENCY_S, description="Small-message latency over the scale-out network, s; 1e-12 .. 10 s.")
    host_memory_bytes: float | None = Field(default=None, ge=1, le=MAX_BYTES, description="Host (CPU) memory of one node/VM in bytes, 1 B .. 2**60 B; None if not sourced.")
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
    devices_per_instance: int = Field(ge=1, le=MAX_DEVICES, description="Accelerators in one instance (TPU: chips in the slice); 1 .. 1,000,000.")
    region: str = Field(description="Provider region, or 'global' where one price applies everywhere.")
    pricing_model: Literal["on-demand", "spot", "commit-1y", "commit-3y", "capacity-block"] = Field(description="One of PRICING_MODELS.")
    usd_per_instance_hour: float = Field(gt=0, le=MAX_USD_PER_HOUR, description="USD per instance-hour; finite, > 0 .. 1e6.")
    usd_per_device_hour: float = Field(gt=0, le=MAX_USD_PER_HOUR, description="USD per device-hour = usd_per_instance_hour / devices_per_instance; finite, > 0 .. 1e6.")
    price_quality: Literal["first-party", "third-party", "user"] = Field(
        default="user",
        description="One of PRICE_QUALITIES: first-party (the provider's own page/API), third-party (aggregator or transcription), user (a user's file or override; the default).",
    )
    max_instances: int | None = Field(
        default=None, ge=1, le=MAX_DEVICES,
        description="Most instances one request can get (a capacity block's size, a provider's or "
        "your own quota); empty = not limited by the catalog; 1 .. 1,000,000.")
    usd_per_device_hour_low: float | None = Field(
        default=None, gt=0, le=MAX_USD_PER_HOUR,
        description="Lowest USD per device-hour seen under price_sampling (spot: the cheapest zone or "
        "date sampled); finite, > 0 .. 1e6, <= usd_per_device_hour; empty = no range sampled.")
    usd_per_device_hour_high: float | None = Field(
        default=None, gt=0, le=MAX_USD_PER_HOUR,
        description="Highest USD per device-hour seen under price_sampling; finite, > 0 .. 1e6, "
        ">= usd_per_device_hour; empty = no range sampled.")
    price_sampling: str = Field(
        default="", description="How the stored price was taken from a volatile market: which "
        "zones/regions, which dates, and whether it is the minimum, a median or one observation.")
    preemption_risk: str = Field(
        default="", description="Spot only: the provider's published interruption-frequency band or "
        "reclaim terms (notice period, SLA); empty = not published. Must be empty for other pricing models.")
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
        low, high, price = self.usd_per_device_hour_low, self.usd_per_device_hour_high, self.usd_per_device_hour
        if (low is None) != (high is None):
            given, missing = (("usd_per_device_hour_low", "usd_per_device_hour_high") if high is None
                              else ("usd_per_device_hour_high", "usd_per_device_hour_low"))
            raise ValueError(f"{given} given without {missing}: give both (a range) or neither")
        if low is not None and not low <= price:  # a sampled range must contain the stored price
            raise ValueError(f"usd_per_device_hour_low {low:g} is above usd_per_device_hour {price:g}; "
                             "a range must satisfy low <= price <= high")
        if high is not None and not price <= high:
            raise ValueError(f"usd_per_device_hour_high {high:g} is below usd_per_device_hour {price:g}; "
                             "a range must satisfy low <= price <= high")
        if self.preemption_risk.strip() and self.pricing_model not in PREEMPTIBLE_PRICING:
            raise ValueError(
                f"preemption_risk is only for {', '.join(PREEMPTIBLE_PRICING)} offers, not {self.pricing_model!r}; "
                "leave it empty")
        return self

    @property
    def commitment_term_hours(self) -> float:
        """Hours of the commitment this price binds you to (0 for pay-as-you-go and spot)."""
        return COMMIT_TERM_HOURS.get(self.pricing_model, 0.0)

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
    size: int | None = Field(default=None, ge=1, le=MAX_SIZE, description="Problem size: m=n=k for matmul, bytes for copies/collectives, 1 .. 2**53; None if not a single size.")
    value: float = Field(gt=0, le=1, description="Fraction in (0, 1]; finite.")
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
    value: float = Field(gt=0, le=MAX_OTHER_PRICE, description="The price in `unit`, finite, > 0 .. 1e6 (a PUE is 1 .. 10).")
    as_of: str = Field(description="Date of the source.")
    source: str = Field(description="Where it was read.")
    notes: str = Field(default="", description="Tiering, sector, caveats.")

    @model_validator(mode="after")
    def _unit(self) -> "OtherPrice":
        expected = OTHER_PRICE_UNITS[self.item]
        if self.unit != expected:
            raise ValueError(f"unit {self.unit!r} for item {self.item!r}; expected {expected!r}")
        if self.item == "pue" and not 1 <= self.value <= MAX_PUE:
            raise ValueError(f"a PUE is from 1 to {MAX_PUE:g}, got {self.value}")
        return self

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.provider, self.item, self.region)
