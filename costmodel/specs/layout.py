"""Parallel layout: tensor, pipeline (with virtual stages), data, context and expert parallelism, ZeRO.

Ranks are placed as Megatron-LM does by default: tensor-parallel ranks innermost, then context,
then data, then pipeline (``--rank-order tp-cp-ep-dp-pp``). Expert layers re-group the tp x cp x dp
ranks of each pipeline stage (Megatron-core MoE "parallel folding", ``--expert-tensor-parallel-size``):
experts are split across ``etp`` ranks and ``ep`` expert-parallel groups, ``etp * ep`` must divide
``tp * cp * dp``, and expert parameters are data-parallel over ``tp * cp * dp / (etp * ep)`` ranks.
``etp`` = tp (the default, Megatron-core before folding) makes this "ep divides dp * cp".

Pipeline stages may be uneven: ``first_stage_layers`` / ``last_stage_layers`` are Megatron-LM's
``--decoder-first-pipeline-num-layers`` / ``--decoder-last-pipeline-num-layers`` (the remaining
blocks split evenly over the other stages, which Megatron requires). Left unset, the split is
(in this order) even; Megatron's ``--account-for-embedding-in-pipeline-split
--account-for-loss-in-pipeline-split`` when pp x vpp divides n_layers + 2 (the embedding and the
loss each counted as one block: Llama 3 405B's 126 layers over 16 stages, first and last stage one
block lighter); otherwise, without interleaving, the balanced split torchtitan accepts (every stage
ceil or floor of n_layers / pp blocks, the lighter ones first and last).

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

__all__ = ["DEFAULT_RANK_ORDER", "RANK_DIMENSIONS", "LAYOUT_RULES", "ParallelLayout", "StageSplit",
           "layout_fits", "layout_problems", "layout_violations", "rank_strides", "stage_split"]


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


def _etp(L: dict[str, Array]) -> Array:
    """Expert tensor-parallel degree: ``etp``, or tp where it is 0 (not set)."""
    return np.where(L["etp"] > 0, L["etp"], L["tp"])


@dataclass(frozen=True)
class StageSplit:
    """Blocks per pipeline stage, per row: the first stage, every middle stage (at most), the last
    stage; ``ok`` is False where no split obeys the rules (see the module docstring)."""

    first: Array
    middle: Array
    last: Array
    ok: Array


def stage_split(n_layers: Array, pp: Array, vpp: Array = 1.0, first: Array = 0.0,
                last: Array = 0.0) -> StageSplit:
    """Resolve the pipeline split of every row (``first``/``last`` 0 = not given)."""
    L, p, v, f, la = (as_array(x) for x in (n_layers, pp, vpp, first, last))
    # Given by the user (Megatron-LM flags): the other stages share the rest evenly.
    given_f, given_l = f > 0, la > 0
    n_mid = p - given_f - given_l
    rest = L - f - la
    mid_given = rest / np.maximum(n_mid, 1.0)
    chunks_ok = np.where(n_mid > 0, _mod0(rest, np.maximum(n_mid, 1.0) * v) & (rest >= n_mid * v), rest == 0)
    ok_given = (p > 1) & chunks_ok & _mod0(f, v) & _mod0(la, v)
    # Automatic: even; embedding and loss counted as blocks; balanced (no interleaving).
    even = _mod0(L, p * v) & (L >= p * v)
    per_emb = (L + 2) / p
    emb = (p > 1) & _mod0(L + 2, p * v) & ((L + 2) / (p * v) >= 2) & ~even
    q = np.floor(L / p)
    r = L - q * p
    balanced = ~even & ~emb & (v == 1) & (q >= 1)
    f_auto = np.where(even, L / p, np.where(emb, per_emb - 1, q))
    m_auto = np.where(even, L / p, np.where(emb, per_emb, q + (r > 0)))
    l_auto = np.where(even, L / p, np.where(emb, per_emb - 1, np.where(p - r >= 2, q, q + 1)))
    auto = ~given_f & ~given_l
    one = p == 1
    return StageSplit(
        first=np.where(one, L, np.where(auto, f_auto, np.where(given_f, f, mid_given))),
        middle=np.where(one, L, np.where(auto, m_auto, mid_given)),
        last=np.where(one, L, np.where(auto, l_auto, np.where(given_l, la, mid_given))),
        ok=np.where(auto, even | emb | balanced | (one & (L >= 1)), ok_given),
    )


def split_ok(n_layers: Array, pp: Array, vpp: Array, first: Array, last: Array) -> Array:
    return stage_split(n_layers, pp, vpp, first, last).ok


def split_problem(n_layers: float, pp: float, vpp: float, first: float, last: float) -> str:
    """Why no pipeline split exists for one row."""
    if first or last:
        return (f"first_stage_layers ({first:g}) and last_stage_layers ({last:g}) leave "
                f"{n_layers - first - last:g} of n_layers ({n_layers:g}) for the other stages, "
                f"which must split them evenly (pp = {pp:g}, vpp = {vpp:g}; Megatron-LM "
                "--decoder-first/last-pipeline-num-layers)")
    if vpp > 1 and (n_layers + 2) % (pp * vpp) == 0 and n_layers % (pp * vpp) != 0:
        return (f"pp * vpp ({pp * vpp:g}) model chunks of n_layers + 2 ({n_layers + 2:g}, embedding and "
                "loss counted as blocks) would leave the first and last chunk without a transformer "
                "block; Megatron-LM needs at least one per chunk (use a smaller vpp)")
    if vpp > 1:
        return (f"pp * vpp ({pp * vpp:g}) divides neither n_layers ({n_layers:g}) nor n_layers + 2 "
                "(the interleaved schedule needs equal model chunks; Megatron-LM counts the "
                "embedding and loss as blocks with --account-for-embedding/loss-in-pipeline-split)")
    return f"pp ({pp:g}) exceeds n_layers ({n_layers:g}): a pipeline stage would hold no block"


LAYOUT_RULES: tuple[LayoutRule, ...] = (
    LayoutRule("interleaving needs a pipeline", False,
               lambda m, L: (L["vpp"] == 1) | (L["pp"] > 1),
               lambda m, L: "vpp > 1 (interleaved pipeline) requires pp > 1"),
    LayoutRule("etp x ep divides tp x dp x cp", False,  # Megatron-core parallel folding
               lambda m, L: _mod0(L["tp"] * L["dp"] * L["cp"], _etp(L) * L["ep"]),
               lambda m, L: (f"ep ({L['ep']:g}) must divide dp * cp ({L['dp'] * L['cp']:g})"
                             if L["etp"] == 0 else
                             f"etp * ep ({L['etp'] * L['ep']:g}) must divide tp * dp * cp "
                             f"({L['tp'] * L['dp'] * L['cp']:g})")),
    LayoutRule("stage layers need a pipeline", False,  # Megatron: the flags apply to pp > 1
               lambda m, L: (L["pp"] > 1) | ((L["first"] == 0) & (L["last"] == 0)),
               lambda m, L: "first_stage_layers / last_stage_layers need pp > 1"),
    LayoutRule("tp divides heads", True,  # Megatron: attention heads split across tp
               lambda m, L: _mod0(m.n_heads, L["tp"]),
               lambda m, L: f"tp ({L['tp']:g}) does not divide n_heads ({m.n_heads:g})"),
    LayoutRule("tp and kv heads divide", True,  # GQA: KV heads split or replicated across tp
               lambda m, L: (m.is_mla > 0) | _mod0(m.kv_heads, L["tp"]) | _mod0(L["tp"], m.kv_heads),
               lambda m, L: f"tp ({L['tp']:g}) and n_kv_heads ({m.kv_heads:g}) do not divide one another"),
    LayoutRule("pipeline split exists", True,
               lambda m, L: split_ok(m.n_layers, L["pp"], L["vpp"], L["first"], L["last"]),
               lambda m, L: split_problem(m.n_layers, L["pp"], L["vpp"], L["first"], L["last"])),
    LayoutRule("ep divides experts", True,
               lambda m, L: np.where(m.n_experts > 0, _mod0(m.n_experts, L["ep"]), L["ep"] == 1),
               lambda m, L: (f"ep ({L['ep']:g}) does not divide n_experts ({m.n_experts:g})"
                             if m.n_experts > 0 else "ep > 1 on a dense model")),
)


def _degrees(tp, pp, vpp, dp, cp, ep, etp=0.0, first=0.0, last=0.0) -> dict[str, Array]:
    return {k: as_array(v) for k, v in (("tp", tp), ("pp", pp), ("vpp", vpp), ("dp", dp),
                                        ("cp", cp), ("ep", ep), ("etp", etp), ("first", first),
                                        ("last", last))}


def layout_violations(m: ModelColumns | None, tp: Array, pp: Array, vpp: Array, dp: Array,
                      cp: Array, ep: Array, etp: Array = 0.0, first: Array = 0.0,
                      last: Array = 0.0) -> dict[str, Array]:
    """Rule name -> True where a row breaks it (model rules skipped when ``m`` is None).
    ``etp`` 0 means etp = tp; ``first``/``last`` 0 mean the automatic stage split."""
    L = _degrees(tp, pp, vpp, dp, cp, ep, etp, first, last)
    return {r.name: ~np.asarray(r.ok(m, L), dtype=bool) for r in LAYOUT_RULES
            if m is not None or not r.needs_model}


def layout_fits(m: ModelColumns, tp: Array, pp: Array, vpp: Array, ep: Array,
                dp: Array = 1.0, cp: Array = 1.0, etp: Array = 0.0) -> Array:
    """True where the layout obeys every rule of ``LAYOUT_RULES``."""
    bad = layout_violations(m, tp, pp, vpp, dp, cp, ep, etp).values()
    return ~np.logical_or.reduce(list(bad))


def _problems(m: ModelColumns | None, layout: ParallelLayout) -> list[str]:
    L = {k: float(getattr(layout, k)) for k in ("tp", "pp", "vpp", "dp", "cp", "ep")}
    L.update(etp=float(layout.etp or 0), first=float(layout.first_stage_layers or 0),
             last=float(layout.last_stage_layers or 0))
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
    ep: int = Field(1, ge=1, description="Expert-parallel degree (etp * ep must divide tp * dp * cp).")
    etp: int | None = Field(
        None, ge=1, description="Expert tensor-parallel degree (Megatron-core "
        "--expert-tensor-parallel-size); default: tp.")
    first_stage_layers: int | None = Field(
        None, ge=1, description="Blocks on the first pipeline stage (Megatron-LM "
        "--decoder-first-pipeline-num-layers); default: the automatic split.")
    last_stage_layers: int | None = Field(
        None, ge=1, description="Blocks on the last pipeline stage (Megatron-LM "
        "--decoder-last-pipeline-num-layers); default: the automatic split.")
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
