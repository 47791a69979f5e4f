"""What a plan returns, and its tables: the wide report, the long breakdown and the metadata.

The tables are built here from the job kind's declared report columns and breakdown parts, so
``PlanResult.report`` needs nothing from the faces; ``faces.report`` only writes them as files.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hardware_catalog import Catalog

from costmodel.jobs import job_kind
from costmodel.specs.assumptions import Assumptions
from costmodel.specs.scenario import Scenario


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
    def knee(self) -> pd.Series | None:
        """The Pareto plan at the knee of cost against the second axis: on log scales, the front
        point farthest below the straight line joining its two ends (the usual 'knee' rule, e.g.
        Satopaa et al. 2011's Kneedle on a convex front). None with fewer than three front points."""
        return pareto_knee(self.pareto, job_kind(self.scenario.job.kind).pareto_axes)

    @property
    def report(self) -> pd.DataFrame:
        """The wide one-row-per-plan table, exactly as ``costmodel plan --csv`` writes it."""
        return plans_table(self)

    @property
    def breakdown(self) -> pd.DataFrame:
        """Memory, step-time and cost components per ranked plan (long form)."""
        return breakdown_table(self)

    @property
    def metadata(self) -> dict[str, Any]:
        """Tool version, catalog dates, prices and efficiencies used, assumptions, scenario."""
        return metadata(self)


def pareto_knee(front: pd.DataFrame, axes: tuple[str, str]) -> pd.Series | None:
    if len(front) < 3:
        return None
    x = np.log(front[axes[0]].to_numpy(dtype=float))
    y = np.log(front[axes[1]].to_numpy(dtype=float))
    order = np.argsort(x)
    x, y = x[order], y[order]
    span_x, span_y = x[-1] - x[0], y[0] - y[-1]
    if span_x <= 0 or span_y <= 0:
        return None
    # Normalise both axes to [0, 1]; the line from (0, 1) to (1, 0) is u + v = 1.
    u, v = (x - x[0]) / span_x, (y - y[-1]) / span_y
    return front.iloc[order[int(np.argmax(1.0 - u - v))]]


def plans_table(result: PlanResult, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """The wide report: key columns first, units in names, one row per ranked plan."""
    columns = list(job_kind(result.scenario.job.kind).report_columns)
    df = result.plans if frame is None else frame
    if df.empty:
        return pd.DataFrame(columns=columns)
    df = df.copy()
    df["memory_headroom_gib"] = df["memory_capacity_gib"] - df["memory_per_device_gib"]
    if "rank" not in df:
        df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df[columns].reset_index(drop=True)


def breakdown_table(result: PlanResult, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long form: one row per (plan, quantity, component) with value and unit."""
    df = result.plans if frame is None else frame
    rows = []
    for _, plan in df.iterrows():
        rank = int(plan["rank"]) if "rank" in plan else None
        rows += [(rank, *r) for r in _breakdown(plan, result.scenario.job.kind)]
    return pd.DataFrame(rows, columns=["rank", "quantity", "component", "value", "unit"])


def _breakdown(plan: Mapping[str, Any], kind: str) -> list[tuple[str, str, float, str]]:
    return [(quantity, part, float(plan[pattern.format(part)]) / scale, unit)
            for quantity, components, pattern, scale, unit in job_kind(kind).breakdown_parts
            for part in components]


def plan_breakdown(plan: Mapping[str, Any], kind: str) -> pd.DataFrame:
    """One plan row's breakdown (quantity, component, value, unit): the rows ``breakdown_table``
    writes for it, e.g. memory per device in GiB, step time in s and cost in USD by component,
    plus ``share``: each component over the sum of its quantity's components (the quantity's
    total: memory, step time and cost are those sums; NaN where the sum is 0)."""
    df = pd.DataFrame(_breakdown(plan, kind), columns=["quantity", "component", "value", "unit"])
    total = df.groupby("quantity", sort=False)["value"].transform("sum")
    df["share"] = df["value"] / total.where(total > 0)
    return df


def plans_and_front(result: PlanResult) -> pd.DataFrame:
    """Ranked plans plus the Pareto plans that are not ranked (one row per plan_id)."""
    if result.pareto.empty:
        return result.plans
    if result.plans.empty:
        return result.pareto
    extra = result.pareto[~result.pareto["plan_id"].isin(result.plans["plan_id"])]
    return pd.concat([result.plans, extra], ignore_index=True)


def plan_sources(result: PlanResult, frame: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """The offers, hardware figures and efficiency rows behind the plans in ``frame``."""
    cat = result.catalog
    job = job_kind(result.scenario.job.kind)
    keys = set(zip(frame["provider"], frame["offer"], frame["region"], frame["pricing_model"])) \
        if not frame.empty else set()
    offer_rows = [{"provider": o.provider, "offer": o.offer, "region": o.region,
                   "pricing_model": o.pricing_model, "accelerator": o.accelerator,
                   "usd_per_device_hour": o.usd_per_device_hour,
                   "usd_per_instance_hour": o.usd_per_instance_hour,
                   "devices_per_instance": o.devices_per_instance,
                   "as_of": o.as_of, "source": o.source, "notes": o.notes}
                  for o in cat.offers if (o.provider, o.offer, o.region, o.pricing_model) in keys]
    eff_rows, hw_rows = [], []
    for acc in sorted(set(frame["accelerator"])) if not frame.empty else []:
        for quantity, fmt in sorted(job.efficiency_keys(frame[frame["accelerator"] == acc])):
            try:
                p = cat.efficiency_value(acc, quantity, fmt)
            except Exception:  # no row and no documented fallback: nothing to cite
                continue
            eff_rows.append({"accelerator": acc, "quantity": quantity, "precision": fmt,
                             "value": p.value, "row": p.accelerator, "as_of": p.as_of,
                             "source": p.source})
        a = cat.accelerator(acc)
        hw_rows.append({"accelerator": acc, "memory_bytes": a.memory_bytes,
                        "memory_bandwidth_bytes_per_s": a.memory_bandwidth_bytes_per_s,
                        "peak_flops_per_s": a.peak_flops_per_s, "tdp_w": a.tdp_w,
                        "as_of": a.as_of, "source": a.source})
    return {"prices": offer_rows, "hardware": hw_rows, "efficiency": eff_rows}


def metadata(result: PlanResult, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """What the numbers rest on, for the sidecar JSON. ``frame`` defaults to the ranked plans plus
    the Pareto front; the prices, hardware figures and efficiencies of every plan in it are listed."""
    from costmodel.specs import __version__

    cat = result.catalog
    sc = result.scenario
    frame = plans_and_front(result) if frame is None else frame
    as_of = {
        "accelerators": sorted({a.as_of for a in cat.accelerators.values()}),
        "offers": sorted({o.as_of for o in cat.offers}),
    }
    return {
        "tool": "costmodel",
        "version": __version__,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "objective": sc.objective,
        "search": {"configurations": result.n_configurations, "plan_rows": result.n_plans,
                   "feasible_plan_rows": int(result.context.get("feasible", 0)),
                   "infeasible_by_reason": dict(zip(result.infeasible["reason"],
                                                    map(int, result.infeasible["plans"]))),
                   "seconds": round(result.seconds, 3)},
        "catalog_as_of": as_of,
        **plan_sources(result, frame),
        "assumptions": Assumptions(sc.job.framework, sc.overrides).as_records(),
        "scenario": sc.to_dict(),
    }
