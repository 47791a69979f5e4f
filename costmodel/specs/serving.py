"""What a serving job states: the replica layout, the numerics and batch of one replica, the load
and the service-level objectives; and the one column builder of serving configurations.

A replica is tp x pp devices holding one copy of the model. ``ep`` is 1 (every expert split across
the tp ranks) or tp (each rank holds whole experts; expert parallelism inside the tensor-parallel
group, as vLLM's ``--enable-expert-parallel``). Weights and the compute format follow the
precision (fp8 = fp8 weights and matmuls, W8A8; attention stays 16-bit); the KV cache has its own
bit width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from costmodel.specs.codes import FORMAT_BITS, FORMAT_BITS_BY_CODE, FORMAT_CODES
from costmodel.specs.columns import Array, ModelColumns, coded_arrays
from costmodel.specs.layout import layout_violations

KV_BITS = (16, 8, 4)


@dataclass(frozen=True)
class QuantScheme:
    """How a replica stores and multiplies its linear layers' weights."""

    weight_format: str  # element format of the stored weights (codes.FORMATS)
    compute_format: str  # matmul format the tensor cores run
    attention_format: str
    scale_bits: float = 0.0  # bits of the scale (and zero point) stored per group
    group_size: float = 0.0  # weights per scale group; 0 = per channel or per tensor (negligible)
    source: str = ""

    def stored_bits(self, group_size: float | None = None) -> float:
        """Bits one weight takes in memory, scales included: b + scale_bits / group."""
        g = self.group_size if group_size in (None, 0) or not self.group_size else group_size
        return FORMAT_BITS[self.weight_format] + (self.scale_bits / g if g else 0.0)

    @property
    def weight_only(self) -> bool:
        return FORMAT_BITS[self.weight_format] < FORMAT_BITS[self.compute_format]


#: Quantization schemes a serving plan can use. A format the accelerator lacks (no dense peak in the
#: catalog for the compute format) is the reason "format unsupported on hardware"; weight-only
#: schemes run on the 16-bit tensor cores after dequantization, paying the dequantization knob.
QUANT_SCHEMES: dict[str, QuantScheme] = {
    "fp32": QuantScheme("fp32", "fp32", "fp32", source="full precision"),
    "tf32": QuantScheme("fp32", "tf32", "tf32", source="fp32 storage, TF32 tensor cores"),
    "fp16": QuantScheme("fp16", "fp16", "fp16", source="16-bit weights and activations"),
    "bf16": QuantScheme("bf16", "bf16", "bf16", source="16-bit weights and activations"),
    "fp8": QuantScheme("fp8", "fp8", "bf16", source="FP8 (E4M3) weights and activations, per-tensor "
                       "scales (Micikevicius et al. 2022, 'FP8 Formats for Deep Learning')"),
    "int8": QuantScheme("int8", "int8", "fp16", source="W8A8 int8 with per-channel/per-token scales "
                        "(SmoothQuant, Xiao et al. 2023)"),
    "w8a16": QuantScheme("int8", "bf16", "bf16", source="int8 weight-only, per-channel scales "
                         "(LLM.int8() style, Dettmers et al. 2022)"),
    "w4a16": QuantScheme("int4", "bf16", "bf16", scale_bits=20.0, group_size=128.0,
                         source="int4 weight-only with a 16-bit scale and a 4-bit zero point per group "
                         "(GPTQ, Frantar et al. 2023; AWQ, Lin et al. 2024)"),
    "nvfp4": QuantScheme("fp4", "fp4", "bf16", scale_bits=8.0, group_size=16.0,
                         source="NVFP4: E2M1 values with an E4M3 scale per 16 (NVIDIA Blackwell)"),
    "mxfp4": QuantScheme("fp4", "fp4", "bf16", scale_bits=8.0, group_size=32.0,
                         source="MXFP4: E2M1 values with an E8M0 scale per 32 (OCP Microscaling "
                         "Formats Specification v1.0)"),
}
SCHEMES: tuple[str, ...] = tuple(QUANT_SCHEMES)
SCHEME_CODES: dict[str, int] = {n: i for i, n in enumerate(SCHEMES)}
Quantization = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8", "w8a16", "w4a16", "nvfp4", "mxfp4"]

#: Sparsity of the linear layers' weights. 2:4 (two of every four weights zero) runs on sparse
#: tensor cores at the catalog's sparsity speedup where the part has one (Ampere and later) and is
#: stored as half the values plus 2 bits of index per kept value; elsewhere it is stored and run
#: dense. Unstructured 50% is stored sparse (half the values plus a 1-bit-per-weight bitmap) and runs
#: on dense tensor cores (no speedup).
SPARSITIES: tuple[str, ...] = ("none", "2:4", "unstructured-50")
SPARSITY_CODES: dict[str, int] = {n: i for i, n in enumerate(SPARSITIES)}
Sparsity = Literal["none", "2:4", "unstructured-50"]

