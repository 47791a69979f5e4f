"""Parallel layout: tensor, pipeline (with virtual stages), data, context and expert parallelism, ZeRO.

Ranks are placed as Megatron-LM does by default: tensor-parallel ranks innermost, then context,
then data, then pipeline (``--rank-order tp-cp-ep-dp-pp``). Expert parallelism re-groups the
data x context ranks of each pipeline stage (Megatron-core MoE): ``ep`` must divide ``dp * cp``,
experts are further split across the tensor-parallel ranks (expert tensor parallelism = tp), and
expert parameters are data-parallel over ``dp * cp / ep`` ranks.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from costmodel.specs.columns import Array, ModelColumns, as_array
from costmodel.specs.spec import ModelSpec


DEFAULT_RANK_ORDER = "tp-cp-dp-pp"
RANK_DIMENSIONS = ("tp", "cp", "dp", "pp")


def rank_strides(order: str, tp: Array, cp: Array, dp: Array) -> dict[str, Array]:
    """Distance between consecutive members of each parallel group under a rank placement.

    ``order`` lists tp, cp, dp and pp innermost first; a dimension's stride is the product of the
    sizes of the dimensions placed inside it (Megatron-LM's default tp-cp-dp-pp gives tp 1,
    cp tp, dp tp*cp, pp tp*cp*dp).
    """
    dims = order.split("-")
    if sorted(dims) != sorted(RANK_DIMENSIONS):
        raise ValueError(f"rank_order {order!r} must order each of {', '.join(RANK_DIMENSIONS)} "
                         f"exactly once, e.g. {DEFAULT_RANK_ORDER!r}")
    sizes = {"tp": as_array(tp), "cp": as_array(cp), "dp": as_array(dp)}
    strides, inner = {}, as_array(1.0)
    for d in dims:
        strides[d] = inner
        if d != "pp":
            inner = inner * sizes[d]
    return strides


class ParallelLayout(BaseModel):
    """How the devices of one training job are arranged. n_devices = tp * pp * cp * dp."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tp: int = Field(1, ge=1, description="Tensor-parallel degree (Megatron intra-layer split).")
    pp: int = Field(1, ge=1, description="Pipeline-parallel stages.")
    vpp: int = Field(1, ge=1, description="Virtual stages per device (interleaved 1F1B); 1 = plain 1F1B.")
    dp: int = Field(1, ge=1, description="Data-parallel replicas (FSDP/ZeRO shards count here).")
    cp: int = Field(1, ge=1, description="Context-parallel degree (sequence split across devices).")
    ep: int = Field(1, ge=1, description="Expert-parallel degree (must divide dp * cp).")
    sequence_parallel: bool = Field(
        False, description="Megatron sequence parallelism: activations outside TP regions split by tp."
    )
    zero_stage: Literal[0, 1, 2, 3] = Field(
        0, description="ZeRO stage over dp*cp: 1 optimizer, 2 +gradients, 3 +weights (FSDP full shard)."
    )
    rank_order: str = Field(
        DEFAULT_RANK_ORDER, description="Placement of the parallel dimensions on consecutive ranks, "
        "innermost first (Megatron-LM: tp-cp-dp-pp); decides which groups stay inside a node.")

    @model_validator(mode="after")
    def _check(self) -> ParallelLayout:
        rank_strides(self.rank_order, 1, 1, 1)  # validates the order string
        if self.vpp > 1 and self.pp == 1:
            raise ValueError("vpp > 1 (interleaved pipeline) requires pp > 1")
        if (self.dp * self.cp) % self.ep:
            raise ValueError(f"ep ({self.ep}) must divide dp * cp ({self.dp * self.cp})")
        return self

    @property
    def n_devices(self) -> int:
        return self.tp * self.pp * self.cp * self.dp


def layout_problems(model: ModelSpec, layout: ParallelLayout) -> list[str]:
    """Why ``layout`` cannot shard ``model`` (empty when it can). Same rules as ``layout_fits``."""
    problems = []
    if model.n_heads % layout.tp:
        problems.append(f"tp ({layout.tp}) does not divide n_heads ({model.n_heads})")
    if model.attention == "standard" and model.kv_heads % layout.tp and layout.tp % model.kv_heads:
        problems.append(f"tp ({layout.tp}) and n_kv_heads ({model.kv_heads}) do not divide one another")
    if model.n_layers % (layout.pp * layout.vpp):
        problems.append(
            f"pp * vpp ({layout.pp * layout.vpp}) does not divide n_layers ({model.n_layers})"
        )
    if model.is_moe and model.n_experts % layout.ep:
        problems.append(f"ep ({layout.ep}) does not divide n_experts ({model.n_experts})")
    if not model.is_moe and layout.ep > 1:
        problems.append("ep > 1 on a dense model")
    return problems


def layout_fits(m: ModelColumns, tp: Array, pp: Array, vpp: Array, ep: Array) -> Array:
    """Vectorised twin of ``layout_problems``: True where the layout shards the model evenly."""
    tp, pp, vpp, ep = (as_array(x) for x in (tp, pp, vpp, ep))
    heads_ok = np.mod(m.n_heads, tp) == 0
    kv_ok = (m.is_mla > 0) | (np.mod(m.kv_heads, tp) == 0) | (np.mod(tp, m.kv_heads) == 0)
    layers_ok = np.mod(m.n_layers, pp * vpp) == 0
    experts_ok = np.where(m.n_experts > 0, np.mod(m.n_experts, ep) == 0, ep == 1)
    return heads_ok & kv_ok & layers_ok & experts_ok
