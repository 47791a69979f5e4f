"""The generic search: enumerate a job kind's grid in chunks, join offers, keep the best and the front.

The grid is never materialised as Python objects. The job kind names its dimensions (the first is
``system``, an index into the systems that have a matching offer); the flat index range is decoded
into integer columns chunk by chunk; each chunk is evaluated by the job kind in one vectorised pass,
the configurations that pass are joined with every offer of their system and priced by the job
kind, and a running top-k and Pareto set are updated, so memory stays bounded whatever the grid
size, and chunks are independent (a distributed runner can split the flat index range).

Infeasible rows get a reason code (a column, never an exception); counts per reason are kept.
This module knows no job word: reasons, objectives, Pareto axes and report rows come from the job.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hardware_catalog import Catalog, CatalogError

from costmodel.jobs import job_kind
from costmodel.jobs.base import JobKind
from costmodel.search.pareto import Running, pareto_mask
from costmodel.search.result import PlanResult
from costmodel.specs.scenario import Scenario, ScenarioError
from costmodel.tables.catalog import engine_catalog, hardware_table
from costmodel.tables.offers import OfferTable

__all__ = ["DEFAULT_CHUNK", "PlanResult", "Prepared", "evaluate_block", "evaluate_chunk", "pareto_mask", "plan",
           "prepare"]

#: 65,536 rows: the training engine sees only a chunk's rows that fit in memory (about a third),
#: so its arrays stay small; 32,768 was 10-15 % slower, 131,072 no faster for the 70B default and
#: +90 MiB peak RSS (benchmarks/sweep.py, README "Performance").
DEFAULT_CHUNK = 1 << 16
OFFER_KEY = 4096  # plan key = grid position x OFFER_KEY + offer row (a stable plan_id)
#: Largest grid searched: about 15 minutes at 2 M configurations/s on two cores (benchmarks/sweep.py),
#: and far below the plan_id range (grid position x OFFER_KEY must stay below 2^53).
MAX_CONFIGURATIONS = 2_000_000_000


def apply_overrides(catalog: Catalog, scenario: Scenario) -> Catalog:
    """The scenario's efficiency and price overrides applied to a catalog."""
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


def filtered_offers(catalog: Catalog, scenario: Scenario) -> pd.DataFrame:
    """Catalog offers allowed by the constraints and the search space (errors name the field)."""
    c, s = scenario.constraints, scenario.search
    offers = catalog.offers_frame()
    acc_kind = {a.id: a.kind for a in catalog.accelerators.values()}
    offers = offers[offers["pricing_model"].isin(c.pricing_models)]
    offers = offers[offers["price_quality"].isin(c.price_qualities)]
    offers = offers[offers["accelerator"].map(acc_kind).isin(c.kinds)]
    for field, values, known in (("constraints.providers", c.providers, catalog.providers),
                                 ("search.accelerators", s.accelerators, catalog.accelerator_ids)):
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ScenarioError(f"{field}: unknown {unknown}; known: {', '.join(known)}")
    if c.providers:
        offers = offers[offers["provider"].isin(c.providers)]
    if c.regions:
        offers = offers[offers["region"].isin(c.regions)]
    if s.accelerators:
        offers = offers[offers["accelerator"].isin(s.accelerators)]
    return offers


@dataclass
class Prepared:
    """A scenario resolved against the catalog: the job kind, its context and the offer blocks."""

    scenario: Scenario
    catalog: Catalog
    job: JobKind
    ctx: Any
    offers: OfferTable
    system_codes: np.ndarray  # distinct systems searched (codes into the hardware table)
    offer_start: np.ndarray  # per searched system: first offer row
    offer_count: np.ndarray
    near: dict[str, float] = field(default_factory=dict)  # best axes among plans ruled out by a limit

    @property
    def choices(self) -> dict[str, np.ndarray]:
        return self.ctx.choices

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.choices[d]) for d in self.job.dimensions)

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # a Python int: never wraps


