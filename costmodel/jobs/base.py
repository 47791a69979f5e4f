"""What a job kind is: the small object the generic search is handed.

A job kind names its grid dimensions (the first is always ``system``, an index into the systems
that have offers), resolves a scenario once (``prepare``), evaluates a chunk of configurations in
one vectorised pass (``evaluate`` -> reason codes and engine outputs), prices the configurations
that pass with the offers of their system (``price`` -> cost columns, ranking columns and
plan-level reasons), and turns the surviving rows into a readable frame (``row_values`` +
``frame``). The search (``costmodel.search``) knows nothing else about the job.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd


class JobKind:
    """Base class of the job kinds; see the module docstring for the contract."""

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]  # values of ``Job.kind`` this job kind plans
    reasons: ClassVar[tuple[str, ...]]  # reason codes: 0 = "feasible", then in checking order
    dimensions: ClassVar[tuple[str, ...]]
    objectives: ClassVar[dict[str, tuple[str, ...]]]  # objective -> sort keys (grid position last)
    pareto_axes: ClassVar[tuple[str, str]]  # both minimised

    def prepare(self, scenario: Any, table: Any, offers: Any, systems: np.ndarray) -> Any:
        """Resolve the scenario once; the returned context has ``choices`` per dimension."""
        raise NotImplementedError

    def evaluate(self, ctx: Any, cols: dict[str, np.ndarray], sys_code: np.ndarray) -> Any:
        """Reason code per configuration (``.reason``), engine outputs of the live ones. A
        configuration may get a limit reason (``limit_reasons``) here, before pricing, only when
        the limit provably binds for every offer of its system and its plans could not improve
        the closest misses bound by ``bind_near`` (the search counts it as it would have)."""
        raise NotImplementedError

    def bind_near(self, ctx: Any, near: dict[str, float]) -> None:
        """The search's closest misses so far (``Prepared.near``), for pruning in ``evaluate``;
        by default unused."""

    def price(self, ctx: Any, ev: Any, rows: np.ndarray, offer_rows: np.ndarray) -> dict[str, np.ndarray]:
        """Cost and ranking columns of live rows ``rows`` billed with ``offer_rows``, with a
        ``reason`` column for plan-level reasons (deadline, budget, missing price)."""
        raise NotImplementedError

    def row_values(self, ctx: Any, ev: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def frame(self, ctx: Any, rows: dict[str, np.ndarray]) -> pd.DataFrame:
        raise NotImplementedError