_SCHEME = [QUANT_SCHEMES[n] for n in SCHEMES]
_MATMUL = np.array([FORMAT_CODES[q.compute_format] for q in _SCHEME], dtype=float)
_ATTENTION = np.array([FORMAT_CODES[q.attention_format] for q in _SCHEME], dtype=float)
_ELEMENT_BITS = np.array([FORMAT_BITS[q.weight_format] for q in _SCHEME])
_SCALE_BITS = np.array([q.scale_bits for q in _SCHEME])
_GROUP = np.array([q.group_size for q in _SCHEME])
_WEIGHT_ONLY = np.array([float(q.weight_only) for q in _SCHEME])
_ACT_BITS = np.array([32.0 if q.compute_format in ("fp32", "tf32") else 16.0 for q in _SCHEME])


def dense_weight_bits(scheme: Array, group_size: Array) -> np.ndarray:
    """Bits one weight of the linear layers takes stored densely: element bits + scale bits per
    group (``group_size`` 0 takes the scheme's; per-channel scales are negligible)."""
    q = np.asarray(scheme, dtype=np.int64)
    g = np.where(np.asarray(group_size, dtype=float) > 0, group_size, _GROUP[q])
    return _ELEMENT_BITS[q] + np.where(_GROUP[q] > 0, _SCALE_BITS[q] / np.where(g > 0, g, 1.0), 0.0)




class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReplicaLayout(_Frozen):
    """How one replica's devices hold the model: tensor, pipeline and expert parallel."""

    tp: int = Field(1, ge=1, description="Tensor-parallel degree inside the replica.")
    pp: int = Field(1, ge=1, description="Pipeline stages of the replica.")
    ep: int = Field(1, ge=1, description="Expert parallelism: 1 (experts split across tp) or tp.")
    disaggregated: bool = Field(
        False, description="Separate prefill and decode pools of such replicas (DistServe, Splitwise).")

    @model_validator(mode="after")
    def _check(self) -> ReplicaLayout:
        if self.ep not in (1, self.tp):
            raise ValueError(f"ep ({self.ep}) must be 1 or tp ({self.tp}): experts are spread over "
                             "the tensor-parallel ranks of a replica")
        return self

    @property
    def devices(self) -> int:
        return self.tp * self.pp


class ServingSetup(_Frozen):
    """Numerics, batch and request shape of one replica."""

    precision: Quantization = Field(
        "bf16", description="Quantization scheme of the weights and matmuls: " + ", ".join(SCHEMES) + ".")
    group_size: int | None = Field(
        None, ge=1, le=65536, description="Weights per scale group of grouped schemes (w4a16: 128).")
    sparsity: Sparsity = Field("none", description="Weight sparsity: none, 2:4 or unstructured-50.")
    kv_bits: Literal[16, 8, 4] = Field(16, description="Bits per KV-cache element (8: fp8/int8; 4: int4).")
    batch: int | None = Field(
        None, ge=1, description="Most sequences the replica runs at once; default: the largest "
        "that fits in memory (capped at 1024).")
    input_len: int = Field(ge=1, description="Prompt tokens per request (mean).")
    output_len: int = Field(ge=1, description="Generated tokens per request (mean).")


