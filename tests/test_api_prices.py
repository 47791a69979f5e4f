"""The API price table: every row sourced and dated, prices sane, the loader strict."""

from __future__ import annotations

import csv
import io
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costmodel.specs.spec import presets
from costmodel.tables.api_prices import (
    COLUMNS, PRICE_COLUMNS, cheapest_api_price, default_path, load_api_prices,
)

# Rows whose output price is below their input price, as the source publishes them (none now).
OUTPUT_BELOW_INPUT_ALLOWED: set[tuple[str, str]] = set()

URL = re.compile(r"^https?://[^\s/]+\.[^\s/]+/\S*$")
REPO = re.compile(r"^[\w.-]+/[\w.-]+ \S+ @[0-9a-f]{7,40}$")
AS_OF = re.compile(r"^(<=)?\d{4}-\d{2}(-\d{2})?$")


@pytest.fixture(scope="module")
def table():
    return load_api_prices()


def good_rows() -> list[dict]:
    with default_path().open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write(path, rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def test_table_is_not_empty_and_covers_popular_models(table):
    assert len(table) >= 20
    for model in ("llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mixtral-8x7b",
                  "deepseek-v3", "qwen2.5-72b"):
        assert (table["model"] == model).sum() >= 2, model


def test_every_row_names_a_page_or_a_repo_path_and_a_date(table):
    for row in table.itertuples():
        assert URL.match(row.source) or REPO.match(row.source), row.source
        assert AS_OF.match(row.as_of), row.as_of
        assert row.source_kind in {"first-party", "third-party"}
        if REPO.match(row.source):
            assert row.source_kind == "third-party", row.source


def test_models_are_presets(table):
    assert set(table["model"]) <= set(presets())


def test_no_duplicate_provider_model_id(table):
    assert not table.duplicated(["provider", "provider_model_id"]).any()


def test_prices_positive_and_finite(table):
    for column in PRICE_COLUMNS:
        values = table[column].to_numpy(dtype=float)
        assert all(math.isfinite(v) and v > 0 for v in values), column


def test_output_price_not_below_input_price_except_known_rows(table):
    below = table[table["usd_per_million_output_tokens"] < table["usd_per_million_input_tokens"]]
    assert set(zip(below["provider"], below["provider_model_id"])) == OUTPUT_BELOW_INPUT_ALLOWED


@pytest.mark.parametrize("model", sorted(presets()))
def test_cheapest_matches_brute_force(table, model):
    rows = [r for r in table.to_dict("records") if r["model"] == model]
    got = cheapest_api_price(model, table)
    if not rows:
        assert got is None
        return
    best = min(rows, key=lambda r: (r["usd_per_million_output_tokens"],
                                    r["usd_per_million_input_tokens"]))
    assert got["usd_per_million_output_tokens"] == best["usd_per_million_output_tokens"]
    assert got["usd_per_million_input_tokens"] == best["usd_per_million_input_tokens"]
    assert all(got["usd_per_million_output_tokens"] <= r["usd_per_million_output_tokens"]
               for r in rows)


def test_cheapest_breaks_ties_on_input_price(tmp_path):
    rows = good_rows()[:2]
    rows[0].update(model="llama-2-7b", provider="A", usd_per_million_input_tokens="0.5",
                   usd_per_million_output_tokens="1")
    rows[1].update(model="llama-2-7b", provider="B", usd_per_million_input_tokens="0.2",
                   usd_per_million_output_tokens="1")
    write(tmp_path / "p.csv", rows)
    got = cheapest_api_price("llama-2-7b", load_api_prices(tmp_path / "p.csv"))
    assert got["provider"] == "B"


def test_cheapest_unknown_model_is_none(table):
    assert cheapest_api_price("bert-base", table) is None
    assert cheapest_api_price("no-such-model", table) is None


def test_default_loader_uses_shipped_file():
    assert cheapest_api_price("llama-3.1-8b") is not None


def test_not_a_number_names_file_line_and_column(tmp_path):
    rows = good_rows()
    rows[5]["usd_per_million_output_tokens"] = "abc"
    path = tmp_path / "api_prices.csv"
    write(path, rows)
    assert not any("\n" in v for r in rows for v in r.values())
    line = 7  # header is line 1, rows[0] is line 2
    with pytest.raises(ValueError) as err:
        load_api_prices(path)
    text = str(err.value)
    assert f"{path}:{line}:" in text
    assert "column 'usd_per_million_output_tokens'" in text and "'abc' is not a number" in text


def test_bad_header_and_duplicates_are_errors(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("provider,model\nx,llama-2-7b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"h\.csv:1: header"):
        load_api_prices(path)
    rows = good_rows()[:3]
    rows[2] = dict(rows[0])
    write(path, rows)
    with pytest.raises(ValueError, match=r"h\.csv:4: column 'provider_model_id'"):
        load_api_prices(path)


BAD_CELLS = {
    "usd_per_million_input_tokens": st.sampled_from(["", "abc", "-1", "0", "nan", "inf", "1,5"]),
    "usd_per_million_output_tokens": st.sampled_from(["", "x", "-0.5", "0.0", "NaN", "-inf"]),
    "model": st.sampled_from(["gpt-5", "llama-3.1-8B", "", "mixtral"]),
    "source_kind": st.sampled_from(["", "first party", "official", "Third-party"]),
    "as_of": st.sampled_from(["", "2025", "2025-13", "yesterday", "2025/01/02", ">=2025-01"]),
    "provider": st.just("  "),
    "source": st.just(""),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), column=st.sampled_from(sorted(BAD_CELLS)))
def test_any_bad_cell_names_its_line_and_column(tmp_path, data, column):
    rows = good_rows()
    index = data.draw(st.integers(0, len(rows) - 1), label="row")
    rows[index][column] = data.draw(BAD_CELLS[column], label="value")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    lines_before = buffer.getvalue().split("\n")
    path = tmp_path / "bad.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    # the physical line where row ``index`` ends (quoted notes may span lines)
    reader = csv.reader(io.StringIO(buffer.getvalue()))
    next(reader)
    for _ in range(index + 1):
        next(reader)
    line = reader.line_num
    assert line <= len(lines_before)
    with pytest.raises(ValueError) as err:
        load_api_prices(path)
    assert f"{path}:{line}: column {column!r}" in str(err.value)