def prepare(scenario: Scenario, catalog: Catalog | None = None, job: JobKind | None = None) -> Prepared:
    """Resolve the scenario against the catalog: the offers, systems and choice lists to search."""
    catalog = apply_overrides(catalog or engine_catalog(), scenario)
    job = job or job_kind(scenario.job.kind)
    table = hardware_table(catalog)
    offers = OfferTable.build(catalog, filtered_offers(catalog, scenario), table.system_code)
    if len(offers) == 0:
        raise ScenarioError("no offer matches the constraints (kinds, providers, regions, pricing "
                            "models, price qualities, accelerators): the search space is empty")
    systems, start, count = offers.blocks()
    ctx = job.prepare(scenario, table, offers, systems)
    prep = Prepared(scenario, catalog, job, ctx, offers, systems, start, count)
    job.bind_near(ctx, prep.near)
    if prep.size > MAX_CONFIGURATIONS:
        dims = " x ".join(f"{d} {n}" for d, n in zip(job.dimensions, prep.shape))
        raise ScenarioError(f"search space of {prep.size:,} configurations ({dims}) is over the limit of "
                            f"{MAX_CONFIGURATIONS:,}; narrow the search lists (device_counts, tp, pp, "
                            "batch, ...) or the accelerators")
    return prep


@dataclass
class Candidates:
    """Feasible plan rows of one chunk: ``light`` ranking columns for all of them, and
    ``materialize(idx)`` to build the full rows of a few."""

    light: dict[str, np.ndarray]
    materialize: Callable[[np.ndarray], dict[str, np.ndarray]]


