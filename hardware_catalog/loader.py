"""Read catalog files (CSV or YAML) into validated model rows, keeping where each row came from.

Every problem raises :class:`CatalogError` with the file, the line as a spreadsheet shows it
(header = line 1, first data row = line 2; for YAML the line of the list item) and the column.
Nothing is silently dropped: an unknown column, a duplicate key, a bad unit, an empty required
cell are all errors. Only rows whose every cell is empty are skipped.

Cells are read strictly, the same way in every column (see ``hardware_catalog/units.py``):

* numbers follow :data:`~hardware_catalog.units.NUMBER_SYNTAX`: a decimal POINT, no comma of any
  kind (neither ``2,5`` nor ``1,000`` is read; the error says to write ``2.5`` / ``1000``), no
  ``nan``/``inf``, no magnitude that overflows a float, ASCII digits only;
* integer columns take a whole number (``8`` or ``8.0``) of magnitude at most
  :data:`MAX_INTEGER` (2**53); each column's own range is checked by the model;
* every value must then be within the range its model field states (``models.py``);
* files are UTF-8 (a UTF-8 byte-order mark is accepted); anything else is an error naming the
  file, the line and the byte offset. Cells are kept byte for byte (no newline translation).

Every error message reads ``<file> line <n>, field '<column>': <value> <what is wrong / allowed>``.
"""

from __future__ import annotations

import csv
import decimal
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ValidationError

from .models import (
    NUMBER_FORMATS,
    INT_FORMATS,
    PRICE_TOLERANCE_USD,
    Accelerator,
    EfficiencyPoint,
    Offer,
    OtherPrice,
    System,
)
from .units import _NUMBER_ONLY, UnitError, _reject_number, parse_number, parse_quantity

__all__ = ["CatalogError", "MAX_INTEGER", "SHIPPED_REQUIRED", "TABLES", "Provenance", "RowRecord", "read_table_file", "read_user_file", "table_for_header"]


class CatalogError(ValueError):
    """A catalog file or row is invalid, or a lookup names something the catalog does not hold."""


MAX_INTEGER = 2**53
"""Largest magnitude an integer cell may have before its column's own range is checked (exact in a float)."""


