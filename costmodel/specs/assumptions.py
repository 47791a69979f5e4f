"""Engine assumptions: every number the formulas use that is not a datasheet figure.

They live in ``data/assumptions.yaml`` (global) and ``data/frameworks.yaml`` (per training
framework), each value with its unit, source and allowed range, and can be overridden per call.
The UI shows them.

Every knob carries a documented range (``min``/``max``, inclusive unless ``min_exclusive`` /
``max_exclusive``; ``integer: true`` for counts). A shipped value outside its range fails loading,
and an override that is not a finite number inside the range (or not whole for an integer knob)
is rejected with :class:`AssumptionError` naming the knob, the value and the range. Every face
(CLI ``--set``, ``Scenario.overrides``, ``estimate_training``/``estimate_serving`` ``overrides=``,
the UI) resolves its overrides through :class:`Assumptions`, so the check covers them all.
"""

from __future__ import annotations

import math
import numbers
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hardware_catalog.paths import data_dir

_RANGE_FIELDS = ("min", "max", "min_exclusive", "max_exclusive", "integer")


def _num(x: float) -> str:
    """A bound or value for messages: 0, 1, 0.01, 68719476736 (no trailing .0 on whole numbers)."""
    return f"{x:.12g}"


class AssumptionError(ValueError):
    """Unknown assumption name, an override outside its range, or a malformed assumptions file."""


