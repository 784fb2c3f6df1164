"""The torch search of the blocked product (the GPU path; tests also run it on the CPU).

Radii are exact means of the k largest values: a chunk-maximum bound keeps every value that
can be among a row's k largest (:func:`_line_candidates`), and :class:`_ColumnTop` keeps
every value that can be among a column's over the blocks. Rankings are exact under the
order (higher score, then lower index), as ``np.argsort(-s, kind="stable")``. On a CPU the
blocks run in single-threaded worker threads; on a GPU one after another, GEMMs in fp32
(TF32 disabled).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from alignkit.metrics import blocks
from alignkit.metrics.blocks import PlainFromCentred, ProductSearch, block_plan, run_blocks

_CHUNK = 64                  # columns per chunk for row top-k values
_GROUP = blocks.ROW_MULTIPLE  # rows per chunk for column top-k values
_NEG = float("-inf")


def _order(v: torch.Tensor, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row of (values, indices) ``[r, m]`` by higher value, then lower index."""
    o = torch.argsort(i, dim=1)
    v, i = v.gather(1, o), i.gather(1, o)
    o = torch.argsort(v, dim=1, descending=True, stable=True)
    return v.gather(1, o), i.gather(1, o)


def stable_topk(m: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row of ``m`` ``[r, n]`` (k <= n) under (higher value, lower index).

    torch.topk keeps an arbitrary member of a tie group straddling rank k, so it is asked
    for k + 1: rows whose k-th and (k+1)-th values tie are redone with a stable full sort.
    Returns (values ``[r, k]``, int64 column indices ``[r, k]``), best first.
    """
    n = m.shape[1]
    v, i = torch.topk(m, min(k + 1, n), dim=1)
    if n > k:
        tied = torch.nonzero(v[:, k] == v[:, k - 1]).flatten()
        v, i = v[:, :k].clone(), i[:, :k].clone()
        if tied.numel():
            sv, si = torch.sort(m[tied], dim=1, descending=True, stable=True)
            v[tied], i[tied] = sv[:, :k], si[:, :k]
    return _order(v, i)


def _padded(v: torch.Tensor, lines: torch.Tensor, idx: torch.Tensor | None, n_lines: int):
    """Candidates sorted by line -> ``[n_lines, width]`` values (-inf padded) and indices
    (None when ``idx`` is None), each line's candidates left-aligned in their given order."""
    counts = torch.bincount(lines, minlength=n_lines)
    pos = torch.arange(v.numel(), device=v.device) - (torch.cumsum(counts, 0) - counts)[lines]
    width = max(int(counts.max()) if v.numel() else 0, 1)
    pad_v = v.new_full((n_lines, width), _NEG)
    pad_v[lines, pos] = v
    if idx is None:
        return pad_v, None
    pad_i = torch.full((n_lines, width), -1, dtype=torch.long, device=v.device)
    pad_i[lines, pos] = idx
    return pad_v, pad_i


def _line_candidates(s: torch.Tensor, k: int, with_index: bool = True):
    """Values of ``s`` ``[L, n]`` that can be among their row's k largest, as padded
    ``[L, width]`` (values, column indices or None), each row's in column order. Never
    misses one:

    rows are cut into chunks of _CHUNK columns and their maxima grouped by 4; the k-th
    largest group maximum t is a lower bound on the row's k-th largest value (k distinct
    groups each hold a value >= t), so only values >= t, found in the chunks whose maximum
    reaches t, are kept -- at least k per row, about k on real data.
    """
    L, n = s.shape
    c, g = _CHUNK, 4
    groups = n // (c * g)
    if groups < k:
        return s, torch.arange(n, device=s.device).expand(L, n) if with_index else None
    body_n = groups * c * g
    body = s[:, :body_n].reshape(L, groups * g, c)
    chunk_max = body.amax(2)
    t = chunk_max.reshape(L, groups, g).amax(2).topk(k, dim=1).values[:, -1:]
    li, cj = torch.nonzero(chunk_max >= t, as_tuple=True)       # row-major: by row, then chunk
    vals = body[li, cj]                                          # [chunks, c]
    ki, pos = torch.nonzero(vals >= t[li], as_tuple=True)
    parts = [_padded(vals[ki, pos], li[ki], cj[ki] * c + pos if with_index else None, L)]
    if body_n < n:
        tail = s[:, body_n:]
        tl, tc = torch.nonzero(tail >= t, as_tuple=True)
        parts.append(_padded(tail[tl, tc], tl, body_n + tc if with_index else None, L))
    pad_v = torch.cat([p[0] for p in parts], 1)
    return pad_v, torch.cat([p[1] for p in parts], 1) if with_index else None


def row_top_values(s: torch.Tensor, k: int) -> torch.Tensor:
    """The k largest values of each row of ``s`` ``[L, n]`` (k <= n), descending, ``[L, k]``.

    Exact and equal to ``row_topk(s, k)[0]``: the values of a top k do not depend on how
    ties are broken, so no indices are tracked and one unstable topk ranks the candidates.
    """
    return torch.topk(_line_candidates(s, k, with_index=False)[0], k, dim=1).values


def _select(pad_v: torch.Tensor, pad_i: torch.Tensor, k: int):
    """Per row of padded candidates (in index order), the k best under (higher value,
    lower index): a stable descending sort keeps equal values in index order."""
    v, o = torch.sort(pad_v, dim=1, descending=True, stable=True)
    return v[:, :k], pad_i.gather(1, o[:, :k])


def row_topk(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k of each row of ``s`` ``[L, n]`` (k <= n) under (higher value, lower
    index), like :func:`stable_topk`, ranking only what :func:`_line_candidates` keeps."""
    if s.shape[1] // (4 * _CHUNK) < k:
        return stable_topk(s, k)
    return _select(*_line_candidates(s, k), k)


class _ColumnTop:
    """Running k largest values of every column of S over the row blocks one worker sees.

    A column's current k-th value is a lower bound on its final one, so only the values of
    a new block at or above it can matter: they are found through the maxima of chunks of
    _GROUP rows and kept; every few blocks the kept values are merged into the top k
    (a grouped sort), which raises the bounds.
    """

    def __init__(self, top: torch.Tensor, k: int, floor: torch.Tensor | None = None):
        # top [n, k]: current top values (any order); floor: a bound already known to hold
        # (another worker holds the values that set it)
        self.top, self.k = top, k
        self.floor = top.amin(1) if floor is None else floor
        self.t = torch.maximum(self.floor, top.amin(1))
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.n_pending = 0

    def add(self, s: torch.Tensor, group_max: torch.Tensor | None = None) -> None:
        """Hold the values of ``s`` ``[b, n]`` at or above the bounds (``group_max``: the
        maxima of its groups of _GROUP rows, ``[b // _GROUP, n]``, when already known)."""
        b, n = s.shape
        full = b - b % _GROUP
        body = s[:full].reshape(full // _GROUP, _GROUP, n)
        group_max = body.amax(1) if group_max is None else group_max
        gi, cj = torch.nonzero(group_max >= self.t, as_tuple=True)
        vals = body[gi, :, cj]                                       # [candidates, _GROUP]
        keep = vals >= self.t[cj, None]
        self._hold(vals[keep], cj[:, None].expand_as(vals)[keep])
        if full < b:
            ri, rc = torch.nonzero(s[full:] >= self.t, as_tuple=True)
            self._hold(s[full + ri, rc], rc)

    def _hold(self, v: torch.Tensor, cols: torch.Tensor) -> None:
        self.pending.append((v, cols))
        self.n_pending += v.numel()
        if self.n_pending > self.top.numel():
            self.consolidate()

    def consolidate(self) -> None:
        if not self.pending:
            return
        n = self.top.shape[0]
        v = torch.cat([p[0] for p in self.pending])
        c = torch.cat([p[1] for p in self.pending])
        o = torch.argsort(c)
        pad_v, _ = _padded(v[o], c[o], c[o], n)
        self.top = torch.topk(torch.cat([self.top, pad_v], 1), self.k, dim=1).values
        self.t, self.pending, self.n_pending = torch.maximum(self.floor, self.top.amin(1)), [], 0

    def merge(self, other: "_ColumnTop") -> None:
        n = other.top.shape[0]
        self.pending += [(other.top.reshape(-1), torch.arange(n, device=other.top.device).repeat_interleave(self.k))]
        self.pending += other.pending
        self.consolidate()


@contextmanager
def _threads(n: int | None):
    """torch intra-op threads set to ``n`` (None: unchanged) inside the block."""
    saved = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextmanager
def _fp32(device: torch.device):
    """Full fp32 GEMMs on CUDA (no TF32), whatever the process-wide setting."""
    if device.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def _rows_in_workers(fn, n_rows: int, step: int, workers: int, out: torch.Tensor) -> torch.Tensor:
    """``out[i:j] = fn(i, j, worker_id)`` for row blocks of ``step`` rows, on the block workers.

    Small ops split over OpenMP threads stall badly on a shared CPU (measured 30x slower
    with 2 threads than with 1 under load), so they run single-threaded, a block per core.
    """
    def one(i: int, j: int, wid: int) -> None:
        out[i:j] = fn(i, j, wid)

    run_blocks([(i, min(i + step, n_rows)) for i in range(0, n_rows, step)], one, workers)
    return out


def _ranked(rows: torch.Tensor, radii: torch.Tensor | None, n_rows: int, kmax: int, step: int,
            workers: int, device) -> torch.Tensor:
    """Exact top-kmax column indices of ``rows[:n_rows]`` (NN) or of ``2 rows - radii``
    (CSLS, ``radii`` ``[1, n_cols]``), in row blocks.

    The CSLS scores go to one reused buffer per worker: a fresh ``[step, n_cols]`` tensor per
    block costs page faults that were measured at 1.5-2x the arithmetic. ``-radii + 2 rows``
    is bit-identical to ``2 rows - radii`` (doubling is exact, so one rounding either way).
    """
    out = torch.empty((n_rows, kmax), dtype=torch.long, device=device)
    if radii is None:
        return _rows_in_workers(lambda i, j, wid: row_topk(rows[i:j], kmax)[1], n_rows, step, workers, out)
    neg, bufs = -radii, [None] * workers

    def scores(i: int, j: int, wid: int) -> torch.Tensor:
        if bufs[wid] is None:
            bufs[wid] = torch.empty((min(step, n_rows), rows.shape[1]), device=device)
        return row_topk(torch.add(neg, rows[i:j], alpha=2, out=bufs[wid][:j - i]), kmax)[1]

    return _rows_in_workers(scores, n_rows, step, workers, out)


def _column_seed(head: torch.Tensor, k: int, step: int, workers: int) -> torch.Tensor:
    """The k largest values of every column of ``head`` ``[m, n]`` (any order), ``[n, k]``.

    Without transposing the head: the k-th largest maximum of the column's groups of _GROUP
    rows is a lower bound on its k-th largest value (k distinct groups each hold a value at
    or above it), so a :class:`_ColumnTop` started at that bound keeps every value that can
    be among the k largest -- about k per column -- and its merge ranks only those. Runs on
    slices of ``step`` columns on the block workers. Falls back to a transposed row top-k
    when the head has fewer than k groups.
    """
    m, n = head.shape
    groups = m // _GROUP
    out = torch.empty((n, k), device=head.device)
    if groups < k:
        return _rows_in_workers(lambda i, j, wid: row_top_values(head[:, i:j].t().contiguous(), k), n, step,
                                workers, out)

    def columns(i: int, j: int, wid: int) -> torch.Tensor:
        part = head[:, i:j]
        group_max = part[:groups * _GROUP].reshape(groups, _GROUP, j - i).amax(1)      # [groups, j - i]
        bound = torch.topk(group_max.t(), k, dim=1).values[:, -1]
        top = _ColumnTop(torch.full((j - i, k), _NEG, device=head.device), k, bound)
        top.add(part, group_max)
        top.consolidate()
        return top.top

    return _rows_in_workers(columns, n, step, workers, out)


def torch_head_rows(q_src: int, n_src: int) -> int:
    """Rows of S the torch path keeps whole: the source queries, and at least 1024 rows (or
    all) so that their column top-k seed the column bounds."""
    return max(q_src, min(n_src, 1024))


def torch_product_search(xn: np.ndarray, yn: np.ndarray, q_src: int, q_tgt: int, *, kmax: int = 10,
                         csls_k: int = 10, device: str | torch.device | None = None,
                         block_rows: int | None = None, derive: PlainFromCentred | None = None) -> ProductSearch:
    """:func:`alignkit.metrics.blocked.product_search` in torch on any device (the GPU path;
    on a CPU its GEMMs are numpy's; its blocks keep more head rows than the CPU path's, so with
    BLAS kernels whose bits depend on the block (OpenBLAS's AVX2 ones) the two can differ at
    ~1e-7 near-ties).

    Kept beyond their block: the first max(q_src, 1024) rows of S (the source
    queries' scores; their column top-k seed the column bounds) and the q_tgt query columns
    of S (stored transposed, ``[q_tgt, n_src]``); S itself is never held whole. ``block_rows`` overrides the
    block height (default: a block of S is ~128 MB on a CPU, ~2 GB on a GPU). ``derive``: search
    the plain product derived from xn ynᵀ (xn, yn then the centred unit rows) instead.
    """
    dev = torch.device(device or "cpu")
    x, y = torch.from_numpy(xn).to(dev), torch.from_numpy(yn).to(dev)
    if derive is not None:
        d_row, d_col = torch.from_numpy(derive.row).to(dev), torch.from_numpy(derive.col).to(dev)
    n_src, n_tgt = x.shape[0], y.shape[0]
    workers = 1 if dev.type != "cpu" else max(1, min(torch.get_num_threads(), 8))
    m = torch_head_rows(q_src, n_src)
    head = torch.empty((m, n_tgt), device=dev)            # rows 0..m of S
    tqt = torch.empty((q_tgt, n_src), device=dev)         # S[:, :q_tgt]ᵀ, rows = target queries
    src_radii = torch.empty(n_src, dtype=torch.float64, device=dev)
    bufs: list = [None] * workers
    cols: list = []
    yt = y.t()
    on_cpu = dev.type == "cpu"

    def block(start: int, stop: int, wid: int) -> None:
        if start < m:
            s = head[start:stop]
        else:  # a reused buffer: a fresh block would cost page faults every time
            if bufs[wid] is None:
                bufs[wid] = torch.empty((stop - start, n_tgt), device=dev)
            s = bufs[wid][:stop - start]
        if on_cpu:
            blocks.gemm_rows(xn, yn.T, start, stop, s.numpy())
        else:
            torch.mm(x[start:stop], yt, out=s)
        if derive is not None:
            torch_plain_from_centred(s, d_row[:, start:stop], d_col)
        if start >= m:
            cols[wid].add(s)
        src_radii[start:stop] = row_top_values(s, csls_k).double().mean(1)
        tqt[:, start:stop] = s[:, :q_tgt].t()

    with _fp32(dev), torch.inference_mode():
        plan = block_plan(n_src, n_tgt, m, dev, block_rows)
        run_blocks([b for b in plan if b[0] < m], block, workers)
        step = max(1, blocks.CPU_BLOCK_BYTES // (4 * max(n_src, n_tgt, m)))
        seed = _column_seed(head, csls_k, step, workers)          # column top-k values of the head
        floor = seed.amin(1)
        cols = [_ColumnTop(seed, csls_k)] + [_ColumnTop(torch.full_like(seed, _NEG), csls_k, floor)
                                             for _ in range(workers - 1)]
        run_blocks([b for b in plan if b[0] >= m], block, workers)
        with _threads(1 if dev.type == "cpu" else None):
            for c in cols[1:]:
                cols[0].merge(c)
            cols[0].consolidate()
        tgt_radii = cols[0].top.double().mean(1)
        r_t, r_s = tgt_radii.float()[None, :], src_radii.float()[None, :]
        rank = dict(kmax=kmax, step=step, workers=workers, device=dev)
        src_nn = _ranked(head, None, q_src, **rank)
        src_csls = _ranked(head, r_t, q_src, **rank)
        tgt_nn = _ranked(tqt, None, q_tgt, **rank)
        tgt_csls = _ranked(tqt, r_s, q_tgt, **rank)
    out = (src_radii, tgt_radii, src_nn, src_csls, tgt_nn, tgt_csls)
    return ProductSearch(*(t.cpu().numpy() for t in out))


def torch_plain_from_centred(s: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> None:
    """:func:`alignkit.metrics.cpu_tops.plain_from_centred` in torch, in place: the same
    float64 steps in the same order (equal bits), in slices of rows to bound the float64
    temporaries."""
    step = max(1, 2**24 // max(1, s.shape[1]))
    for i in range(0, s.shape[0], step):
        r = row[:, i:i + step]
        t = (r[0, :, None] * col[0]) * s[i:i + step].double()
        t += (r[1, :, None] * col[1]) * (r[2, :, None] + col[2])
        s[i:i + step] = t