@dataclass(frozen=True)
class Provenance:
    """Where a row came from: a file and the line a spreadsheet shows (header = 1)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file} line {self.line}"


@dataclass(frozen=True)
class RowRecord:
    table: str
    row: BaseModel
    where: Provenance


# ---------------------------------------------------------------------------------------
# column specifications: CSV column -> how to read it -> model field


@dataclass(frozen=True)
class Column:
    name: str
    reader: str  # "str", "int", "float", "fraction", "bool", "qty:<dimension>", "peak:<format>"
    field: str
    required: bool = False  # the column must be present in the header


@dataclass(frozen=True)
class TableSpec:
    name: str  # accelerators, systems, offers, efficiency, other_prices
    filename: str
    model: type[BaseModel]
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # model fields forming the key
    signature: str  # a required column that identifies this schema in a user file

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column_for_field(self, fld: str) -> str:
        for c in self.columns:
            if c.field == fld:
                return c.name
        return fld


def _peak_columns() -> tuple[Column, ...]:
    return tuple(Column(f"peak_{fmt}", f"peak:{fmt}", "peak_flops_per_s") for fmt in NUMBER_FORMATS)


TABLES: dict[str, TableSpec] = {
    "accelerators": TableSpec(
        "accelerators",
        "accelerators.csv",
        Accelerator,
        (
            Column("id", "str", "id", True),
            Column("name", "str", "name", True),
            Column("vendor", "str", "vendor", True),
            Column("kind", "str", "kind", True),
            Column("form_factor", "str", "form_factor"),
            Column("release_year", "int", "release_year"),
            Column("memory", "qty:bytes", "memory_bytes", True),
            Column("memory_bandwidth", "qty:bytes_per_s", "memory_bandwidth_bytes_per_s", True),
            *_peak_columns(),
            Column("sparsity_pattern", "str", "sparsity_pattern"),
            Column("sparsity_speedup", "float", "sparsity_speedup"),
            Column("onchip_memory", "qty:bytes", "onchip_memory_bytes"),
            Column("tdp", "qty:watts", "tdp_w"),
            Column("purchase_price_usd", "float", "purchase_price_usd"),
            Column("as_of", "str", "as_of", True),
            Column("source", "str", "source", True),
            Column("notes", "str", "notes"),
        ),
        ("id",),
        "memory_bandwidth",
    ),
    "systems": TableSpec(
        "systems",
        "systems.csv",
        System,
        (
            Column("id", "str", "id", True),
            Column("name", "str", "name", True),
            Column("accelerator", "str", "accelerator", True),
            Column("default", "bool", "default"),
            Column("devices_per_node", "int", "devices_per_node", True),
            Column("scaleup_fabric", "str", "scaleup_fabric", True),
            Column("scaleup_domain_devices", "int", "scaleup_domain_devices", True),
            Column("scaleup_bandwidth_per_device_one_way", "qty:bytes_per_s", "scaleup_bandwidth_bytes_per_s", True),
            Column("scaleup_latency", "qty:seconds", "scaleup_latency_s", True),
            Column("scaleout_fabric", "str", "scaleout_fabric", True),
            Column("scaleout_bandwidth_per_device_one_way", "qty:bytes_per_s", "scaleout_bandwidth_bytes_per_s", True),
            Column("scaleout_latency", "qty:seconds", "scaleout_latency_s", True),
            Column("host_memory", "qty:bytes", "host_memory_bytes"),
            Column("as_of", "str", "as_of", True),
            Column("source", "str", "source", True),
            Column("notes", "str", "notes"),
        ),
        ("id",),
        "scaleup_fabric",
    ),
    "offers": TableSpec(
        "offers",
        "offers.csv",
        Offer,
        (
            Column("provider", "str", "provider", True),
            Column("offer", "str", "offer", True),
            Column("accelerator", "str", "accelerator", True),
            Column("system", "str", "system", True),
            Column("devices_per_instance", "int", "devices_per_instance", True),
            Column("region", "str", "region", True),
            Column("pricing_model", "str", "pricing_model", True),
            Column("usd_per_instance_hour", "float", "usd_per_instance_hour"),
            Column("usd_per_device_hour", "float", "usd_per_device_hour"),
            Column("price_quality", "str", "price_quality"),
            Column("as_of", "str", "as_of", True),
            Column("source", "str", "source", True),
            Column("notes", "str", "notes"),
            Column("max_instances", "int", "max_instances"),
            Column("usd_per_device_hour_low", "float", "usd_per_device_hour_low"),
            Column("usd_per_device_hour_high", "float", "usd_per_device_hour_high"),
            Column("price_sampling", "str", "price_sampling"),
            Column("preemption_risk", "str", "preemption_risk"),
        ),
        ("provider", "offer", "region", "pricing_model"),
        "pricing_model",
    ),
    "efficiency": TableSpec(
        "efficiency",
        "efficiency.csv",
        EfficiencyPoint,
        (
            Column("accelerator", "str", "accelerator", True),
            Column("precision", "str", "precision"),
            Column("quantity", "str", "quantity", True),
            Column("size", "int", "size"),
            Column("value", "fraction", "value", True),
            Column("as_of", "str", "as_of", True),
            Column("source", "str", "source", True),
            Column("notes", "str", "notes"),
        ),
        ("accelerator", "quantity", "precision"),
        "quantity",
    ),
    "other_prices": TableSpec(
        "other_prices",
        "other_prices.csv",
        OtherPrice,
        (
            Column("provider", "str", "provider", True),
            Column("item", "str", "item", True),
            Column("region", "str", "region", True),
            Column("unit", "str", "unit", True),
            Column("value", "float", "value", True),
            Column("as_of", "str", "as_of", True),
            Column("source", "str", "source", True),
            Column("notes", "str", "notes"),
        ),
        ("provider", "item", "region"),
        "item",
    ),
}


def _err(where: Provenance | str, column: str | None, msg: str) -> CatalogError:
    col = f", field '{column}'" if column else ""
    return CatalogError(f"{where}{col}: {msg}")


def _read_int(text: Any) -> int:
    """A whole number from a cell: ``8``, ``8.0``, ``8e0``; YAML ints; never a bool."""
    if isinstance(text, bool):
        raise ValueError
    if isinstance(text, int):
        value = decimal.Decimal(text) if abs(text) <= MAX_INTEGER else None
    elif isinstance(text, float):
        if not math.isfinite(text):
            raise UnitError(f"{text!r} is not a finite number (nan and infinity are not allowed)")
        value = decimal.Decimal(text)
    else:
        stripped = str(text).strip()
        if not _NUMBER_ONLY.match(stripped):
            word = stripped.lstrip("+-")
            if word.isalpha() and word.lower() not in ("nan", "inf", "infinity"):
                raise ValueError  # a word: "'eight' is not an integer"
            raise _reject_number(str(text))  # the shared grammar's messages (comma, nan/inf, digits, ...)
        value = decimal.Decimal(stripped)
    if value is None or abs(value) > MAX_INTEGER:
        shown = str(text) if len(str(text)) <= 40 else str(text)[:37] + "..."
        raise UnitError(f"{shown!r} is out of range for an integer (magnitude at most 2**53 = {MAX_INTEGER})")
    if value != value.to_integral_value():
        raise ValueError
    return int(value)


def _read_float(text: Any) -> float:
    """A finite number from a cell (NUMBER_SYNTAX) or a YAML number; never a bool."""
    if isinstance(text, bool):
        raise ValueError
    if isinstance(text, (int, float)):
        try:
            value = float(text)
        except OverflowError:
            raise UnitError(f"{text!r} is out of range (its magnitude overflows a float)") from None
        if not math.isfinite(value):
            raise UnitError(f"{text!r} is not a finite number (nan and infinity are not allowed)")
        return value
    if not isinstance(text, str):
        raise TypeError
    return parse_number(text)


def _read_cell(col: Column, raw: Any, where: Provenance, model: type[BaseModel] | None = None) -> Any:
    """Convert one cell; returns None for an empty optional cell. ``model``: to state the column's range."""
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw.strip()
        if text == "":
            return None
    else:
        text = raw
    kind = col.reader
    try:
        if kind == "str":
            return str(text)
        if kind == "int":
            return _read_int(text)
        if kind == "float":
            return _read_float(text)
        if kind == "fraction":
            if isinstance(text, str) and text.endswith("%"):
                return _read_float(text[:-1]) / 100.0
            return _read_float(text)
        if kind == "bool":
            if isinstance(text, bool):
                return text
            s = str(text).lower()
            if s in ("true", "yes", "1", "y", "x"):
                return True
            if s in ("false", "no", "0", "n"):
                return False
            raise ValueError
        if kind.startswith("qty:"):
            return parse_quantity(str(text), kind[4:])
        if kind.startswith("peak:"):
            fmt = kind[5:]
            dimension = "ops_per_s" if fmt in INT_FORMATS else "flops_per_s"
            return parse_quantity(str(text), dimension)
    except UnitError as exc:
        msg = str(exc)
        info = model.model_fields.get(col.field) if model is not None else None
        if "out of range" in msg and info is not None and info.description:
            msg = f"{msg} (allowed: {info.description})"
        raise _err(where, col.name, msg) from None
    except (TypeError, ValueError, ArithmeticError):
        expected = {"int": "an integer (a whole number such as 8)", "float": "a number", "fraction": "a fraction such as 0.8 or 80%", "bool": "true or false"}
        raise _err(where, col.name, f"{_shown(text)} is not {expected.get(kind, kind)}") from None
    raise AssertionError(kind)  # pragma: no cover


