"""Serving as a job kind of the one engine: capacity planning for a load under SLOs.

- ``evaluate_serving``: integer-coded replica configurations (a grid chunk, or one configuration as
  a grid of one row) -> reason per row, and for the rows that reach the engine: memory (weights,
  paged KV cache, workspace), the largest batch that fits, steady-state continuous batching (time
  per output token, throughput, time to first token without queueing), and with a load: the
  replicas that meet the SLOs with the stated utilisation headroom, and p95 TTFT / end-to-end
  latency under Poisson arrivals (``formulas.queueing``).
- ``price_serving``: those rows with priced offers -> billed instances, monthly cost (730 h),
  USD per million input and output tokens, energy; the budget reason.
- ``ServingJob``: the planner's hooks (dimensions, objectives, Pareto axes, report rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from costmodel.formulas.cost import HOURS_PER_MONTH
from costmodel.formulas.hardware import HardwareColumns
from costmodel.formulas.queueing import min_servers_groups, utilization
from costmodel.formulas.serving import (
    ServingKnobs, chunked_ttft, decode_only_iteration, disaggregated_state, max_batch, serving_roofline,
    serving_memory, steady_iteration, steady_outputs, take_knobs, take_roofline,
)
from costmodel.jobs.base import JobKind
from costmodel.specs.serving import QUANT_SCHEMES, SCHEME_CODES, SCHEMES, SPARSITIES, SPARSITY_CODES
from costmodel.specs.columns import Array, ModelColumns, flatten_coded
from costmodel.specs.serving import ServingColumns, ServingLoad, build_serving_columns, replica_violations
from costmodel.tables.hardware import HardwareTable
from costmodel.tables.knobs import knob_columns
from costmodel.tables.offers import PRICE_REPORT_COLUMNS, OfferTable, price_report_columns

__all__ = ["REASONS", "ServingJob", "evaluate_serving", "price_serving", "serving_knobs"]

REASONS = (
    "feasible",
    "layout does not divide the model",
    "format unsupported on hardware",
    "no efficiency or price data",
    "out of memory",
    "misses TPOT SLO",
    "misses TTFT or latency SLO",
    "over budget",
)
LAYOUT, FORMAT, DATA, MEMORY, TPOT_SLO, LATENCY_SLO, BUDGET = range(1, 8)
QUANTILE = 0.95
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
MEMORY_PARTS = ("weights", "kv_cache", "activations", "framework")


def serving_knobs(knobs: Mapping[str, Array]) -> ServingKnobs:
    """The serving knobs of ``data/assumptions.yaml`` (columns of ``tables.knobs``)."""
    return ServingKnobs(
        step_overhead_s=knobs["serving_step_overhead_s"],
        kv_block_tokens=knobs["serving_kv_block_tokens"],
        memory_utilization=knobs["serving_memory_utilization"],
        prefill_chunk_tokens=knobs["serving_prefill_chunk_tokens"],
        gemm_kernel_overhead_s=knobs["gemm_kernel_overhead_s"],
        gemm_half_efficiency_gflops=knobs["gemm_half_efficiency_gflops"],
        expert_gemm_efficiency_scale=knobs["expert_gemm_efficiency_scale"],
        weight_only_overhead=knobs["serving_weight_only_compute_overhead"],
        elementwise_traffic_factor=knobs["elementwise_traffic_factor"],
        cuda_context_bytes=knobs["cuda_context_bytes"])


@dataclass
class ServingEvaluated:
    """Reason per input row; columns, hardware and outputs of the rows that reached the engine."""

    reason: np.ndarray
    live: np.ndarray
    s: ServingColumns | None = None
    hw: HardwareColumns | None = None
    out: dict[str, Array] | None = None
    model: ModelColumns | None = None


def evaluate_serving(
    model: ModelColumns,
    coded: Mapping[str, Any],
    system_code: Array,
    table: HardwareTable,
    knobs: Mapping[str, Array],
    load: ServingLoad | None = None,
    *,
    prune: bool = False,
    share_key: np.ndarray | None = None,
) -> ServingEvaluated:
    """Reasons and engine outputs of integer-coded replica configurations (see
    ``specs.serving.build_serving_columns``); with a ``load``, also replicas and p95 latencies.

    ``prune`` (the planner's search): a row leaves as soon as its reason is decided, so the
    costlier stages run only on rows that can still be feasible: memory on every live row, the
    steady-state iteration on the rows that fit, the decode-only iteration on those that meet the
    TPOT objective co-located (and the disaggregated ones), time to first token and the
    disaggregated prefill on the rest. The reasons and the outputs of the rows that stay are the
    same as without pruning; ``live`` then holds only the rows that went through every stage.
    ``share_key`` (with ``prune``): one integer per row, equal for rows whose inputs differ at
    most in ``disaggregated`` (the planner's grid position without that coordinate); the engine
    then evaluates each such group once."""
    flat, sys_code = flatten_coded(coded, system_code)
    reason = np.zeros(len(sys_code), dtype=np.int8)
    reason[_replica_violations(model, flat["tp"], flat["pp"], flat["ep"])] = LAYOUT
    s_all = build_serving_columns(flat)
    fmt_ok, data_ok = table.usable(sys_code, s_all.matmul_format, s_all.attention_format)
    reason[(reason == 0) & ~fmt_ok] = FORMAT
    reason[(reason == 0) & ~data_ok] = DATA
    live = np.flatnonzero(reason == 0)
    if live.size == 0:
        return ServingEvaluated(reason, live)
    s = s_all.take(live)
    m = model if np.ndim(model.n_layers) == 0 else model.take(live)
    knobs_live = {name: (v[live] if np.ndim(v) else v) for name, v in knobs.items()}
    k = serving_knobs(knobs_live)
    disaggregated = np.asarray(flat.get("disaggregated", np.zeros(len(sys_code))), dtype=float)[live]
    if prune:
        return _evaluate_pruned(reason, live, _Stage(m, s, None, k, sc=sys_code[live]), table, knobs_live,
                                disaggregated, flat["precision"][live], load,
                                None if share_key is None else np.asarray(share_key).reshape(-1)[live])
    hw = table.columns(sys_code[live], s.matmul_format, s.attention_format)
    out = _replica(m, s, hw, k, disaggregated)
    out["precision"] = flat["precision"][live]
    reason[live[out["max_batch"] < s.batch]] = MEMORY
    if load is not None:
        slo_reason = _capacity(out, s, load, knobs_live, todo=reason[live] == 0)
        bad = (reason[live] == 0) & (slo_reason > 0)
        reason[live[bad]] = slo_reason[bad]
    return ServingEvaluated(reason, live, s, hw, out, m)


def _replica_violations(model: ModelColumns, tp, pp, ep) -> np.ndarray:
    """``replica_violations`` per row, evaluated once per combination of the distinct tp, pp and
    ep values when one model serves every row and the degrees are small whole numbers (a grid
    chunk repeats a few); rows look their combination up (no sort)."""
    tp, pp, ep = (np.asarray(x, dtype=np.float64) for x in (tp, pp, ep))
    small = lambda x: bool(np.all((x >= 0) & (x < 1024) & (x == np.floor(x))))  # noqa: E731
    if not (np.ndim(model.n_layers) == 0 and tp.ndim == 1 and tp.size > 64
            and small(tp) and small(pp) and small(ep)):
        return replica_violations(model, tp, pp, ep)
    values, codes = [], []
    for x in (tp, pp, ep):
        i = x.astype(np.intp)
        present = np.zeros(1024, dtype=bool)
        present[i] = True
        values.append(np.flatnonzero(present).astype(np.float64))
        codes.append((np.cumsum(present) - 1)[i])
    if len(values[0]) * len(values[1]) * len(values[2]) > tp.size:
        return replica_violations(model, tp, pp, ep)
    grid = np.meshgrid(*values, indexing="ij")
    table = replica_violations(model, *(g.ravel() for g in grid))
    return table[(codes[0] * len(values[1]) + codes[1]) * len(values[2]) + codes[2]]


class _Stage:
    """Per-row engine inputs of one stage of the pruned evaluation: model, serving columns,
    hardware (None until built: the memory stage reads two table columns), knobs, the roofline
    once built, and the system codes."""

    __slots__ = ("m", "s", "hw", "k", "roof", "sc")

    def __init__(self, m, s, hw, k, roof=None, sc=None):
        self.m, self.s, self.hw, self.k, self.roof, self.sc = m, s, hw, k, roof, sc

    def take(self, index: np.ndarray) -> _Stage:
        return _Stage(self.m if np.ndim(self.m.n_layers) == 0 else self.m.take(index),
                      self.s.take(index), None if self.hw is None else self.hw.take(index),
                      take_knobs(self.k, index), None if self.roof is None else take_roofline(self.roof, index),
                      self.sc[index])


def _configurations(key: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(first row of each configuration, configuration of each row) for rows whose engine inputs
    are equal where ``key`` is equal; (None, None) without a key or when no two rows share one."""
    if key is None or key.size < 2:
        return None, None
    if np.all(key[1:] >= key[:-1]):  # grid order: equal keys are adjacent, no sort needed
        new = np.empty(key.size, dtype=bool)
        new[0] = True
        np.not_equal(key[1:], key[:-1], out=new[1:])
        first, inverse = np.flatnonzero(new), np.cumsum(new) - 1
    else:
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return (None, None) if first.size == key.size else (first, inverse)


def _narrow(cfg: _Stage, cur: np.ndarray, inverse: np.ndarray, alive: np.ndarray, n_cfg: int,
            values: list) -> tuple[_Stage, np.ndarray, list]:
    """The stage's configurations (ids ``cur``) and per-configuration ``values`` (arrays or dicts
    of arrays) restricted to those that still have a row ``alive``."""
    needed = np.zeros(n_cfg, dtype=bool)
    needed[inverse[alive]] = True
    keep = np.flatnonzero(needed[cur])
    if keep.size == cur.size:
        return cfg, cur, values
    pick = lambda v: {n: (x[keep] if np.ndim(x) else x) for n, x in v.items()} if isinstance(v, dict) else v[keep]  # noqa: E731
    return cfg.take(keep), cur[keep], [pick(v) for v in values]


def _evaluate_pruned(reason, live, st: _Stage, table: HardwareTable, knobs_live, disaggregated,
                     precision, load, share_key) -> ServingEvaluated:
    """``evaluate_serving(prune=True)`` after the table checks: the stages of ``_replica`` and
    ``_capacity`` in order of cost, each on the configurations the previous ones left. Rows that
    differ only in ``disaggregated`` (equal ``share_key``) are one configuration for the engine:
    memory, the steady iteration, the decode-only iteration and time to first token are
    evaluated once for them; the objectives then apply per row (a co-located row at the steady
    iteration, a disaggregated one at the decode-only iteration)."""
    n = live.size
    per_row_inputs = np.ndim(st.m.n_layers) > 0 or any(np.ndim(v) for v in knobs_live.values())
    first, inverse = (None, None) if per_row_inputs else _configurations(share_key)
    if first is None:
        cfg, inverse = st, np.arange(n)
    else:
        cfg = st.take(first)
    n_cfg = int(inverse.max()) + 1 if n else 0
    cur = np.arange(n_cfg)  # configuration ids the stage's arrays hold
    is_dis = disaggregated > 0
    slo = load.tpot_p95_s if load is not None else None

    def at_rows(cur: np.ndarray) -> np.ndarray:
        """Position in the stage's arrays of each row's configuration (rows still alive)."""
        pos = np.zeros(n_cfg, dtype=np.int64)
        pos[cur] = np.arange(cur.size)
        return pos[inverse]

    # 1. Memory: the largest batch that fits (device memory and sparse storage from the table).
    memory_hw = SimpleNamespace(memory_bytes=table.memory_bytes[cfg.sc],
                                sparsity_speedup=table.sparsity_speedup[cfg.sc])
    max_b = np.minimum(max_batch(cfg.m, cfg.s, cfg.k, memory_hw), 1e6)
    over = (max_b < cfg.s.batch)[inverse]
    reason[live[over]] = MEMORY
    alive = ~over
    cfg, cur, (max_b,) = _narrow(cfg, cur, inverse, alive, n_cfg, [max_b])
    if not alive.any():
        return ServingEvaluated(reason, live[alive])
    # 2. The steady iteration: a co-located row's time per output token.
    cfg.hw = table.columns(cfg.sc, cfg.s.matmul_format, cfg.s.attention_format)
    cfg.roof = serving_roofline(cfg.hw, cfg.k, cfg.s)
    it = steady_iteration(cfg.m, cfg.s, cfg.hw, cfg.k, cfg.roof)
    if slo:
        over = alive & ~is_dis & (it["total"][at_rows(cur)] > slo)
        reason[live[over]] = TPOT_SLO
        alive &= ~over
        cfg, cur, (max_b, it) = _narrow(cfg, cur, inverse, alive, n_cfg, [max_b, it])
        if not alive.any():
            return ServingEvaluated(reason, live[alive])
    # 3. The decode-only iteration: a disaggregated row's time per output token.
    decode_only = decode_only_iteration(cfg.m, cfg.s, cfg.hw, cfg.k, cfg.roof)["total"]
    if slo:
        over = alive & is_dis & (decode_only[at_rows(cur)] > slo)
        reason[live[over]] = TPOT_SLO
        alive &= ~over
        cfg, cur, (max_b, it, decode_only) = _narrow(cfg, cur, inverse, alive, n_cfg,
                                                     [max_b, it, decode_only])
    rows = np.flatnonzero(alive)
    live = live[rows]
    if rows.size == 0:
        return ServingEvaluated(reason, live)
    # 4. Time to first token, then the rows: disaggregated pools and the replicas under the SLOs.
    ttft = chunked_ttft(cfg.m, cfg.s, cfg.hw, cfg.k, cfg.roof)
    p = at_rows(cur)[rows]
    if p.size != cur.size or np.any(p != np.arange(p.size)):
        cfg = cfg.take(p)
        it = {name: (v[p] if np.ndim(v) else v) for name, v in it.items()}
        max_b, decode_only, ttft = max_b[p], decode_only[p], ttft[p]
    steady = steady_outputs(cfg.s, it, decode_only, ttft)
    out = _replica(cfg.m, cfg.s, cfg.hw, cfg.k, disaggregated[rows], steady=steady, max_b=max_b,
                   roof=cfg.roof)
    out["precision"] = precision[rows]
    if load is not None:
        slo_reason = _capacity(out, cfg.s, load, {name: (v[rows] if np.ndim(v) else v)
                                                  for name, v in knobs_live.items()})
        reason[live[slo_reason > 0]] = slo_reason[slo_reason > 0]
    return ServingEvaluated(reason, live, cfg.s, cfg.hw, out, cfg.m)


def _replica(m: ModelColumns, s: ServingColumns, hw: HardwareColumns, k: ServingKnobs,
             disaggregated: np.ndarray, *, steady: dict[str, Array] | None = None,
             max_b: Array | None = None, roof=None) -> dict[str, Array]:
    """Memory, steady state and the disaggregated pools of a replica per row (``steady``,
    ``max_b``, ``roof``: when the caller computed them)."""
    mem = serving_memory(m, s, k, hw=hw)
    out: dict[str, Array] = {f"memory_{p}_bytes": mem[p] for p in MEMORY_PARTS}
    out["memory_total_bytes"] = mem.total
    out["memory_capacity_bytes"] = hw.memory_bytes + 0.0 * mem.total
    out["max_batch"] = np.minimum(max_batch(m, s, k, hw), 1e6) if max_b is None else max_b
    out["memory_fits"] = out["max_batch"] >= s.batch
    if steady is None:
        roof = serving_roofline(hw, k, s)
        steady = steady_outputs(s, steady_iteration(m, s, hw, k, roof),
                                decode_only_iteration(m, s, hw, k, roof)["total"],
                                chunked_ttft(m, s, hw, k, roof))
    out.update(steady)
    out["disaggregated"] = disaggregated + 0.0 * mem.total
    out.update(prefill_service_s=0.0 * mem.total, decode_service_s=out["service_time_s"],
               kv_transfer_s=0.0 * mem.total)  # the same keys in every chunk
    if np.any(disaggregated > 0):
        # Separate prefill and decode pools: decode runs without prefill interference. Only the
        # disaggregated rows are evaluated.
        on_rows = np.flatnonzero(disaggregated > 0)
        m_on = m if np.ndim(m.n_layers) == 0 else m.take(on_rows)
        dis = disaggregated_state(m_on, s.take(on_rows), hw.take(on_rows), take_knobs(k, on_rows),
                                  out["decode_only_tpot_s"][on_rows],
                                  None if roof is None else take_roofline(roof, on_rows))
        on = disaggregated > 0

        def spread(x):  # disaggregated rows' values at their rows (0 elsewhere; masked below)
            full = np.zeros(np.shape(on))
            full[on_rows] = x
            return full

        dis = {name: spread(v) for name, v in dis.items()}
        out["tpot_s"] = np.where(on, out["decode_only_tpot_s"], out["tpot_s"])
        out["ttft_service_s"] = np.where(on, dis["ttft_service_s"], out["ttft_service_s"])
        out["service_time_s"] = np.where(on, dis["ttft_service_s"] + dis["decode_service_s"],
                                         out["service_time_s"])
        out["output_tokens_per_s_per_replica"] = s.batch / out["tpot_s"]
        out["prefill_service_s"] = np.where(on, dis["prefill_service_s"], 0.0)
        out["decode_service_s"] = np.where(on, dis["decode_service_s"] + out["tpot_s"],
                                           out["service_time_s"])
        out["kv_transfer_s"] = np.where(on, dis["kv_transfer_s"], 0.0)
    out["output_tokens_per_s_per_device"] = out["output_tokens_per_s_per_replica"] / s.devices
    out["devices_per_replica"] = s.devices + 0.0 * mem.total
    return out


def _budget(load: ServingLoad, ttft0: Array, service: Array) -> Array:
    """Queueing time the latency objectives leave: p95 TTFT minus the unqueued TTFT, p95 end-to-end
    minus the service time (inf without objectives; negative: missed even without queueing)."""
    inf = np.inf
    return np.minimum(load.ttft_p95_s - ttft0 if load.ttft_p95_s else inf,
                      load.e2e_p95_s - service if load.e2e_p95_s else inf)


def _capacity(out: dict[str, Array], s: ServingColumns, load: ServingLoad, knobs,
              todo: np.ndarray | None = None) -> np.ndarray:
    """Replicas for the peak load under the SLOs (adds them to ``out``); SLO reason per row.
    Only rows ``todo`` (default all) that meet the TPOT objective are sized; others keep 1.

    Co-located: B slots per replica, each request holds one for its service time (M/G/c with
    c = replicas x B). Disaggregated: a prefill pool (one prompt per replica at a time) and a
    decode pool (B slots), each an M/G/c queue; the queueing time the objectives leave is split
    equally between the two pools' p95 waits (a stated simplification)."""
    lam = load.requests_per_s * load.peak_factor
    ttft0, service, tpot = out["ttft_service_s"], out["service_time_s"], out["tpot_s"]
    n = len(tpot)
    cv2 = np.broadcast_to(np.asarray(knobs["serving_service_time_cv2"], dtype=float), n)
    budget = np.broadcast_to(_budget(load, ttft0, service), n)
    batch = np.broadcast_to(np.asarray(s.batch, dtype=float), n)
    reason = np.zeros(n, dtype=np.int8)
    if load.tpot_p95_s:
        reason[tpot > load.tpot_p95_s] = TPOT_SLO
    reason[(reason == 0) & (budget < 0)] = LATENCY_SLO
    size = (reason == 0) if todo is None else (reason == 0) & todo
    dis = np.broadcast_to(out["disaggregated"] > 0, n)
    prefill, decode, wait = np.zeros(n), np.full(n, np.nan), np.zeros(n)

    def pool(rows, svc, slots, share):
        # Replicas and the p95 wait at them (one replica's where none qualifies).
        return min_servers_groups(lam, svc[rows], slots[rows], load.max_utilization, budget[rows] * share,
                                  q=QUANTILE, service_cv2=cv2[rows], return_wait=True)

    col, dsg = np.flatnonzero(size & ~dis), np.flatnonzero(size & dis)
    decode[col], wait[col] = pool(col, service, batch, 1.0)
    if dsg.size:
        prefill[dsg], w_p = pool(dsg, out["prefill_service_s"], np.ones(n), 0.5)
        decode[dsg], w_d = pool(dsg, out["decode_service_s"], batch, 0.5)
        wait[dsg] = w_p + w_d
    reason[size & ~np.isfinite(prefill + decode)] = LATENCY_SLO
    _store_pools(out, s, dis, prefill, decode, wait, lam)
    return reason


def _store_pools(out, s, dis, prefill, decode, wait, lam) -> None:
    """Replicas (both pools when disaggregated) and p95 latencies into ``out``; rows not sized
    keep one replica (they are infeasible for another reason)."""
    d = np.where(np.isfinite(decode), decode, 1.0)
    p = np.where(np.isfinite(prefill), prefill, 0.0)
    r = p + d
    out.update(replicas=r, prefill_replicas=p, decode_replicas=d, n_devices=r * s.devices,
               wait_p95_s=wait, ttft_p95_s=wait + out["ttft_service_s"],
               e2e_p95_s=wait + out["service_time_s"],
               utilization=utilization(lam, out["service_time_s"], d * s.batch + p))
    out["prefill_time_share"] = np.where(dis, p / r, out["prefill_time_share"])


def billed_instances(replicas: Array, devices_per_replica: Array, devices_per_instance: Array) -> Array:
    """Whole instances billed for ``replicas`` replicas: replicas share an instance when they fit
    in it (devices per instance / devices per replica of them), else each takes whole instances."""
    per_instance = np.floor(devices_per_instance / devices_per_replica)
    shared = np.ceil(replicas / np.maximum(per_instance, 1.0))
    own = replicas * np.ceil(devices_per_replica / devices_per_instance)
    return np.where(per_instance >= 1, shared, own)


def price_serving(ev: ServingEvaluated, rows: np.ndarray, offers: OfferTable, offer_rows: np.ndarray,
                  load: ServingLoad, knobs: Mapping[str, Array], *, budget_usd: float | None = None
                  ) -> dict[str, Array]:
    """The serving pricing function: live rows ``rows`` billed with ``offer_rows`` for a month
    (730 h) at the fleet size of ``evaluate_serving``. Cost per token: the month's bill over the
    month's tokens at the mean load, split between input and output tokens by the share of a
    replica's iteration time the prompt tokens take (``prefill_time_share``)."""
    out = ev.out
    dpi = offers.devices_per_instance[offer_rows]
    price = offers.usd_per_device_hour[offer_rows]
    instances = billed_instances(out["replicas"][rows], ev.s.devices[rows], dpi)
    month = instances * dpi * price * HOURS_PER_MONTH
    requests = load.requests_per_s * SECONDS_PER_MONTH
    share_in = out["prefill_time_share"][rows]
    kn = {k: (np.asarray(v)[ev.live][rows] if np.ndim(v) else v) for k, v in knobs.items()}
    one = billed_instances(1.0, ev.s.devices[rows], dpi) * dpi * price * HOURS_PER_MONTH
    cost = {
        "instances": instances, "devices_per_instance": dpi, "usd_per_device_hour": price,
        "billed_devices": instances * dpi, "cost_per_month_usd": month,
        "cost_per_replica_month_usd": one,
        "usd_per_million_input_tokens": month * share_in / (requests * load.input_len / 1e6),
        "usd_per_million_output_tokens": month * (1 - share_in) / (requests * load.output_len / 1e6),
        "energy_kwh_per_month": out["n_devices"][rows] * ev.hw.tdp_w[rows]
        * kn["power_utilization_fraction"] * HOURS_PER_MONTH / 1000.0 * kn["pue"],
    }
    reason = np.zeros(len(rows), dtype=np.int8)
    if budget_usd is not None:
        reason[month > budget_usd] = BUDGET
    reason[(reason == 0) & ~np.isfinite(month)] = DATA
    cost["reason"] = reason
    return cost


# The planner's hooks ---------------------------------------------------------------------------

DIMENSIONS = ("system", "tp", "pp", "ep", "batch", "precision", "kv_bits", "disaggregated",
              "sparsity", "group_size")

#: The wide report's columns (``costmodel plan --csv`` for a serving job), in order.
PLAN_COLUMNS = (
    "rank", "accelerator", "kind", "provider", "offer", "region", "pricing_model", "system",
    "devices_per_replica", "tp", "pp", "ep", "precision", "weight_bits", "activation_bits", "kv_bits",
    "sparsity", "distilled_from", "peft", "quality_impact", "quality_loss_fraction", "quality_source",
    "batch_size", "max_batch",
    "disaggregated", "replicas", "prefill_replicas", "decode_replicas", "n_devices", "instances", "devices_per_instance", "billing", "ttft_p95_s",
    "tpot_p95_s", "e2e_p95_s", "utilization", "output_tokens_per_s_per_replica",
    "output_tokens_per_s_per_device", "cost_per_month_usd", "cost_per_replica_month_usd",
    "usd_per_million_input_tokens", "usd_per_million_output_tokens", "cost_autoscaled_per_month_usd",
    "usd_per_device_hour", "memory_per_device_gib", "memory_capacity_gib", "memory_headroom_gib",
    "gemms_memory_bound_share", "energy_kwh_per_month", "api_provider",
    "api_usd_per_million_input_tokens", "api_usd_per_million_output_tokens",
    "api_cost_per_month_usd", "breakeven_requests_per_s", *PRICE_REPORT_COLUMNS,
)
DECODE_PARTS = ("weights_and_gemms", "attention", "elementwise", "lm_head", "tp_comm", "ep_comm",
                "pp_comm", "step_overhead")


#: Quality techniques (``data/quality_effects.csv``) of each serving choice.
SCHEME_TECHNIQUE = {"fp8": "fp8", "int8": "w8a8_int8", "w8a16": "weight_only_int8",
                    "w4a16": "weight_only_int4", "nvfp4": "nvfp4", "mxfp4": "mxfp4"}
SPARSITY_TECHNIQUE = {"2:4": "sparsity_2_4", "unstructured-50": "unstructured_50"}
KV_BITS_INDEX = {16: 0, 8: 1, 4: 2}


def _techniques(scheme: str, sparsity: str, kv_bits: int) -> list[str]:
    out = [t for t in (SCHEME_TECHNIQUE.get(scheme), SPARSITY_TECHNIQUE.get(sparsity)) if t]
    if kv_bits == 8:
        out.append("kv_fp8" if scheme in ("fp8", "nvfp4", "mxfp4") else "kv_int8")
    elif kv_bits == 4:
        out.append("kv_int4")
    return out


def quality_table(model_name: str) -> dict[tuple[int, int, int], tuple[float, str, str]]:
    """(scheme code, sparsity code, KV-bits index) -> (summed published degradation as a fraction,
    NaN if any part is unknown; text; sources), for the model's family (never another family)."""
    from costmodel.tables.quality import family_of, load_quality_effects, quality_impact, size_of

    family, size = family_of(model_name), size_of(model_name)
    effects = load_quality_effects()  # read once, not once per lookup
    effects = effects[effects["model_family"] == family]  # quality_impact matches the family only
    impacts: dict[str, dict | None] = {}  # one lookup per technique (they repeat across schemes)

    def impact(tech: str) -> dict | None:
        if tech not in impacts:
            impacts[tech] = quality_impact(tech, family, size, table=effects)
        return impacts[tech]

    out = {}
    for qi, scheme in enumerate(SCHEMES):
        for si, sparsity in enumerate(SPARSITIES):
            for kv, ki in KV_BITS_INDEX.items():
                loss, texts, sources = 0.0, [], []
                for tech in _techniques(scheme, sparsity, kv):
                    row = impact(tech)
                    if row is None:
                        loss = float("nan")
                        texts.append(f"{tech}: unknown")
                        continue
                    sign = 1.0 if row["lower_is_better"] else -1.0
                    loss += sign * float(row["relative_delta"])
                    texts.append(f"{tech}: {row['metric']} {row['delta']:+.3g} ({row['relative_delta']:+.1%})")
                    sources.append(f"{row['method']}: {row['source']}")
                out[(qi, si, ki)] = (loss, "; ".join(texts) or "none (uncompressed)", " | ".join(sources))
    return out


@dataclass
class ServingContext:
    scenario: Any
    model: ModelColumns
    knobs: dict[str, Array]
    table: HardwareTable
    offers: OfferTable
    load: ServingLoad
    choices: dict[str, np.ndarray]
    api: dict | None
    quality: dict[tuple[int, int, int], tuple[float, str, str]]


class ServingJob(JobKind):
    """Serving a load: every replica layout x batch x precision x KV format on every system with
    an offer; the replicas each needs come from the queueing model, not from the grid."""

    name = "serve"
    kinds = ("serve",)
    reasons = (*REASONS, "more devices than max_devices", "quality impact above max_quality_loss or unknown",
               "above the offer's capacity")
    dimensions = DIMENSIONS
    objectives = {
        "cost": ("cost_per_month_usd", "e2e_p95_s", "memory_total_bytes"),
        "time": ("e2e_p95_s", "cost_per_month_usd", "memory_total_bytes"),
        "cost-per-token": ("usd_per_million_output_tokens", "e2e_p95_s", "memory_total_bytes"),
        "energy": ("energy_kwh_per_month", "cost_per_month_usd", "memory_total_bytes"),
    }
    pareto_axes = ("cost_per_month_usd", "e2e_p95_s")
    limit_reasons = {BUDGET: "budget_usd", len(REASONS): "max_devices", len(REASONS) + 1: "max_quality_loss",
                     len(REASONS) + 2: "max_instances"}
    report_columns = PLAN_COLUMNS
    breakdown_parts = (
        ("memory_per_device", MEMORY_PARTS, "memory_{}_bytes", 2**30, "GiB"),
        ("time_per_output_token", DECODE_PARTS, "decode_{}_s", 1.0, "s"),
    )

    @staticmethod
    def efficiency_keys(frame: pd.DataFrame) -> set[tuple[str, str]]:
        wanted = {(q, "") for q in ("memory_bandwidth", "scaleup_allreduce", "scaleup_alltoall",
                                    "scaleout_allreduce", "scaleout_alltoall")}
        for p in set(frame["precision"]):
            q = QUANT_SCHEMES[p]
            wanted |= {("matmul", q.compute_format), ("attention", q.attention_format)}
        return wanted

    def prepare(self, scenario, table: HardwareTable, offers: OfferTable, systems: np.ndarray) -> ServingContext:
        from costmodel.specs.scenario import ScenarioError
        from costmodel.tables.api_prices import cheapest_api_price

        if scenario.constraints.deadline_days not in (None, "auto"):
            raise ScenarioError("constraints.deadline_days applies to training jobs; a serving job "
                                "states its latency objectives in job.load (ttft_p95_s, tpot_p95_s, e2e_p95_s)")
        spec = scenario.model_spec()
        s = scenario.search
        as_choice = lambda v: np.array(sorted(set(v)), dtype=np.float64)  # noqa: E731
        choices = {
            "system": np.arange(len(systems), dtype=np.float64), "tp": as_choice(s.tp),
            "pp": as_choice(s.pp), "ep": as_choice(sorted({1, *s.ep}) if spec.is_moe else [1]),
            "batch": as_choice(s.batch),
            "precision": as_choice(SCHEME_CODES[q] for q in s.quantization),
            "kv_bits": as_choice(s.kv_bits),
            "disaggregated": as_choice(float(d) for d in s.disaggregated),
            "sparsity": as_choice(SPARSITY_CODES[x] for x in s.sparsity),
            "group_size": as_choice(s.weight_group_size),
        }
        return ServingContext(scenario, ModelColumns.from_spec(spec),
                              knob_columns(scenario.job.framework, scenario.overrides), table, offers,
                              scenario.job.load, choices, cheapest_api_price(spec.name),
                              quality_table(spec.name))

    def evaluate(self, ctx: ServingContext, cols: dict[str, np.ndarray], sys_code: np.ndarray) -> ServingEvaluated:
        coded = {k: cols[k] for k in DIMENSIONS[1:]}
        coded.update(input_len=float(ctx.load.input_len), output_len=float(ctx.load.output_len))
        # Grid rows that differ only in 'disaggregated' share the engine's figures: their grid
        # position without that coordinate is the key (the dimensions after it are inner).
        inner = int(np.prod([len(ctx.choices[d]) for d in DIMENSIONS[DIMENSIONS.index("disaggregated") + 1:]]))
        n_dis = len(ctx.choices["disaggregated"])
        key = None
        if n_dis > 1 and "_flat" in cols:
            flat = np.asarray(cols["_flat"], dtype=np.int64)
            key = flat // (inner * n_dis) * inner + flat % inner
        return evaluate_serving(ctx.model, coded, sys_code, ctx.table, ctx.knobs, ctx.load, prune=True,
                                share_key=key)

    def price(self, ctx: ServingContext, ev: ServingEvaluated, rows: np.ndarray, offer_rows: np.ndarray) -> dict:
        c = ctx.scenario.constraints
        cost = price_serving(ev, rows, ctx.offers, offer_rows, ctx.load, ctx.knobs, budget_usd=c.budget_usd)
        if c.max_devices is not None:
            over = (cost["reason"] == 0) & (ev.out["n_devices"][rows] > c.max_devices)
            cost["reason"][over] = len(REASONS)
        limit = ctx.offers.instance_limits(c.max_instances_per_offer)[offer_rows]
        over = (cost["reason"] == 0) & (cost["instances"] > limit)
        cost["reason"][over] = len(REASONS) + 2
        if c.max_quality_loss is not None:
            loss = self._quality_loss(ctx, ev, rows)
            bad = (cost["reason"] == 0) & ~(loss <= c.max_quality_loss)  # unknown (NaN) is excluded
            cost["reason"][bad] = len(REASONS) + 1
        for k in ("memory_total_bytes", "e2e_p95_s"):
            cost[k] = ev.out[k][rows]
        return cost

    @staticmethod
    def _quality_loss(ctx: ServingContext, ev: ServingEvaluated, rows: np.ndarray) -> np.ndarray:
        keys = zip(ev.out["precision"][rows].astype(int), np.asarray(ev.s.sparsity)[rows].astype(int),
                   (KV_BITS_INDEX[int(b)] for b in np.asarray(ev.s.kv_bits)[rows]))
        return np.array([ctx.quality[k][0] for k in keys], dtype=float)

    def row_values(self, ctx: ServingContext, ev: ServingEvaluated, rows: np.ndarray) -> dict[str, np.ndarray]:
        vals = {k: np.asarray(v, dtype=np.float64)[rows] if np.ndim(v) else np.full(len(rows), float(v))
                for k, v in ev.out.items()}
        for name in ("tp", "pp", "ep", "batch", "kv_bits", "weight_bits", "act_bits", "matmul_format",
                     "sparsity"):
            vals[name] = np.asarray(getattr(ev.s, name))[rows]
        return vals

    def frame(self, ctx: ServingContext, rows: dict[str, np.ndarray]) -> pd.DataFrame:
        return serving_plan_frame(ctx, rows)


def autoscaled_cost(rows: dict[str, np.ndarray], load: ServingLoad, knobs) -> np.ndarray:
    """Monthly cost when the fleet follows the 24-hour profile hour by hour (each hour sized for
    its own rate under the same SLOs, by the same ``_capacity``), for comparison with the fixed
    fleet sized for the peak."""
    if not load.hourly_profile:
        return rows["cost_per_month_usd"]
    keys = ("ttft_service_s", "service_time_s", "tpot_s", "disaggregated", "prefill_service_s",
            "decode_service_s", "prefill_time_share")
    s = SimpleNamespace(batch=rows["batch"], devices=rows["devices_per_replica"])
    hourly = np.zeros(len(rows["batch"]))
    for share in load.hourly_profile:
        if share <= 0:
            continue
        hour = load.model_copy(update={"requests_per_s": load.requests_per_s * share,
                                       "hourly_profile": None, "peak_to_mean": 1.0})
        out = {k: np.array(rows[k], dtype=float) for k in keys if k in rows}
        _capacity(out, s, hour, knobs)
        inst = billed_instances(out["replicas"], rows["devices_per_replica"], rows["devices_per_instance"])
        hourly += inst * rows["devices_per_instance"] * rows["usd_per_device_hour"] * HOURS_PER_MONTH / 24
    return hourly


def _api_columns(ctx: ServingContext, rows: dict[str, np.ndarray]) -> dict[str, Any]:
    """The cheapest published API price for the model, its monthly bill at the mean load, and
    the load at which one self-hosted replica costs what the API would (blank when none)."""
    n = len(rows["_key"])
    api = ctx.api
    if api is None:
        return {"api_provider": [""] * n, **{k: np.full(n, np.nan) for k in (
            "api_usd_per_million_input_tokens", "api_usd_per_million_output_tokens",
            "api_cost_per_month_usd", "breakeven_requests_per_s")}}
    load = ctx.load
    per_request = (load.input_len * api["usd_per_million_input_tokens"]
                   + load.output_len * api["usd_per_million_output_tokens"]) / 1e6
    monthly = load.requests_per_s * SECONDS_PER_MONTH * per_request
    # Self-hosting pays at least one replica; per request it pays one replica's month over what
    # one replica serves under the SLOs. It breaks even where the API bill reaches that month.
    per_replica_rps = load.requests_per_s * load.peak_factor / np.maximum(rows["replicas"], 1.0)
    capacity_cost = rows["cost_per_replica_month_usd"] / (per_replica_rps * SECONDS_PER_MONTH)
    breakeven = np.where(capacity_cost < per_request,
                         rows["cost_per_replica_month_usd"] / (per_request * SECONDS_PER_MONTH), np.nan)
    return {"api_provider": [f"{api['provider']} ({api['provider_model_id']})"] * n,
            "api_usd_per_million_input_tokens": np.full(n, api["usd_per_million_input_tokens"]),
            "api_usd_per_million_output_tokens": np.full(n, api["usd_per_million_output_tokens"]),
            "api_cost_per_month_usd": np.full(n, monthly), "breakeven_requests_per_s": breakeven}


def _quality_columns(ctx: ServingContext, rows: dict[str, np.ndarray]) -> dict[str, list]:
    keys = [(int(q), int(s), KV_BITS_INDEX[int(k)])
            for q, s, k in zip(rows["precision"], rows["sparsity"], rows["kv_bits"])]
    return {"quality_loss_fraction": [ctx.quality[k][0] for k in keys],
            "quality_impact": [ctx.quality[k][1] for k in keys],
            "quality_source": [ctx.quality[k][2] for k in keys]}


def serving_plan_frame(ctx: ServingContext, rows: dict[str, np.ndarray]) -> pd.DataFrame:
    """Readable serving plan rows: names instead of codes, units in column names."""
    from costmodel.jobs.train import billing_note

    o = ctx.offers.frame.iloc[rows["offer_row"].astype(np.int64)].reset_index(drop=True)
    acc = ctx.table.catalog.accelerators
    as_int = lambda k: rows[k].astype(np.int64)  # noqa: E731
    df = pd.DataFrame({
        "accelerator": o["accelerator"].to_numpy(), "kind": [acc[a].kind for a in o["accelerator"]],
        **{k: o[k].to_numpy() for k in ("provider", "offer", "region", "pricing_model", "system")},
        "devices_per_replica": as_int("devices_per_replica"),
        **{k: as_int(k) for k in ("tp", "pp", "ep", "kv_bits")},
        "precision": [SCHEMES[int(v)] for v in rows["precision"]],
        "weight_bits": rows["weight_bits"], "activation_bits": rows["act_bits"],
        "sparsity": [SPARSITIES[int(v)] for v in rows["sparsity"]],
        "distilled_from": "", "peft": "none", **_quality_columns(ctx, rows),
        "batch_size": as_int("batch"), "max_batch": as_int("max_batch"),
        "disaggregated": rows["disaggregated"] > 0, "replicas": as_int("replicas"),
        "prefill_replicas": as_int("prefill_replicas"), "decode_replicas": as_int("decode_replicas"),
        "n_devices": as_int("n_devices"),
        "instances": as_int("instances"), "devices_per_instance": as_int("devices_per_instance"),
        "billing": [billing_note(n, i, d) for n, i, d in zip(rows["n_devices"], rows["instances"],
                                                             rows["devices_per_instance"])],
        "ttft_p95_s": rows["ttft_p95_s"], "tpot_p95_s": rows["tpot_s"],
        **{k: rows[k] for k in ("e2e_p95_s", "utilization", "output_tokens_per_s_per_replica",
                                "output_tokens_per_s_per_device", "cost_per_month_usd",
                                "cost_per_replica_month_usd", "usd_per_million_input_tokens",
                                "usd_per_million_output_tokens")},
        "cost_autoscaled_per_month_usd": autoscaled_cost(rows, ctx.load, ctx.knobs),
        "usd_per_device_hour": rows["usd_per_device_hour"],
        "memory_per_device_gib": rows["memory_total_bytes"] / 2**30,
        "memory_capacity_gib": rows["memory_capacity_bytes"] / 2**30,
        "gemms_memory_bound_share": rows["gemms_memory_bound_share"],
        "energy_kwh_per_month": rows["energy_kwh_per_month"],
        **_api_columns(ctx, rows),
        **price_report_columns(o, rows["instances"]),
    })
    for k, v in rows.items():
        if k.startswith(("memory_", "decode_", "ttft_service", "service_time", "wait_p95", "kv_transfer",
                         "prefill_service")) and k not in df:
            df[k] = v
    df["plan_id"] = rows["_key"].astype(np.int64)
    return df.reset_index(drop=True)
