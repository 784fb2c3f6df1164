"""The rankings of the CPU search (:mod:`alignkit.metrics.cpu_tops`): the kmax best columns of
each kept query row, by S (NN) or 2S − r (CSLS), under the order (higher score, then lower
index), as ``np.argsort(-s, kind="stable")``, both rankings from one read of each row.

Columns are scanned in increasing index: a score enters only if it beats the worst kept one
(an equal score later has a higher index and ranks below it), and the one evicted is the
worst (lowest score, highest index among equal scores). Chunks of 64 contiguous columns
whose maximum cannot enter are skipped.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_CHUNK = 64   # columns per chunk maximum (_chunk_maxima assumes 64)
_NEG = np.float32(-3.0e38)

_jit = njit(nogil=True, cache=True, boundscheck=False, fastmath=True)


@_jit
def _chunk_maxima(row, cmax, nc):
    """cmax[c] = max(row[64c : 64c + 64]): four 16-wide slices folded lane by lane (this
    vectorises; a plain running maximum does not), then 16 lanes folded."""
    lanes = np.empty(16, dtype=np.float32)
    for c in range(nc):
        b = c * _CHUNK
        for i in range(16):
            lanes[i] = max(max(row[b + i], row[b + 16 + i]), max(row[b + 32 + i], row[b + 48 + i]))
        m = lanes[0]
        for i in range(1, 16):
            m = max(m, lanes[i])
        cmax[c] = m


@_jit
def _select(score, cmax, nc, kmax, vals, idx, out):
    """out[:kmax] = the column indices of the kmax best ``score`` values, best first (higher
    score, then lower index), given the maxima of its 64-column chunks."""
    n = score.shape[0]
    filled = 0
    worst = 0
    tmin = _NEG
    for c in range(nc + 1):
        if c < nc and filled == kmax and cmax[c] <= tmin:
            continue
        for j in range(c * _CHUNK, min(c * _CHUNK + _CHUNK, n)):
            v = score[j]
            if filled < kmax:
                vals[filled] = v
                idx[filled] = j
                filled += 1
                if filled < kmax:
                    continue
            elif v > tmin:
                vals[worst] = v
                idx[worst] = j
            else:
                continue
            worst = 0                            # the worst kept: lowest score, then highest index
            for i in range(1, kmax):
                if vals[i] < vals[worst] or (vals[i] == vals[worst] and idx[i] > idx[worst]):
                    worst = i
            tmin = vals[worst]
    for a in range(kmax):                        # best first: higher score, then lower index
        b = a
        for i in range(a + 1, kmax):
            if vals[i] > vals[b] or (vals[i] == vals[b] and idx[i] < idx[b]):
                b = i
        vals[a], vals[b] = vals[b], vals[a]
        idx[a], idx[b] = idx[b], idx[a]
        out[a] = idx[a]


@_jit
def _ranked_rows(s, radii, kmax, out_nn, out_csls, score, cmax):
    rows, n = s.shape
    nc = n // _CHUNK
    vals = np.empty(kmax, dtype=np.float32)
    idx = np.empty(kmax, dtype=np.int64)
    two = np.float32(2.0)
    for r in range(rows):
        row = s[r]
        if out_nn.shape[0]:
            _chunk_maxima(row, cmax, nc)
            _select(row, cmax, nc, kmax, vals, idx, out_nn[r])
        if out_csls.shape[0]:                    # the row is in cache now: its CSLS scores
            for j in range(n):
                score[j] = two * row[j] - radii[j]
            _chunk_maxima(score, cmax, nc)
            _select(score, cmax, nc, kmax, vals, idx, out_csls[r])


def ranked_rows(s: np.ndarray, radii: np.ndarray | None, kmax: int, out: np.ndarray,
                out_csls: np.ndarray | None = None) -> None:
    """``out[i]`` = the column indices of the kmax best scores of row ``s[i]`` (``s`` float32
    ``[rows, n]``, C-contiguous; kmax <= n), best first, ties to the lower index. Scores: ``s``
    (NN) without ``radii``; with ``radii`` (``[n]`` float32) ``2 s − radii`` in float32 (CSLS),
    unless ``out_csls`` is given too: then ``out`` gets the NN ranking and ``out_csls`` the
    CSLS one, from one read of each row."""
    n = s.shape[1]
    none = np.empty((0, kmax), dtype=np.int64)
    if radii is None:
        nn, cs, radii = out, none, np.zeros(0, dtype=np.float32)
    else:
        nn, cs = (none, out) if out_csls is None else (out, out_csls)
    _ranked_rows(s, radii, kmax, nn, cs, np.empty(n, dtype=np.float32), np.empty(n // _CHUNK + 1, dtype=np.float32))
