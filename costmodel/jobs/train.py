"""One pass over a table of training configurations: memory, FLOPs, time and utilisation.

``evaluate_training`` is the single function the planner, the validation runner, the scalar API,
the CLI and the UI all call; it only combines the formula modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields

import numpy as np

from costmodel.specs.assumptions import Assumptions
from costmodel.specs.columns import Array, ModelColumns, as_array
from costmodel.formulas.hardware import HardwareColumns
from costmodel.formulas.memory import training_memory_per_device
from costmodel.formulas.timing import TimingKnobs, training_step_time
from costmodel.specs.setup import TrainingColumns

MEMORY_KNOBS = ("cuda_context_bytes", "fragmentation_fraction", "logits_bytes_per_element",
                "selective_keep_fraction")
TIMING_KNOBS = tuple(f.name for f in fields(TimingKnobs))


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


def evaluate_training(
    m: ModelColumns,
    t: TrainingColumns,
    hw: HardwareColumns,
    knobs: Mapping[str, Array],
) -> dict[str, Array]:
    """Memory (bytes, by component), feasibility against device memory, step time (s, by
    component, with bounds), FLOPs, throughput and MFU/HFU for every row."""
    mem = training_memory_per_device(m, t, **{k: knobs[k] for k in MEMORY_KNOBS})
    timing = training_step_time(m, t, hw, TimingKnobs(**{k: knobs[k] for k in TIMING_KNOBS}))
    out: dict[str, Array] = {f"memory_{k}_bytes": v for k, v in mem.items()}
    total = mem.total
    out["memory_total_bytes"] = total
    out["memory_capacity_bytes"] = hw.memory_bytes + 0.0 * total
    out["memory_fits"] = total <= hw.memory_bytes
    out.update(timing)
    return out
