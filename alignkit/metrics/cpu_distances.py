"""The silhouette's one pass over a Gram matrix (:mod:`alignkit.metrics.clusters`), in numba.

A module of its own so that importing the metrics does not load numba: it is imported only
when a silhouette is computed (the first call in a fresh install compiles it; later
processes load it from numba's cache).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, boundscheck=False)  # no fastmath: the sums keep scikit-learn's rounding
def _distance_sums(g, sq, off, n_first, sums):
    for r in range(g.shape[0]):
        i = off + r
        si = sq[i]
        s0 = 0.0
        s1 = 0.0
        for j in range(n_first):
            d2 = si + sq[j] - 2.0 * g[r, j]
            if d2 > 0.0 and j != i:
                s0 += np.sqrt(d2)
        for j in range(n_first, g.shape[1]):
            d2 = si + sq[j] - 2.0 * g[r, j]
            if d2 > 0.0 and j != i:
                s1 += np.sqrt(d2)
        sums[r, 0] = s0
        sums[r, 1] = s1


def distance_sums(g: np.ndarray, sq: np.ndarray, off: int, n_first: int, sums: np.ndarray) -> None:
    """For rows ``off + r`` of a set with squared norms ``sq`` and inner products ``g``
    ``[rows, n]`` (float64) with all n rows: ``sums[r]`` = the sums of Euclidean distances
    (sqrt of max(d², 0), self excluded) to rows ``:n_first`` and to the rest
    (the silhouette of :mod:`alignkit.metrics.clusters`)."""
    _distance_sums(g, sq, off, n_first, sums)
