"""``costmodel catalog check``: a report on the catalog's freshness and provenance.

Three kinds of finding, one row each (:func:`check_catalog` returns them as a DataFrame):

* ``stale``: a row (of any table) whose ``as_of`` date is more than ``max_age_days`` before
  ``today``. How an ``as_of`` is dated (:func:`as_of_date`): ``<=YYYY-MM-DD`` counts by that date
  (the snapshot is at least that old), ``~`` and ``>=`` are dropped, and a partial date is read as
  the LAST day of its period (``2024-12`` -> 2024-12-31, ``2026-Q1`` -> 2026-03-31, ``2025`` ->
  2025-12-31), so a row is reported only when even its youngest possible date is too old.
* ``third-party-price``: an offer whose ``price_quality`` is ``third-party`` (an aggregator or a
  transcription, not the provider's own page).
* ``no-offer``: an accelerator that no offer sells (it can never appear in a priced plan).

It is a report: the command's exit code is 0 whatever it finds.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re

import pandas as pd

from .catalog import Catalog
from .loader import TABLES

__all__ = ["CHECK_COLUMNS", "DEFAULT_MAX_AGE_DAYS", "as_of_date", "check_catalog"]

DEFAULT_MAX_AGE_DAYS = 180

CHECK_COLUMNS = ["check", "table", "key", "as_of", "age_days", "detail"]

_DATE = re.compile(r"^(\d{4})(?:-(?:(\d{2})(?:-(\d{2}))?|Q([1-4])))?$")


def as_of_date(as_of: str) -> _dt.date:
    """The date an ``as_of`` cell stands for (see the module docstring); ValueError if it is none."""
    text = as_of.strip()
    for prefix in ("<=", ">=", "~"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    m = _DATE.match(text)
    if not m:
        raise ValueError(f"as_of {as_of!r} is not a date")
    year = int(m.group(1))
    if m.group(3):
        return _dt.date(year, int(m.group(2)), int(m.group(3)))
    if m.group(2):
        month = int(m.group(2))
        return _dt.date(year, month, calendar.monthrange(year, month)[1])
    if m.group(4):
        month = 3 * int(m.group(4))
        return _dt.date(year, month, calendar.monthrange(year, month)[1])
    return _dt.date(year, 12, 31)


def _key_text(table: str, key: tuple) -> str:
    return " | ".join(str(k) for k in key)


def check_catalog(cat: Catalog, max_age_days: int = DEFAULT_MAX_AGE_DAYS, today: _dt.date | None = None) -> pd.DataFrame:
    """Findings as a DataFrame with :data:`CHECK_COLUMNS` (stale rows, third-party prices, parts without an offer)."""
    if max_age_days < 0:
        raise ValueError(f"max_age_days must be >= 0, got {max_age_days}")
    today = today or _dt.date.today()
    rows: list[dict] = []
    for table in TABLES:
        for key, rec in cat._records[table].items():
            age = (today - as_of_date(rec.row.as_of)).days
            if age > max_age_days:
                rows.append(
                    {
                        "check": "stale",
                        "table": table,
                        "key": _key_text(table, key),
                        "as_of": rec.row.as_of,
                        "age_days": age,
                        "detail": f"as_of older than {max_age_days} days ({rec.where})",
                    }
                )
    for o in cat.offers:
        if o.price_quality == "third-party":
            rows.append(
                {
                    "check": "third-party-price",
                    "table": "offers",
                    "key": _key_text("offers", o.key),
                    "as_of": o.as_of,
                    "age_days": (today - as_of_date(o.as_of)).days,
                    "detail": f"{o.usd_per_device_hour:.4g} USD/device-h from {o.source[:160]}",
                }
            )
    sold = {o.accelerator for o in cat.offers}
    for acc_id, acc in cat.accelerators.items():
        if acc_id not in sold:
            rows.append(
                {
                    "check": "no-offer",
                    "table": "accelerators",
                    "key": acc_id,
                    "as_of": acc.as_of,
                    "age_days": (today - as_of_date(acc.as_of)).days,
                    "detail": f"{acc.name}: no offer sells it, so it never appears in a priced plan",
                }
            )
    df = pd.DataFrame(rows, columns=CHECK_COLUMNS)
    df["age_days"] = df["age_days"].astype("int64")
    return df
