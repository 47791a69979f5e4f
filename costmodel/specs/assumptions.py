"""Engine assumptions: every number the formulas use that is not a datasheet figure.

They live in ``data/assumptions.yaml`` (global) and ``data/frameworks.yaml`` (per training
framework), each value with its unit and source, and can be overridden per call. The UI shows them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hardware_catalog.paths import data_dir


class Knob(BaseModel):
    """One assumption: value, unit, and where it comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float
    unit: str = Field(description="Unit of value, e.g. 'bytes', 'fraction', 'bytes/element', 's'.")
    source: str = Field(min_length=1, description="Paper, datasheet, measurement command or fit.")
    description: str = ""


class AssumptionError(ValueError):
    """Unknown assumption name or a malformed assumptions file."""


def _load_knobs(path: Path) -> dict[str, Knob]:
    with path.open() as fh:
        raw = yaml.safe_load(fh) or {}
    out: dict[str, Knob] = {}
    for name, body in raw.items():
        try:
            out[name] = Knob(**body)
        except (ValidationError, TypeError) as exc:
            raise AssumptionError(f"{path}: entry {name!r}: {exc}") from None
    return out


@lru_cache(maxsize=1)
def _global_knobs() -> dict[str, Knob]:
    return _load_knobs(data_dir() / "assumptions.yaml")


def _framework_file(path: Path) -> dict[str, dict[str, Any]]:
    with path.open() as fh:
        raw = yaml.safe_load(fh) or {}
    out: dict[str, dict[str, Any]] = {}
    for fw, body in raw.items():
        knobs = {}
        for name, spec in (body.get("knobs") or {}).items():
            try:
                knobs[name] = Knob(**spec)
            except (ValidationError, TypeError) as exc:
                raise AssumptionError(f"{path}: framework {fw!r}, knob {name!r}: {exc}") from None
        out[fw] = {"description": body.get("description", ""), "knobs": knobs}
    return out


@lru_cache(maxsize=1)
def _framework_knobs() -> dict[str, dict[str, Any]]:
    """frameworks.yaml, with fitted knobs from calibration/framework_knobs.yaml on top."""
    out = _framework_file(data_dir() / "frameworks.yaml")
    fitted = data_dir() / "calibration" / "framework_knobs.yaml"
    if fitted.exists():
        for fw, body in _framework_file(fitted).items():
            if fw not in out:
                raise AssumptionError(f"{fitted}: unknown framework {fw!r}")
            out[fw]["knobs"].update(body["knobs"])
    return out


def frameworks() -> dict[str, str]:
    """Framework profile names and their descriptions."""
    return {k: v["description"] for k, v in _framework_knobs().items()}


class Assumptions:
    """Resolved assumption values for one framework profile, with per-call overrides.

    ``values`` maps knob name -> float; ``knobs`` keeps unit and source for reports and the UI.
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
        for name, value in overrides.items():
            base = knobs[name]
            knobs[name] = base.model_copy(update={"value": float(value), "source": "user override"})
        self.framework = framework
        self.knobs = knobs
        self.values = {k: v.value for k, v in knobs.items()}

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def as_records(self) -> list[dict[str, Any]]:
        """One row per knob, for reports: name, value, unit, source."""
        return [{"name": k, "value": v.value, "unit": v.unit, "source": v.source,
                 "description": v.description} for k, v in sorted(self.knobs.items())]
