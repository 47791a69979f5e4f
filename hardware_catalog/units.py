"""Parse quantities written with their unit in a CSV cell (``80 GiB``, ``3.35 TB/s``, ``989 TFLOP/s``).

A small, explicit unit table: decimal SI prefixes (k, M, G, T, P, E) and binary prefixes
(Ki, Mi, Gi, Ti, Pi) for sizes and rates; milli/micro/nano only for time. Every quantity is
converted to a base unit:

=============  ==========================================  ==================================
dimension      accepted units (examples)                   base unit
=============  ==========================================  ==================================
bytes          ``B``, ``kB``, ``GB``, ``GiB``, ``b`` (bit)   bytes
bytes_per_s    ``GB/s``, ``GiB/s``, ``Gb/s``, ``Gbps``       bytes per second
flops_per_s    ``TFLOP/s``, ``TFLOPS``, ``PFLOP/s``          floating-point operations / s
ops_per_s      ``TOPS``, ``TOP/s``, ``POPS``                 (integer) operations / s
watts          ``W``, ``kW``                                watts
seconds        ``s``, ``ms``, ``us``, ``µs``, ``ns``         seconds
=============  ==========================================  ==================================

Bits (``b``) are only accepted where they are conventional: ``400 Gb/s`` is 50e9 bytes/s.
An unknown unit raises :class:`UnitError` (the loader turns it into a ``CatalogError`` that
names the file, the line and the field).

How a number is written (every numeric cell of the catalog, with or without a unit)
-----------------------------------------------------------------------------------
One grammar, :data:`NUMBER_SYNTAX`, for every number the catalog reads from text: ASCII digits
with an optional sign, an optional decimal POINT and an optional exponent (``2.5``, ``.5``,
``1e3``, ``-4``, ``2.5E-3``). Nothing else is a number:

* **No comma, ever.** A decimal comma (``2,5``) and a thousands separator (``1,000``) are both
  rejected with an error that says to write a decimal point and no separators: ``1,000`` means
  one thousand in one locale and one in another, so the catalog never guesses. Other grouping
  (``1 000``, ``1_000``, ``1'000``) is rejected too.
* **Finite only.** ``nan``, ``inf``, ``infinity`` (any case or sign) are rejected, and so is a
  number whose magnitude overflows a float (``1e400``).
* **ASCII digits only.** Other Unicode digits (``１２``, ``١٢``) are rejected.

Ranges (how large a memory, a price or a device count may be) are checked by the pydantic
models and stated in their field descriptions (``hardware_catalog/models.py``).
"""

from __future__ import annotations

import math
import re

__all__ = ["UnitError", "DIMENSIONS", "NUMBER_SYNTAX", "COMMA_HINT", "parse_number", "parse_quantity", "format_quantity"]


class UnitError(ValueError):
    """A cell could not be read as a quantity of the expected dimension."""


DIMENSIONS = ("bytes", "bytes_per_s", "flops_per_s", "ops_per_s", "watts", "seconds")

_LABEL = {
    "bytes": "a size (B, GB, GiB, ...)",
    "bytes_per_s": "a bandwidth (GB/s, GiB/s, Gb/s, ...)",
    "flops_per_s": "a FLOP/s rate (TFLOP/s, PFLOP/s, ...)",
    "ops_per_s": "an integer-ops rate (TOPS, ...)",
    "watts": "a power (W, kW)",
    "seconds": "a time (s, ms, us, ns)",
}

_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}
# sub-unit prefixes are stored as divisors so that "10 us" is exactly 1e-05
_SMALL = {"": -1.0, "m": -1e3, "u": -1e6, "µ": -1e6, "μ": -1e6, "n": -1e9}

# base unit symbol -> (dimension, multiplier to the base unit (negative = divisor), allowed prefix tables)
_BASES: dict[str, tuple[str, float, tuple[dict[str, float], ...]]] = {
    "B": ("bytes", 1.0, (_DECIMAL, _BINARY)),
    "b": ("bytes", -8.0, (_DECIMAL, _BINARY)),
    "B/s": ("bytes_per_s", 1.0, (_DECIMAL, _BINARY)),
    "Bps": ("bytes_per_s", 1.0, (_DECIMAL, _BINARY)),
    "b/s": ("bytes_per_s", -8.0, (_DECIMAL, _BINARY)),
    "bps": ("bytes_per_s", -8.0, (_DECIMAL, _BINARY)),
    "FLOP/s": ("flops_per_s", 1.0, (_DECIMAL,)),
    "FLOPS": ("flops_per_s", 1.0, (_DECIMAL,)),
    "OP/s": ("ops_per_s", 1.0, (_DECIMAL,)),
    "OPS": ("ops_per_s", 1.0, (_DECIMAL,)),
    "W": ("watts", 1.0, (_DECIMAL,)),
    "s": ("seconds", 1.0, (_SMALL,)),
}
# longest symbols first so that "B/s" wins over "s" and "FLOPS" over "S"-less forms
_BASE_ORDER = sorted(_BASES, key=len, reverse=True)

NUMBER_SYNTAX = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
"""The only way a number may be written in a catalog cell (ASCII digits, decimal point)."""

COMMA_HINT = "write the decimal point as '.' (2.5, not 2,5) and no thousands separators (1000, not 1,000)"
"""What the error for a number containing a comma tells the user to do."""

