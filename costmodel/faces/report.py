"""Budgeting reports: a wide one-row-per-plan CSV, a long breakdown CSV and a metadata sidecar.

The CSVs have exactly one header row (no metadata rows above it); every unit is in a column name;
text cells that a spreadsheet would read as a formula are prefixed with an apostrophe (OWASP
'CSV injection' guidance). The sidecar JSON records what the numbers rest on: tool version,
catalog as-of dates, the price rows and their sources, the efficiency rows used, every assumption
with its source, and the scenario itself.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from hardware_catalog.csvsafe import guard_frame, guard_text, write_csv

from costmodel.jobs import train
from costmodel.jobs.train import PLAN_COLUMNS
from costmodel.formulas.memory import TRAIN_MEMORY_COMPONENTS
from costmodel.search.result import PlanResult, breakdown_table, metadata, plans_table

__all__ = ["COST_PARTS", "MEMORY_PARTS", "PLAN_COLUMNS", "breakdown_table", "guard_frame", "guard_text", "metadata",
           "plans_table", "report_bytes", "write_reports"]
MEMORY_PARTS = TRAIN_MEMORY_COMPONENTS
COST_PARTS = tuple(f"cost_{p}_usd" for p in train.COST_PARTS)

#: Durations under this many days read in hours (a 5-hour run is not "0.2 days").
HOURS_UNDER_DAYS = 3


def duration_text(hours: float) -> str:
    """A duration given in hours, for people: minutes under an hour, hours under three days, else
    days. The CLI and the web page print times with it."""
    h = float(hours)
    if h != h:
        return "-"
    if h < 1:
        return f"{h * 60:,.1f} min"
    if h < 24 * HOURS_UNDER_DAYS:
        return f"{h:,.1f} h"
    return f"{h / 24:,.1f} days"


def _csv_bytes(df: pd.DataFrame) -> bytes:
    """CSV text with formula cells guarded and line breaks inside cells quoted."""
    buf = io.StringIO()
    write_csv(df, buf)
    return buf.getvalue().encode()


def report_bytes(result: PlanResult) -> dict[str, bytes]:
    """The three report files in memory (the UI's downloads), exactly what ``write_reports``
    writes: ``plans`` (wide CSV), ``breakdown`` (long CSV), ``metadata`` (JSON)."""
    return {
        "plans": _csv_bytes(plans_table(result)),
        "breakdown": _csv_bytes(breakdown_table(result)),
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