class _Columns(dict):
    """Grid rows by flat index: ``_flat`` and the ``system`` index at once, the other dimensions'
    values decoded together on first use (a job that reads only the system of most rows skips
    the decoding)."""

    def __init__(self, prep: Prepared, flat: np.ndarray):
        super().__init__(_flat=flat)
        self._prep = prep
        first = prep.job.dimensions[0]
        self[first] = prep.choices[first][flat // math.prod(prep.shape[1:])]

    def __missing__(self, dim: str) -> np.ndarray:
        prep = self._prep
        if dim not in prep.job.dimensions:
            raise KeyError(dim)
        idx = np.unravel_index(self["_flat"], prep.shape)
        for d, i in zip(prep.job.dimensions[1:], idx[1:]):
            self[d] = prep.choices[d][i]
        return self[dim]


def _decode(prep: Prepared, start: int, stop: int, flat: np.ndarray | None) -> dict[str, np.ndarray]:
    if flat is None:
        flat = np.arange(start, stop, dtype=np.int64)
    return _Columns(prep, flat)


def _join_offers(prep: Prepared, sys_idx: np.ndarray, cfg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each configuration ``cfg`` repeated once per offer of its system: (repeat index, offer row)."""
    per = prep.offer_count[sys_idx[cfg]]
    rep = np.repeat(np.arange(cfg.size), per)
    offer_row = np.repeat(prep.offer_start[sys_idx[cfg]], per) + (
        np.arange(rep.size) - np.repeat(np.cumsum(per) - per, per))
    return rep, offer_row


def evaluate_chunk(prep: Prepared, start: int, stop: int, flat: np.ndarray | None = None
                   ) -> tuple[Candidates | None, np.ndarray]:
    """Evaluate grid rows [start, stop) (or the flat grid indices ``flat``): returns the feasible
    plan rows (configuration x offer) as ``Candidates`` and per-reason counts of plan rows."""
    job, ctx = prep.job, prep.ctx
    cols = _decode(prep, start, stop, flat)
    sys_idx = cols["system"].astype(np.int64)
    n_offers = prep.offer_count[sys_idx]
    ev = job.evaluate(ctx, cols, prep.system_codes[sys_idx])
    counts = np.zeros(len(job.reasons), dtype=np.int64)
    bad = ev.reason != 0
    np.add.at(counts, ev.reason[bad], n_offers[bad])
    for code, name in getattr(job, "limit_reasons", {}).items():
        if counts[code]:  # ruled out by a limit before pricing (see JobKind.evaluate)
            prep.near[f"binding:{name}"] = prep.near.get(f"binding:{name}", 0) + int(counts[code])
    ok_live = np.flatnonzero(ev.reason[ev.live] == 0)  # positions in the live arrays
    if ok_live.size == 0:
        return None, counts
    cfg = ev.live[ok_live]  # rows of the chunk
    rep, offer_row = _join_offers(prep, sys_idx, cfg)
    priced = job.price(ctx, ev, ok_live[rep], offer_row)
    np.add.at(counts, priced["reason"], 1)
    _track_near_misses(prep, priced)
    ok = np.flatnonzero(priced["reason"] == 0)
    light = {k: np.asarray(priced[k])[ok] for k in set(job.pareto_axes) | {
        key for keys in job.objectives.values() for key in keys}}
    # Deterministic tie-break and stable plan id: position in the grid, then the offer.
    light["_key"] = cols["_flat"][cfg][rep][ok].astype(np.float64) * OFFER_KEY + offer_row[ok]

    def materialize(idx: np.ndarray) -> dict[str, np.ndarray]:
        sel = ok[idx]
        rows = job.row_values(ctx, ev, ok_live[rep[sel]])
        rows.update({k: np.asarray(v)[sel] for k, v in priced.items() if k != "reason"})
        rows["system_index"] = sys_idx[cfg[rep[sel]]]
        rows["offer_row"] = offer_row[sel]
        rows["_key"] = light["_key"][idx]
        return rows

    return Candidates(light, materialize), counts


def _track_near_misses(prep: Prepared, priced: dict[str, np.ndarray]) -> None:
    """Best value of each Pareto axis among plans ruled out only by a user limit (deadline,
    budget, ...): how close the search came when nothing is feasible."""
    limited = np.isin(priced["reason"], list(getattr(prep.job, "limit_reasons", {})))
    if not limited.any():
        return
    for axis in prep.job.pareto_axes:
        best = float(np.min(np.asarray(priced[axis])[limited]))
        prep.near[axis] = min(prep.near.get(axis, np.inf), best)
    for code in np.unique(priced["reason"][limited]):
        name = prep.job.limit_reasons[int(code)]
        prep.near[f"binding:{name}"] = prep.near.get(f"binding:{name}", 0) + int((priced["reason"] == code).sum())


def evaluate_block(prep: Prepared, top: int, chunk_size: int, start: int, stop: int,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Chunks [start, stop) of the grid (grid rows start x chunk_size up to stop x chunk_size):
    the running top ``top`` and Pareto rows (materialised), per-reason counts and the closest
    misses (``Prepared.near``) of those rows."""
    job, total = prep.job, prep.size
    running = _running(prep, top)
    counts = np.zeros(len(job.reasons), dtype=np.int64)
    prep.near.clear()  # a block's closest misses are its own (the same in any process, any order)
    for chunk in range(start, stop):
        lo, hi = chunk * chunk_size, min(total, (chunk + 1) * chunk_size)
        cand, c = evaluate_chunk(prep, lo, hi)
        counts += c
        if cand is not None:
            running.add(cand.light, cand.materialize)
        if progress is not None:
            progress(hi, total)
    return {"top": running.top, "front": running.front, "counts": counts, "near": dict(prep.near)}


def _running(prep: Prepared, top: int) -> Running:
    """An empty running top-k (by the scenario's objective, then the plan key) and Pareto set."""
    job = prep.job
    return Running(max(1, top), (*job.objectives[prep.scenario.objective], "_key"), job.pareto_axes)


def _merge(prep: Prepared, top: int, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """One block's worth (top, front, counts) from the blocks of a search, closest misses on
    ``prep.near``: the union of their kept rows through a fresh running set (exact: a row outside
    a block's top-k or front is outside the whole search's), counts and 'binding:' counts added,
    the closest misses the least of the blocks'."""
    running = _running(prep, top)
    counts = sum(b["counts"] for b in blocks)
    near: dict[str, float] = {}
    kept = []
    for b in blocks:
        for key, value in b["near"].items():
            near[key] = (near.get(key, 0) + value if key.startswith("binding:")
                         else min(near.get(key, np.inf), value))
        kept += [rows for rows in (b["top"], b["front"]) if rows is not None and len(rows["_key"])]
    if kept:
        rows = {k: np.concatenate([r[k] for r in kept]) for k in kept[0]}
        _, first = np.unique(rows["_key"], return_index=True)  # a row in a top-k and a front once
        rows = {k: v[np.sort(first)] for k, v in rows.items()}
        running.add(rows, lambda idx: {k: v[idx] for k, v in rows.items()})
    prep.near.clear()
    prep.near.update(near)
    return {"top": running.top, "front": running.front, "counts": counts}


def block_ranges(n_chunks: int, parts: int) -> list[tuple[int, int]]:
    """The contiguous chunk ranges a search on ``parts`` processes evaluates (the first in the
    calling process)."""
    cuts = [round(i * n_chunks / parts) for i in range(parts + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def plan(
    scenario: Scenario,
    *,
    top: int = 50,
    catalog: Catalog | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> PlanResult:
    """Rank every feasible configuration of ``scenario``; see the module docstring.

    ``workers``: processes to search with (``search.workers``; default ``default_workers()``, 1
    unless COSTMODEL_WORKERS says otherwise). The result does not depend on it. A search over a
    caller's ``catalog`` object runs in this process; one of fewer chunks than workers uses fewer
    workers. With workers, ``progress`` is called once, when the search is done."""
    from costmodel.search import workers as pool_of

    started = time.perf_counter()
    workers = pool_of.default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ScenarioError(f"workers: {workers!r}; give a whole number of processes, 1 or more")
    prep = prepare(scenario, catalog)
    job = prep.job
    total = prep.size
    n_chunks = -(-total // chunk_size)
    parts = min(workers, n_chunks) if catalog is None else 1
    if parts > 1:
        found = _merge(prep, top, pool_of.run_blocks(
            scenario.to_yaml(), top, chunk_size, block_ranges(n_chunks, parts),
            lambda a, b: evaluate_block(prep, top, chunk_size, a, b)))
        if progress is not None:
            progress(total, total)
    else:
        found = evaluate_block(prep, top, chunk_size, 0, n_chunks, progress)
    counts = found["counts"]
    plans = _frame(prep, found["top"])
    pareto = _frame(prep, found["front"])
    if not plans.empty:
        plans.insert(0, "rank", np.arange(1, len(plans) + 1))
    if not pareto.empty:
        pareto = pareto.sort_values(list(job.pareto_axes)).reset_index(drop=True)
        rank_of = dict(zip(plans["plan_id"], plans["rank"])) if not plans.empty else {}
        # Pareto rows that are also ranked carry their rank; the others have none.
        pareto.insert(0, "rank", pareto["plan_id"].map(rank_of).astype("Int64"))
    infeasible = pd.DataFrame({"reason": job.reasons[1:], "plans": counts[1:]})
    infeasible = infeasible[infeasible["plans"] > 0].reset_index(drop=True)
    return PlanResult(
        scenario=scenario, plans=plans, pareto=pareto, infeasible=infeasible,
        n_configurations=total, n_plans=int(counts.sum()),
        seconds=time.perf_counter() - started, catalog=prep.catalog,
        context={"feasible": int(counts[0]), "job": job.name, "closest": dict(prep.near)},
    )


def _frame(prep: Prepared, rows: dict[str, np.ndarray] | None) -> pd.DataFrame:
    if rows is None or len(rows["_key"]) == 0:
        return pd.DataFrame()
    return prep.job.frame(prep.ctx, rows)
