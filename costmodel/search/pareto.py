"""Running top-k and Pareto set over chunks of candidate plans (both exact, memory bounded)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Rows = dict[str, np.ndarray]


def pareto_mask(cost: np.ndarray, time_: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
    """Indices of the points not dominated in (cost, time), both minimised, sorted by cost.

    A point is dominated when another is no worse in both and better in one. Among exact
    duplicates the one with the smallest ``key`` is kept.
    """
    if len(cost) == 0:
        return np.zeros(0, dtype=np.int64)
    key = np.arange(len(cost)) if key is None else key
    order = np.lexsort((key, time_, cost))
    t_sorted = time_[order]
    best_before = np.minimum.accumulate(np.concatenate([[np.inf], t_sorted[:-1]]))
    keep = t_sorted < best_before
    return order[keep]


def _concat(a: Rows | None, b: Rows) -> Rows:
    if a is None:
        return b
    return {key: np.concatenate([a[key], b[key]]) for key in b}


def _take(d: Rows, idx: np.ndarray) -> Rows:
    return {key: v[idx] for key, v in d.items()}


class Running:
    """Running top-k by ``keys`` (lexicographic, all minimised) and Pareto set on ``axes``."""

    def __init__(self, k: int, keys: tuple[str, ...], axes: tuple[str, str]):
        self.k, self.keys, self.axes = k, keys, axes
        self.top: Rows | None = None
        self.front: Rows | None = None

    def _front(self, rows: Rows) -> np.ndarray:
        return pareto_mask(rows[self.axes[0]], rows[self.axes[1]], rows["_key"])

    def add(self, light: Rows, materialize: Callable[[np.ndarray], Rows]) -> None:
        """``light``: ranking columns of a chunk's feasible rows; ``materialize(idx)``: full rows."""
        n = len(light["_key"])
        if n == 0:
            return
        # The Pareto filter sees every feasible row of the chunk (exact); the top-k pre-selects the
        # chunk's best k on the primary key (ties at the bound kept) before the exact sort.
        front_idx = self._front(light)
        first = light[self.keys[0]]
        if n > self.k:
            bound = first[np.argpartition(first, self.k - 1)[: self.k]].max()
            top_idx = np.flatnonzero(first <= bound)
        else:
            top_idx = np.arange(n)
        survivors = np.union1d(front_idx, top_idx)
        rows = materialize(survivors)
        pos = np.searchsorted(survivors, front_idx), np.searchsorted(survivors, top_idx)
        merged = _concat(self.front, _take(rows, pos[0]))
        self.front = _take(merged, self._front(merged))
        merged = _concat(self.top, _take(rows, pos[1]))
        order = np.lexsort(tuple(merged[k] for k in reversed(self.keys)))
        self.top = _take(merged, order[: self.k])
