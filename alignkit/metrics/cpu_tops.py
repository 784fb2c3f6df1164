"""The CPU search of the blocked product (:mod:`alignkit.metrics.blocked`): its driver
:func:`cpu_product_search` and its numba kernels, on the block plan and GEMM rows of
:mod:`alignkit.metrics.blocks`.

The product is computed in row blocks by the BLAS (one worker per core);
:meth:`ColumnTops.scan` reads each block once, a group of ``_GROUP`` rows at a time, keeping
every row's k largest values and every column's running k largest over the blocks one
worker has seen, and copies the group's query columns out, transposed;
:meth:`ColumnTops.scan_with_plain` also derives the plain cosines of each group while its
rows are in cache (:func:`plain_from_centred`, float64) and scans those for the plain space;
:func:`alignkit.metrics.cpu_rank.ranked_rows` ranks the kept query rows.

Exact. A value enters a top-k list only if it beats the list's current k-th value, so each
list always holds the k largest values seen so far (radii use values only, so tie order
never matters). In the rankings columns are scanned in increasing index, a score enters only
if it beats the worst kept one, and the one evicted is the worst: lowest score, highest
index among equal scores, as ``np.argsort(-s, kind="stable")``. The tests check all of it
against sorting the product the blocks computed, ties included.

Cheap: chunk and group maxima bound what has to be looked at, and workers share a per-column
floor; how, and what it measured, is in docs/benchmarks.md ("How the CPU search stays cheap").

Inputs are cosines: finite, far above the sentinel ``_NEG`` (-3e38), which lets the kernels
compile with fastmath. This module (and numba) is imported only when a CPU search runs; the
first call in a fresh install compiles the kernels (a few seconds), later processes load
them from numba's cache.
"""
from __future__ import annotations

import numpy as np
import torch
from numba import njit

from alignkit.metrics import blocks
from alignkit.metrics.blocks import PlainFromCentred, ProductSearch, block_plan, run_blocks
from alignkit.metrics.buffers import reused_buffer
from alignkit.metrics.cpu_rank import ranked_rows

_GROUP = blocks.ROW_MULTIPLE   # rows per group: the unit of the column pass and of the two-space pass
_SUPER = 1024  # columns per super-chunk of the scan's lane maxima: 16 lanes x 64 columns
_NEG = np.float32(-3.0e38)
_FIRST_ROWS = 256  # rows of each worker's first block (see _small_first)
_LAST_PIECES = 4   # the last blocks are re-cut into pieces of a quarter block (see _small_last)
_NO_TT = np.empty((0, 0), dtype=np.float32)   # "not fresh": the column tops take the group-maximum path

_jit = njit(nogil=True, cache=True, boundscheck=False, fastmath=True)


@_jit
def _insert(top, k, v):
    """Replace the smallest of top[:k] by v (v is larger); return the new smallest."""
    a = 0
    for i in range(1, k):
        if top[i] < top[a]:
            a = i
    top[a] = v
    m = top[0]
    for i in range(1, k):
        if top[i] < m:
            m = top[i]
    return m


@_jit
def _lane_maxima(row, g1, cmax, nsb, fold):
    """One read of ``row``: cmax[16 b + l] = the maximum of lane l of super-chunk b, i.e. of
    row[1024 b + l + 16 t] for t < 64 (a chunk of 64 columns, strided by 16: a vertical
    maximum of 16-wide vectors, no horizontal fold), for the ``nsb`` full super-chunks; and
    the group's column maxima ``g1``: ``fold`` 0 sets g1 = row, 1 folds g1 = max(g1, row),
    2 leaves g1 alone. Four 16-wide accumulators break the dependency chain."""
    acc = np.empty(64, dtype=np.float32)
    n = row.shape[0]
    if fold == 0:
        for j in range(n):
            g1[j] = row[j]
    for sb in range(nsb):
        b = sb * _SUPER
        for i in range(64):
            acc[i] = row[b + i]
        if fold == 1:
            for i in range(64):
                g1[b + i] = max(g1[b + i], row[b + i])
            for t in range(1, 16):
                o = b + 64 * t
                for i in range(64):
                    v = row[o + i]
                    acc[i] = max(acc[i], v)
                    g1[o + i] = max(g1[o + i], v)
        else:
            for t in range(1, 16):
                o = b + 64 * t
                for i in range(64):
                    acc[i] = max(acc[i], row[o + i])
        for i in range(16):
            cmax[sb * 16 + i] = max(max(acc[i], acc[16 + i]), max(acc[32 + i], acc[48 + i]))
    if fold == 1:
        for j in range(nsb * _SUPER, n):
            g1[j] = max(g1[j], row[j])


