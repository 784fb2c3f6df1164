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


class RecordedProducts:
    """Every row block that the searches' GEMMs (``alignkit.metrics.blocks.gemm_rows``, on
    the CPU path and on the torch path run on the CPU) computed while :func:`recorded_products`
    was active, gathered into one whole product per pair of operands.

    The exact tests (ties included) sort the product the search itself made, not a product
    computed again: row blocks of a GEMM need not have the bits of the whole product, nor of
    the same rows in another block or under another thread count. OpenBLAS's AVX2 kernels
    (Haswell/Zen: the 2026-12-02 VM with ``OPENBLAS_CORETYPE=Haswell``, the Zen 3 VM of
    2026-12-06) round a row by where it falls in the call and by the BLAS thread count, which
    two searches in two threads change for each other (``threadpool_limits`` is process-wide);
    the AVX-512 "SkylakeX" kernels did not, in the same numpy 2.4.6."""

    def __init__(self, gemm_rows):
        import threading

        self._gemm_rows, self._lock, self._seen = gemm_rows, threading.Lock(), {}

    def __call__(self, xn: np.ndarray, yt: np.ndarray, start: int, stop: int, out: np.ndarray) -> None:
        self._gemm_rows(xn, yt, start, stop, out)
        key = (xn.__array_interface__["data"][0], xn.shape, yt.__array_interface__["data"][0], yt.shape)
        with self._lock:   # the operands are held, so their addresses are not reused while recording
            if key not in self._seen:
                self._seen[key] = (xn, yt, np.full((len(xn), yt.shape[1]), np.nan, np.float32))
            whole = self._seen[key][2]
        whole[start:stop] = out

    def product(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The recorded ``x yᵀ`` (matched by the operands' values); every row must have been computed."""
        with self._lock:
            seen = list(self._seen.values())
        for xn, yt, whole in reversed(seen):
            if xn.shape == x.shape and yt.shape[::-1] == y.shape and np.array_equal(xn, x) and np.array_equal(yt.T, y):
                assert not np.isnan(whole).any(), "a row of the product was never computed"
                return whole
        raise LookupError(f"no recorded product of {x.shape} x {y.shape}")


def recorded_products():
    """Context manager: record the searches' GEMM blocks (:class:`RecordedProducts`)."""
    import contextlib

    from alignkit.metrics import blocks

    @contextlib.contextmanager
    def recording():
        saved = blocks.gemm_rows
        rec = RecordedProducts(saved)
        blocks.gemm_rows = rec     # the one place both searches compute their blocks
        try:
            yield rec
        finally:
            blocks.gemm_rows = saved

    return recording()
