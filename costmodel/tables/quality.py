"""Published quality effects of compression techniques (quantization, pruning) on open LLMs.

The table ``data/quality_effects.csv`` holds one row per published measurement: a technique
(``weight_only_int4``, ``w8a8_int8``, ``sparsity_2_4``, ...) applied to one model (family and
size), the metric measured (``wikitext2_ppl``, ``mmlu``, ...), the uncompressed baseline and the
compressed value as the source prints them, and the source (a paper table or a repository file at
a commit). Nothing in it is estimated: a plan whose technique and model family have no row shows
its quality impact as unknown. ``data/quality_effects.md`` explains how rows were chosen.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Literal, get_args

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from hardware_catalog.paths import data_dir

Technique = Literal[
    "weight_only_int4", "weight_only_int8", "w8a8_int8", "fp8", "nvfp4", "mxfp4", "kv_int8",
    "kv_fp8", "kv_int4", "sparsity_2_4", "unstructured_50", "qlora_nf4",
]
TECHNIQUES: tuple[str, ...] = get_args(Technique)
COLUMNS = (
    "technique", "model_family", "model_size", "metric", "baseline_value", "compressed_value",
    "delta", "relative_delta", "method", "source", "notes",
)
NUMBER_COLUMNS = ("baseline_value", "compressed_value", "delta", "relative_delta")
# Tolerances for delta = compressed - baseline and relative_delta = delta / baseline.
DELTA_TOLERANCE = 1e-3
RELATIVE_TOLERANCE = 1e-4
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._\-]*$")
_SIZE = re.compile(r"^(\d+(\.\d+)?[bm]|\d+x\d+b)$")


def lower_is_better(metric: str) -> bool:
    """True for metrics where a smaller value is better (perplexities, losses)."""
    return metric.endswith("_ppl") or metric.endswith("_loss")


class QualityEffect(BaseModel):
    """One published quality measurement of one compression technique on one model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    technique: Technique
    model_family: str
    model_size: str
    metric: str
    baseline_value: float
    compressed_value: float
    delta: float
    relative_delta: float
    method: str
    source: str
    notes: str = ""

    @field_validator("model_family", "metric")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError(f"{value!r} must be lower-case letters, digits, '.', '-' or '_'")
        return value

    @field_validator("model_size")
    @classmethod
    def _size(cls, value: str) -> str:
        if not _SIZE.match(value):
            raise ValueError(f"{value!r} is not a size such as '7b', '8x7b' or '350m'")
        return value

    @field_validator("method", "source")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator(*NUMBER_COLUMNS)
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return value


def default_path() -> Path:
    """Where the shipped table lives: ``data/quality_effects.csv``."""
    return data_dir() / "quality_effects.csv"


def _check_arithmetic(row: QualityEffect, where: str) -> None:
    """delta and relative_delta must follow from the baseline and compressed values."""
    delta = row.compressed_value - row.baseline_value
    if abs(row.delta - delta) > DELTA_TOLERANCE:
        raise ValueError(f"{where}: column 'delta': {row.delta} is not compressed_value - "
                         f"baseline_value ({delta:.6g})")
    if row.baseline_value == 0:
        raise ValueError(f"{where}: column 'baseline_value': must not be 0")
    if abs(row.relative_delta - delta / row.baseline_value) > RELATIVE_TOLERANCE:
        raise ValueError(f"{where}: column 'relative_delta': {row.relative_delta} is not "
                         f"delta / baseline_value ({delta / row.baseline_value:.6g})")


def _parse_row(raw: dict, where: str) -> QualityEffect:
    """Validate one CSV row; errors name ``where`` (file:line) and the column."""
    values = dict(raw)
    for column in NUMBER_COLUMNS:
        text = (values.get(column) or "").strip()
        try:
            values[column] = float(text)
        except ValueError:
            raise ValueError(f"{where}: column {column!r}: {text!r} is not a number") from None
    try:
        row = QualityEffect(**values)
    except ValidationError as err:
        first = err.errors()[0]
        column = first["loc"][0] if first["loc"] else "?"
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{where}: column {column!r}: {message}") from None
    _check_arithmetic(row, where)
    return row