@_jit
def _row_top(row, cmax, nsb, k, top, sel):
    """top[:k] = the k largest values of ``row`` (any order), given its lane maxima
    (:func:`_lane_maxima`: chunk c = lane c % 16 of super-chunk c // 16).

    The k-th largest chunk maximum t bounds the row's k-th largest value from below (k
    distinct chunks each hold a value >= t), so only values >= t, in chunks whose maximum
    reaches t, are looked at (about k of them on real data); the ragged tail past the last
    full super-chunk is always read.
    """
    n = row.shape[0]
    nc = 16 * nsb
    t = _NEG
    if nc >= k:
        for i in range(k):
            sel[i] = cmax[i]
        t = sel[0]
        for i in range(1, k):
            t = min(t, sel[i])
        for c in range(k, nc):
            if cmax[c] > t:
                t = _insert(sel, k, cmax[c])
    filled = 0
    tmin = _NEG
    for c in range(nc + 1):                      # chunk nc is the ragged tail
        if c < nc:
            if cmax[c] < t or (filled == k and cmax[c] <= tmin):
                continue
            j0, j1, step = (c // 16) * _SUPER + c % 16, (c // 16 + 1) * _SUPER, 16
        else:
            j0, j1, step = nsb * _SUPER, n, 1
        for j in range(j0, j1, step):
            v = row[j]
            if v < t:
                continue
            if filled < k:
                top[filled] = v
                filled += 1
                if filled == k:
                    tmin = top[0]
                    for i in range(1, k):
                        tmin = min(tmin, top[i])
            elif v > tmin:
                tmin = _insert(top, k, v)


@_jit
def _insert_sorted(s, r0, r1, tt):
    """Fold rows r0:r1 of ``s`` into ``tt`` ``[k, n]``, each column's k largest values so far
    in descending order: a value above its column's k-th enters by insertion (max down, min
    on); the test against the k-th level is one vectorised compare per row."""
    k, n = tt.shape
    last = tt[k - 1]
    for r in range(r0, r1):
        row = s[r]
        for j in range(n):
            v = row[j]
            if v > last[j]:
                for lvl in range(k):
                    a = tt[lvl, j]
                    tt[lvl, j] = max(a, v)
                    v = min(a, v)


@_jit
def _group_tops(s, r0, r1, k, row_top, col_top, col_min, floor, g1, cmax, sel, tqt, off, tt):
    """Rows r0:r1 (one group) of block ``s``: their row top-k into ``row_top[r0:r1]``, their
    column maxima folded into the column tops (into ``tt`` by sorted insertion while a worker
    is fresh, ``tt`` non-empty: then nearly every column would be visited), their query
    columns into ``tqt[:, off + r0:]``."""
    n = s.shape[1]
    nsb = n // _SUPER
    fresh = tt.shape[0] > 0
    for r in range(r0, r1):                      # lane maxima and (unless fresh) the group's column maxima
        _lane_maxima(s[r], g1, cmax, nsb, 2 if fresh else (0 if r == r0 else 1))
        _row_top(s[r], cmax, nsb, k, row_top[r], sel)
    if fresh:
        _insert_sorted(s, r0, r1, tt)
    else:
        for j in range(n):
            t = max(col_min[j], floor[j])
            if g1[j] <= t:
                continue
            top = col_top[j]                     # rare after a few thousand rows: visit the column's rows
            m = col_min[j]
            for r in range(r0, r1):
                v = s[r, j]
                if v > max(m, t):
                    m = _insert(top, k, v)
            col_min[j] = m
            if m > floor[j]:
                floor[j] = m
    q = tqt.shape[0]
    for j in range(q):                           # 16 rows -> one cache line of tqt per column
        for r in range(r0, r1):
            tqt[j, off + r] = s[r, j]


@_jit
def _block_tops(s, k, row_top, col_top, col_min, floor, g1, cmax, tqt, off, tt):
    sel = np.empty(k, dtype=np.float32)
    for r0 in range(0, s.shape[0], _GROUP):
        _group_tops(s, r0, min(r0 + _GROUP, s.shape[0]), k, row_top, col_top, col_min, floor, g1, cmax, sel,
                    tqt, off, tt)


@_jit
def _block_two_spaces(s, out, k, rt1, top1, min1, floor1, tq1, tt1, rt2, top2, min2, floor2, tq2, tt2,
                      a, f, p, b, gc, w, off, g1, cmax):
    """One pass over block ``s`` of the centred product, a group of rows at a time while it
    is in cache: the centred space's tops, then the plain cosines of the same rows into
    ``out``, then the plain space's tops. ``out`` is either as tall as ``s`` (rows kept: the
    source queries) or one group tall: a scratch that stays in cache, so the block itself is
    only read (no plain rows written back to memory)."""
    sel = np.empty(k, dtype=np.float32)
    whole = out.shape[0] == s.shape[0]
    for r0 in range(0, s.shape[0], _GROUP):
        r1 = min(r0 + _GROUP, s.shape[0])
        _group_tops(s, r0, r1, k, rt1, top1, min1, floor1, g1, cmax, sel, tq1, off, tt1)
        if whole:
            _derive_rows(s, out, r0, r1, a, f, p, b, gc, w)
            _group_tops(out, r0, r1, k, rt2, top2, min2, floor2, g1, cmax, sel, tq2, off, tt2)
        else:
            m = r1 - r0
            _derive_rows(s[r0:r1], out, 0, m, a[r0:r1], f[r0:r1], p[r0:r1], b, gc, w)
            _group_tops(out[:m], 0, m, k, rt2[r0:r1], top2, min2, floor2, g1, cmax, sel, tq2, off + r0, tt2)


@njit(nogil=True, cache=True, boundscheck=False)  # no fastmath: torch repeats these float64 steps bit for bit
def _derive_rows(g, out, r0, r1, a, f, p, b, gc, w):
    """Rows r0:r1 of :func:`plain_from_centred`, four rows per read of the column
    coefficients (each element's float64 steps as written, so the bits do not change)."""
    n = g.shape[1]
    i = r0
    while i + 4 <= r1:
        a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        f0, f1, f2, f3 = f[i], f[i + 1], f[i + 2], f[i + 3]
        p0, p1, p2, p3 = p[i], p[i + 1], p[i + 2], p[i + 3]
        for j in range(n):
            bj, gj, wj = b[j], gc[j], w[j]
            out[i, j] = np.float32(a0 * bj * np.float64(g[i, j]) + f0 * gj * (p0 + wj))
            out[i + 1, j] = np.float32(a1 * bj * np.float64(g[i + 1, j]) + f1 * gj * (p1 + wj))
            out[i + 2, j] = np.float32(a2 * bj * np.float64(g[i + 2, j]) + f2 * gj * (p2 + wj))
            out[i + 3, j] = np.float32(a3 * bj * np.float64(g[i + 3, j]) + f3 * gj * (p3 + wj))
        i += 4
    for i in range(i, r1):
        ai, fi, pi = a[i], f[i], p[i]
        for j in range(n):
            out[i, j] = np.float32(ai * b[j] * np.float64(g[i, j]) + fi * gc[j] * (pi + w[j]))


def plain_from_centred(g: np.ndarray, out: np.ndarray, row: np.ndarray, col: np.ndarray) -> None:
    """``out = a bᵀ ∘ g + (f gᵀ) ∘ (p 1ᵀ + 1 wᵀ)`` elementwise in float64, rounded once to
    float32 (``out`` may be ``g``). ``g`` ``[r, n]`` float32 block of the centred product,
    ``row`` ``[3, r]`` = (a, f, p) of its rows, ``col`` ``[3, n]`` = (b, g, w) (float64)."""
    _derive_rows(g, out, 0, g.shape[0], row[0], row[1], row[2], col[0], col[1], col[2])


class ColumnTops:
    """One worker's running k largest values of every column, and its scratch space.

    ``floor`` (shared by all workers, ``[n_cols]``): per column, the largest k-th value any
    worker's list has reached. Workers update it without locks; a stale read is still a
    valid bound, so the merged lists stay exact.
    """

    def __init__(self, n_cols: int, k: int, floor: np.ndarray):
        self.k, self.floor = k, floor
        self.top = np.full((n_cols, k), _NEG, dtype=np.float32)
        self.min = np.full(n_cols, _NEG, dtype=np.float32)
        self._g1 = np.empty(n_cols, dtype=np.float32)
        self._cmax = np.empty(n_cols // 64 + 1, dtype=np.float32)   # lane maxima: 16 per 1024 columns
        # the first block a worker scans goes into ``_tt`` [k, n] by sorted insertion (there
        # the group-maximum test would let nearly every column through to a visit)
        self._tt = np.full((k, n_cols), _NEG, dtype=np.float32)

    def _fresh(self) -> np.ndarray:
        return self._tt if self._tt is not None else _NO_TT

    def _settle(self) -> None:
        """After a worker's first block: its sorted lists become its column tops."""
        if self._tt is not None:
            self.top[:] = self._tt.T
            self.min[:] = self._tt[-1]
            np.maximum(self.floor, self.min, out=self.floor)  # a racing lower write is still a valid bound
            self._tt = None

    def scan(self, s: np.ndarray, row_top: np.ndarray, query_cols: np.ndarray, start: int) -> None:
        """Fold block ``s`` (C-contiguous float32 ``[rows, n_cols]``, rows ``start:start + rows``
        of S) into the column tops, write each of its rows' k largest values (any order) to
        ``row_top`` ``[rows, k]`` and its first ``q`` columns, transposed, to
        ``query_cols[:, start:start + rows]`` (``query_cols`` ``[q, n_rows of S]``)."""
        _block_tops(s, self.k, row_top, self.top, self.min, self.floor, self._g1, self._cmax, query_cols, start,
                    self._fresh())
        self._settle()

    def scan_with_plain(self, s: np.ndarray, row_top: np.ndarray, query_cols: np.ndarray, start: int,
                        plain: "ColumnTops", out: np.ndarray, plain_row_top: np.ndarray, plain_query_cols: np.ndarray,
                        row: np.ndarray, col: np.ndarray) -> None:
        """:meth:`scan` of block ``s`` of the centred product, then of the plain cosines derived
        from it (:func:`plain_from_centred` with ``row`` = its rows' coefficients, ``col``; written
        to ``out``: as tall as ``s``, which it may be, or a ``[_GROUP, n_cols]`` scratch) into
        ``plain``'s tops: one pass, a group of rows at a time."""
        _block_two_spaces(s, out, self.k, row_top, self.top, self.min, self.floor, query_cols, self._fresh(),
                          plain_row_top, plain.top, plain.min, plain.floor, plain_query_cols, plain._fresh(),
                          row[0], row[1], row[2], col[0], col[1], col[2], start, self._g1, self._cmax)
        self._settle()
        plain._settle()


def column_tops(n_cols: int, k: int, workers: int) -> list[ColumnTops]:
    """One :class:`ColumnTops` per worker, sharing one floor."""
    floor = np.full(n_cols, _NEG, dtype=np.float32)
    return [ColumnTops(n_cols, k, floor) for _ in range(workers)]


def merged_column_tops(parts: list[ColumnTops]) -> np.ndarray:
    """The k largest values of every column over all workers' parts, ``[n_cols, k]``."""
    k = parts[0].k
    if len(parts) == 1:
        return parts[0].top
    both = np.concatenate([p.top for p in parts], axis=1)
    return np.partition(both, both.shape[1] - k, axis=1)[:, -k:]


def mean_of_top(top: np.ndarray) -> np.ndarray:
    """float64 mean of each row's values, summed largest first (as the torch path does)."""
    return np.sort(top, axis=1)[:, ::-1].astype(np.float64).mean(axis=1)


def _small_first(blocks: list[tuple[int, int]], workers: int, rows: int = _FIRST_ROWS) -> list[tuple[int, int]]:
    """The block plan with each worker's first block cut to ``rows`` rows: the first ``workers``
    blocks are split and their first pieces go first (the workers take blocks in order). A
    worker's first block fills its column tops by sorted insertion, which costs more per row
    than the group-maximum test of later blocks (measured at 1504 rows: 109 vs 62 ms)."""
    heads, rests = [], []
    for start, stop in blocks[:workers]:
        if stop - start > rows:
            heads.append((start, start + rows))
            rests.append((start + rows, stop))
        else:
            heads.append((start, stop))
    return heads + rests + blocks[workers:]


def _small_last(blocks: list[tuple[int, int]], workers: int, pieces: int = _LAST_PIECES,
                keep: int = 0) -> list[tuple[int, int]]:
    """The block plan with the rows of its last ``workers`` blocks re-cut into even pieces of
    about a ``pieces``-th of a block (edges on multiples of ``_GROUP`` rows): a worker that finishes waits at
    most a piece for the others instead of up to a whole block (measured: the two workers
    finished 0.09 s apart on average, of a 1.4 s search). Only a contiguous tail is re-cut, and
    no piece crosses row ``keep`` (the kept query rows end there)."""
    if len(blocks) <= 2 * workers:
        return blocks
    tail = blocks[-workers:]
    if any(a[1] != b[0] for a, b in zip(tail, tail[1:])):
        return blocks
    start, stop = tail[0][0], tail[-1][1]
    size = max(b - a for a, b in blocks)
    count = -(-(stop - start) * pieces // size)                   # pieces of at most a pieces-th of a block
    edges = sorted({start, stop, *(start + (stop - start) * i // count // _GROUP * _GROUP for i in range(1, count)),
                    *((keep,) if start < keep < stop else ())})
    return blocks[:-workers] + list(zip(edges[:-1], edges[1:]))


def cpu_product_search(xn, yn, q_src, q_tgt, kmax, csls_k, block_rows,
                        outputs: tuple[PlainFromCentred | None, ...] = (None,)) -> list[ProductSearch]:
    """One ProductSearch per entry of ``outputs``: None = the product xn ynᵀ itself, a
    :class:`~alignkit.metrics.spaces.PlainFromCentred` = the plain product derived
    from it (xn, yn then being the centred unit rows). The CPU path of
    :func:`alignkit.metrics.blocked.product_search` (same arguments). Each block's GEMM runs
    once; with both outputs, each group of a block's rows is scanned, turned into the plain
    cosines (into a one-group scratch that stays in cache, or into the kept query rows) and
    scanned again
    (:meth:`ColumnTops.scan_with_plain`). ``outputs`` is ``(None,)``, ``(derive,)`` or
    ``(None, derive)``."""
    dev = torch.device("cpu")
    n_src, n_tgt = xn.shape[0], yn.shape[0]
    workers = max(1, min(torch.get_num_threads(), 8))

    class Space:  # what one output keeps beyond a block
        def __init__(self, derive, i):
            self.derive = derive
            self.head = reused_buffer(f"head{i}", (q_src, n_tgt))   # S[:q_src]: the source queries
            self.tqt = reused_buffer(f"tqt{i}", (q_tgt, n_src))     # S[:, :q_tgt]ᵀ: the target queries
            self.row_top = np.empty((n_src, csls_k), dtype=np.float32)
            self.cols = column_tops(n_tgt, csls_k, workers)

    if not (len(outputs) == 1 or (len(outputs) == 2 and outputs[0] is None and outputs[1] is not None)):
        raise ValueError("outputs: (None,), (derive,) or (None, derive)")
    spaces = [Space(d, i) for i, d in enumerate(outputs)]
    scratch: list = [None] * workers
    yt = yn.T

    def block(start: int, stop: int, wid: int) -> None:
        if stop <= q_src:
            s = spaces[0].head[start:stop]
        else:                                        # this worker's block buffer (see kept_buffers)
            s = bufs[wid][:stop - start]
        blocks.gemm_rows(xn, yt, start, stop, s)
        first = spaces[0]
        if first.derive is not None:                 # the plain space alone: derive in place, scan
            plain_from_centred(s, s, first.derive.rows(start, stop), first.derive.col)
        if len(spaces) == 1:
            first.cols[wid].scan(s, first.row_top[start:stop], first.tqt, start)
            return
        plain = spaces[1]                            # the product itself, then the plain space from it
        if stop <= q_src:
            out = plain.head[start:stop]             # kept: the plain space's source queries
        else:                                        # one group of plain rows at a time, in cache
            if scratch[wid] is None:
                scratch[wid] = np.empty((_GROUP, n_tgt), dtype=np.float32)
            out = scratch[wid]
        first.cols[wid].scan_with_plain(s, first.row_top[start:stop], first.tqt, start, plain.cols[wid], out,
                                        plain.row_top[start:stop], plain.tqt, plain.derive.rows(start, stop),
                                        plain.derive.col)

    plan = _small_first(block_plan(n_src, n_tgt, q_src, dev, block_rows), workers, _FIRST_ROWS)
    plan = _small_last(plan, workers, _LAST_PIECES, keep=q_src)
    tall = max(stop - start for start, stop in plan)
    bufs = [reused_buffer(f"block{w}", (tall, n_tgt)) for w in range(workers)]   # kept: see kept_buffers
    run_blocks(plan, block, workers)
    radii = [(mean_of_top(sp.row_top), mean_of_top(merged_column_tops(sp.cols))) for sp in spaces]
    jobs = []                                    # (query rows, radii, NN out, CSLS out): one read per row
    for sp, (src_radii, tgt_radii) in zip(spaces, radii):
        r_t, r_s = tgt_radii.astype(np.float32), src_radii.astype(np.float32)
        jobs += [(rows, r, np.empty((len(rows), kmax), dtype=np.int64), np.empty((len(rows), kmax), dtype=np.int64))
                 for rows, r in ((sp.head, r_t), (sp.tqt, r_s))]
    step = 128
    parts = [(rows, r, nn, cs, i, min(i + step, len(rows))) for rows, r, nn, cs in jobs
             for i in range(0, len(rows), step)]
    run_blocks(parts, lambda rows, r, nn, cs, i, j, wid: ranked_rows(rows[i:j], r, kmax, nn[i:j], cs[i:j]),
                workers)
    return [ProductSearch(src_radii, tgt_radii, *jobs[2 * n][2:], *jobs[2 * n + 1][2:])
            for n, (src_radii, tgt_radii) in enumerate(radii)]
