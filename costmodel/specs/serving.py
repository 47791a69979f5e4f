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

from costmodel.specs.codes import FORMAT_BITS, FORMAT_BITS_BY_CODE, FORMAT_CODES, PRECISION_CODES, PRECISIONS
from costmodel.specs.columns import Array, ModelColumns
from costmodel.specs.layout import layout_violations

ServingPrecision = Literal["fp32", "fp16", "bf16", "fp8"]
KV_BITS = (16, 8)


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

    precision: ServingPrecision = Field("bf16", description="Weights and matmuls: fp32, fp16, bf16 or fp8.")
    kv_bits: Literal[16, 8] = Field(16, description="Bits per KV-cache element (8: fp8/int8 KV cache).")
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
    weight_bits: Array
    act_bits: Array
    kv_bits: Array
    matmul_format: Array  # code into codes.FORMATS
    attention_format: Array

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


#: Serving precision -> (weight format, matmul format, attention format). Weight-only and lower
#: formats arrive with the compression issue through the same columns.
SERVING_FORMATS: dict[str, tuple[str, str, str]] = {
    "fp32": ("fp32", "fp32", "fp32"),
    "tf32": ("fp32", "tf32", "tf32"),
    "fp16": ("fp16", "fp16", "fp16"),
    "bf16": ("bf16", "bf16", "bf16"),
    "fp8": ("fp8", "fp8", "bf16"),
}
_WEIGHT_BITS = np.array([FORMAT_BITS[SERVING_FORMATS[p][0]] for p in PRECISIONS])
_MATMUL = np.array([FORMAT_CODES[SERVING_FORMATS[p][1]] for p in PRECISIONS], dtype=float)
_ATTENTION = np.array([FORMAT_CODES[SERVING_FORMATS[p][2]] for p in PRECISIONS], dtype=float)
_ACT_BITS = np.array([32.0 if p in ("fp32", "tf32") else 16.0 for p in PRECISIONS])

SERVING_INPUTS = ("tp", "pp", "ep", "batch", "input_len", "output_len", "precision", "kv_bits")


def build_serving_columns(c: Mapping[str, Any]):
    """The one column builder of serving configurations: ``c`` maps each of ``SERVING_INPUTS``
    to an array or scalar (``precision`` as a code of ``codes.PRECISION_CODES``)."""
    missing = [k for k in SERVING_INPUTS if k not in c]
    if missing:
        raise KeyError(f"build_serving_columns: missing {', '.join(missing)}")
    a = {k: np.asarray(c[k], dtype=np.float64) for k in SERVING_INPUTS}
    shape = np.broadcast_shapes(*(v.shape for v in a.values()))
    a = {k: np.broadcast_to(v, shape).astype(np.float64) for k, v in a.items()}
    p = a["precision"].astype(np.int64)
    return ServingColumns(tp=a["tp"], pp=a["pp"], ep=a["ep"], batch=a["batch"],
                          input_len=a["input_len"], output_len=a["output_len"],
                          weight_bits=_WEIGHT_BITS[p], act_bits=_ACT_BITS[p], kv_bits=a["kv_bits"],
                          matmul_format=_MATMUL[p], attention_format=_ATTENTION[p])


def serving_codes(layout: ReplicaLayout, setup: ServingSetup, batch: int) -> dict[str, float]:
    return {"tp": layout.tp, "pp": layout.pp, "ep": layout.ep, "batch": batch,
            "disaggregated": float(layout.disaggregated),
            "input_len": setup.input_len, "output_len": setup.output_len,
            "precision": PRECISION_CODES[setup.precision], "kv_bits": setup.kv_bits}


def replica_violations(m: ModelColumns, tp, pp, ep) -> np.ndarray:
    """True where a replica layout breaks a rule: the training rules on heads, KV heads, layers
    and experts (``specs.layout.LAYOUT_RULES`` with dp = tp, so 'ep divides dp x cp' reads 'ep
    divides tp'), and ep must be 1 or tp."""
    tp, pp, ep = (np.asarray(x, dtype=np.float64) for x in (tp, pp, ep))
    rules = layout_violations(m, tp, pp, 1.0, tp, 1.0, ep)
    return np.logical_or.reduce([*rules.values(), (ep != 1) & (ep != tp)])
