"""Shared float64 reference computations for the metric tests (the SPEC definitions written out)."""
from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)


def prepared_spaces(queries, pool, query_space=None, center: bool = False):
    """(queries, pool, query space) in float64, centred as the metrics centre them (the query
    side by its space's mean, the pool by its own), then unit-normalised."""
    x, y = np.asarray(queries, np.float64), np.asarray(pool, np.float64)
    qs = x if query_space is None else np.asarray(query_space, np.float64)
    if center:
        mu = qs.mean(axis=0)
        x, qs, y = x - mu, qs - mu, y - y.mean(axis=0)
    return unit(x), unit(y), unit(qs)


def product_search_by_sorting(s: np.ndarray, q_src: int, q_tgt: int, kmax: int, k: int) -> tuple:
    """Everything a blocked ProductSearch holds (src/tgt radii; src NN, src CSLS, tgt NN, tgt
    CSLS rankings), by sorting the whole float32 product ``s`` (ties to the lower index)."""
    src_r = np.sort(s, 1)[:, ::-1][:, :k].astype(np.float64).mean(1)
    tgt_r = np.sort(s, 0)[::-1][:k].T.astype(np.float64).mean(1)

    def rank(m):
        return np.argsort(-m, axis=1, kind="stable")[:, :kmax]

    st = s[:, :q_tgt].T
    return (src_r, tgt_r, rank(s[:q_src]), rank(2 * s[:q_src] - tgt_r.astype(np.float32)),
            rank(st), rank(2 * st - src_r.astype(np.float32)))