def load_quality_effects(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate the quality table (``data/quality_effects.csv`` by default).

    Returns one row per published measurement with the columns of the CSV, numbers as floats,
    in file order. Raises ``ValueError`` naming the file, the line and the column of the first
    bad cell, or a missing or extra column."""
    path = Path(path) if path is not None else default_path()
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = tuple(reader.fieldnames or ())
        if header != COLUMNS:
            missing = [c for c in COLUMNS if c not in header]
            extra = [c for c in header if c not in COLUMNS]
            raise ValueError(f"{path}:1: header must be {','.join(COLUMNS)} "
                             f"(missing {missing}, unexpected {extra})")
        rows = []
        for raw in reader:
            where = f"{path}:{reader.line_num}"
            if None in raw or any(raw[c] is None for c in COLUMNS):
                raise ValueError(f"{where}: expected {len(COLUMNS)} cells")
            rows.append(_parse_row(raw, where).model_dump())
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _badness(row: pd.Series) -> float:
    """How much worse the compressed model is, as a fraction of the baseline (bigger = worse)."""
    sign = 1.0 if lower_is_better(row["metric"]) else -1.0
    return sign * float(row["relative_delta"])


def quality_impact(technique: str, model_family: str | None, model_size: str | None = None,
                   table: pd.DataFrame | None = None) -> dict | None:
    """The published effect of ``technique`` on a model of ``model_family`` (and ``model_size``).

    Matches rows of the same family and size first, else of the same family (any size); never
    another family. Among the matches it returns the most pessimistic one (largest relative
    degradation; ties: file order). Returns a dict with technique, model_family, model_size,
    metric, baseline_value, compressed_value, delta, relative_delta, lower_is_better, method,
    source, notes and ``match`` ("family_and_size" or "family_only"); or None when no row fits,
    which the caller shows as "unknown"."""
    if not model_family:
        return None
    data = load_quality_effects() if table is None else table
    rows = data[(data["technique"] == technique) & (data["model_family"] == model_family)]
    match = "family_only"
    if model_size is not None and (rows["model_size"] == model_size).any():
        rows, match = rows[rows["model_size"] == model_size], "family_and_size"
    if rows.empty:
        return None
    badness = rows.apply(_badness, axis=1)
    best = rows.loc[badness.idxmax()] if badness.notna().all() else rows.iloc[0]
    result = {c: best[c] for c in COLUMNS}
    result["lower_is_better"] = lower_is_better(best["metric"])
    result["match"] = match
    return result


_FAMILIES: tuple[tuple[str, str], ...] = (
    # (preset-name prefix, family); longest prefixes first.
    ("llama-3.1-", "llama-3.1"), ("llama-3-", "llama-3"), ("llama-2-", "llama-2"),
    ("mixtral-", "mixtral"), ("mistral-", "mistral"), ("qwen2.5-", "qwen2.5"),
    ("deepseek-v3", "deepseek-v3"), ("gpt3-", "gpt3"), ("gpt2", "gpt2"), ("bert-", "bert"),
)


def family_of(model_name: str) -> str | None:
    """The model family of a preset name (``llama-3.1-70b`` -> ``llama-3.1``), or None."""
    name = model_name.strip().lower()
    for prefix, family in _FAMILIES:
        if name == prefix.rstrip("-") or name.startswith(prefix):
            return family
    return None


def size_of(model_name: str) -> str | None:
    """The size label of a preset name (``mixtral-8x7b`` -> ``8x7b``, ``bert-base`` -> ``base``),
    matching the ``model_size`` column where the table has that model; None when unknown."""
    name = model_name.strip().lower()
    family = family_of(name)
    if family is None:
        return None
    rest = name.removeprefix(family).lstrip("-")
    return rest or None