class Knob(BaseModel):
    """One assumption: value, unit, where it comes from, and the range it must lie in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float
    unit: str = Field(description="Unit of value, e.g. 'bytes', 'fraction', 'bytes/element', 's'.")
    source: str = Field(min_length=1, description="Paper, datasheet, measurement command or fit.")
    description: str = ""
    min: float = Field(description="Lower bound of the allowed values.")
    max: float = Field(description="Upper bound of the allowed values.")
    min_exclusive: bool = Field(False, description="True: value must be strictly above min.")
    max_exclusive: bool = Field(False, description="True: value must be strictly below max.")
    integer: bool = Field(False, description="True: value must be a whole number (counts).")

    @model_validator(mode="after")
    def _check(self) -> "Knob":
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise ValueError(f"range {self.range_text()} must have finite bounds")
        empty = self.min > self.max or (self.min == self.max and (self.min_exclusive or self.max_exclusive))
        if empty:
            raise ValueError(f"range {self.range_text()} is empty")
        problem = self.problem(self.value)
        if problem:
            raise ValueError(f"value {self.value!r} {problem}")
        return self

    def range_text(self) -> str:
        """The range in interval notation: ``[0, 1]``, ``(0, 2]``."""
        return (f"{'(' if self.min_exclusive else '['}{_num(self.min)}, "
                f"{_num(self.max)}{')' if self.max_exclusive else ']'}")

    def _label(self) -> str:
        return f"{self.unit}, integer" if self.integer else self.unit

    def contains(self, value: float) -> bool:
        """Whether ``value`` is a finite number inside the range (and whole, for integer knobs)."""
        return self.problem(value) is None

    def problem(self, value: float) -> str | None:
        """Why the float ``value`` is not allowed (a phrase after "<name> = <value>"), or None."""
        if not math.isfinite(value):
            return f"is not a finite number; its range is {self.range_text()} ({self._label()})"
        below = value <= self.min if self.min_exclusive else value < self.min
        above = value >= self.max if self.max_exclusive else value > self.max
        if below or above:
            return f"is outside its range {self.range_text()} ({self._label()})"
        if self.integer and not float(value).is_integer():
            return f"is not a whole number; its range is {self.range_text()} ({self._label()})"
        return None

    def checked(self, name: str, value: Any) -> float:
        """``value`` as a float if it is allowed for this knob, else :class:`AssumptionError`."""
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
            raise AssumptionError(f"{name} = {value!r} is not a number; its range is "
                                  f"{self.range_text()} ({self._label()})")
        try:
            v = float(value)
        except (TypeError, ValueError, OverflowError):
            raise AssumptionError(f"{name} = {value!r} is not a number; its range is "
                                  f"{self.range_text()} ({self._label()})") from None
        problem = self.problem(v)
        if problem:
            raise AssumptionError(f"{name} = {v!r} {problem}")
        return v


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        loc = ".".join(str(x) for x in err.get("loc", ()))
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _make_knob(where: str, name: str, body: Any, base: Knob | None = None) -> Knob:
    """Build one knob of a YAML file; ``base`` (the same knob one level down) lends its range to
    an entry that states none, e.g. a fitted value written by ``costmodel calibrate``."""
    if not isinstance(body, dict):
        raise AssumptionError(f"{where}: knob {name!r}: expected a mapping with value, unit, source, "
                              f"min and max, got {body!r}")
    body = dict(body)
    if base is not None and not any(f in body for f in _RANGE_FIELDS):
        body.update({f: getattr(base, f) for f in _RANGE_FIELDS})
    missing = [f for f in ("min", "max") if f not in body]
    if missing:
        raise AssumptionError(f"{where}: knob {name!r} has no range: add "
                              f"{' and '.join(missing)} next to its value")
    try:
        return Knob(**body)
    except ValidationError as exc:
        raise AssumptionError(f"{where}: knob {name!r}: {_validation_message(exc)}") from None
    except TypeError as exc:
        raise AssumptionError(f"{where}: knob {name!r}: {exc}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    with path.open() as fh:
        raw = yaml.safe_load(fh) or {}
    if not isinstance(raw, dict):
        raise AssumptionError(f"{path}: expected a mapping at the top level")
    return raw


def _load_knobs(path: Path) -> dict[str, Knob]:
    return {name: _make_knob(str(path), name, body) for name, body in _read_yaml(path).items()}


@lru_cache(maxsize=1)
def _global_knobs() -> dict[str, Knob]:
    return _load_knobs(data_dir() / "assumptions.yaml")


def _framework_file(path: Path, bases: dict[str, dict[str, Knob]] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """Framework -> {description, knobs}; ``bases`` (framework -> knobs) lends ranges."""
    out: dict[str, dict[str, Any]] = {}
    glob = _global_knobs()
    for fw, body in _read_yaml(path).items():
        body = body or {}
        under = {**glob, **((bases or {}).get(fw) or {})}
        knobs = {name: _make_knob(f"{path}: framework {fw!r}", name, spec, under.get(name))
                 for name, spec in (body.get("knobs") or {}).items()}
        out[fw] = {"description": body.get("description", ""), "knobs": knobs}
    return out


@lru_cache(maxsize=1)
def _framework_knobs() -> dict[str, dict[str, Any]]:
    """frameworks.yaml, with fitted knobs from calibration/framework_knobs.yaml on top."""
    out = _framework_file(data_dir() / "frameworks.yaml")
    fitted = data_dir() / "calibration" / "framework_knobs.yaml"
    if fitted.exists():
        bases = {fw: body["knobs"] for fw, body in out.items()}
        for fw, body in _framework_file(fitted, bases).items():
            if fw not in out:
                raise AssumptionError(f"{fitted}: unknown framework {fw!r}")
            out[fw]["knobs"].update(body["knobs"])
    return out


def frameworks() -> dict[str, str]:
    """Framework profile names and their descriptions."""
    return {k: v["description"] for k, v in _framework_knobs().items()}


class Assumptions:
    """Resolved assumption values for one framework profile, with per-call overrides.

    ``values`` maps knob name -> float; ``knobs`` keeps unit, source and range for reports and
    the UI. An override that is not a finite number inside its knob's range raises
    :class:`AssumptionError` naming the knob, the value and the range.
    """

    def __init__(self, framework: str = "nemo", overrides: dict[str, float] | None = None):
        table = _framework_knobs()
        if framework not in table:
            raise AssumptionError(
                f"unknown framework {framework!r}; choose one of {', '.join(sorted(table))}"
            )
        knobs: dict[str, Knob] = dict(_global_knobs())
        knobs.update(table[framework]["knobs"])
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(knobs))
        if unknown:
            raise AssumptionError(
                f"unknown assumption(s) {', '.join(unknown)}; known: {', '.join(sorted(knobs))}"
            )
        problems = []
        for name, value in sorted(overrides.items()):
            base = knobs[name]
            try:
                v = base.checked(name, value)
            except AssumptionError as exc:
                problems.append(str(exc))
                continue
            knobs[name] = base.model_copy(update={"value": v, "source": "user override"})
        if problems:
            raise AssumptionError("; ".join(problems))
        self.framework = framework
        self.knobs = knobs
        self.values = {k: v.value for k, v in knobs.items()}

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def as_records(self) -> list[dict[str, Any]]:
        """One row per knob, for reports: name, value, unit, range (min, max and interval notation,
        integer flag), source, description."""
        return [{"name": k, "value": v.value, "unit": v.unit, "min": v.min, "max": v.max,
                 "range": v.range_text() + (" integer" if v.integer else ""),
                 "source": v.source, "description": v.description}
                for k, v in sorted(self.knobs.items())]