_NUMBER_ONLY = re.compile(rf"^{NUMBER_SYNTAX}$")
_NUMBER = re.compile(rf"^\s*({NUMBER_SYNTAX})\s*(\S.*?)?\s*$", re.DOTALL)
_NON_FINITE = re.compile(r"^[+-]?(nan|inf|infinity)$", re.IGNORECASE)
_SYNTAX_HELP = "a number is ASCII digits with an optional sign, '.' decimal point and exponent, e.g. 2.5, 1e3"


def _reject_number(text: str) -> UnitError:
    """The error for a cell (or the number part of a cell) that is not NUMBER_SYNTAX."""
    if "," in text:
        return UnitError(f"{text!r} contains a comma: {COMMA_HINT}")
    if _NON_FINITE.match(text.strip()):
        return UnitError(f"{text!r} is not a finite number (nan and infinity are not allowed)")
    return UnitError(f"{text!r} is not a number ({_SYNTAX_HELP})")


def _to_float(number: str, text: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise UnitError(f"{text!r} is out of range (its magnitude overflows a float; nothing in the catalog is that large)")
    return value


def parse_number(text: str) -> float:
    """Parse a bare number written as :data:`NUMBER_SYNTAX` (surrounding spaces allowed).

    Raises :class:`UnitError` for a comma (decimal or thousands), nan/inf, a magnitude that
    overflows a float, non-ASCII digits and anything else that is not the grammar."""
    text = str(text)
    stripped = text.strip()
    if not _NUMBER_ONLY.match(stripped):
        raise _reject_number(text)
    return _to_float(stripped, text)


def _scale(value: float, factor: float) -> float:
    return value / -factor if factor < 0 else value * factor


def _lookup_unit(unit: str) -> tuple[str, float, float]:
    """(dimension, base factor, prefix factor); a negative factor divides."""
    unit = unit.strip()
    for base in _BASE_ORDER:
        if not unit.endswith(base):
            continue
        prefix = unit[: len(unit) - len(base)]
        dimension, mult, tables = _BASES[base]
        for table in tables:
            if prefix in table:
                return dimension, mult, table[prefix]
    raise UnitError(f"unknown unit {unit!r} (known: B, b, B/s, b/s, FLOP/s, OPS, W, s with k/M/G/T/P/E or Ki/Mi/Gi/Ti prefixes; ms/us/ns)")


def parse_quantity(text: str, dimension: str) -> float:
    """Parse ``"<number> <unit>"`` and return the value in the base unit of ``dimension``.

    Raises :class:`UnitError` for a missing unit, an unknown unit, a unit of another
    dimension (``TOPS`` where FLOP/s is expected), or a value that is not finite.
    """
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}")
    text = str(text)
    if "," in text:  # a unit never contains a comma: it is a decimal comma or a thousands separator
        raise UnitError(f"{text!r} contains a comma: {COMMA_HINT}")
    match = _NUMBER.match(text)
    if not match:
        number_part = text.strip().split(" ")[0]
        if _NON_FINITE.match(number_part):
            raise UnitError(f"{text!r} is not a finite number (nan and infinity are not allowed)")
        raise UnitError(f"cannot read {text!r} as '<number> <unit>' ({_SYNTAX_HELP})")
    number, unit = match.group(1), match.group(2)
    if not unit:
        raise UnitError(f"{text!r} has no unit; expected {_LABEL[dimension]}")
    if unit[0].isdigit() or unit[0] in "_'.":
        raise UnitError(f"{text!r}: separators inside a number are not allowed; {COMMA_HINT}")
    found, base, prefix = _lookup_unit(unit)
    if found != dimension:
        raise UnitError(f"unit {unit!r} is {_LABEL[found]}; expected {_LABEL[dimension]}")
    value = _scale(_scale(_to_float(number, text), prefix), base)
    if not math.isfinite(value):
        raise UnitError(f"{text!r} is out of range (its magnitude overflows a float; nothing in the catalog is that large)")
    return value


_DISPLAY = {
    "bytes": [(2.0**40, "TiB"), (2.0**30, "GiB"), (2.0**20, "MiB"), (2.0**10, "KiB"), (1.0, "B")],
    "bytes_per_s": [(1e12, "TB/s"), (1e9, "GB/s"), (1e6, "MB/s"), (1.0, "B/s")],
    "flops_per_s": [(1e15, "PFLOP/s"), (1e12, "TFLOP/s"), (1e9, "GFLOP/s"), (1.0, "FLOP/s")],
    "ops_per_s": [(1e15, "POPS"), (1e12, "TOPS"), (1e9, "GOPS"), (1.0, "OPS")],
    "watts": [(1e3, "kW"), (1.0, "W")],
    "seconds": [(1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")],
}


def format_quantity(value: float | None, dimension: str, digits: int = 4) -> str:
    """Human-readable form of a base-unit value (``85899345920, "bytes"`` -> ``"80 GiB"``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    for scale, symbol in _DISPLAY[dimension]:
        if abs(value) >= scale or scale == _DISPLAY[dimension][-1][0]:
            return f"{value / scale:.{digits}g} {symbol}"
    return f"{value:g}"  # pragma: no cover
