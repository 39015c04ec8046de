"""Neighbour groups of scan positions (docs/model.md#grouping).

``gridsize g`` processes ``C = g²`` neighbouring positions together. For each seed position the
group is the seed plus ``C−1`` nearest neighbours (or ``C−1`` drawn from the ``K−1`` nearest when
``neighbors = K > C``), ordered by angle about the group centroid so the channel order is
deterministic. Grid and random scans go through this same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ptycho.errors import ConfigError, DataError
from ptycho.seeding import seed_stream


@dataclass(frozen=True)
class Groups:
    """Groups of scan positions.

    Attributes
    ----------
    index : (G, C) int64
        Dataset pattern index of each member.
    centroid_x, centroid_y : (G,) float64
        Group centroids in object pixels.
    offset_x, offset_y : (G, C) float64
        Member positions relative to the centroid.
    """

    index: np.ndarray
    centroid_x: np.ndarray
    centroid_y: np.ndarray
    offset_x: np.ndarray
    offset_y: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.index.shape[0])

    @property
    def C(self) -> int:
        return int(self.index.shape[1])

    @property
    def max_offset(self) -> float:
        """Largest member distance from its centroid along either axis, in pixels."""
        if self.offset_x.size == 0:
            return 0.0
        return float(max(np.abs(self.offset_x).max(), np.abs(self.offset_y).max()))

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Absolute member positions ``(x, y)``, each (G, C)."""
        return self.centroid_x[:, None] + self.offset_x, self.centroid_y[:, None] + self.offset_y

    def take(self, rows: np.ndarray) -> "Groups":
        rows = np.asarray(rows, dtype=np.int64)
        return Groups(self.index[rows], self.centroid_x[rows], self.centroid_y[rows], self.offset_x[rows], self.offset_y[rows])


def make_groups(
    x: np.ndarray,
    y: np.ndarray,
    gridsize: int,
    *,
    n_groups: int | None = None,
    neighbors: int | None = None,
    oversample: bool = False,
    seed: int = 0,
    labels: np.ndarray | None = None,
) -> Groups:
    """Build neighbour groups.

    Parameters
    ----------
    x, y : (M,) float64 positions.
    gridsize : int, ``C = gridsize²`` members per group.
    n_groups : number of groups (default: one per position). More groups than positions needs
        ``oversample=True`` and, for distinct groups, ``neighbors > C``.
    neighbors : K ≥ C nearest positions to draw members from (default C: the C nearest).
    seed : seed for choosing seeds and members.
    labels : (M,) int, optional
        Members come from the seed's own label only (the folds of a leave-fold-out estimate,
        :mod:`ptycho.iterative.streaming`, so no member's pattern is in the estimate its group reads).

    Returns
    -------
    Groups
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    M, C = len(x), gridsize * gridsize
    K = C if neighbors is None else neighbors
    if M == 0:
        raise DataError("cannot group an empty scan")
    if gridsize < 1:
        raise ConfigError(f"gridsize must be at least 1 (got {gridsize})")
    if K < C:
        raise ConfigError(f"neighbors ({K}) must be at least gridsize² ({C})")
    if M < C:
        raise DataError(f"the scan holds {M} positions but gridsize {gridsize} needs at least {C} per group")
    G = M if n_groups is None else n_groups
    if G > M and not oversample:
        raise ConfigError(f"n_groups ({G}) exceeds the {M} positions; enable oversampling to draw more")
    rng = seed_stream(seed, "groups")
    if n_groups is None:
        seeds = np.arange(M)
    elif G <= M:
        seeds = np.sort(rng.choice(M, size=G, replace=False))
    else:
        seeds = np.sort(rng.choice(M, size=G, replace=True))
    points = np.stack([x, y], axis=1)
    if C == 1:
        index = seeds[:, None]
    else:
        nearest, k = _nearest(points, seeds, min(K, M), C, labels)
        if k > C:
            picks = np.argsort(rng.random((len(seeds), k - 1)), axis=1)[:, : C - 1] + 1
            members = np.concatenate([nearest[:, :1], np.take_along_axis(nearest, picks, axis=1)], axis=1)
        else:
            members = nearest[:, :C]
        index = _order_by_angle(members, x, y)
    gx, gy = x[index], y[index]
    cx, cy = gx.mean(axis=1), gy.mean(axis=1)
    return Groups(index.astype(np.int64), cx, cy, gx - cx[:, None], gy - cy[:, None])


def _nearest(points: np.ndarray, seeds: np.ndarray, k: int, C: int, labels: np.ndarray | None) -> tuple[np.ndarray, int]:
    """The ``k`` nearest positions of each seed ``(S, k)``, the seed first; with ``labels``, among
    positions of the seed's label only (``k`` then shrinks to the smallest label's size)."""
    if labels is None:
        _, nearest = cKDTree(points).query(points[seeds], k=k)
        return np.asarray(nearest).reshape(len(seeds), k), k
    labels = np.asarray(labels)
    members = [np.flatnonzero(labels == lab) for lab in np.unique(labels[seeds])]
    k = min(k, min(len(m) for m in members))
    if k < C:
        raise DataError(f"a fold of the scan holds only {k} positions; a group needs {C}")
    nearest = np.empty((len(seeds), k), np.int64)
    for pool in members:
        rows = np.flatnonzero(labels[seeds] == labels[pool[0]])
        _, local = cKDTree(points[pool]).query(points[seeds[rows]], k=k)
        nearest[rows] = pool[np.asarray(local).reshape(len(rows), k)]
    return nearest, k


def _order_by_angle(members: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sort each group's members by angle about its centroid (ties by index), counter-clockwise
    from the −x axis, so channel order depends only on geometry."""
    gx, gy = x[members], y[members]
    angle = np.arctan2(gy - gy.mean(axis=1, keepdims=True), gx - gx.mean(axis=1, keepdims=True))
    tie_break = 1e-9 * members / len(x)  # equal angles (coincident positions) order by index
    order = np.argsort(angle + tie_break, axis=1, kind="stable")
    return np.take_along_axis(members, order, axis=1)
