"""Parallel layout: tensor, pipeline (with virtual stages), data, context and expert parallelism, ZeRO.

Ranks are placed as Megatron-LM does by default: tensor-parallel ranks innermost, then context,
then data, then pipeline (``--rank-order tp-cp-ep-dp-pp``). Expert parallelism re-groups the
data x context ranks of each pipeline stage (Megatron-core MoE): ``ep`` must divide ``dp * cp``,
experts are further split across the tensor-parallel ranks (expert tensor parallelism = tp), and
expert parameters are data-parallel over ``dp * cp / ep`` ranks.

The layout rules (what must divide what) live once, in ``LAYOUT_RULES``: the pydantic validator,
``layout_problems`` (messages for one configuration), ``layout_violations``/``layout_fits`` (the
planner's vectorised check) and validation all evaluate the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from costmodel.specs.codes import DEFAULT_RANK_ORDER, RANK_DIMENSIONS
from costmodel.specs.columns import Array, ModelColumns, as_array
from costmodel.specs.spec import ModelSpec

__all__ = ["DEFAULT_RANK_ORDER", "RANK_DIMENSIONS", "LAYOUT_RULES", "ParallelLayout", "layout_fits",
           "layout_problems", "layout_violations", "rank_strides"]


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


@dataclass(frozen=True)
class LayoutRule:
    """One rule a real framework enforces: ``ok(m, L)`` is True where the layout obeys it; ``L``
    maps tp, pp, vpp, dp, cp, ep to arrays; ``m`` is None for rules that need no model."""

    name: str
    needs_model: bool
    ok: Callable[[ModelColumns | None, dict[str, Array]], Array]
    message: Callable[[ModelColumns | None, dict[str, float]], str]


def _mod0(a: Array, b: Array) -> Array:
    return np.mod(a, b) == 0


LAYOUT_RULES: tuple[LayoutRule, ...] = (
    LayoutRule("interleaving needs a pipeline", False,
               lambda m, L: (L["vpp"] == 1) | (L["pp"] > 1),
               lambda m, L: "vpp > 1 (interleaved pipeline) requires pp > 1"),
    LayoutRule("ep divides dp x cp", False,  # Megatron-core: expert groups carved from dp x cp
               lambda m, L: _mod0(L["dp"] * L["cp"], L["ep"]),
               lambda m, L: f"ep ({L['ep']:g}) must divide dp * cp ({L['dp'] * L['cp']:g})"),
    LayoutRule("tp divides heads", True,  # Megatron: attention heads split across tp
               lambda m, L: _mod0(m.n_heads, L["tp"]),
               lambda m, L: f"tp ({L['tp']:g}) does not divide n_heads ({m.n_heads:g})"),
    LayoutRule("tp and kv heads divide", True,  # GQA: KV heads split or replicated across tp
               lambda m, L: (m.is_mla > 0) | _mod0(m.kv_heads, L["tp"]) | _mod0(L["tp"], m.kv_heads),
               lambda m, L: f"tp ({L['tp']:g}) and n_kv_heads ({m.kv_heads:g}) do not divide one another"),
    LayoutRule("pp x vpp divides layers", True,  # even stages (uneven stages: a later issue)
               lambda m, L: _mod0(m.n_layers, L["pp"] * L["vpp"]),
               lambda m, L: f"pp * vpp ({L['pp'] * L['vpp']:g}) does not divide n_layers ({m.n_layers:g})"),
    LayoutRule("ep divides experts", True,
               lambda m, L: np.where(m.n_experts > 0, _mod0(m.n_experts, L["ep"]), L["ep"] == 1),
               lambda m, L: (f"ep ({L['ep']:g}) does not divide n_experts ({m.n_experts:g})"
                             if m.n_experts > 0 else "ep > 1 on a dense model")),
)


def _degrees(tp, pp, vpp, dp, cp, ep) -> dict[str, Array]:
    return {k: as_array(v) for k, v in (("tp", tp), ("pp", pp), ("vpp", vpp), ("dp", dp),
                                        ("cp", cp), ("ep", ep))}


def layout_violations(m: ModelColumns | None, tp: Array, pp: Array, vpp: Array, dp: Array,
                      cp: Array, ep: Array) -> dict[str, Array]:
    """Rule name -> True where a row breaks it (model rules skipped when ``m`` is None)."""
    L = _degrees(tp, pp, vpp, dp, cp, ep)
    return {r.name: ~np.asarray(r.ok(m, L), dtype=bool) for r in LAYOUT_RULES
            if m is not None or not r.needs_model}


def layout_fits(m: ModelColumns, tp: Array, pp: Array, vpp: Array, ep: Array,
                dp: Array = 1.0, cp: Array = 1.0) -> Array:
    """True where the layout obeys every rule of ``LAYOUT_RULES``."""
    bad = layout_violations(m, tp, pp, vpp, dp, cp, ep).values()
    return ~np.logical_or.reduce(list(bad))


def _problems(m: ModelColumns | None, layout: ParallelLayout) -> list[str]:
    L = {k: float(getattr(layout, k)) for k in ("tp", "pp", "vpp", "dp", "cp", "ep")}
    scalar = None if m is None else ModelColumns(**{k: float(v) for k, v in vars(m).items()})
    return [r.message(scalar, L) for r in LAYOUT_RULES
            if (m is not None or not r.needs_model) and not bool(r.ok(scalar, _degrees(**L)))]


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
        problems = _problems(None, self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def n_devices(self) -> int:
        return self.tp * self.pp * self.cp * self.dp


def layout_problems(model: ModelSpec, layout: ParallelLayout) -> list[str]:
    """Why ``layout`` cannot shard ``model`` (empty when it can): the rules of ``LAYOUT_RULES``."""
    return _problems(ModelColumns.from_spec(model), layout)
