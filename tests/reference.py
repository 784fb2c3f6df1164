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


def blockwise_product(xn: np.ndarray, yn: np.ndarray, head: int, block_rows: int | None = None,
                      torch_path: bool = False) -> np.ndarray:
    """``xn ynᵀ`` (float32) computed as a blocked search computes it: the same row blocks
    (:func:`alignkit.metrics.blocked._blocks`; the CPU path keeps ``head`` = q_src rows, the
    torch path :func:`~alignkit.metrics.blocked.torch_head_rows`) and the same BLAS threads (one per block when a
    phase has several blocks and there are several workers, as ``single_threaded_map`` runs
    them; the BLAS's own threads for a lone block).

    Row blocks of a GEMM need not have the bits of the whole product: OpenBLAS's AVX2
    "Haswell" kernels (which ``OPENBLAS_CORETYPE=Haswell`` selects, as the 2026-12-02 development
    VM set it) round a row by where it falls in the call and by the thread count; its AVX-512
    "SkylakeX" kernels did not, in the same numpy 2.4.6. So the exact tests (ties included)
    sort the product the search itself made.
    """
    import contextlib

    import torch
    from threadpoolctl import threadpool_limits

    from alignkit.metrics.blocked import _blocks, _gemm_rows, torch_head_rows

    n_src = len(xn)
    if torch_path:
        head = torch_head_rows(head, n_src)
    blocks = _blocks(n_src, len(yn), head, torch.device("cpu"), block_rows)
    phases = [[b for b in blocks if b[0] < head], [b for b in blocks if b[0] >= head]] if torch_path else [blocks]
    workers = max(1, min(torch.get_num_threads(), 8))
    s = np.empty((n_src, len(yn)), dtype=np.float32)
    for phase in phases:
        with threadpool_limits(1) if workers > 1 and len(phase) > 1 else contextlib.nullcontext():
            for a, b in phase:
                _gemm_rows(xn, yn.T, a, b, s[a:b])
    return s