class ServingLoad(_Frozen):
    """The traffic to serve and the service-level objectives (p95)."""

    requests_per_s: float = Field(gt=0, allow_inf_nan=False, description="Mean requests per second.")
    input_len: int = Field(ge=1, description="Prompt tokens per request (mean).")
    output_len: int = Field(ge=1, description="Generated tokens per request (mean).")
    peak_to_mean: float = Field(1.0, ge=1, allow_inf_nan=False,
                                description="Peak over mean request rate; the fleet is sized for the peak.")
    hourly_profile: list[float] | None = Field(
        None, description="24 relative request rates (hour 0..23); normalised to a mean of 1. The "
        "fleet is sized for the busiest hour, and hourly scaling is priced beside it.")
    ttft_p95_s: float | None = Field(None, gt=0, allow_inf_nan=False, description="p95 time to first token (s).")
    tpot_p95_s: float | None = Field(None, gt=0, allow_inf_nan=False, description="p95 time per output token (s).")
    e2e_p95_s: float | None = Field(None, gt=0, allow_inf_nan=False, description="p95 end-to-end latency (s).")
    max_utilization: float = Field(
        0.8, gt=0, le=1, allow_inf_nan=False,
        description="Highest busy fraction of the replicas' slots at peak (1 - utilisation headroom).")

    @field_validator("hourly_profile")
    @classmethod
    def _profile(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if len(v) != 24:
            raise ValueError(f"hourly_profile needs 24 values (hour 0..23), got {len(v)}")
        if any(not math.isfinite(x) or x < 0 for x in v) or sum(v) <= 0:
            raise ValueError("hourly_profile values must be finite, >= 0, and not all 0")
        mean = sum(v) / 24
        return [x / mean for x in v]

    @property
    def peak_factor(self) -> float:
        """Peak request rate over the mean: the profile's busiest hour, else ``peak_to_mean``."""
        return max(self.hourly_profile) if self.hourly_profile else self.peak_to_mean


@dataclass(frozen=True)
class ServingColumns:
    """Layout, number formats and request shape of one or many serving configurations."""

    tp: Array
    pp: Array
    ep: Array  # 1 (experts tensor-parallel) or tp (experts expert-parallel within the tp group)
    batch: Array  # most sequences a replica runs at once (continuous-batching slots)
    input_len: Array  # prompt tokens per request (mean)
    output_len: Array  # generated tokens per request (mean)
    weight_bits: Array  # stored bits per weight of the linear layers, dense, scales included
    act_bits: Array
    kv_bits: Array
    matmul_format: Array  # code into codes.FORMATS
    attention_format: Array
    weight_only: Array = 0.0  # 1 where weights are stored below the compute format (dequantized)
    sparsity: Array = 0.0  # code into SPARSITIES

    @property
    def devices(self) -> Array:
        return self.tp * self.pp

    @property
    def matmul_bytes(self) -> Array:
        return FORMAT_BITS_BY_CODE[np.asarray(self.matmul_format, dtype=np.int64)] / 8

    @property
    def act_bytes(self) -> Array:
        return self.act_bits / 8

    @property
    def kv_bytes(self) -> Array:
        return self.kv_bits / 8

    def take(self, index: Array) -> ServingColumns:
        return ServingColumns(**{f.name: np.asarray(getattr(self, f.name))[index] for f in fields(self)})


SERVING_INPUTS = ("tp", "pp", "ep", "batch", "input_len", "output_len", "precision", "kv_bits",
                  "group_size", "sparsity")
#: Inputs that may be left out (their default).
SERVING_DEFAULTS = {"group_size": 0.0, "sparsity": 0.0}


def build_serving_columns(c: Mapping[str, Any]):
    """The one column builder of serving configurations: ``c`` maps each of ``SERVING_INPUTS``
    to an array or scalar (``precision`` as a code of ``SCHEME_CODES``, ``sparsity`` of
    ``SPARSITY_CODES``, ``group_size`` 0 for the scheme's). ``weight_bits`` are the dense bits;
    sparse storage depends on the hardware (``formulas.serving.stored_weight_bits``)."""
    a = coded_arrays(c, SERVING_INPUTS, SERVING_DEFAULTS, "build_serving_columns")
    p = a["precision"].astype(np.int64)
    return ServingColumns(tp=a["tp"], pp=a["pp"], ep=a["ep"], batch=a["batch"],
                          input_len=a["input_len"], output_len=a["output_len"],
                          weight_bits=dense_weight_bits(p, a["group_size"]),
                          act_bits=_ACT_BITS[p], kv_bits=a["kv_bits"],
                          matmul_format=_MATMUL[p], attention_format=_ATTENTION[p],
                          weight_only=_WEIGHT_ONLY[p], sparsity=a["sparsity"])


def serving_codes(layout: ReplicaLayout, setup: ServingSetup, batch: int) -> dict[str, float]:
    return {"tp": layout.tp, "pp": layout.pp, "ep": layout.ep, "batch": batch,
            "disaggregated": float(layout.disaggregated),
            "input_len": setup.input_len, "output_len": setup.output_len,
            "precision": SCHEME_CODES[setup.precision], "kv_bits": setup.kv_bits,
            "group_size": float(setup.group_size or 0), "sparsity": SPARSITY_CODES[setup.sparsity]}


def replica_violations(m: ModelColumns, tp, pp, ep) -> np.ndarray:
    """True where a replica layout breaks a rule: the training rules on heads, KV heads, layers
    and experts (``specs.layout.LAYOUT_RULES`` with dp = tp, so 'ep divides dp x cp' reads 'ep
    divides tp'), ep must be 1 or tp, and pp must divide n_layers (the serving formulas model
    even stages)."""
    tp, pp, ep = (np.asarray(x, dtype=np.float64) for x in (tp, pp, ep))
    rules = layout_violations(m, tp, pp, 1.0, tp, 1.0, ep)
    # Serving memory and time take n_layers / pp blocks per stage: even stages only.
    uneven = np.mod(m.n_layers, pp) != 0
    return np.logical_or.reduce([*rules.values(), (ep != 1) & (ep != tp), uneven])
