"""Published prices of public inference APIs for the open models we have presets for.

The table ``data/api_prices.csv`` sits beside each self-hosted serving plan as the "buy" side of
buy versus build: what a serverless, on-demand API charges for the same open model (or an
instruct/chat variant of the same architecture). Prices are in US dollars per 1,000,000 tokens,
input (prompt) and output (generated) separately, standard on-demand rates only (no batch or
off-peak discounts). Every row names its source (a provider's page, ``first-party``, or an
aggregator/another repository, ``third-party``) and the date it was true as of; nothing in it is
estimated. ``data/api_prices.md`` explains the columns and how each date was chosen.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from costmodel.specs.spec import presets
from hardware_catalog.paths import data_dir

COLUMNS = (
    "provider", "model", "provider_model_id", "usd_per_million_input_tokens",
    "usd_per_million_output_tokens", "as_of", "source", "source_kind", "notes",
)
PRICE_COLUMNS = ("usd_per_million_input_tokens", "usd_per_million_output_tokens")
_AS_OF = re.compile(r"^(<=)?\d{4}-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?$")


class ApiPrice(BaseModel):
    """One published price: a provider's serverless endpoint for one preset model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    model: str
    provider_model_id: str
    usd_per_million_input_tokens: float
    usd_per_million_output_tokens: float
    as_of: str
    source: str
    source_kind: Literal["first-party", "third-party"]
    notes: str = ""

    @field_validator("provider", "provider_model_id", "source")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("model")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in presets():
            raise ValueError(f"{value!r} is not a known preset model")
        return value

    @field_validator(*PRICE_COLUMNS)
    @classmethod
    def _positive_finite(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{value!r} is not a positive finite price")
        return value

    @field_validator("as_of")
    @classmethod
    def _date(cls, value: str) -> str:
        if not _AS_OF.match(value):
            raise ValueError(f"{value!r} is not YYYY-MM or YYYY-MM-DD (optionally prefixed '<=')")
        return value


def default_path() -> Path:
    """Where the shipped table lives: ``data/api_prices.csv``."""
    return data_dir() / "api_prices.csv"


def _parse_row(raw: dict, where: str) -> ApiPrice:
    """Validate one CSV row; errors name ``where`` (file:line) and the column."""
    values = dict(raw)
    for column in PRICE_COLUMNS:
        text = (values.get(column) or "").strip()
        try:
            values[column] = float(text)
        except ValueError:
            raise ValueError(f"{where}: column {column!r}: {text!r} is not a number") from None
    try:
        return ApiPrice(**values)
    except ValidationError as err:
        first = err.errors()[0]
        column = first["loc"][0] if first["loc"] else "?"
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{where}: column {column!r}: {message}") from None


def load_api_prices(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate the price table (``data/api_prices.csv`` by default).

    Returns one row per price with the columns of the CSV, prices as floats. Raises
    ``ValueError`` naming the file, the line and the column of the first bad cell, a missing or
    extra column, or a repeated (provider, provider_model_id)."""
    path = Path(path) if path is not None else default_path()
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = tuple(reader.fieldnames or ())
        if header != COLUMNS:
            missing = [c for c in COLUMNS if c not in header]
            extra = [c for c in header if c not in COLUMNS]
            raise ValueError(f"{path}:1: header must be {','.join(COLUMNS)} "
                             f"(missing {missing}, unexpected {extra})")
        rows, seen = [], {}
        for raw in reader:
            where = f"{path}:{reader.line_num}"
            if None in raw or any(raw[c] is None for c in COLUMNS):
                raise ValueError(f"{where}: expected {len(COLUMNS)} cells")
            row = _parse_row(raw, where)
            key = (row.provider, row.provider_model_id)
            if key in seen:
                raise ValueError(f"{where}: column 'provider_model_id': {key} repeats line {seen[key]}")
            seen[key] = reader.line_num
            rows.append(row.model_dump())
    return pd.DataFrame(rows, columns=list(COLUMNS))


def cheapest_api_price(model: str, prices: pd.DataFrame | None = None) -> dict | None:
    """The row with the lowest output-token price for preset ``model`` (ties: lowest input
    price, then provider name), as a dict; None when no API price is known for it."""
    table = load_api_prices() if prices is None else prices
    rows = table[table["model"] == model]
    if rows.empty:
        return None
    rows = rows.sort_values(
        ["usd_per_million_output_tokens", "usd_per_million_input_tokens", "provider"], kind="stable")
    return rows.iloc[0].to_dict()
