"""One product S = X̂Ŷᵀ in blocks of rows: what the searches share.

The block plan (:func:`block_plan`), the GEMM of a block's rows (:func:`gemm_rows`, the one
place the searches' products are computed: tests record its blocks here), the block workers
(:func:`run_blocks`), what a search returns (:class:`ProductSearch`) and the identity that
derives the plain cosines from the centred product (:class:`PlainFromCentred`). The CPU
search (:mod:`alignkit.metrics.cpu_tops`) and the torch search
(:mod:`alignkit.metrics.torch_tops`) are built on it; :mod:`alignkit.metrics.blocked` chooses
between them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from alignkit.workers import single_threaded_map

CPU_BLOCK_BYTES = 128 * 2**20  # one block of S per CPU worker (larger blocks: faster BLAS GEMMs, fewer B packings)
GPU_BLOCK_BYTES = 2 * 2**30
ROW_MULTIPLE = 16              # block heights are multiples of this (the searches' row groups)


@dataclass(frozen=True)
class ProductSearch:
    """What retrieval in both directions needs from one product S = X̂Ŷᵀ.

    src_radii ``[n_src]`` float64: mean of the ``csls_k`` largest cosines of each source
              row to all target rows (r over Y); tgt_radii ``[n_tgt]``: the same over X.
    src_nn, src_csls ``[q_src, kmax]`` int64: target indices ranked for the first q_src
              source rows by cos / by 2cos − tgt_radii (best first, ties to the lower index).
    tgt_nn, tgt_csls ``[q_tgt, kmax]`` int64: source indices ranked for the first q_tgt
              target rows by cos / by 2cos − src_radii.
    """

    src_radii: np.ndarray
    tgt_radii: np.ndarray
    src_nn: np.ndarray
    src_csls: np.ndarray
    tgt_nn: np.ndarray
    tgt_csls: np.ndarray


@dataclass(frozen=True)
class PlainFromCentred:
    """Coefficients that turn the centred product into the plain one (an exact identity).

    With x_c = x − μ_x, y_c = y − μ_y and G = x̂_c ŷ_cᵀ (the centred space's cosines),
    x·y = |x_c||y_c| G + x·μ_y + μ_x·y − μ_x·μ_y, so the plain cosine is

        cos(x, y) = a_i b_j G_ij + f_i g_j (p_i + w_j)

    row ``[3, n_src]`` float64 = (a, f, p): a = |x_c| / |x|, f = 1 / |x|, p = x·μ_y;
    col ``[3, n_tgt]`` = (b, g, w): b = |y_c| / |y|, g = 1 / |y|, w = μ_x·y − μ_x·μ_y
    (a zero vector gets a = f = 0: cosine 0, as ``_validate.unit_rows`` gives it).
    Evaluated in float64 and rounded once, the derived cosines carry G's rounding error
    scaled by |x_c||y_c| / (|x||y|) <= ~1: on the bundled model's layers 0 / 6 / 12 their
    worst error against float64 cosines was 1.2x / 2.0x / 4.2x smaller than a float32 GEMM
    of the plain unit vectors (docs/benchmarks.md).
    """

    row: np.ndarray
    col: np.ndarray

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.row[:, start:stop]


def block_plan(n_src: int, n_tgt: int, q_src: int, device: torch.device,
            rows: int | None = None) -> list[tuple[int, int]]:
    """Row ranges of S: the source queries first (their rows are kept), then the rest."""
    budget = GPU_BLOCK_BYTES if device.type == "cuda" else CPU_BLOCK_BYTES
    rows = rows or max(ROW_MULTIPLE, budget // (4 * n_tgt) // ROW_MULTIPLE * ROW_MULTIPLE)
    edges = sorted({*range(0, q_src, rows), *range(q_src, n_src, rows), n_src})
    return list(zip(edges[:-1], edges[1:]))


def run_blocks(blocks, fn, workers: int) -> None:
    """``fn(start, stop, worker_id)`` for every block, on ``workers`` single-threaded threads."""
    single_threaded_map(lambda b, wid: fn(*b, wid), list(blocks), workers, worker_id=True)


def gemm_rows(xn: np.ndarray, yt: np.ndarray, start: int, stop: int, out: np.ndarray) -> None:
    """``out = xn[start:stop] @ yt`` by the BLAS GEMM (with OpenBLAS's AVX-512 kernels
    bit-identical to the same rows of the whole product ``xn @ yt``; its AVX2 kernels round a
    row by where it falls in the call and by the thread count, docs/benchmarks.md). A lone
    row would go to GEMV, whose rounding differs, so it is computed with a neighbour."""
    if stop - start > 1 or len(xn) == 1:
        np.matmul(xn[start:stop], yt, out=out)
    else:
        lo = max(0, min(start - 1, len(xn) - 2))
        out[:] = np.matmul(xn[lo:lo + 2], yt)[start - lo]
