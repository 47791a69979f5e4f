"""Where the shipped data lives, for a source checkout and for an installed wheel alike."""

from __future__ import annotations

import os
from pathlib import Path

_ENV_VAR = "COSTMODEL_DATA_DIR"


def data_dir() -> Path:
    """Return the folder holding the shipped ``data/`` tree.

    Resolution order: the ``COSTMODEL_DATA_DIR`` environment variable; the copy a wheel
    carries inside this package (``hardware_catalog/data``); the ``data/`` folder at the
    root of a source checkout (editable install or plain ``PYTHONPATH``).
    """
    override = os.environ.get(_ENV_VAR)
    if override:
        path = Path(override)
        if not path.is_dir():
            raise FileNotFoundError(f"{_ENV_VAR}={override!r} is not a directory")
        return path
    here = Path(__file__).resolve().parent
    for candidate in (here / "data", here.parent / "data"):
        if (candidate / "models").is_dir():
            return candidate
    raise FileNotFoundError(
        "cannot find the shipped data folder (looked in hardware_catalog/data and ../data); "
        f"set {_ENV_VAR} to point at it"
    )