def _shown(value: Any, limit: int = 80) -> str:
    """repr of a cell for an error message, shortened if it is very long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_validation_message(spec: TableSpec, exc: ValidationError) -> tuple[str | None, str]:
    error = exc.errors()[0]
    loc = error.get("loc", ())
    msg = error.get("msg", str(exc))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if not loc:
        # model-level checks: name the column they are about
        if spec.name == "offers":
            for named in ("preemption_risk", "usd_per_device_hour_low", "usd_per_device_hour_high"):
                if msg.startswith(named):
                    return named, msg
            return "usd_per_device_hour", msg
        if spec.name == "accelerators":
            return "sparsity_speedup", msg
        if spec.name == "other_prices":
            return "unit" if "unit" in msg else "value", msg
        return None, msg
    fld = str(loc[0])
    if fld == "peak_flops_per_s":
        if len(loc) > 1:
            return f"peak_{loc[1]}", msg
        named = re.search(r"peak for (\w+)", msg)  # the model's dict validator names the format in its message
        if named and f"peak_{named.group(1)}" in spec.column_names:
            return f"peak_{named.group(1)}", msg
    if error.get("type") in _RANGE_ERRORS:
        field_info = spec.model.model_fields.get(fld)
        if field_info is not None and field_info.description:
            msg = f"{msg} (allowed: {field_info.description})"
    return spec.column_for_field(fld), msg


_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}


def build_row(spec: TableSpec, cells: dict[str, Any], where: Provenance) -> BaseModel:
    """Turn one record (column -> raw cell) into a validated model row, or raise CatalogError."""
    unknown = [c for c in cells if c not in spec.column_names]
    if unknown:
        raise _err(where, str(unknown[0]), f"unknown column in a {spec.name} file; valid columns: {', '.join(spec.column_names)}")
    data: dict[str, Any] = {}
    peaks: dict[str, float] = {}
    for col in spec.columns:
        value = _read_cell(col, cells.get(col.name), where, spec.model)
        if value is None:
            if col.required:
                raise _err(where, col.name, "required value is empty")
            continue
        if col.reader.startswith("peak:"):
            peaks[col.reader[5:]] = value
        else:
            data[col.field] = value
    if spec.name == "accelerators":
        data["peak_flops_per_s"] = peaks
    if spec.name == "offers":
        _complete_prices(data, where)
    try:
        return spec.model.model_validate(data)
    except ValidationError as exc:
        column, msg = _first_validation_message(spec, exc)
        raw = cells.get(column) if column else None
        if raw is not None and (not isinstance(raw, str) or raw.strip()) and repr(raw) not in msg:
            msg = f"{_shown(raw.strip() if isinstance(raw, str) else raw)}: {msg}"
        raise _err(where, column, msg) from None


def _complete_prices(data: dict[str, Any], where: Provenance) -> None:
    """Offers may give the instance price, the device price, or both (then they must agree)."""
    n = data.get("devices_per_instance")
    inst = data.get("usd_per_instance_hour")
    dev = data.get("usd_per_device_hour")
    if inst is None and dev is None:
        raise _err(where, "usd_per_device_hour", "no price: give usd_per_instance_hour and/or usd_per_device_hour")
    for col, value in (("usd_per_instance_hour", inst), ("usd_per_device_hour", dev)):
        if value is not None and not value > 0:
            raise _err(where, col, f"price must be positive, got {value!r}")
    if not isinstance(n, int) or n <= 0:
        return  # the model reports the bad device count
    if inst is None:
        data["usd_per_instance_hour"] = dev * n
    elif dev is None:
        data["usd_per_device_hour"] = inst / n
    elif abs(dev - inst / n) > PRICE_TOLERANCE_USD:
        raise _err(
            where,
            "usd_per_device_hour",
            f"{dev:g} is inconsistent with usd_per_instance_hour {inst:g} / devices_per_instance {n} = {inst / n:.5f}",
        )


# ---------------------------------------------------------------------------------------
# files


def table_for_header(header: Iterable[str], file: str) -> TableSpec:
    """Which schema a user CSV follows, recognised by its header row."""
    cols = [h.strip() for h in header]
    matches = [spec for spec in TABLES.values() if spec.signature in cols and all(c.name in cols for c in spec.columns if c.required)]
    if len(matches) == 1:
        return matches[0]
    best = max(TABLES.values(), key=lambda s: len(set(cols) & set(s.column_names)))
    missing = [c.name for c in best.columns if c.required and c.name not in cols]
    raise _err(
        Provenance(file, 1),
        missing[0] if missing else None,
        f"header matches none of the catalog schemas (closest: {best.filename}, missing required column(s): "
        f"{', '.join(missing) or 'none'})",
    )


def _decode(path: Path) -> str:
    """The file's text: UTF-8, a leading byte-order mark dropped; any other encoding is a CatalogError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read catalog file: {exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.end].hex(" ")
        raise CatalogError(
            f"{path} line {line}: the file is not UTF-8 text (byte(s) {bad} at offset {exc.start}); "
            "save it as UTF-8 (CSV UTF-8 in a spreadsheet; a byte-order mark is accepted)"
        ) from None


