"""Spreadsheet-formula guard for CSV output (OWASP "CSV injection" guidance).

A spreadsheet evaluates a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and
a leading tab or carriage return can hide such a start. Every *text* cell written to a CSV that a
person may open in a spreadsheet goes through :func:`guard_text`, which prefixes those cells with
an apostrophe (the spreadsheet then shows the text as typed). Numbers are written as numbers and
are never touched, so ``-1.5`` in a float column stays a number.

:func:`write_csv` also quotes every cell that holds a line break of any kind. (Python's csv
writer, and so ``DataFrame.to_csv``, leaves a lone carriage return unquoted when the line
terminator is ``"\n"``; a reader then splits the row in two, which lets a text cell inject rows.)

This module is the one implementation for the whole project: ``hardware_catalog`` (the lower
layer) uses it for ``costmodel catalog ... --format csv``; upper layers may import it too.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any, TextIO

import pandas as pd

__all__ = ["FORMULA_START", "guard_text", "guard_frame", "write_csv"]

FORMULA_START: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a text cell as a formula (OWASP list)."""


def guard_text(value: Any) -> Any:
    """``value`` with an apostrophe in front if it is a str starting with a FORMULA_START character.

    Anything that is not a ``str`` (numbers, None, NaN, bools) is returned unchanged.

        >>> guard_text("=1+1"), guard_text("-x"), guard_text("AWS"), guard_text(-1.5)
        ("'=1+1", "'-x", 'AWS', -1.5)
    """
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def guard_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells (object / string columns) went through :func:`guard_text`."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(guard_text)
    return out


def _cell(value: Any, float_format: str) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):  # numpy float64 included
        return "" if math.isnan(value) else float_format % value
    return guard_text(value)


def write_csv(df: pd.DataFrame, stream: TextIO, float_format: str = "%.15g") -> None:
    """Write ``df`` as CSV (header row, no index, ``"\n"`` line ends) with every text cell guarded.

    Same cells as ``guard_frame(df).to_csv(stream, index=False, float_format=float_format,
    lineterminator="\n")``, except that a cell holding a carriage return is quoted too."""
    buf = io.StringIO()
    # "\r\n" as the writer's terminator makes it quote any cell containing \r or \n; each row is
    # written alone, so the terminator is then swapped for "\n" without touching quoted cells.
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in [[str(c) for c in df.columns], *df.itertuples(index=False, name=None)]:
        buf.seek(0)
        buf.truncate()
        writer.writerow([_cell(v, float_format) for v in row])
        stream.write(buf.getvalue()[:-2] + "\n")
