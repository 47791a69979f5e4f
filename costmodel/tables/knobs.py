"""Assumption knobs as columns: one framework profile (and overrides) for every row, or one per row.

Every knob of ``data/assumptions.yaml`` and ``data/frameworks.yaml`` reaches the formulas through
these columns, and through nothing else, so an accepted override always changes the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from costmodel.specs.assumptions import Assumptions
from costmodel.specs.columns import Array, as_array


def knob_columns(
    frameworks: str | Sequence[str],
    overrides: Mapping[str, float] | Sequence[Mapping[str, float]] | None = None,
) -> dict[str, Array]:
    """Knob values as columns: one framework (and overrides) for all rows, or one per row."""
    if isinstance(frameworks, str):
        a = Assumptions(frameworks, overrides if isinstance(overrides, Mapping) else None)
        return {k: as_array(v) for k, v in a.values.items()}
    rows = list(frameworks)
    per_row = overrides if isinstance(overrides, Sequence) else [overrides or {}] * len(rows)
    cache: dict[tuple, dict[str, float]] = {}
    table: list[dict[str, float]] = []
    for fw, ov in zip(rows, per_row):
        key = (fw, tuple(sorted((ov or {}).items())))
        if key not in cache:
            cache[key] = Assumptions(fw, dict(ov or {})).values
        table.append(cache[key])
    names = table[0].keys() if table else ()
    return {k: np.array([r[k] for r in table], dtype=np.float64) for k in names}
