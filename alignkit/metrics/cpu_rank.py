"""The rankings of the CPU search (:mod:`alignkit.metrics.cpu_tops`): the kmax best columns of
each kept query row, by S (NN) or 2S − r (CSLS), under the order (higher score, then lower
index), as ``np.argsort(-s, kind="stable")``, both rankings from one read of each row.

Columns are scanned in increasing index: a score enters only if it beats the worst kept one
(an equal score later has a higher index and ranks below it), and the one evicted is the
worst (lowest score, highest index among equal scores). Chunks of 64 contiguous columns
whose maximum cannot enter are skipped. One pass over a row computes the chunk maxima of
both scores; the CSLS scores themselves are computed again only in the chunks a selection
scans.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_CHUNK = 64   # columns per chunk maximum (_chunk_maxima assumes 64)
_NEG = np.float32(-3.0e38)

_jit = njit(nogil=True, cache=True, boundscheck=False, fastmath=True)


@_jit
def _chunk_maxima(row, radii, csls, cmax, cmax_cs, nc):
    """cmax[c] = max(row[64c : 64c + 64]) and, with ``csls``, cmax_cs[c] = the same of the
    CSLS scores 2·row − radii, in one read of the row: four 16-wide slices folded lane by
    lane (this vectorises; a plain running maximum does not), then 16 lanes folded."""
    lanes = np.empty(16, dtype=np.float32)
    lanes_cs = np.empty(16, dtype=np.float32)
    two = np.float32(2.0)
    for c in range(nc):
        b = c * _CHUNK
        for i in range(16):
            lanes[i] = max(max(row[b + i], row[b + 16 + i]), max(row[b + 32 + i], row[b + 48 + i]))
        m = lanes[0]
        for i in range(1, 16):
            m = max(m, lanes[i])
        cmax[c] = m
        if csls:
            for i in range(16):
                lanes_cs[i] = max(max(two * row[b + i] - radii[b + i], two * row[b + 16 + i] - radii[b + 16 + i]),
                                  max(two * row[b + 32 + i] - radii[b + 32 + i],
                                      two * row[b + 48 + i] - radii[b + 48 + i]))
            m = lanes_cs[0]
            for i in range(1, 16):
                m = max(m, lanes_cs[i])
            cmax_cs[c] = m


@_jit
def _kth_largest(cmax, nc, kmax, top):
    """The kmax-th largest of cmax[:nc] (``top`` scratch of kmax), or the sentinel if nc < kmax."""
    if nc < kmax:
        return _NEG
    for c in range(kmax):
        top[c] = cmax[c]
    low = 0
    for i in range(1, kmax):
        if top[i] < top[low]:
            low = i
    for c in range(kmax, nc):
        if cmax[c] > top[low]:
            top[low] = cmax[c]
            low = 0
            for i in range(1, kmax):
                if top[i] < top[low]:
                    low = i
    return top[low]


@_jit
def _select(row, radii, csls, cmax, nc, kmax, vals, idx, out):
    """out[:kmax] = the column indices of the kmax best scores, best first (higher score,
    then lower index), given the maxima of their 64-column chunks: the kmax-th largest chunk
    maximum bounds the kmax-th score from below, so only chunks reaching it are read (a
    chunk strictly below holds no score that can be ranked in the first kmax). Scores: ``row`` (NN), or
    with ``csls`` 2·row − radii, computed only in the chunks that are scanned (the same
    float32 expression as in :func:`_chunk_maxima`; 2·row is exact, so fused or not it
    rounds once)."""
    n = row.shape[0]
    two = np.float32(2.0)
    floor = _kth_largest(cmax, nc, kmax, vals)  # kmax chunks reach it: the kmax-th score is >= it
    filled = 0
    worst = 0
    tmin = _NEG
    for c in range(nc + 1):
        if c < nc and (cmax[c] < floor or (filled == kmax and cmax[c] <= tmin)):
            continue
        for j in range(c * _CHUNK, min(c * _CHUNK + _CHUNK, n)):
            v = two * row[j] - radii[j] if csls else row[j]
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
def _ranked_rows(s, radii, kmax, out_nn, out_csls, cmax, cmax_cs):
    rows, n = s.shape
    nc = n // _CHUNK
    vals = np.empty(kmax, dtype=np.float32)
    idx = np.empty(kmax, dtype=np.int64)
    nn, csls = out_nn.shape[0] > 0, out_csls.shape[0] > 0
    for r in range(rows):
        row = s[r]
        if nn or csls:                           # one read of the row for both chunk maxima
            _chunk_maxima(row, radii, csls, cmax, cmax_cs, nc)
        if nn:                                   # the row is in cache now: both selections
            _select(row, radii, False, cmax, nc, kmax, vals, idx, out_nn[r])
        if csls:
            _select(row, radii, True, cmax_cs, nc, kmax, vals, idx, out_csls[r])


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
    _ranked_rows(s, radii, kmax, nn, cs, np.empty(n // _CHUNK + 1, dtype=np.float32),
                 np.empty(n // _CHUNK + 1, dtype=np.float32))