def _read_csv_records(path: Path, text: str) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise _err(Provenance(str(path), 1), None, "empty file (no header row)") from None
    except csv.Error as exc:
        raise _err(Provenance(str(path), 1), None, f"not a valid CSV header row: {exc}") from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    seen: set[str] = set()
    for h in header:
        if not h:
            raise _err(Provenance(str(path), 1), None, "empty column name in the header")
        if h in seen:
            raise _err(Provenance(str(path), 1), h, "column appears twice in the header")
        seen.add(h)
    records: list[tuple[int, dict[str, Any]]] = []
    rows = enumerate(reader)
    while True:
        try:
            index, cells = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            raise _err(Provenance(str(path), reader.line_num), None, f"not valid CSV: {exc}") from None
        line = index + 2  # spreadsheet row: header is row 1
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise _err(Provenance(str(path), line), None, f"row has {len(cells)} cells but the header has {len(header)} columns")
        records.append((line, {h: (cells[i] if i < len(cells) else "") for i, h in enumerate(header)}))
    return header, records


SHIPPED_REQUIRED: dict[str, tuple[str, ...]] = {"offers": ("price_quality",)}
"""Columns optional in a user's file but required (present and non-empty) in the shipped catalog:
every shipped price says whether it is first-party or third-party."""


