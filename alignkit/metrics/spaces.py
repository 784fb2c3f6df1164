"""Both retrieval spaces (plain and centred) from ONE blocked product per layer.

The centred space's cosines are the product G = x̂_c ŷ_cᵀ of the mean-centred unit rows; the
plain cosines follow from G by an exact identity (:class:`PlainFromCentred`), evaluated in
float64 and rounded once. :func:`space_search` searches G and derives each block's plain
cosines after G's own scan (:func:`alignkit.metrics.blocked.product_searches` with two
outputs), so a CPU runs one GEMM per layer for both
spaces, and the derived plain cosines are closer to exact ones than a float32 GEMM of the
plain unit rows would be (docs/benchmarks.md). :func:`alignkit.metrics.retrieve_spaces`
turns its output into P@k.
"""
from __future__ import annotations

import numpy as np
import torch

from alignkit.metrics import _validate
from alignkit.metrics.blocked import product_searches
from alignkit.metrics.blocks import PlainFromCentred, ProductSearch


_SIDE_ROWS = 512    # rows per slice in centred_operands: its float64 temporaries stay in cache


def _centred_side(v: np.ndarray, mean: np.ndarray, other_mean64: np.ndarray, w_shift: float):
    """One side of :func:`centred_operands`: the unit rows of ``v − mean`` and (a or b, f or g,
    p or w), in slices of rows into preallocated arrays (every step is row-wise, so each row
    gets the bits a whole-array computation gives it; fresh whole-array float64 temporaries
    cost more in page faults than in arithmetic). The dot products with the other side's
    mean use einsum, whose rounding does not depend on the row's position or the thread
    count (a BLAS matrix-vector product split over threads rounds the rows at its seams
    differently: 3 of en-tr's 20947 target rows at layer 6, by 2e-14)."""
    n, d = v.shape
    unit = np.empty((n, d), dtype=np.float32)
    coef = np.empty((3, n), dtype=np.float64)
    v64 = np.empty((min(n, _SIDE_ROWS), d), dtype=np.float64)
    vc64 = np.empty_like(v64)
    for i in range(0, n, _SIDE_ROWS):
        j = min(i + _SIDE_ROWS, n)
        vc = v[i:j] - mean                                   # the +center space before normalising
        unit[i:j] = _validate.unit_rows(vc)
        a64, c64 = v64[:j - i], vc64[:j - i]
        a64[:], c64[:] = v[i:j], vc
        full, cent = np.sqrt(np.einsum("ij,ij->i", a64, a64)), np.sqrt(np.einsum("ij,ij->i", c64, c64))
        inv = np.divide(1.0, full, out=np.zeros_like(full), where=full > 0)
        coef[0, i:j], coef[1, i:j] = cent * inv, inv
        coef[2, i:j] = np.einsum("ij,j->i", a64, other_mean64) - w_shift   # not BLAS: no thread-split rounding
    return unit, coef


def centred_operands(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, PlainFromCentred]:
    """The centred space's unit rows of ``x`` ``[n_src, d]`` and ``y`` ``[n_tgt, d]`` (each
    language's float32 mean subtracted, then unit-normalised, as ``retrieve(center=True)``
    does: the bits of ``_validate.unit_rows(_validate.centred(v)[0])``) and the coefficients
    that derive the plain cosines from their product. The two sides run in two threads."""
    from concurrent.futures import ThreadPoolExecutor

    mx, my = _validate.column_mean(x), _validate.column_mean(y)
    mx64, my64 = mx.astype(np.float64), my.astype(np.float64)
    with ThreadPoolExecutor(2) as pool:
        fx = pool.submit(_centred_side, x, mx, my64, 0.0)
        (yn, col), (xn, row) = _centred_side(y, my, mx64, float(mx64 @ my64)), fx.result()
    return xn, yn, PlainFromCentred(row, col)


def space_search(x: np.ndarray, y: np.ndarray, q_src: int, q_tgt: int, *,
                 centers: tuple[bool, ...] = (False, True), kmax: int = 10, csls_k: int = 10,
                 device: str | torch.device | None = None, block_rows: int | None = None) -> dict[bool, ProductSearch]:
    """:func:`alignkit.metrics.blocked.product_search` of the plain (False) and / or centred (True) space of raw
    float32 vectors ``x`` ``[n_src, d]``, ``y`` ``[n_tgt, d]``, from ONE product per block:
    the centred unit rows' product S_c is the centred space; the plain space's cosines are
    derived from S_c by :class:`PlainFromCentred` (float64, one rounding). On a CPU each
    block's GEMM then serves both spaces (half the GEMMs of two searches); on a GPU each
    space runs its own torch search of the same product (GEMMs are cheap there).

    The centred outputs equal ``product_search`` of the centred unit rows bit for bit; the
    plain ones equal ranking the derived cosines, which differ from a float32 GEMM of the
    plain unit rows by rounding only (and are closer to the exact cosines, see
    :class:`PlainFromCentred`): rankings can differ from that GEMM's only at near-ties.
    """
    xcn, ycn, derive = centred_operands(x, y)
    order = sorted(set(centers), reverse=True)           # the centred product first: plain is made from it
    outputs = tuple(None if c else derive for c in order)
    found = product_searches(xcn, ycn, q_src, q_tgt, kmax=kmax, csls_k=csls_k, device=device,
                             block_rows=block_rows, outputs=outputs)
    return dict(zip(order, found))
