"""Whole-run estimates without a published layout: the layout the planner would choose.

Given a model, a token count, an accelerator (one system) and optionally a device count, the
generic grid search runs over every layout the planner considers (``SearchSpace`` defaults: tp,
pp, vpp, cp, ep, ZeRO stage, recompute, micro-batch) at the given precision and global batch, and
one configuration is chosen by a stated rule:

- with a device count: the fastest feasible layout at that count (shortest run; ties: least
  memory per device, then grid order);
- without one: the planner's choice: the fewest device-hours among the plans that finish within
  the default deadline (90 days pre-training, 14 fine-tuning; ``DEFAULT_DEADLINE_DAYS``); ties:
  the shorter run, then least memory, then grid order. A practitioner who pays per device-hour
  and has a date to meet picks this plan; 'fastest' without a count would always take the largest
  count searched (32,768 devices), and 'cheapest' without a deadline the smallest (one device for
  decades).

Plans are ranked by device-hours, not by a provider's bill: a unit rate (1 per device-hour, one
device per instance, no storage) stands in for the offers, so the choice does not move with the
price catalog and needs no offer for the part. The caller prices the chosen configuration.

Nothing feasible gives the reason: counts per infeasibility reason, the binding one, and how close
the search came (the smallest memory shortfall, or the fastest run against the deadline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hardware_catalog import Catalog

from costmodel.jobs import job_kind
from costmodel.jobs.train import MEMORY, batch_sequences
from costmodel.search.grid import DEFAULT_CHUNK, Prepared, apply_overrides, evaluate_chunk
from costmodel.search.pareto import Running
from costmodel.specs.scenario import DEFAULT_DEADLINE_DAYS, Constraints, Job, Scenario, SearchSpace
from costmodel.specs.setup import SETUP_FIELDS, TrainingSetup, default_batch_note, default_global_batch
from costmodel.specs.spec import ModelSpec
from costmodel.tables.catalog import engine_catalog, hardware_table, resolve_system
from costmodel.tables.offers import OfferTable

__all__ = ["LayoutChoice", "choose_training_layout", "choice_rule"]

#: Columns of the chosen plan that describe it (the rest of the row is the engine's figures).
LAYOUT_KEYS = ("n_devices", "tp", "pp", "vpp", "dp", "cp", "ep", "sequence_parallel", "zero_stage",
               "recompute", "micro_batch", "global_batch", "precision")


#: Plans whose primary figure (device-hours, or run time at a given count) is within this fraction
#: of the best count as tied; the next key decides. 0.5%: a tenth of the engine's median error on
#: the public training rows (about 6%, ``costmodel validate``), so no choice rests on noise.
TIE_TOLERANCE = 0.005
#: Best plans kept by the running search before the tie rule (more than ever fall within 0.5%).
TOP_K = 256


@dataclass(frozen=True)
class LayoutChoice:
    """The outcome of ``choose_training_layout``: the chosen plan row (None when nothing is
    feasible), the rule in words, how many configurations were searched and why the rest failed."""

    rule: str
    plan: dict[str, Any] | None
    searched: int
    feasible: int
    infeasible: dict[str, int]
    reason: str | None = None  # nothing feasible: the binding constraint and how close
    batch_note: str = ""
    closest: dict[str, Any] = field(default_factory=dict)

    @property
    def layout(self) -> dict[str, Any] | None:
        """tp, pp, vpp, dp, cp, ep, sp, ZeRO stage, recompute, micro/global batch and precision."""
        return None if self.plan is None else {k: self.plan[k] for k in LAYOUT_KEYS}

    def summary(self) -> str:
        """One line: the chosen layout and the rule that chose it."""
        if self.plan is None:
            return f"no feasible layout: {self.reason}"
        p = self.plan
        return (f"{p['n_devices']} devices: tp={p['tp']} pp={p['pp']} vpp={p['vpp']} dp={p['dp']} "
                f"cp={p['cp']} ep={p['ep']} sp={p['sequence_parallel']} ZeRO-{p['zero_stage']} "
                f"recompute={p['recompute']} micro-batch {p['micro_batch']} global batch "
                f"{p['global_batch']} {p['precision']} ({self.rule}; {self.feasible:,} of "
                f"{self.searched:,} configurations feasible)")


def choice_rule(n_devices: int | None, kind: str = "pretrain", deadline_days: float | None = None) -> str:
    """The rule in words (see the module docstring)."""
    if n_devices is not None:
        return f"fastest feasible layout at {n_devices} devices"
    days = DEFAULT_DEADLINE_DAYS.get(kind) if deadline_days is None else deadline_days
    return f"fewest device-hours among layouts finishing within {days:g} days (the planner's default deadline)"


def _unit_rate_offers(catalog: Catalog, accelerator: str, system: str, system_code: int) -> OfferTable:
    """One stand-in offer: 1 per device-hour, one device per instance, no storage or limit."""
    frame = pd.DataFrame([{
        "provider": "unit rate", "offer": "device-hour", "region": "", "pricing_model": "on-demand",
        "accelerator": accelerator, "system": system, "devices_per_instance": 1,
        "usd_per_instance_hour": 1.0, "usd_per_device_hour": 1.0, "as_of": "",
        "source": "stand-in: plans ranked by device-hours", "price_quality": "user", "notes": "",
        "system_code": system_code, "storage_usd_per_gb_month": 0.0, "storage_source": ""}])
    one = lambda v: np.array([v], dtype=np.float64)  # noqa: E731
    return OfferTable(frame, one(1.0), one(1.0), one(0.0), np.array([system_code], dtype=np.int64), one(np.inf))


def _scenario(spec: ModelSpec, acc: str, setup: TrainingSetup, *, train_tokens: float,
              n_devices: int | None, kind: str, framework: str, overrides: dict[str, float] | None,
              search: SearchSpace | None, deadline_days: float | None,
              memory_headroom: float | None) -> Scenario:
    fixed = set(setup.model_fields_set)
    base = search or SearchSpace()
    space = base.model_copy(update={
        "accelerators": [acc], "precision": [setup.precision],
        **({"device_counts": [n_devices]} if n_devices is not None else {}),
        **({"micro_batch": [setup.micro_batch]} if "micro_batch" in fixed else {}),
        **({"recompute": [setup.recompute]} if "recompute" in fixed else {}),
    })
    job = Job(kind=kind, train_tokens=train_tokens, seq_len=setup.seq_len, global_batch=setup.global_batch,
              framework=framework, **{k: getattr(setup, k) for k in SETUP_FIELDS})
    deadline = None if n_devices is not None else (deadline_days or "auto")
    cons = {"deadline_days": deadline}
    if memory_headroom is not None:
        cons["min_memory_headroom"] = memory_headroom
    return Scenario(model=spec, job=job, constraints=Constraints(**cons), search=SearchSpace(**space.model_dump()),
                    objective="time" if n_devices is not None else "cost", overrides=overrides or {})


def choose_training_layout(
    spec: ModelSpec,
    accelerator: str,
    setup: TrainingSetup | None = None,
    *,
    train_tokens: float,
    n_devices: int | None = None,
    system: str | None = None,
    kind: str = "pretrain",
    framework: str = "nemo",
    overrides: dict[str, float] | None = None,
    search: SearchSpace | None = None,
    deadline_days: float | None = None,
    memory_headroom: float | None = None,
    catalog: Catalog | None = None,
) -> LayoutChoice:
    """The layout the planner would choose for ``spec`` on ``accelerator`` (module docstring).

    ``setup`` fixes the precision, optimizer, sequence length and global batch; its micro-batch
    and recompute are searched unless set explicitly (``model_fields_set``). A blank global batch
    takes ``default_global_batch`` for the model's size. ``search`` narrows the layouts searched
    (default: the planner's ``SearchSpace``); ``memory_headroom`` defaults to the planner's 10%.
    """
    from costmodel.formulas.params import parameter_count

    catalog = catalog or engine_catalog()
    acc, sys_ = resolve_system(catalog, accelerator, system)
    setup = setup or TrainingSetup()
    n_params = float(parameter_count(spec).total)
    note = ""
    if setup.global_batch is None:
        gb = default_global_batch(setup.seq_len, kind, n_params=n_params)
        note = default_batch_note(setup.seq_len, kind, n_params=n_params)
        setup = setup.model_copy(update={"global_batch": gb})
    sc = _scenario(spec, acc.id, setup, train_tokens=train_tokens, n_devices=n_devices, kind=kind,
                   framework=framework, overrides=overrides, search=search, deadline_days=deadline_days,
                   memory_headroom=memory_headroom)
    catalog = apply_overrides(catalog, sc)
    prep = _prepare_one_system(sc, catalog, acc.id, sys_.id)
    rule = choice_rule(n_devices, kind, deadline_days)
    top, counts = _search(prep)
    job = prep.job
    infeasible = {job.reasons[i]: int(c) for i, c in enumerate(counts) if i and c}
    if top is None:
        reason = _nothing_feasible(prep, infeasible, sc)
        return LayoutChoice(rule, None, prep.size, 0, infeasible, reason, note, dict(prep.near))
    row = job.frame(prep.ctx, top).iloc[0]
    plan = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
    return LayoutChoice(rule, plan, prep.size, int(counts[0]), infeasible, None, note)


def _prepare_one_system(sc: Scenario, catalog: Catalog, acc: str, system: str) -> Prepared:
    job = job_kind(sc.job.kind)
    table = hardware_table(catalog)
    offers = _unit_rate_offers(catalog, acc, system, table.system_code(system))
    systems, start, count = offers.blocks()
    ctx = job.prepare(sc, table, offers, systems)
    return Prepared(sc, catalog, job, ctx, offers, systems, start, count)


def _search(prep: Prepared) -> tuple[dict[str, np.ndarray] | None, np.ndarray]:
    """The generic search's chunks with a running top-k by the scenario's objective, then
    ``_pick``: the chosen row (as a one-row dict of columns) and per-reason counts."""
    job = prep.job
    keys = (*job.objectives[prep.scenario.objective], "_key")
    running = Running(TOP_K, keys, job.pareto_axes)
    counts = np.zeros(len(job.reasons), dtype=np.int64)
    for start in range(0, prep.size, DEFAULT_CHUNK):
        cand, c = evaluate_chunk(prep, start, min(prep.size, start + DEFAULT_CHUNK))
        counts += c
        if cand is not None:
            running.add(cand.light, cand.materialize)
    top = running.top
    if top is None or len(top["_key"]) == 0:
        return None, counts
    return _pick(top, keys), counts


def _pick(top: dict[str, np.ndarray], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The first of ``top`` by ``keys[1:]`` among the rows within ``TIE_TOLERANCE`` of the best
    primary key (device-hours or run time): differences far below the model's accuracy do not
    decide, the next key does (the shorter run, or the cheaper one)."""
    primary = top[keys[0]]
    near = np.flatnonzero(primary <= primary.min() * (1.0 + TIE_TOLERANCE))
    order = np.lexsort(tuple(top[k][near] for k in reversed(keys[1:])))
    row = near[order[:1]]
    return {k: v[row] for k, v in top.items()}


def _nothing_feasible(prep: Prepared, infeasible: dict[str, int], sc: Scenario) -> str:
    """Which constraint binds and how close the search came."""
    counts = ", ".join(f"{name}: {n:,}" for name, n in sorted(infeasible.items(), key=lambda kv: -kv[1]))
    deadline = sc.constraints.deadline_for(sc.job.kind)
    if "time_total_hours" in prep.near:
        days = prep.near["time_total_hours"] / 24
        return (f"binding constraint: deadline ({deadline:g} days); the fastest layout that fits in "
                f"memory takes {days:,.1f} days ({days / deadline:.2f}x the deadline). Searched "
                f"{prep.size:,} configurations ({counts})")
    short = _memory_shortfall(prep)
    if short is not None:
        need, usable, what = short
        return (f"binding constraint: memory; the smallest need is {need / 2**30:,.1f} GiB per "
                f"device against {usable / 2**30:,.1f} GiB usable ({need / usable - 1:.1%} over; "
                f"{sc.constraints.min_memory_headroom:.0%} kept free) with {what}. Searched "
                f"{prep.size:,} configurations ({counts})")
    top = max(infeasible, key=infeasible.get) if infeasible else "none searched"
    counts_n = sc.search.device_counts if len(sc.search.device_counts) < 4 else "the counts searched"
    return (f"binding constraint: {top}: no layout of the search space splits {counts_n} devices "
            f"into tp x pp x cp x dp with dp x micro-batch dividing the global batch of "
            f"{batch_sequences(sc)} sequences and the model's layers, heads and experts evenly. "
            f"Searched {prep.size:,} configurations ({counts})")


def _memory_shortfall(prep: Prepared) -> tuple[float, float, str] | None:
    """(smallest memory need, usable memory, its layout in words) among the configurations ruled
    out by memory alone; None when none reached the memory check."""
    job, ctx = prep.job, prep.ctx
    headroom = prep.scenario.constraints.min_memory_headroom
    best: tuple[float, float, str] | None = None
    for start in range(0, prep.size, DEFAULT_CHUNK):
        flat = np.arange(start, min(prep.size, start + DEFAULT_CHUNK), dtype=np.int64)
        cols = {d: prep.choices[d][i] for d, i in zip(job.dimensions, np.unravel_index(flat, prep.shape))}
        ev = job.evaluate(ctx, cols, prep.system_codes[cols["system"].astype(np.int64)])
        oom = np.flatnonzero(ev.reason[ev.live] == MEMORY)
        if oom.size == 0:
            continue
        need = np.asarray(ev.out["memory_total_bytes"])[oom]
        usable = np.asarray(ev.out["memory_capacity_bytes"])[oom] * (1.0 - headroom)
        i = int(np.argmin(need / usable))
        if best is None or need[i] / usable[i] < best[0] / best[1]:
            t, r = ev.t, oom[i]
            what = (f"{int(t.n_devices[r])} devices, tp={int(t.tp[r])} pp={int(t.pp[r])} "
                    f"dp={int(t.dp[r])} cp={int(t.cp[r])} ep={int(t.ep[r])} ZeRO-{int(t.zero_stage[r])}, "
                    f"micro-batch {int(t.micro_batch[r])}")
            best = (float(need[i]), float(usable[i]), what)
    return best if best is not None and math.isfinite(best[0]) else None
