"""Search every configuration of a scenario, rank the feasible ones, keep the Pareto front.

The grid is never materialised as Python objects. Its dimensions (system, device count, tp, pp,
vpp, cp, ep, ZeRO stage, recompute, micro-batch, precision) are enumerated as integer columns in
chunks of bounded size; each chunk runs through ``engine.evaluate_training`` in one vectorised pass
and is then joined with the priced offers of its system for the cost. Each chunk updates a running
top-k and a running Pareto set, so memory stays bounded whatever the grid size, and chunks are
independent (a distributed runner can split the flat index range).

Infeasible rows get a reason code (a column, never an exception); counts per reason are kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hardware_catalog import Catalog

from costmodel.tables.catalog import engine_catalog, hardware_table, object_storage_price
from costmodel.specs.columns import ModelColumns
from costmodel.formulas.cost import checkpoint_bytes, training_run_cost
from costmodel.jobs.train import evaluate_training, knob_columns
from costmodel.formulas.flops import RECOMPUTE_CODES
from costmodel.specs.layout import layout_fits, rank_strides
from costmodel.formulas.params import parameter_count
from costmodel.specs.scenario import Scenario, ScenarioError
from costmodel.specs.setup import PRECISION_CODES, TrainingColumns, precision_numbers

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
)
FEASIBLE = 0

DIMENSIONS = ("system", "n_devices", "tp", "pp", "vpp", "cp", "ep", "zero_stage", "recompute",
              "micro_batch", "precision")

RECOMPUTE_NAMES = {v: k for k, v in RECOMPUTE_CODES.items()}
PRECISION_NAMES = {v: k for k, v in PRECISION_CODES.items()}

DEFAULT_CHUNK = 1 << 15  # 32768 rows: arrays of 256 KiB stay cache-resident (see benchmarks/sweep.py)


@dataclass
class PlanResult:
    """What ``plan`` returns: ranked plans, the Pareto front and why the rest did not qualify."""

    scenario: Scenario
    plans: pd.DataFrame
    pareto: pd.DataFrame
    infeasible: pd.DataFrame
    n_configurations: int
    n_plans: int
    seconds: float
    catalog: Catalog
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> pd.Series | None:
        return None if self.plans.empty else self.plans.iloc[0]

    @property
    def report(self) -> pd.DataFrame:
        """The wide one-row-per-plan table, exactly as ``costmodel plan --csv`` writes it."""
        from costmodel.faces.report import plans_table

        return plans_table(self)

    @property
    def breakdown(self) -> pd.DataFrame:
        """Memory, step-time and cost components per ranked plan (long form)."""
        from costmodel.faces.report import breakdown_table

        return breakdown_table(self)

    @property
    def metadata(self) -> dict[str, Any]:
        """Tool version, catalog dates, prices and efficiencies used, assumptions, scenario."""
        from costmodel.faces.report import metadata

        return metadata(self)


#: Columns built for every feasible plan row (what ranking, constraints and the front need).
RANKING_COLUMNS = ("cost_total_usd", "time_total_hours", "cost_per_million_tokens_usd", "energy_kwh")


@dataclass
class Candidates:
    """Feasible plan rows of one chunk: ``light`` ranking columns for all of them, and
    ``materialize(idx)`` to build the full rows of a few."""

    light: dict[str, np.ndarray]
    materialize: Callable[[np.ndarray], dict[str, np.ndarray]]


class _Running:
    """Running top-k (by the objective's sort keys) and Pareto set (cost vs time)."""

    def __init__(self, k: int):
        self.k = k
        self.top: dict[str, np.ndarray] | None = None
        self.front: dict[str, np.ndarray] | None = None

    @staticmethod
    def _concat(a: dict[str, np.ndarray] | None, b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if a is None:
            return b
        return {key: np.concatenate([a[key], b[key]]) for key in b}

    @staticmethod
    def _take(d: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
        return {key: v[idx] for key, v in d.items()}

    def add(self, cand: Candidates, keys: tuple[str, ...]) -> None:
        light = cand.light
        n = len(light["_key"])
        if n == 0:
            return
        # The Pareto filter sees every feasible row of the chunk (exact); the top-k pre-selects the
        # chunk's best k on the primary key (ties at the bound kept) before the exact sort.
        front_idx = pareto_mask(light["cost_total_usd"], light["time_total_hours"], light["_key"])
        if n > self.k:
            part = np.argpartition(light[keys[0]], self.k - 1)[: self.k]
            bound = light[keys[0]][part].max()
            top_idx = np.flatnonzero(light[keys[0]] <= bound)
        else:
            top_idx = np.arange(n)
        survivors = np.union1d(front_idx, top_idx)
        rows = cand.materialize(survivors)
        pos = {v: i for i, v in enumerate(survivors)}
        front_rows = self._take(rows, np.array([pos[i] for i in front_idx], dtype=np.int64))
        top_rows = self._take(rows, np.array([pos[i] for i in top_idx], dtype=np.int64))
        merged = self._concat(self.front, front_rows)
        self.front = self._take(merged, pareto_mask(merged["cost_total_usd"], merged["time_total_hours"],
                                                   merged["_key"]))
        merged = self._concat(self.top, top_rows)
        order = np.lexsort(tuple(merged[k] for k in reversed(keys)))
        self.top = self._take(merged, order[: self.k])


def pareto_mask(cost: np.ndarray, time_: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
    """Indices of the points not dominated in (cost, time), both minimised, sorted by cost.

    A point is dominated when another is no worse in both and better in one. Among exact
    duplicates the one with the smallest ``key`` is kept.
    """
    if len(cost) == 0:
        return np.zeros(0, dtype=np.int64)
    key = np.arange(len(cost)) if key is None else key
    order = np.lexsort((key, time_, cost))
    t_sorted = time_[order]
    best_before = np.minimum.accumulate(np.concatenate([[np.inf], t_sorted[:-1]]))
    keep = t_sorted < best_before
    return order[keep]


def _objective_keys(objective: str) -> tuple[str, ...]:
    # Ties are common (e.g. ZeRO-1 and ZeRO-3 at the same speed): after the objective and the other
    # of cost/time, prefer less memory per device (more headroom), then the grid position.
    return {
        "cost": ("cost_total_usd", "time_total_hours", "memory_total_bytes", "_key"),
        "time": ("time_total_hours", "cost_total_usd", "memory_total_bytes", "_key"),
        "cost-per-token": ("cost_per_million_tokens_usd", "time_total_hours", "memory_total_bytes", "_key"),
        "energy": ("energy_kwh", "cost_total_usd", "memory_total_bytes", "_key"),
    }[objective]


def _apply_overrides(catalog: Catalog, scenario: Scenario) -> Catalog:
    from hardware_catalog import CatalogError

    for o in scenario.efficiency_overrides:
        try:
            catalog.accelerator(o.accelerator)
            catalog = catalog.override_efficiency(o.accelerator, o.quantity, o.value, precision=o.precision)
        except CatalogError as exc:
            raise ScenarioError(f"efficiency_overrides: {exc}") from None
    for o in scenario.price_overrides:
        try:
            catalog = catalog.override_price(o.provider, o.offer, o.region, o.pricing_model,
                                             usd_per_device_hour=o.usd_per_device_hour)
        except CatalogError as exc:
            raise ScenarioError(f"price_overrides: {exc}") from None
    return catalog


@dataclass
class _Prepared:
    scenario: Scenario
    catalog: Catalog
    offers: pd.DataFrame  # filtered offers with system_code into the table
    system_codes: np.ndarray  # distinct systems searched (codes into the hardware table)
    offer_start: np.ndarray  # per searched system: first offer row (offers sorted by system)
    offer_count: np.ndarray
    choices: dict[str, np.ndarray]
    model: ModelColumns
    knobs: dict[str, np.ndarray]
    table: Any
    storage_price: np.ndarray  # per offer: USD per GB-month of object storage
    storage_source: list[str]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.choices[d]) for d in DIMENSIONS)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def prepare(scenario: Scenario, catalog: Catalog | None = None) -> _Prepared:
    """Resolve the scenario against the catalog: the offers, systems and choice lists to search."""
    spec = scenario.model_spec()
    catalog = _apply_overrides(catalog or engine_catalog(), scenario)
    c, s = scenario.constraints, scenario.search
    offers = catalog.offers_frame()
    acc_kind = {a.id: a.kind for a in catalog.accelerators.values()}
    offers = offers[offers["pricing_model"].isin(c.pricing_models)]
    offers = offers[offers["accelerator"].map(acc_kind).isin(c.kinds)]
    if c.providers:
        unknown = sorted(set(c.providers) - set(catalog.providers))
        if unknown:
            raise ScenarioError(f"constraints.providers: unknown {unknown}; known: {', '.join(catalog.providers)}")
        offers = offers[offers["provider"].isin(c.providers)]
    if c.regions:
        offers = offers[offers["region"].isin(c.regions)]
    if s.accelerators:
        unknown = sorted(set(s.accelerators) - set(catalog.accelerator_ids))
        if unknown:
            raise ScenarioError(f"search.accelerators: unknown {unknown}; known: {', '.join(catalog.accelerator_ids)}")
        offers = offers[offers["accelerator"].isin(s.accelerators)]
    offers = offers[np.isfinite(offers["usd_per_device_hour"].to_numpy(dtype=float))]
    if offers.empty:
        raise ScenarioError("no offer matches the constraints (kinds, providers, regions, pricing "
                            "models, accelerators): the search space is empty")
    table = hardware_table(catalog)
    offers = offers.assign(system_code=[table.system_code(x) for x in offers["system"]])
    offers = offers.sort_values(["system_code", "provider", "offer", "region", "pricing_model"],
                                kind="stable").reset_index(drop=True)
    system_codes, offer_start, offer_count = np.unique(offers["system_code"].to_numpy(),
                                                       return_index=True, return_counts=True)
    device_counts = [n for n in s.device_counts if c.max_devices is None or n <= c.max_devices]
    if not device_counts:
        raise ScenarioError("search.device_counts: none is within constraints.max_devices")
    ep = s.ep if spec.is_moe else [1]
    choices = {
        "system": np.arange(len(system_codes)),
        "n_devices": np.array(sorted(set(device_counts)), dtype=np.float64),
        "tp": np.array(sorted(set(s.tp)), dtype=np.float64),
        "pp": np.array(sorted(set(s.pp)), dtype=np.float64),
        "vpp": np.array(sorted(set(s.vpp)), dtype=np.float64),
        "cp": np.array(sorted(set(s.cp)), dtype=np.float64),
        "ep": np.array(sorted(set(ep)), dtype=np.float64),
        "zero_stage": np.array(sorted(set(s.zero_stage)), dtype=np.float64),
        "recompute": np.array(sorted({RECOMPUTE_CODES[r] for r in s.recompute}), dtype=np.float64),
        "micro_batch": np.array(sorted(set(s.micro_batch)), dtype=np.float64),
        "precision": np.array(sorted({PRECISION_CODES[p] for p in s.precision}), dtype=np.float64),
    }
    knobs = knob_columns(scenario.job.framework, scenario.overrides)
    storage_price, storage_source = _storage_prices(catalog, offers)
    return _Prepared(scenario, catalog, offers, system_codes, offer_start, offer_count, choices,
                     ModelColumns.from_spec(spec), knobs, table, storage_price, storage_source)


def _storage_prices(catalog: Catalog, offers: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Object-storage price per offer (``catalog_bridge.object_storage_price``) and its source."""
    prices, sources = [], []
    for provider in offers["provider"]:
        row = object_storage_price(catalog, provider)
        if row is None:
            prices.append(0.0)
            sources.append("no object-storage price in the catalog")
            continue
        prices.append(row.value)
        tag = "" if row.provider == provider else f" (no {provider} price; using {row.provider})"
        sources.append(f"{row.provider} {row.region or ''} {row.value} {row.unit}, {row.as_of}: {row.source}{tag}")
    return np.array(prices, dtype=np.float64), sources


def _decode(prep: _Prepared, start: int, stop: int, flat: np.ndarray | None = None) -> dict[str, np.ndarray]:
    if flat is None:
        flat = np.arange(start, stop, dtype=np.int64)
    idx = np.unravel_index(flat, prep.shape)
    cols = {d: prep.choices[d][i] for d, i in zip(DIMENSIONS, idx)}
    cols["_flat"] = flat
    return cols


def evaluate_chunk(prep: _Prepared, start: int, stop: int, flat: np.ndarray | None = None
                   ) -> tuple[Candidates | None, np.ndarray]:
    """Evaluate grid rows [start, stop) (or the flat grid indices ``flat``): returns the feasible
    plan rows (configuration x offer) as ``Candidates`` and per-reason counts of plan rows."""
    sc = prep.scenario
    cols = _decode(prep, start, stop, flat)
    m = prep.model
    n, tp, pp, vpp, cp, ep = (cols[k] for k in ("n_devices", "tp", "pp", "vpp", "cp", "ep"))
    mb = cols["micro_batch"]
    sys_idx = cols["system"].astype(np.int64)
    n_offers = prep.offer_count[sys_idx]
    reason = np.zeros(len(n), dtype=np.int8)

    # Structure: dp must be whole, interleaving needs pp > 1, EP folds into dp*cp (Megatron MoE).
    dp = n / (tp * pp * cp)
    structural = (dp == np.floor(dp)) & (dp >= 1) & ((vpp == 1) | (pp > 1))
    structural &= np.mod(np.floor(dp) * cp, ep) == 0
    structural &= layout_fits(m, tp, pp, vpp, ep)
    # Unlike the other reasons, a layout that needs more pipeline stages than the model has
    # layers is already excluded by layout_fits (L % (pp * vpp)).
    reason[~structural] = 1
    gb = float(sc.job.batch_sequences)
    per_pass = np.where(structural, dp, 1.0) * mb
    n_micro = gb / per_pass
    batch_ok = (n_micro == np.floor(n_micro)) & (n_micro >= 1)
    reason[(reason == 0) & ~batch_ok] = 2
    sys_code = prep.system_codes[sys_idx]
    prec = cols["precision"].astype(np.int64)
    hw_all = prep.table.columns(sys_code, prec)
    fmt_ok = np.isfinite(hw_all.peak_matmul_flops_per_s) & np.isfinite(hw_all.peak_attention_flops_per_s)
    reason[(reason == 0) & ~fmt_ok] = 3
    data_ok = (np.isfinite(hw_all.matmul_efficiency) & np.isfinite(hw_all.attention_efficiency)
               & np.isfinite(hw_all.memory_bandwidth_efficiency) & np.isfinite(hw_all.memory_bytes)
               & np.isfinite(hw_all.fabric.scaleup_allreduce_bytes_per_s)
               & np.isfinite(hw_all.fabric.scaleout_allreduce_bytes_per_s))
    reason[(reason == 0) & ~data_ok] = 4

    live = np.flatnonzero(reason == 0)
    counts = np.zeros(len(REASONS), dtype=np.int64)
    np.add.at(counts, reason[reason != 0], n_offers[reason != 0])
    if live.size == 0:
        return None, counts

    def sub(x):
        return x[live]

    nums = {name: precision_numbers(name, None, "param", sc.job.optimizer, 32) for name in PRECISION_CODES}
    pc = sub(prec)

    def by_prec(key: str) -> np.ndarray:
        lut = np.array([nums[name][key] for name in PRECISION_CODES], dtype=np.float64)
        return lut[pc]

    strides = rank_strides(sc.search.rank_order, sub(tp), sub(cp), sub(dp))
    t = TrainingColumns(
        stride_tp=strides["tp"], stride_cp=strides["cp"], stride_dp=strides["dp"], stride_pp=strides["pp"],
        tp=sub(tp), pp=sub(pp), vpp=sub(vpp), dp=sub(dp), cp=sub(cp), ep=sub(ep),
        sp=np.where(sub(tp) > 1, float(sc.search.sequence_parallel), 0.0),
        zero_stage=sub(cols["zero_stage"]), micro_batch=sub(mb),
        seq_len=np.full(live.size, float(sc.job.seq_len)), n_micro=sub(n_micro),
        recompute=sub(cols["recompute"]), precision=pc.astype(np.float64),
        weight_bytes=by_prec("weight_bytes"), grad_bytes=by_prec("grad_bytes"),
        master_bytes=by_prec("master_bytes"),
        optimizer_state_bytes=by_prec("optimizer_state_bytes"), adafactor=by_prec("adafactor"),
        act_bytes=by_prec("act_bytes"), flash=np.ones(live.size), dropout=np.zeros(live.size),
        vocab_head=np.ones(live.size), causal_discount=np.ones(live.size),
    )
    hw = prep.table.columns(sys_code[live], pc)
    out = evaluate_training(m, t, hw, prep.knobs)
    headroom = sc.constraints.min_memory_headroom
    mem_ok = out["memory_total_bytes"] <= hw.memory_bytes * (1.0 - headroom)
    oom = ~mem_ok
    np.add.at(counts, np.full(int(oom.sum()), 5), n_offers[live][oom])
    keep = np.flatnonzero(mem_ok)
    if keep.size == 0:
        return None, counts

    # Join each surviving configuration with every offer of its system.
    cfg = live[keep]
    per = n_offers[cfg]
    rep = np.repeat(np.arange(keep.size), per)
    offer_row = np.repeat(prep.offer_start[sys_idx[cfg]], per) + (
        np.arange(rep.size) - np.repeat(np.cumsum(per) - per, per))
    o = prep.offers
    price = o["usd_per_device_hour"].to_numpy(dtype=np.float64)[offer_row]
    dpi = o["devices_per_instance"].to_numpy(dtype=np.float64)[offer_row]
    a = prep.knobs
    ckpt = checkpoint_bytes(float(parameter_count(m).total), t.weight_bytes, t.master_bytes,
                            t.optimizer_state_bytes)
    cost = training_run_cost(
        step_time_s=out["step_time_s"][keep][rep],
        step_time_lower_s=out["step_time_lower_s"][keep][rep],
        step_time_upper_s=out["step_time_upper_s"][keep][rep],
        tokens_per_step=out["tokens_per_step"][keep][rep],
        train_tokens=float(sc.job.train_tokens),
        n_devices=n[cfg][rep],
        devices_per_instance=dpi,
        usd_per_device_hour=price,
        checkpoint_bytes=ckpt[keep][rep],
        checkpoints_retained=a["checkpoints_retained"],
        storage_usd_per_gb_month=prep.storage_price[offer_row],
        tdp_w=hw.tdp_w[keep][rep],
        power_utilization_fraction=a["power_utilization_fraction"],
        pue=a["pue"],
    )
    plan_reason = np.zeros(rep.size, dtype=np.int8)
    c = sc.constraints
    if c.deadline_days is not None:
        plan_reason[cost["time_total_hours"] > c.deadline_days * 24.0] = 6
    if c.budget_usd is not None:
        plan_reason[(plan_reason == 0) & (cost["cost_total_usd"] > c.budget_usd)] = 7
    # Prices or TDP may be missing for some parts: a NaN cost cannot be ranked.
    plan_reason[(plan_reason == 0) & ~np.isfinite(cost["cost_total_usd"])] = 4
    np.add.at(counts, plan_reason, 1)
    ok = np.flatnonzero(plan_reason == 0)
    # Only the ranking columns are built for every feasible plan row; the full row (~100 columns)
    # is gathered later for the few survivors of the top-k and Pareto selection, which keeps the
    # memory of a chunk proportional to its size and not to its number of offers x columns.
    light = {k: np.asarray(cost[k])[ok] for k in RANKING_COLUMNS if k in cost}
    light["memory_total_bytes"] = out["memory_total_bytes"][keep][rep][ok]
    # Deterministic tie-break: position in the grid, then the offer.
    light["_key"] = cols["_flat"][cfg][rep][ok].astype(np.float64) * 4096 + offer_row[ok]

    def materialize(idx: np.ndarray) -> dict[str, np.ndarray]:
        sel = ok[idx]
        cfg_rows = keep[rep[sel]]  # rows of ``out`` (the live configurations)
        grid_rows = cfg[rep[sel]]  # rows of the chunk
        rows: dict[str, np.ndarray] = {d: cols[d][grid_rows] for d in DIMENSIONS}
        rows["dp"] = dp[grid_rows]
        rows["n_micro"] = n_micro[grid_rows]
        rows["sequence_parallel"] = t.sp[cfg_rows]
        rows["offer_row"] = offer_row[sel]
        for k, v in out.items():
            rows[k] = np.asarray(v, dtype=np.float64)[cfg_rows] if np.ndim(v) else np.full(sel.size, float(v))
        for k, v in cost.items():
            rows[k] = np.asarray(v)[sel] if np.ndim(v) else np.full(sel.size, float(v))
        rows["usd_per_device_hour"] = price[sel]
        rows["devices_per_instance"] = dpi[sel]
        rows["_key"] = light["_key"][idx]
        return rows

    return Candidates(light, materialize), counts


def plan(
    scenario: Scenario,
    *,
    top: int = 50,
    catalog: Catalog | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> PlanResult:
    """Rank every feasible configuration of ``scenario``; see the module docstring."""
    started = time.perf_counter()
    prep = prepare(scenario, catalog)
    total = prep.size
    running = _Running(max(1, top))
    counts = np.zeros(len(REASONS), dtype=np.int64)
    keys = _objective_keys(scenario.objective)
    for start in range(0, total, chunk_size):
        stop = min(total, start + chunk_size)
        cand, c = evaluate_chunk(prep, start, stop)
        counts += c
        if cand is not None:
            running.add(cand, keys)
        if progress is not None:
            progress(stop, total)
    plans = _frame(prep, running.top)
    pareto = _frame(prep, running.front)
    if not plans.empty:
        plans.insert(0, "rank", np.arange(1, len(plans) + 1))
    if not pareto.empty:
        pareto = pareto.sort_values(["cost_total_usd", "time_total_hours"]).reset_index(drop=True)
    if not pareto.empty and not plans.empty:
        # Pareto rows that are also ranked carry their rank; the others have none.
        rank_of = dict(zip(plans["plan_id"], plans["rank"]))
        pareto.insert(0, "rank", pareto["plan_id"].map(rank_of).astype("Int64"))
    infeasible = pd.DataFrame({"reason": REASONS[1:], "plans": counts[1:]})
    infeasible = infeasible[infeasible["plans"] > 0].reset_index(drop=True)
    return PlanResult(
        scenario=scenario, plans=plans, pareto=pareto, infeasible=infeasible,
        n_configurations=total, n_plans=int(counts.sum()),
        seconds=time.perf_counter() - started, catalog=prep.catalog,
        context={"feasible": int(counts[0])},
    )


def _frame(prep: _Prepared, rows: dict[str, np.ndarray] | None) -> pd.DataFrame:
    """Readable plan rows: names instead of codes, key columns first, units in column names."""
    if rows is None or len(rows["_key"]) == 0:
        return pd.DataFrame()
    o = prep.offers.iloc[rows["offer_row"].astype(np.int64)].reset_index(drop=True)
    acc = prep.catalog.accelerators
    df = pd.DataFrame({
        "accelerator": o["accelerator"].to_numpy(),
        "kind": [acc[a].kind for a in o["accelerator"]],
        "provider": o["provider"].to_numpy(),
        "offer": o["offer"].to_numpy(),
        "region": o["region"].to_numpy(),
        "pricing_model": o["pricing_model"].to_numpy(),
        "system": o["system"].to_numpy(),
        "n_devices": rows["n_devices"].astype(np.int64),
        "instances": np.ceil(rows["n_devices"] / rows["devices_per_instance"]).astype(np.int64),
        "tp": rows["tp"].astype(np.int64),
        "pp": rows["pp"].astype(np.int64),
        "vpp": rows["vpp"].astype(np.int64),
        "dp": rows["dp"].astype(np.int64),
        "cp": rows["cp"].astype(np.int64),
        "ep": rows["ep"].astype(np.int64),
        "sequence_parallel": rows["sequence_parallel"] > 0,
        "zero_stage": rows["zero_stage"].astype(np.int64),
        "recompute": [RECOMPUTE_NAMES[int(v)] for v in rows["recompute"]],
        "micro_batch": rows["micro_batch"].astype(np.int64),
        "global_batch": (rows["micro_batch"] * rows["dp"] * rows["n_micro"]).astype(np.int64),
        "precision": [PRECISION_NAMES[int(v)] for v in rows["precision"]],
        "time_total_hours": rows["time_total_hours"],
        "time_total_lower_hours": rows["time_total_lower_hours"],
        "time_total_upper_hours": rows["time_total_upper_hours"],
        "cost_total_usd": rows["cost_total_usd"],
        "cost_per_million_tokens_usd": rows["cost_per_million_tokens_usd"],
        "usd_per_device_hour": rows["usd_per_device_hour"],
        "memory_per_device_gib": rows["memory_total_bytes"] / 2**30,
        "memory_capacity_gib": rows["memory_capacity_bytes"] / 2**30,
        "mfu": rows["mfu"],
        "hfu": rows["hfu"],
        "step_time_s": rows["step_time_s"],
        "tokens_per_s_per_device": rows["tokens_per_s_per_device"],
        "device_hours": rows["device_hours"],
        "billed_device_hours": rows["billed_device_hours"],
        "energy_kwh": rows["energy_kwh"],
        "price_as_of": o["as_of"].to_numpy(),
        "price_source": o["source"].to_numpy(),
    })
    extra = {k: v for k, v in rows.items() if k.startswith(("memory_", "cost_", "compute_s", "tp_comm",
                                                            "cp_comm", "ep_comm", "pp_comm", "dp_comm",
                                                            "bubble_s", "optimizer_s", "step_time_"))
             and k not in df.columns}
    for k, v in extra.items():
        df[k] = v
    # A stable identifier of the plan within this scenario: grid position x 4096 + offer row.
    df["plan_id"] = rows["_key"].astype(np.int64)
    return df.reset_index(drop=True)
