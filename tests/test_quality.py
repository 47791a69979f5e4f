"""The quality-effects table: every row sourced, arithmetic right, lookups strict, loader strict."""

from __future__ import annotations

import csv
import io
import re

import pytest

from costmodel.specs.spec import presets
from costmodel.tables.quality import (
    COLUMNS, TECHNIQUES, default_path, family_of, load_quality_effects, lower_is_better,
    quality_impact, size_of,
)

URL = re.compile(r"https?://[^\s/]+\.[^\s/]+/\S*")
REPO_AT_COMMIT = re.compile(r"[\w.-]+/[\w.-]+ \S+.* @[0-9a-f]{7,40}")
TABLE = re.compile(r"\btable\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def table():
    return load_quality_effects()


def test_table_has_rows_and_allowed_techniques(table):
    assert len(table) >= 25
    assert set(table["technique"]) <= set(TECHNIQUES)


def test_every_row_names_a_paper_table_or_a_page_or_repo(table):
    for _, row in table.iterrows():
        source = row["source"]
        assert URL.search(source) or REPO_AT_COMMIT.search(source), source
        # A repository file or a page must point at the table the numbers were read from.
        assert TABLE.search(source) or REPO_AT_COMMIT.search(source), source


def test_delta_is_compressed_minus_baseline(table):
    for _, row in table.iterrows():
        delta = row["compressed_value"] - row["baseline_value"]
        assert row["delta"] == pytest.approx(delta, abs=1e-3)
        assert row["relative_delta"] == pytest.approx(delta / row["baseline_value"], abs=1e-4)


def test_rows_are_unique(table):
    keys = table[["technique", "model_family", "model_size", "metric", "method", "source"]]
    assert not keys.duplicated().any()


def _brute_force(table, technique, family, size):
    def badness(row):
        sign = 1.0 if lower_is_better(row["metric"]) else -1.0
        return sign * row["relative_delta"]

    rows = [r for _, r in table.iterrows()
            if r["technique"] == technique and r["model_family"] == family]
    exact = [r for r in rows if r["model_size"] == size]
    pool = exact or rows
    if not pool:
        return None
    worst = max(badness(r) for r in pool)
    return next(r for r in pool if badness(r) == worst)


def test_lookups_match_brute_force(table):
    families = set(table["model_family"]) | {"qwen2.5", "deepseek-v3", "no-such-family"}
    sizes = set(table["model_size"]) | {"405b", None}
    for technique in TECHNIQUES:
        for family in families:
            for size in sizes:
                got = quality_impact(technique, family, size, table)
                want = _brute_force(table, technique, family, size)
                if want is None:
                    assert got is None, (technique, family, size)
                    continue
                assert got is not None
                for column in ("model_size", "metric", "delta", "relative_delta", "source"):
                    assert got[column] == want[column], (technique, family, size, column)
                assert got["match"] == ("family_and_size" if size == want["model_size"]
                                        else "family_only")


def test_lookup_never_borrows_another_family(table):
    assert quality_impact("weight_only_int4", "qwen2.5", "7b", table) is None
    assert quality_impact("weight_only_int4", None, "7b", table) is None
    assert quality_impact("weight_only_int4", "unknown-family", None, table) is None
    hit = quality_impact("weight_only_int4", "llama-2", "7b", table)
    assert hit["model_family"] == "llama-2" and hit["model_size"] == "7b"
    assert hit["metric"] == "wikitext2_ppl" and hit["lower_is_better"]


def test_default_table_is_loaded_when_none_given():
    assert quality_impact("sparsity_2_4", "llama-2", "13b") is not None


@pytest.mark.parametrize("name, family, size", [
    ("llama-2-7b", "llama-2", "7b"), ("llama-2-70b", "llama-2", "70b"),
    ("llama-3.1-8b", "llama-3.1", "8b"), ("llama-3.1-405b", "llama-3.1", "405b"),
    ("mistral-7b", "mistral", "7b"), ("mixtral-8x7b", "mixtral", "8x7b"),
    ("mixtral-8x22b", "mixtral", "8x22b"), ("qwen2.5-72b", "qwen2.5", "72b"),
    ("deepseek-v3", "deepseek-v3", None), ("gpt2", "gpt2", None),
    ("gpt3-175b", "gpt3", "175b"), ("bert-large", "bert", "large"),
])
def test_family_and_size_of_presets(name, family, size):
    assert family_of(name) == family
    assert size_of(name) == size


def test_every_preset_has_a_family_and_unknown_names_have_none():
    for name in presets():
        assert family_of(name) is not None, name
    assert family_of("falcon-40b") is None
    assert size_of("falcon-40b") is None


def _write(tmp_path, text):
    path = tmp_path / "q.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _good_line():
    with default_path().open(encoding="utf-8") as handle:
        return handle.read().splitlines()[:2]


def _edit(cell, value):
    header, line = _good_line()
    row = next(csv.reader([line]))
    row[COLUMNS.index(cell)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(row)
    return f"{header}\n{line}\n{out.getvalue()}"


@pytest.mark.parametrize("cell, value, message", [
    ("technique", "int3_magic", "technique"),
    ("baseline_value", "n/a", "is not a number"),
    ("delta", "123", "compressed_value - baseline_value"),
    ("relative_delta", "0.9", "delta / baseline_value"),
    ("source", " ", "must not be empty"),
    ("model_size", "huge", "is not a size"),
])
def test_malformed_cell_names_line_and_column(tmp_path, cell, value, message):
    path = _write(tmp_path, _edit(cell, value))
    with pytest.raises(ValueError) as err:
        load_quality_effects(path)
    text = str(err.value)
    assert f"{path}:3:" in text
    assert f"column {cell!r}" in text
    assert message in text


def test_bad_header_and_short_row(tmp_path):
    header, line = _good_line()
    with pytest.raises(ValueError, match=r":1: header must be"):
        load_quality_effects(_write(tmp_path, header.replace("notes", "note") + "\n" + line))
    with pytest.raises(ValueError, match=r":2: expected 11 cells"):
        load_quality_effects(_write(tmp_path, header + "\nweight_only_int4,llama-2\n"))
