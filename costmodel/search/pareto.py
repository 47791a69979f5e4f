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

    def _undominated(self, rows: Rows) -> np.ndarray:
        """Indices of ``rows`` that no point of the running front dominates (exact duplicates of a
        front point are kept: the key decides between them)."""
        c, t = rows[self.axes[0]], rows[self.axes[1]]
        if self.front is None or len(self.front["_key"]) == 0:
            return np.arange(len(c))
        fc, ft = self.front[self.axes[0]], self.front[self.axes[1]]  # cost ascending, time descending
        j = np.searchsorted(fc, c, side="right") - 1  # the front point of largest cost <= c
        jj = np.maximum(j, 0)
        dominated = (j >= 0) & (ft[jj] <= t) & ~((fc[jj] == c) & (ft[jj] == t))
        return np.flatnonzero(~dominated)

    def add(self, light: Rows, materialize: Callable[[np.ndarray], Rows]) -> None:
        """``light``: ranking columns of a chunk's feasible rows; ``materialize(idx)``: full rows."""
        n = len(light["_key"])
        if n == 0:
            return
        # The Pareto filter sees every feasible row of the chunk not dominated by the running front
        # (exact: a dominated row stays dominated); the top-k pre-selects the chunk's best k on the
        # primary key (ties at the bound kept) among the rows not worse than the running k-th
        # (exact: k rows are already better) before the exact sort.
        front_idx = self._undominated(light)
        if front_idx.size:
            front_idx = front_idx[self._front(_take(light, front_idx))]
        first = light[self.keys[0]]
        cand = np.arange(n)
        if self.top is not None and len(self.top["_key"]) >= self.k:
            cand = np.flatnonzero(first <= self.top[self.keys[0]][self.k - 1])
        if cand.size > self.k:
            sub = first[cand]
            bound = sub[np.argpartition(sub, self.k - 1)[: self.k]].max()
            top_idx = cand[sub <= bound]
        else:
            top_idx = cand
        if front_idx.size == 0 and top_idx.size == 0:
            return
        survivors = np.union1d(front_idx, top_idx)
        rows = materialize(survivors)
        pos = np.searchsorted(survivors, front_idx), np.searchsorted(survivors, top_idx)
        merged = _concat(self.front, _take(rows, pos[0]))
        self.front = _take(merged, self._front(merged))
        merged = _concat(self.top, _take(rows, pos[1]))
        order = np.lexsort(tuple(merged[k] for k in reversed(self.keys)))
        self.top = _take(merged, order[: self.k])
