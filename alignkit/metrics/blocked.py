"""Exact CSLS search of one blocked product S = X̂Ŷᵀ: the one entry point, which picks the
CPU search (BLAS blocks read once by numba kernels, :mod:`alignkit.metrics.cpu_tops`) or the
torch search (:mod:`alignkit.metrics.torch_tops`, any device).

CSLS retrieval in both directions needs, per retrieval space, only S (``[n_src, n_tgt]``
cosines): its row top-k gives r over Y for every source row, its column top-k gives r over X
for every target row, and the P@k rankings of both directions (the first rows of X and the
first columns of Y are the queries) are row / column top-k of S or of 2S − r.
:func:`product_search` computes all of them from blocks of rows of S, never holding S whole
(a block is ``[rows, n_tgt]``, ~128 MB per CPU worker, ~2 GB on a GPU);
:func:`product_searches` also searches the plain product derived from each block of the
centred one (:mod:`alignkit.metrics.spaces`: both spaces from one GEMM per block).

Exactness: radii are means of the exact k largest values; rankings are exact under the order
(higher score, then lower index), as ``np.argsort(-s, kind="stable")``, of the product the
blocks computed (:func:`alignkit.metrics.blocks.gemm_rows`). Measurements: docs/benchmarks.md.
"""
from __future__ import annotations

import numpy as np
import torch

from alignkit.metrics.blocks import PlainFromCentred, ProductSearch
from alignkit.metrics.torch_tops import torch_product_search


def product_search(xn: np.ndarray, yn: np.ndarray, q_src: int, q_tgt: int, *, kmax: int = 10,
                   csls_k: int = 10, device: str | torch.device | None = None,
                   block_rows: int | None = None) -> ProductSearch:
    """Radii and both directions' NN / CSLS rankings from one blocked product S = xn ynᵀ.

    xn ``[n_src, d]``, yn ``[n_tgt, d]``: unit-normalised float32 rows (already centred for
    the centred space). The first ``q_src`` rows of xn query yn; the first ``q_tgt`` rows of
    yn query xn. Needs kmax <= min(n_src, n_tgt) and csls_k <= min(n_src, n_tgt) (callers
    validate). S itself is never held whole: kept beyond their block are the q_src query
    rows of S and its q_tgt query columns. ``block_rows`` overrides the block height
    (default: a block of S is ~128 MB on a CPU, ~2 GB on a GPU).

    On a CPU the blocks are BLAS GEMMs (numpy's, one thread per worker) read once by a
    fused row/column top-k kernel (:mod:`alignkit.metrics.cpu_tops`); on a GPU everything
    stays in torch on the device (:func:`~alignkit.metrics.torch_tops.torch_product_search`). Both give identical
    outputs for the same product (tests run the torch path on the CPU too).
    """
    return product_searches(xn, yn, q_src, q_tgt, kmax=kmax, csls_k=csls_k, device=device,
                            block_rows=block_rows)[0]


def product_searches(xn: np.ndarray, yn: np.ndarray, q_src: int, q_tgt: int, *, kmax: int = 10,
                     csls_k: int = 10, device: str | torch.device | None = None, block_rows: int | None = None,
                     outputs: tuple[PlainFromCentred | None, ...] = (None,)) -> list[ProductSearch]:
    """One :class:`ProductSearch` per entry of ``outputs``: None = the product xn ynᵀ itself,
    a :class:`PlainFromCentred` = the plain product derived from it (xn, yn then the centred
    unit rows); ``(None,)``, ``(derive,)`` or ``(None, derive)``. On a CPU each block's GEMM
    serves every output; on a GPU each output runs its own torch search of the same product
    (GEMMs are cheap there). Other arguments: :func:`product_search`."""
    dev = torch.device(device or "cpu")
    if dev.type == "cpu":
        from alignkit.metrics.cpu_tops import cpu_product_search  # numba: loaded only for a CPU search

        return cpu_product_search(xn, yn, q_src, q_tgt, kmax, csls_k, block_rows, outputs)
    return [torch_product_search(xn, yn, q_src, q_tgt, kmax=kmax, csls_k=csls_k, device=dev, block_rows=block_rows,
                                 derive=d) for d in outputs]
