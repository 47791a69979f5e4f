"""Training (pre-training, full fine-tuning, and LoRA/QLoRA fine-tuning through the setup's
``peft`` columns) as a job kind of the one engine.

Three functions make every training figure, whichever face asks:
- ``evaluate_configurations``: integer-coded configurations (a grid chunk, a DataFrame, or one
  configuration as a grid of one row) -> reason code per row, and for the rows that pass, memory,
  step time, FLOPs and utilisation (``evaluate_training``);
- ``price_training``: those rows joined with priced offers -> run time, billed instances, dollars,
  energy (``formulas.cost.training_run_cost``), plus the deadline and budget reasons;
- ``TrainingJob``: the planner's hooks (grid dimensions, objectives, Pareto axes, report rows).
The planner, ``estimate_training``, ``evaluate_frame``, ``costmodel train``, validation and the
benchmarks all call these; none assembles a figure of its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
import hashlib
import json
import math
import threading
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from costmodel.formulas.cost import checkpoint_bytes, training_run_cost
from costmodel.formulas.hardware import HardwareColumns
from costmodel.formulas.memory import TRAIN_MEMORY_COMPONENTS, training_memory_per_device
from costmodel.formulas.params import adapter_parameter_count, parameter_count
from costmodel.formulas.pipeline import Pipeline, pipeline_of
from costmodel.formulas.timing import (PRICED_COLUMNS, STEP_COMPONENTS, TimingKnobs, compute_floor_flops,
                                       floor_knobs_ok, training_step_time)
from costmodel.jobs.base import JobKind
from costmodel.specs.codes import (
    PRECISION_CODES, PRECISION_FORMATS, PRECISION_NAMES, RANK_ORDER_CODES, RECOMPUTE_CODES, RECOMPUTE_NAMES,
)
from costmodel.specs.columns import Array, Breakdown, ModelColumns, flatten_coded
from costmodel.specs.layout import StageSplit, layout_violations
from costmodel.specs.setup import (LORA_TARGETS, PEFT_MODES, TrainingColumns, build_training_columns,
                                   job_setup_codes, precision_formats)
from costmodel.tables.hardware import HardwareTable
from costmodel.tables.knobs import knob_columns
from costmodel.tables.offers import PRICE_REPORT_COLUMNS, OfferTable, price_report_columns

__all__ = ["REASONS", "TrainingJob", "evaluate_configurations", "evaluate_training",
           "knob_columns", "price_training"]

MEMORY_KNOBS = ("cuda_context_bytes", "fragmentation_fraction", "logits_bytes_per_element",
                "selective_keep_fraction")
TIMING_KNOBS = tuple(f.name for f in fields(TimingKnobs))
COST_KNOBS = ("checkpoints_retained", "power_utilization_fraction", "pue", "goodput_fraction")

#: Infeasibility reasons, in the order they are checked (a row gets the first that applies).
REASONS = (
    "feasible",
    "layout does not divide the model",
    "batch does not divide",
    "format unsupported on hardware",
    "no efficiency or price data",
    "out of memory",
    "misses deadline",
    "over budget",
    "above the offer's capacity",
)
LAYOUT, BATCH, FORMAT, DATA, MEMORY, DEADLINE, BUDGET, CAPACITY = range(1, 9)


def evaluate_training(
    m: ModelColumns,
    t: TrainingColumns,
    hw: HardwareColumns,
    knobs: Mapping[str, Array],
    memory: Mapping[str, Array] | None = None,
    report: bool = True,
    pipe: Pipeline | None = None,
) -> dict[str, Array]:
    """Memory (bytes, by component), feasibility against device memory, step time (s, by
    component, with bounds), FLOPs, throughput and MFU/HFU for every row. ``memory``: the memory
    components of these rows when already known (``training_memory_per_device`` of the same
    columns, as the planner's sub-grid holds them). ``report`` False: only what pricing reads (the
    step time, its bounds, tokens per step and ``memory_total_bytes``; ``memory`` then may hold
    just ``total``; ``pipe``: the rows' pipeline split, when known)."""
    if not report and memory is not None and "total" in memory:
        out = dict(training_step_time(m, t, hw, TimingKnobs(**{k: knobs[k] for k in TIMING_KNOBS}),
                                      report=False, pipe=pipe))
        out["memory_total_bytes"] = memory["total"]
        return out
    mem = (training_memory_per_device(m, t, **{k: knobs[k] for k in MEMORY_KNOBS}) if memory is None
           else Breakdown(memory))
    timing = training_step_time(m, t, hw, TimingKnobs(**{k: knobs[k] for k in TIMING_KNOBS}))
    out: dict[str, Array] = {f"memory_{k}_bytes": v for k, v in mem.items()}
    total = mem.total
    out["memory_total_bytes"] = total
    out["memory_capacity_bytes"] = hw.memory_bytes + 0.0 * total
    out["memory_fits"] = total <= hw.memory_bytes
    out.update(timing)
    return out


@dataclass
class Evaluated:
    """Rows of one evaluation: a reason code per input row; for the rows that reached the engine
    (``live``), their columns, hardware and engine outputs (indexed 0..len(live)-1)."""

    reason: np.ndarray
    live: np.ndarray
    t: TrainingColumns | None = None
    hw: HardwareColumns | None = None
    out: dict[str, Array] | None = None
    model: ModelColumns | None = None
    #: Every engine output of live positions ``pos`` (``evaluate_training`` in full), where ``out``
    #: holds only what pricing and ranking read (the planner's fast path); None: ``out`` is full.
    report: Any = None


def _take_model(m: ModelColumns, idx: np.ndarray) -> ModelColumns:
    if np.ndim(m.n_layers) == 0:
        return m
    return m.take(idx)


def evaluate_configurations(
    model: ModelColumns,
    coded: Mapping[str, Any],
    system_code: Array,
    table: HardwareTable,
    knobs: Mapping[str, Array],
    *,
    memory_headroom: float = 0.0,
    reason: np.ndarray | None = None,
    layout_checked: bool = False,
) -> Evaluated:
    """Reason codes and engine outputs for integer-coded configurations (see
    ``setup.build_training_columns`` for ``coded``). ``reason`` carries codes found earlier (the
    grid's whole-number and layout checks, then ``layout_checked``); layout rules, number formats,
    missing data and memory (keeping ``memory_headroom`` of the device free) are checked here, in
    that order."""
    flat, sys_code = flatten_coded(coded, system_code)
    reason = np.zeros(len(sys_code), dtype=np.int8) if reason is None else reason.copy()
    if not layout_checked:
        reason[(reason == 0) & _breaks_layout(model, flat)] = LAYOUT
    mm_fmt, attn_fmt = precision_formats(flat["precision"])
    fmt_ok, data_ok = table.usable(sys_code, mm_fmt, attn_fmt)
    reason[(reason == 0) & ~fmt_ok] = FORMAT
    reason[(reason == 0) & ~data_ok] = DATA
    live = np.flatnonzero(reason == 0)
    if live.size == 0:
        return Evaluated(reason, live)
    # Columns and hardware only for the rows that reach the engine (most grid rows do not).
    t = build_training_columns({k: v[live] for k, v in flat.items()})
    hw = table.columns(sys_code[live], t.matmul_format, t.attention_format)
    m = _take_model(model, live)
    k = {name: (v[live] if np.ndim(v) else v) for name, v in knobs.items()}
    out = evaluate_training(m, t, hw, k)
    oom = out["memory_total_bytes"] > hw.memory_bytes * (1.0 - memory_headroom)
    reason[live[oom]] = MEMORY
    return Evaluated(reason, live, t, hw, out, m)


def _breaks_layout(model: ModelColumns, c: Mapping[str, np.ndarray]) -> np.ndarray:
    """True where a row breaks one of ``specs.layout.LAYOUT_RULES``."""
    return np.logical_or.reduce(list(layout_violations(
        model, c["tp"], c["pp"], c["vpp"], c["dp"], c["cp"], c["ep"], c.get("etp", 0.0),
        c.get("first_stage_layers", 0.0), c.get("last_stage_layers", 0.0)).values()))


def price_training(
    ev: Evaluated,
    rows: np.ndarray,
    offers: OfferTable,
    offer_rows: np.ndarray,
    train_tokens: Array,
    knobs: Mapping[str, Array],
    *,
    deadline_hours: float | None = None,
    budget_usd: float | None = None,
    quota_instances: float | None = None,
) -> dict[str, Array]:
    """The one pricing function: rows ``rows`` of ``ev.out`` (live positions) each billed with
    offer ``offer_rows``. Providers bill whole instances: ceil(n / devices per instance)
    instances for the run's hours (``instances``, ``billed_device_hours`` say what is billed).
    Adds ``reason``: deadline, budget, or missing price data (NaN cannot be ranked)."""
    out, t, hw = ev.out, ev.t, ev.hw
    n_params = parameter_count(ev.model).total
    if np.any(t.frozen > 0):  # a PEFT checkpoint holds the adapters and their optimizer state only
        adapters = adapter_parameter_count(ev.model, t.lora_rank, t.lora_targets).total
        n_params = np.where(t.frozen > 0, adapters, n_params)
    per_row = lambda x: np.broadcast_to(np.asarray(x, dtype=np.float64), ev.live.shape)[rows]  # noqa: E731
    kn = {k: (np.asarray(v)[ev.live][rows] if np.ndim(v) else v) for k, v in knobs.items() if k in COST_KNOBS}
    dpi = offers.devices_per_instance[offer_rows]
    cost = training_run_cost(
        step_time_s=out["step_time_s"][rows], step_time_lower_s=out["step_time_lower_s"][rows],
        step_time_upper_s=out["step_time_upper_s"][rows],
        tokens_per_step=out["tokens_per_step"][rows], train_tokens=train_tokens,
        n_devices=t.n_devices[rows], devices_per_instance=dpi,
        usd_per_device_hour=offers.usd_per_device_hour[offer_rows],
        checkpoint_bytes=per_row(checkpoint_bytes(n_params, t.weight_bytes, t.master_bytes,
                                                  t.optimizer_state_bytes)),
        checkpoints_retained=kn["checkpoints_retained"],
        storage_usd_per_gb_month=offers.storage_usd_per_gb_month[offer_rows],
        tdp_w=hw.tdp_w[rows], power_utilization_fraction=kn["power_utilization_fraction"],
        pue=kn["pue"], goodput_fraction=kn["goodput_fraction"],
    )
    cost["instances"] = np.ceil(t.n_devices[rows] / dpi)
    cost["devices_per_instance"] = dpi
    cost["usd_per_device_hour"] = offers.usd_per_device_hour[offer_rows]
    reason = np.zeros(len(rows), dtype=np.int8)
    if deadline_hours is not None:
        reason[cost["time_total_hours"] > deadline_hours] = DEADLINE
    if budget_usd is not None:
        reason[(reason == 0) & (cost["cost_total_usd"] > budget_usd)] = BUDGET
    limit = offers.instance_limits(quota_instances)[offer_rows]
    reason[(reason == 0) & (cost["instances"] > limit)] = CAPACITY
    reason[(reason == 0) & ~np.isfinite(cost["cost_total_usd"])] = DATA
    cost["reason"] = reason
    return cost


def cheapest_offer(ev: Evaluated, row: int, offers: OfferTable, candidates: np.ndarray,
                   train_tokens: float, knobs: Mapping[str, Array]) -> tuple[int, dict[str, Array]]:
    """The offer among ``candidates`` (rows of ``offers``) with the lowest bill for live row
    ``row``; ties go to the shorter run, then to the catalog order (the planner's order)."""
    rows = np.full(len(candidates), row, dtype=np.int64)
    cost = price_training(ev, rows, offers, candidates, train_tokens, knobs)
    order = np.lexsort((np.arange(len(candidates)), cost["time_total_hours"], cost["cost_total_usd"]))
    best = int(order[0])
    return int(candidates[best]), {k: np.asarray(v)[best] for k, v in cost.items()}


# The planner's hooks ---------------------------------------------------------------------------

DIMENSIONS = ("system", "n_devices", "tp", "pp", "vpp", "cp", "ep", "zero_stage", "recompute",
              "micro_batch", "precision")
#: The wide report's columns (``costmodel plan --csv``), in order.
PLAN_COLUMNS = (
    "rank", "accelerator", "kind", "provider", "offer", "region", "pricing_model", "system",
    "n_devices", "instances", "devices_per_instance", "billing", "tp", "pp", "vpp", "dp", "cp", "ep",
    "sequence_parallel", "zero_stage", "recompute", "micro_batch", "global_batch", "precision",
    "peft", "lora_rank", "lora_targets", "base_weight_bits", "weight_bits", "activation_bits",
    "kv_bits", "sparsity", "distilled_from", "quality_impact", "quality_source", "framework",
    "efficiency_basis", "time_total_hours",
    "time_total_lower_hours", "time_total_upper_hours",
    "cost_total_usd", "cost_compute_usd", "cost_storage_usd", "cost_per_million_tokens_usd",
    "usd_per_device_hour", "device_hours", "billed_device_hours", "memory_per_device_gib",
    "memory_capacity_gib", "memory_headroom_gib", "mfu", "hfu", "step_time_s",
    "tokens_per_s_per_device", "energy_kwh", "energy_note", *PRICE_REPORT_COLUMNS,
)
COST_PARTS = ("compute", "storage", "energy")


@dataclass
class TrainingContext:
    """What a training plan resolves once: model columns, knobs, the job's fixed setup codes."""

    scenario: Any
    model: ModelColumns
    knobs: dict[str, Array]
    table: HardwareTable
    offers: OfferTable
    fixed: dict[str, float]
    choices: dict[str, np.ndarray]
    sub: SubGrid | None = None
    #: The planner's best run time and cost among plans ruled out by a limit so far (``Prepared.near``,
    #: bound by ``TrainingJob.bind_near``); None: no deadline pruning.
    near: dict[str, float] | None = None


#: Largest sub-grid (every dimension but the system) whose system-independent checks the planner
#: evaluates once in ``prepare`` and looks up per grid row (memory: ~15 float arrays of this size).
SUBGRID_LIMIT = 1 << 18


@dataclass
class SubGrid:
    """What the grid's rows share across systems, evaluated once per configuration of the other
    dimensions (``system`` is the grid's first, slowest dimension, so a grid row is
    ``system x size + sub-grid row``): the whole-number and layout reason (0, LAYOUT, BATCH), dp,
    micro-batches per step and the memory components (system-independent: the memory formulas
    read no hardware column); per searched system, the number-format and data reason of each
    precision choice and the memory a plan may use (capacity less the headroom)."""

    shape: tuple[int, ...]
    size: int
    reason: np.ndarray
    dp: np.ndarray
    n_micro: np.ndarray
    memory: dict[str, np.ndarray]
    memory_total: np.ndarray
    format_reason: np.ndarray  # [system index, precision index]
    usable_bytes: np.ndarray  # per system index
    split: dict[str, np.ndarray] | None = None  # pipeline split (``StageSplit`` fields) per configuration
    #: Deadline pruning (None when it does not apply): run hours x achieved matmul rate below
    #: which no configuration runs (``timing.compute_floor_flops`` x steps / goodput), the achieved
    #: matmul rate [system index, precision index], the least (billed devices x device-hour price)
    #: over each system's offers [system index, device-count index] (NaN where an offer's price
    #: is unknown or negative), and the deadline in hours.
    floor_hours_flops: np.ndarray | None = None
    matmul_rate: np.ndarray | None = None
    least_rate_usd: np.ndarray | None = None
    deadline_hours: float | None = None
    #: The training columns of the sub-grid rows that pass the layout and batch checks, and each
    #: sub-grid row's position among them (-1 elsewhere).
    t: TrainingColumns | None = None
    slot: np.ndarray | None = None
    #: Step-time memo (``StepMemo``): the entry of these engine inputs and each searched system's
    #: key in it (its hardware figures).
    memo: dict | None = None
    system_keys: list[bytes] | None = None


#: Engine outputs the planner's pricing reads of a configuration that fits (``price_training``);
#: none depends on the tokens, the deadline, the budget, the offers or the objective.
MEMO_KEYS = PRICED_COLUMNS


class StepMemo:
    """Step times of recent training searches, so that a search that differs from a recent one
    only in what the step time does not depend on (training tokens, deadline, budget, providers,
    regions, pricing models, objective, number of plans) prices the configurations it already
    timed instead of timing them again (the web page's 'Run plan' after such an edit).

    An entry is keyed by the engine's inputs (model, job setup, search lists, knobs: see
    ``engine_key``) and holds, per system (keyed by all of its hardware figures, so an
    efficiency override or another catalog is another key), the ``MEMO_KEYS`` of every sub-grid
    row that passes the layout and batch checks, NaN until timed. The values are those the engine
    computes (the same elementwise formulas on fewer rows: tests/test_planner.py checks plans
    equal with and without the memo). At most ``entries`` entries are kept (least recently used
    dropped); entries larger than ``max_values`` floats are not kept."""

    def __init__(self, entries: int = 2, max_values: int = 1 << 23):
        self.entries, self.max_values = entries, max_values
        self.lock = threading.Lock()
        self._data: OrderedDict[str, dict] = OrderedDict()

    def entry(self, key: str, n_slots: int, n_systems: int) -> dict | None:
        if self.entries < 1 or len(MEMO_KEYS) * n_slots * n_systems > self.max_values:
            return None
        with self.lock:
            got = self._data.get(key)
            if got is None:
                got = self._data[key] = {"n_slots": n_slots, "systems": {}}
                while len(self._data) > self.entries:
                    self._data.popitem(last=False)
            self._data.move_to_end(key)
            return got

    def clear(self) -> None:
        with self.lock:
            self._data.clear()


#: The process's step-time memo (``plan`` of the training job reads and fills it).
STEP_MEMO = StepMemo()


def engine_key(ctx: TrainingContext) -> str:
    """What a sub-grid row's step time depends on besides the system's hardware: the model, the
    job's fixed setup, the search lists (they define the sub-grid), the global batch and the
    knobs."""
    sc = ctx.scenario
    parts = {
        "model": sc.model_spec().model_dump(mode="json"),
        "job": sc.job.model_dump(mode="json", exclude={"train_tokens"}),
        "fixed": {k: float(v) for k, v in sorted(ctx.fixed.items())},
        "choices": {k: v.tolist() for k, v in ctx.choices.items() if k != "system"},
        "batch": float(batch_sequences(sc)),
        "knobs": {k: float(v) for k, v in sorted(ctx.knobs.items())},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class TrainingJob(JobKind):
    """Pre-training and fine-tuning (full, or LoRA/QLoRA with ``Job.peft``): every layout x
    recompute x micro-batch x precision of every device count on every system with an offer."""

    name = "train"
    kinds = ("pretrain", "finetune")
    reasons = REASONS
    dimensions = DIMENSIONS
    objectives = {
        "cost": ("cost_total_usd", "time_total_hours", "memory_total_bytes"),
        "time": ("time_total_hours", "cost_total_usd", "memory_total_bytes"),
        "cost-per-token": ("cost_per_million_tokens_usd", "time_total_hours", "memory_total_bytes"),
        "energy": ("energy_kwh", "cost_total_usd", "memory_total_bytes"),
    }
    pareto_axes = ("cost_total_usd", "time_total_hours")
    limit_reasons = {DEADLINE: "deadline_days", BUDGET: "budget_usd", CAPACITY: "max_instances"}
    report_columns = PLAN_COLUMNS
    #: (quantity, components, column pattern, divisor, unit) of the long breakdown table.
    breakdown_parts = (
        ("memory_per_device", TRAIN_MEMORY_COMPONENTS, "memory_{}_bytes", 2**30, "GiB"),
        ("step_time", STEP_COMPONENTS, "{}_s", 1.0, "s"),
        ("cost", COST_PARTS, "cost_{}_usd", 1.0, "USD"),
    )

    @staticmethod
    def efficiency_keys(frame: pd.DataFrame) -> set[tuple[str, str]]:
        """(quantity, format) of the efficiency rows the plans in ``frame`` rest on."""
        wanted = {(q, "") for q in ("memory_bandwidth", "scaleup_allreduce", "scaleup_alltoall",
                                    "scaleout_allreduce", "scaleout_alltoall")}
        for p in set(frame["precision"]):
            _, _, mm, attn = PRECISION_FORMATS[p]
            wanted |= {("matmul", mm), ("attention", attn)}
        return wanted

    def prepare(self, scenario, table: HardwareTable, offers: OfferTable, systems: np.ndarray) -> TrainingContext:
        from costmodel.specs.scenario import ScenarioError

        spec = scenario.model_spec()
        s, c = scenario.search, scenario.constraints
        device_counts = [n for n in s.device_counts if c.max_devices is None or n <= c.max_devices]
        if not device_counts:
            raise ScenarioError("search.device_counts: none is within constraints.max_devices")
        as_choice = lambda v: np.array(sorted(set(v)), dtype=np.float64)  # noqa: E731
        choices = {
            "system": np.arange(len(systems), dtype=np.float64),
            "n_devices": as_choice(device_counts), "tp": as_choice(s.tp), "pp": as_choice(s.pp),
            "vpp": as_choice(s.vpp), "cp": as_choice(s.cp),
            "ep": as_choice(s.ep if spec.is_moe else [1]), "zero_stage": as_choice(s.zero_stage),
            "recompute": as_choice(RECOMPUTE_CODES[r] for r in s.recompute),
            "micro_batch": as_choice(s.micro_batch),
            "precision": as_choice(PRECISION_CODES[p] for p in s.precision),
        }
        fixed = {**job_setup_codes(scenario.job), "seq_len": float(scenario.job.seq_len),
                 "sequence_parallel": float(s.sequence_parallel),
                 "rank_order": float(RANK_ORDER_CODES[s.rank_order])}
        ctx = TrainingContext(scenario, ModelColumns.from_spec(spec),
                              knob_columns(scenario.job.framework, scenario.overrides),
                              table, offers, fixed, choices)
        ctx.sub = _sub_grid(ctx, systems)
        return ctx

    def bind_near(self, ctx: TrainingContext, near: dict[str, float]) -> None:
        """Let ``evaluate`` read the planner's closest misses (deadline pruning, ``SubGrid``)."""
        ctx.near = near

    def evaluate(self, ctx: TrainingContext, cols: Mapping[str, np.ndarray], sys_code: np.ndarray) -> Evaluated:
        """Whole-number checks of the grid (dp = n / (tp pp cp), micro-batches per step), then
        ``evaluate_configurations``. Grid rows given by flat index (``cols["_flat"]``, the
        planner's chunks) read the system-independent checks from the context's sub-grid and go
        through the engine only when they fit in memory (same figures, fewer rows computed)."""
        if ctx.sub is not None and "_flat" in cols:
            return _evaluate_sub_grid(ctx, ctx.sub, cols["_flat"], cols["system"], sys_code)
        reason, dp, n_micro = _structure(ctx, cols)
        coded = {**ctx.fixed, **{k: cols[k] for k in DIMENSIONS[2:]}, "dp": dp, "n_micro": n_micro}
        return evaluate_configurations(ctx.model, coded, sys_code, ctx.table, ctx.knobs,
                                       memory_headroom=ctx.scenario.constraints.min_memory_headroom,
                                       reason=reason, layout_checked=True)

    def price(self, ctx: TrainingContext, ev: Evaluated, rows: np.ndarray, offer_rows: np.ndarray) -> dict:
        c = ctx.scenario.constraints
        cost = price_training(ev, rows, ctx.offers, offer_rows, float(ctx.scenario.job.train_tokens),
                              ctx.knobs, budget_usd=c.budget_usd, quota_instances=c.max_instances_per_offer,
                              deadline_hours=_hours(c.deadline_for(ctx.scenario.job.kind)))
        cost["memory_total_bytes"] = ev.out["memory_total_bytes"][rows]
        return cost

    def row_values(self, ctx: TrainingContext, ev: Evaluated, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Every engine output and configuration column of live rows ``rows`` (for full plan rows)."""
        t = ev.t
        out, at = (ev.out, rows) if ev.report is None else (ev.report(rows), np.arange(len(rows)))
        vals = {k: np.asarray(v, dtype=np.float64)[at] if np.ndim(v) else np.full(len(rows), float(v))
                for k, v in out.items()}
        for name in ("tp", "pp", "vpp", "dp", "cp", "ep", "zero_stage", "recompute", "micro_batch",
                     "precision", "n_micro", "peft", "lora_rank", "lora_targets", "base_weight_bits",
                     "weight_bits"):
            vals[name] = np.asarray(getattr(t, name))[rows]
        vals["sequence_parallel"] = t.sp[rows]
        vals["n_devices"] = t.n_devices[rows]
        return vals

    def frame(self, ctx: TrainingContext, rows: dict[str, np.ndarray]) -> pd.DataFrame:
        return training_plan_frame(ctx.offers, ctx.table.catalog, rows, ctx.scenario.job.framework,
                                   ctx.scenario.model_spec().name)


def _structure(ctx: TrainingContext, cols: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole-number and layout checks of grid rows: (reason 0/LAYOUT/BATCH, dp, micro-batches per
    step; dp and micro-batches are 1 where they are not whole)."""
    n, tp, pp, cp, mb = (cols[k] for k in ("n_devices", "tp", "pp", "cp", "micro_batch"))
    reason = np.zeros(len(n), dtype=np.int8)
    dp = n / (tp * pp * cp)
    whole = (dp == np.floor(dp)) & (dp >= 1)
    reason[~whole] = LAYOUT
    dp = np.where(whole, dp, 1.0)
    grid = {k: cols[k] for k in ("tp", "pp", "vpp", "cp", "ep")}
    reason[(reason == 0) & _breaks_layout(ctx.model, {**grid, "dp": dp})] = LAYOUT
    n_micro = float(batch_sequences(ctx.scenario)) / (dp * mb)
    batch_ok = (n_micro == np.floor(n_micro)) & (n_micro >= 1)
    reason[(reason == 0) & ~batch_ok] = BATCH
    return reason, dp, np.where(batch_ok, n_micro, 1.0)


def _sub_grid(ctx: TrainingContext, system_codes: np.ndarray) -> SubGrid | None:
    """The ``SubGrid`` of a training context; None when it is too large or when knobs or the
    model vary per row (then every grid row is evaluated in full)."""
    dims = DIMENSIONS[1:]
    shape = tuple(len(ctx.choices[d]) for d in dims)
    size = int(np.prod(shape))
    if size > SUBGRID_LIMIT or np.ndim(ctx.model.n_layers) or any(np.ndim(v) for v in ctx.knobs.values()):
        return None
    idx = np.unravel_index(np.arange(size, dtype=np.int64), shape)
    cols = {d: ctx.choices[d][i] for d, i in zip(dims, idx)}
    reason, dp, n_micro = _structure(ctx, cols)
    ok = np.flatnonzero(reason == 0)
    coded = {**ctx.fixed, **{k: cols[k][ok] for k in DIMENSIONS[2:]}, "dp": dp[ok], "n_micro": n_micro[ok]}
    flat, _ = flatten_coded(coded, np.zeros(ok.size, dtype=np.int64))
    t = build_training_columns(flat)
    mem = training_memory_per_device(ctx.model, t, **{k: ctx.knobs[k] for k in MEMORY_KNOBS})
    memory = {}
    for k, v in mem.items():
        full = np.full(size, np.nan)
        full[ok] = np.broadcast_to(np.asarray(v, dtype=np.float64), ok.shape)
        memory[k] = full
    total = np.full(size, np.nan)
    total[ok] = np.broadcast_to(np.asarray(mem.total, dtype=np.float64), ok.shape)
    # Number formats and data per (system, precision), in the order evaluate_configurations checks.
    prec = ctx.choices["precision"]
    sc = np.repeat(np.asarray(system_codes, dtype=np.int64), len(prec))
    mm_fmt, attn_fmt = precision_formats(np.tile(prec, len(system_codes)))
    fmt_ok, data_ok = ctx.table.usable(sc, mm_fmt, attn_fmt)
    fmt_reason = np.where(~fmt_ok, FORMAT, np.where(~data_ok, DATA, 0)).astype(np.int8)
    headroom = ctx.scenario.constraints.min_memory_headroom
    usable = ctx.table.memory_bytes[np.asarray(system_codes, dtype=np.int64)] * (1.0 - headroom)
    pipe = pipeline_of(ctx.model, t)
    split = {}
    for f in ("first", "middle", "last", "ok"):
        full = np.zeros(size, dtype=bool) if f == "ok" else np.full(size, np.nan)
        full[ok] = np.broadcast_to(getattr(pipe.split, f), ok.shape)
        split[f] = full
    sub = SubGrid(shape, size, reason, dp, n_micro, memory, total,
                  fmt_reason.reshape(len(system_codes), len(prec)), usable, split)
    sub.t = t
    sub.slot = np.full(size, -1, dtype=np.int64)
    sub.slot[ok] = np.arange(ok.size)
    sub.memo = STEP_MEMO.entry(engine_key(ctx), ok.size, len(system_codes))
    if sub.memo is not None:
        sub.system_keys = [ctx.table.system_digest(int(code)) for code in system_codes]
    _deadline_floor(ctx, sub, t, ok, sc, mm_fmt, attn_fmt)
    return sub


def _deadline_floor(ctx: TrainingContext, sub: SubGrid, t: TrainingColumns, ok: np.ndarray,
                    sc: np.ndarray, mm_fmt: np.ndarray, attn_fmt: np.ndarray) -> None:
    """The ``SubGrid`` arrays of deadline pruning: configurations whose run-time floor is over the
    deadline on a system miss it with every offer, and when their cost floor is no lower than the
    planner's closest miss so far they change nothing the search reports but the reason counts
    (``_evaluate_sub_grid``)."""
    deadline = _hours(ctx.scenario.constraints.deadline_for(ctx.scenario.job.kind))
    k = TimingKnobs(**{name: ctx.knobs[name] for name in TIMING_KNOBS})
    goodput = float(ctx.knobs["goodput_fraction"])
    if deadline is None or not floor_knobs_ok(k) or not goodput > 0:
        return
    floor = compute_floor_flops(ctx.model, t, k)
    steps = np.ceil(float(ctx.scenario.job.train_tokens) / (t.global_batch * t.seq_len))
    hours = np.full(sub.size, np.nan)
    hours[ok] = np.broadcast_to(steps * floor / 3600.0 / goodput, ok.shape)
    hw = ctx.table.columns(sc, mm_fmt, attn_fmt)
    rate = hw.peak_matmul_flops_per_s * (hw.matmul_efficiency * np.asarray(k.matmul_efficiency_scale))
    offers = ctx.offers
    n = ctx.choices["n_devices"]
    least = np.full((sub.format_reason.shape[0], len(n)), np.nan)
    for i, code in enumerate(np.unique(offers.system_code)):
        rows = np.flatnonzero(offers.system_code == code)
        price = offers.usd_per_device_hour[rows]
        storage = offers.storage_usd_per_gb_month[rows]
        if not (np.all(np.isfinite(price)) and np.all(price >= 0) and np.all(np.isfinite(storage))
                and np.all(storage >= 0)):
            continue  # an unknown price makes a cost NaN: those rows are always priced
        dpi = offers.devices_per_instance[rows]
        least[i] = np.min(np.ceil(n[:, None] / dpi[None, :]) * dpi[None, :] * price[None, :], axis=1)
    sub.floor_hours_flops, sub.deadline_hours = hours, deadline
    sub.matmul_rate = rate.reshape(sub.format_reason.shape)
    sub.least_rate_usd = least


def _evaluate_sub_grid(ctx: TrainingContext, sub: SubGrid, flat: np.ndarray, system: np.ndarray,
                       sys_code: np.ndarray) -> Evaluated:
    """``evaluate`` of grid rows by flat index: reasons looked up in the sub-grid (layout, batch,
    then format and data per system and precision, then memory against the system's capacity),
    and the engine run on the rows that pass, with their memory read from the sub-grid. ``live``
    holds only those rows (out-of-memory rows get their reason without engine outputs)."""
    sidx = np.asarray(system, dtype=np.int64)
    row = np.asarray(flat, dtype=np.int64) - sidx * sub.size
    reason = sub.reason[row]
    ok = reason == 0
    fmt = sub.format_reason[sidx, row % sub.shape[-1]]  # precision is the last dimension
    reason = np.where(ok & (fmt != 0), fmt, reason)
    oom = (reason == 0) & (sub.memory_total[row] > sub.usable_bytes[sidx])
    reason[oom] = MEMORY
    near = ctx.near
    if (sub.floor_hours_flops is not None and near is not None and "binding:deadline_days" in near
            and "time_total_hours" in near and "cost_total_usd" in near):
        # Rows whose run-time floor is over the deadline miss it with every offer; when neither
        # floor (time, and cost with the cheapest offer) is below the closest miss so far they
        # cannot change it either: they are counted as missing the deadline, not computed.
        fit = np.flatnonzero(reason == 0)
        r = row[fit]
        hours = sub.floor_hours_flops[r] / sub.matmul_rate[sidx[fit], r % sub.shape[-1]] * (1.0 - 1e-9)
        cost = hours * sub.least_rate_usd[sidx[fit], r // math.prod(sub.shape[1:])]
        miss = ((hours > sub.deadline_hours) & (hours >= near["time_total_hours"])
                & (cost >= near["cost_total_usd"]))
        reason[fit[miss]] = DEADLINE
    live = np.flatnonzero(reason == 0)
    if live.size == 0:
        return Evaluated(reason, live)
    r = row[live]
    slots = sub.slot[r]
    t = sub.t.take(slots)  # the columns _sub_grid built for these configurations
    hw = ctx.table.columns(sys_code[live], t.matmul_format, t.attention_format)
    pipe = Pipeline(t.pp, StageSplit(**{f: v[r] for f, v in sub.split.items()}))
    out = _step_times(ctx, sub, sidx[live], r, slots, t, hw, pipe)

    def report(pos: np.ndarray) -> dict[str, Array]:
        """The full outputs of live positions ``pos`` (the same elementwise formulas on those rows)."""
        return evaluate_training(ctx.model, t.take(pos), hw.take(pos), ctx.knobs,
                                 memory={k: v[r[pos]] for k, v in sub.memory.items()})

    return Evaluated(reason, live, t, hw, out, ctx.model, report)


def _step_times(ctx: TrainingContext, sub: SubGrid, sidx: np.ndarray, r: np.ndarray, slots: np.ndarray,
                t: TrainingColumns, hw: HardwareColumns, pipe: Pipeline) -> dict[str, Array]:
    """``evaluate_training(report=False)`` of live rows (system index ``sidx`` in ascending order,
    sub-grid row ``r``, its ``slot``) as pricing reads it: the ``MEMO_KEYS`` from the step-time
    memo where these rows were timed before, the engine on the others (whose values then join the
    memo)."""
    memory = {"total": sub.memory_total[r]}
    if sub.memo is None:
        return evaluate_training(ctx.model, t, hw, ctx.knobs, memory=memory, report=False, pipe=pipe)
    n_slots = sub.memo["n_slots"]
    # A chunk's rows are in grid order, the system the slowest dimension: one run per system.
    cuts = [0, *(np.flatnonzero(sidx[1:] != sidx[:-1]) + 1).tolist(), sidx.size]
    runs = [(int(sidx[a]), slice(a, b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    vals = np.empty((r.size, len(MEMO_KEYS)))
    with STEP_MEMO.lock:
        systems = sub.memo["systems"]
        arrays = [systems.setdefault(sub.system_keys[s], np.full((n_slots, len(MEMO_KEYS)), np.nan))
                  for s, _ in runs]
        for arr, (_, run) in zip(arrays, runs):
            vals[run] = arr[slots[run]]
    # The four values are written together, so an unset step time marks a row not yet timed.
    miss = np.flatnonzero(np.isnan(vals[:, 0]))
    if miss.size == r.size:  # nothing timed yet: the engine on every row
        got = evaluate_training(ctx.model, t, hw, ctx.knobs, memory=memory, report=False, pipe=pipe)
        for i, k in enumerate(MEMO_KEYS):
            vals[:, i] = got[k]
        with STEP_MEMO.lock:
            for arr, (_, run) in zip(arrays, runs):
                arr[slots[run]] = vals[run]
    elif miss.size:
        t, hw = t.take(miss), hw.take(miss)
        pipe = Pipeline(t.pp, StageSplit(**{f: np.asarray(getattr(pipe.split, f))[miss]
                                            for f in ("first", "middle", "last", "ok")}))
        got = evaluate_training(ctx.model, t, hw, ctx.knobs, memory={"total": memory["total"][miss]},
                                report=False, pipe=pipe)
        for i, k in enumerate(MEMO_KEYS):
            vals[miss, i] = got[k]
        with STEP_MEMO.lock:
            for arr, (_, run) in zip(arrays, runs):
                pos = miss[(miss >= run.start) & (miss < run.stop)]
                arr[slots[pos]] = vals[pos]
    out: dict[str, Array] = {k: vals[:, i] for i, k in enumerate(MEMO_KEYS)}
    out["memory_total_bytes"] = sub.memory_total[r]
    return out


def training_plan_frame(offers: OfferTable, catalog, rows: dict[str, np.ndarray], framework: str,
                        model_name: str = "") -> pd.DataFrame:
    """Readable plan rows: names instead of codes, key columns first, units in column names."""
    o = offers.frame.iloc[rows["offer_row"].astype(np.int64)].reset_index(drop=True)
    acc = catalog.accelerators
    as_int = lambda k: rows[k].astype(np.int64)  # noqa: E731
    df = pd.DataFrame({
        "accelerator": o["accelerator"].to_numpy(),
        "kind": [acc[a].kind for a in o["accelerator"]],
        **{k: o[k].to_numpy() for k in ("provider", "offer", "region", "pricing_model", "system")},
        "n_devices": as_int("n_devices"), "instances": as_int("instances"),
        "devices_per_instance": as_int("devices_per_instance"),
        **{k: as_int(k) for k in ("tp", "pp", "vpp", "dp", "cp", "ep")},
        "sequence_parallel": rows["sequence_parallel"] > 0, "zero_stage": as_int("zero_stage"),
        "recompute": [RECOMPUTE_NAMES[int(v)] for v in rows["recompute"]],
        "micro_batch": as_int("micro_batch"),
        "global_batch": (rows["micro_batch"] * rows["dp"] * rows["n_micro"]).astype(np.int64),
        "precision": [PRECISION_NAMES[int(v)] for v in rows["precision"]],
        **_peft_columns(rows),
        **_compression_columns(rows, [PEFT_MODES[int(v)] for v in rows.get("peft", np.zeros(len(rows["tp"])))],
                               model_name),
        "framework": framework,
        "efficiency_basis": efficiency_basis(catalog, o["accelerator"].to_numpy(),
                                             [PRECISION_NAMES[int(v)] for v in rows["precision"]]),
        **{k: rows[k] for k in ("time_total_hours", "time_total_lower_hours", "time_total_upper_hours",
                                "cost_total_usd", "cost_per_million_tokens_usd", "usd_per_device_hour")},
        "memory_per_device_gib": rows["memory_total_bytes"] / 2**30,
        "memory_capacity_gib": rows["memory_capacity_bytes"] / 2**30,
        **{k: rows[k] for k in ("mfu", "hfu", "step_time_s", "tokens_per_s_per_device", "device_hours",
                                "billed_device_hours", "energy_kwh")},
        "energy_note": ["" if e == e else f"unknown: no TDP for {a} in the catalog"
                        for e, a in zip(rows["energy_kwh"], o["accelerator"])],
        "billing": [billing_note(n, i, d) for n, i, d in zip(rows["n_devices"], rows["instances"],
                                                             rows["devices_per_instance"])],
        **price_report_columns(o, rows["instances"]),
    })
    prefixes = ("memory_", "cost_", "compute_s", "tp_comm", "cp_comm", "ep_comm", "pp_comm",
                "dp_comm", "bubble_s", "optimizer_s", "step_time_")
    for k, v in rows.items():
        if k.startswith(prefixes) and k not in df.columns:
            df[k] = v
    df["plan_id"] = rows["_key"].astype(np.int64)
    return df.reset_index(drop=True)


def batch_sequences(scenario) -> int:
    """Sequences per step of a training scenario: the job's global batch, or the default for the
    model's size (specs.setup.default_global_batch), the rule every face uses."""
    if scenario.job.global_batch is not None:
        return scenario.job.global_batch
    return scenario.job.batch_sequences(float(parameter_count(scenario.model_spec()).total))


def efficiency_basis(catalog, accelerators, precisions) -> list[str]:
    """What the GEMM efficiency of each plan rests on, from its catalog row's source: a fit on
    measured training runs of the part's die, a transfer from other parts (no measured run of this
    part), or the catalog's own value (a user's micro-benchmark or estimate)."""
    from costmodel.specs.setup import PRECISION_TABLE

    cache: dict[tuple[str, str], str] = {}
    out = []
    for acc, prec in zip(accelerators, precisions):
        key = (acc, prec)
        if key not in cache:
            fmt = PRECISION_TABLE[prec][2]
            try:
                src = catalog.efficiency_value(acc, "matmul", fmt).source
            except Exception:
                src = ""
            if src.startswith("fit:"):
                cache[key] = f"fitted on measured {fmt} training runs of this die"
            elif src.startswith("fit transfer"):
                cache[key] = f"transferred: no measured {fmt} training run of this part"
            else:
                cache[key] = "catalog value (not fitted to training runs)"
        out.append(cache[key])
    return out


def _compression_columns(rows: dict[str, np.ndarray], peft: list[str], model_name: str) -> dict[str, Any]:
    """The compression columns every plan report carries (the serving job's too): stored weight
    and activation bits, KV bits (blank: no KV cache in training), sparsity, distillation, and the
    published quality impact of a quantized base (QLoRA NF4) with its source, else none/unknown."""
    from costmodel.specs.codes import PRECISION_FORMATS, FORMAT_BITS
    from costmodel.tables.quality import family_of, quality_impact, size_of

    n = len(peft)
    act = [FORMAT_BITS[PRECISION_FORMATS[PRECISION_NAMES[int(v)]][1]] for v in rows["precision"]]
    row = quality_impact("qlora_nf4", family_of(model_name), size_of(model_name)) if "qlora" in peft else None
    impact, source = [], []
    for mode in peft:
        if mode != "qlora":
            impact.append("none (16-bit base)" if mode == "lora" else "none (uncompressed)")
            source.append("")
        elif row is None:
            impact.append("qlora_nf4: unknown")
            source.append("")
        else:
            impact.append(f"qlora_nf4: {row['metric']} {row['delta']:+.3g} ({row['relative_delta']:+.1%})")
            source.append(f"{row['method']}: {row['source']}")
    stored = rows["weight_bits"] if "weight_bits" in rows else np.full(n, 16.0)
    frozen = np.array([m != "none" for m in peft])
    base = rows.get("base_weight_bits", stored)
    return {"weight_bits": np.where(frozen, base, stored),  # the frozen base's bits under PEFT
            "activation_bits": np.array(act, dtype=float), "kv_bits": [""] * n,
            "sparsity": ["none"] * n, "distilled_from": [""] * n,
            "quality_impact": impact, "quality_source": source}


def _peft_columns(rows: dict[str, np.ndarray]) -> dict[str, Any]:
    """PEFT mode, LoRA rank (0 when every weight is trained) and targets ('' then), and the bits
    the base weights are stored at, nominally (4 for NF4, whose 4.127 stored bits include its
    scales; the training weight format when nothing is frozen)."""
    n = len(rows["tp"])
    peft = rows["peft"].astype(np.int64) if "peft" in rows else np.zeros(n, dtype=np.int64)
    frozen = peft > 0
    targets = rows.get("lora_targets", np.zeros(n)).astype(np.int64)
    return {
        "peft": [PEFT_MODES[int(v)] for v in peft],
        "lora_rank": np.where(frozen, rows.get("lora_rank", np.zeros(n)), 0).astype(np.int64),
        "lora_targets": [LORA_TARGETS[int(v)] if f else "" for v, f in zip(targets, frozen)],
        "base_weight_bits": np.floor(rows.get("base_weight_bits", np.full(n, 16.0))).astype(np.int64),
    }


def _hours(days: float | None) -> float | None:
    return None if days is None else days * 24.0


def billing_note(n_devices: float, instances: float, devices_per_instance: float) -> str:
    """What the provider bills, in words: whole instances, idle devices included."""
    billed = int(instances * devices_per_instance)
    unit = "instance" if instances == 1 else "instances"
    text = f"{int(instances)} {unit} x {int(devices_per_instance)} devices"
    if billed > n_devices:
        text += f" ({billed - int(n_devices)} idle, billed)"
    return text
