"""Budgeting reports: a wide one-row-per-plan CSV, a long breakdown CSV and a metadata sidecar.

The CSVs have exactly one header row (no metadata rows above it); every unit is in a column name;
text cells that a spreadsheet would read as a formula are prefixed with an apostrophe (OWASP
'CSV injection' guidance). The sidecar JSON records what the numbers rest on: tool version,
catalog as-of dates, the price rows and their sources, the efficiency rows used, every assumption
with its source, and the scenario itself.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from costmodel.specs.assumptions import Assumptions
from costmodel.search.grid import PlanResult
from costmodel.formulas.memory import TRAIN_MEMORY_COMPONENTS
from costmodel.formulas.timing import STEP_COMPONENTS

PLAN_COLUMNS = (
    "rank", "accelerator", "kind", "provider", "offer", "region", "pricing_model", "system",
    "n_devices", "instances", "tp", "pp", "vpp", "dp", "cp", "ep", "sequence_parallel",
    "zero_stage", "recompute", "micro_batch", "global_batch", "precision", "framework",
    "time_total_hours", "time_total_lower_hours", "time_total_upper_hours", "cost_total_usd",
    "cost_compute_usd", "cost_storage_usd", "cost_per_million_tokens_usd", "usd_per_device_hour",
    "device_hours", "billed_device_hours", "memory_per_device_gib", "memory_capacity_gib",
    "memory_headroom_gib", "mfu", "hfu", "step_time_s", "tokens_per_s_per_device", "energy_kwh",
    "price_as_of", "price_source",
)
MEMORY_PARTS = TRAIN_MEMORY_COMPONENTS
COST_PARTS = ("cost_compute_usd", "cost_storage_usd", "cost_energy_usd")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def guard_text(value: Any) -> Any:
    """Neutralise a text cell a spreadsheet would evaluate (=, +, -, @, tab, CR at the start)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _guard_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(guard_text)
    return out


def plans_table(result: PlanResult, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """The wide report: key columns first, units in names, one row per ranked plan."""
    df = result.plans if frame is None else frame
    if df.empty:
        return pd.DataFrame(columns=list(PLAN_COLUMNS))
    df = df.copy()
    df["framework"] = result.scenario.job.framework
    df["memory_headroom_gib"] = df["memory_capacity_gib"] - df["memory_per_device_gib"]
    if "rank" not in df:
        df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df[list(PLAN_COLUMNS)].reset_index(drop=True)


def breakdown_table(result: PlanResult, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long form: one row per (plan, quantity, component) with value and unit."""
    df = result.plans if frame is None else frame
    rows = []
    for _, plan in df.iterrows():
        rank = int(plan["rank"]) if "rank" in plan else None
        for part in MEMORY_PARTS:
            rows.append((rank, "memory_per_device", part, plan[f"memory_{part}_bytes"] / 2**30, "GiB"))
        for part in STEP_COMPONENTS:
            rows.append((rank, "step_time", part, plan[f"{part}_s"], "s"))
        for part in COST_PARTS:
            rows.append((rank, "cost", part.removeprefix("cost_").removesuffix("_usd"), plan[part], "USD"))
    return pd.DataFrame(rows, columns=["rank", "quantity", "component", "value", "unit"])


def _plans_and_front(result: PlanResult) -> pd.DataFrame:
    """Ranked plans plus the Pareto plans that are not ranked (one row per plan_id)."""
    if result.pareto.empty:
        return result.plans
    if result.plans.empty:
        return result.pareto
    extra = result.pareto[~result.pareto["plan_id"].isin(result.plans["plan_id"])]
    return pd.concat([result.plans, extra], ignore_index=True)


def plan_sources(result: PlanResult, frame: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """The offers, hardware figures and efficiency rows behind the plans in ``frame``."""
    from costmodel.specs.setup import PRECISION_TABLE

    cat = result.catalog
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
        precisions = sorted(set(frame.loc[frame["accelerator"] == acc, "precision"]))
        wanted = {("matmul", PRECISION_TABLE[p][2]) for p in precisions}
        wanted |= {("attention", PRECISION_TABLE[p][3]) for p in precisions}
        wanted |= {(q, "") for q in ("memory_bandwidth", "scaleup_allreduce", "scaleup_alltoall",
                                     "scaleout_allreduce", "scaleout_alltoall")}
        for quantity, fmt in sorted(wanted):
            try:
                p = cat.efficiency_value(acc, quantity, fmt)
            except Exception:
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
    from costmodel import __version__

    cat = result.catalog
    sc = result.scenario
    frame = _plans_and_front(result) if frame is None else frame
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


def report_bytes(result: PlanResult) -> dict[str, bytes]:
    """The three report files in memory (the UI's downloads), exactly what ``write_reports``
    writes: ``plans`` (wide CSV), ``breakdown`` (long CSV), ``metadata`` (JSON)."""
    return {
        "plans": _guard_frame(plans_table(result)).to_csv(index=False).encode(),
        "breakdown": _guard_frame(breakdown_table(result)).to_csv(index=False).encode(),
        "metadata": (json.dumps(metadata(result), indent=2, default=str) + "\n").encode(),
    }


def write_reports(result: PlanResult, csv_path: str | Path) -> dict[str, Path]:
    """Write ``csv_path`` (wide), ``<stem>_breakdown.csv`` and ``<stem>_metadata.json``."""
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    stem = csv_path.with_suffix("")
    paths = {
        "plans": csv_path,
        "breakdown": Path(f"{stem}_breakdown.csv"),
        "metadata": Path(f"{stem}_metadata.json"),
    }
    for kind, data in report_bytes(result).items():
        paths[kind].write_bytes(data)
    return paths