def read_table_file(path: str | Path, spec: TableSpec | None = None, require: Iterable[str] = ()) -> list[RowRecord]:
    """Read one CSV file. ``spec`` forces the schema; otherwise it is recognised by the header.

    ``require``: extra columns that must be in the header and non-empty in every row (the shipped
    catalog passes :data:`SHIPPED_REQUIRED`)."""
    path = Path(path)
    text = _decode(path)
    header, records = _read_csv_records(path, text)
    require = tuple(require)
    if spec is None:
        spec = table_for_header(header, str(path))
    else:
        missing = [c.name for c in spec.columns if (c.required or c.name in require) and c.name not in header]
        if missing:
            raise _err(Provenance(str(path), 1), missing[0], f"required column missing from the header of {spec.filename}")
    out: list[RowRecord] = []
    for line, cells in records:
        where = Provenance(str(path), line)
        for name in require:
            if not str(cells.get(name) or "").strip():
                raise _err(where, name, "required value is empty")
        out.append(RowRecord(spec.name, build_row(spec, cells, where), where))
    _check_duplicates(out)
    return out


def _read_yaml(path: Path) -> list[RowRecord]:
    text = _decode(path)
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise CatalogError(f"{path}: empty YAML file")
        if not isinstance(root, yaml.MappingNode):
            raise CatalogError(f"{path} line {root.start_mark.line + 1}: top level must be a mapping with keys {', '.join(TABLES)}")
        out: list[RowRecord] = []
        for key_node, value_node in root.value:
            name = loader.construct_object(key_node, deep=True)
            where0 = Provenance(str(path), key_node.start_mark.line + 1)
            if not isinstance(name, str) or name not in TABLES:
                raise _err(where0, None, f"unknown top-level key {name!r}; valid: {', '.join(TABLES)}")
            spec = TABLES[name]
            if not isinstance(value_node, yaml.SequenceNode):
                raise _err(where0, None, f"{name} must be a list of rows")
            for item in value_node.value:
                where = Provenance(str(path), item.start_mark.line + 1)
                cells = loader.construct_object(item, deep=True)
                if not isinstance(cells, dict):
                    raise _err(where, None, f"each {name} entry must be a mapping of column: value")
                missing = [c.name for c in spec.columns if c.required and c.name not in cells]
                if missing:
                    raise _err(where, missing[0], "required column missing")
                out.append(RowRecord(name, build_row(spec, {str(k): v for k, v in cells.items()}, where), where))
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    _check_duplicates(out)
    return out


def read_user_file(path: str | Path) -> list[RowRecord]:
    """Read a user's catalog file: a CSV whose header matches one schema, or a YAML file."""
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"{path}: catalog file not found")
    if path.suffix.lower() in (".yaml", ".yml"):
        return _read_yaml(path)
    return read_table_file(path)


def row_key(record: RowRecord) -> tuple:
    spec = TABLES[record.table]
    return tuple(getattr(record.row, f) for f in spec.key)


def _check_duplicates(records: list[RowRecord]) -> None:
    seen: dict[tuple, RowRecord] = {}
    for rec in records:
        k = (rec.table, row_key(rec))
        if k in seen:
            spec = TABLES[rec.table]
            key_txt = ", ".join(f"{spec.column_for_field(f)}={v!r}" for f, v in zip(spec.key, k[1]))
            raise _err(rec.where, spec.column_for_field(spec.key[0]), f"duplicate key ({key_txt}); first given at {seen[k].where}")
        seen[k] = rec

