"""MEXA alignment score of parallel sentences at one layer (Kargaran et al. 2024; SPEC §2).

C = X̂ Êᵀ is the ``[n, n]`` cosine matrix of n parallel sentence pairs (row i of both
arrays is a translation pair). Pair i is aligned when C[i, i] is strictly larger than every
other entry of row i and of column i: its translation beats every other sentence in both
directions, and a tie counts as not aligned. MEXA is the share of aligned pairs.

C is computed in blocks of rows (a block is ``[rows, n]``, ~24 MB), keeping only each row's
off-diagonal maximum and the running off-diagonal maximum of each column, so memory stays
O(n) beyond one block. Every comparison uses the entries of that one product.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alignkit.metrics import _validate
from alignkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate, mean_estimate

_BLOCK_FLOATS = 6 * 2**20


@dataclass(frozen=True)
class MexaResult:
    """``mexa``: Estimate whose ``items`` ``[n]`` are 1.0 for pair i aligned, else 0.0.
    ``row_aligned`` / ``col_aligned`` ``[n]`` bool: C[i, i] strictly tops row i / column i
    (their 'and' is the item); n: number of pairs."""

    mexa: Estimate
    row_aligned: np.ndarray
    col_aligned: np.ndarray
    n: int


def _offdiag_maxima(xn: np.ndarray, en: np.ndarray, block_rows: int | None) -> tuple[np.ndarray, ...]:
    """(diag ``[n]``, row off-diagonal max ``[n]``, column off-diagonal max ``[n]``) of
    C = xn enᵀ, computed block by block (float32, as the product gives them)."""
    n = xn.shape[0]
    rows = block_rows or max(1, _BLOCK_FLOATS // n)
    diag = np.empty(n, np.float32)
    row_max = np.empty(n, np.float32)
    col_max = np.full(n, -np.inf, np.float32)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        c = xn[start:stop] @ en.T                         # [b, n]
        r = np.arange(stop - start)
        diag[start:stop] = c[r, start + r]
        c[r, start + r] = -np.inf                          # off-diagonal only
        row_max[start:stop] = c.max(axis=1)
        np.maximum(col_max, c.max(axis=0), out=col_max)
    return diag, row_max, col_max


def mexa(xx_vecs, en_vecs, *, center: bool = False, confidence: float = 0.95,
         n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
         block_rows: int | None = None) -> MexaResult:
    """MEXA: share of pairs i with C[i, i] > C[i, j] and C[i, i] > C[j, i] for all j ≠ i.

    xx_vecs ``[n, dim]`` (non-English sentence vectors), en_vecs ``[n, dim]`` (their English
    translations, same order), n >= 2; cosine after unit-normalising (``center`` first
    subtracts each language's mean, off by default as in the paper). ``block_rows``
    overrides the block height. Raises AlignkitError on empty, NaN/inf, mismatched inputs.
    """
    x, e = _validate.parallel_sentences(xx_vecs, en_vecs, center=center)
    diag, row_max, col_max = _offdiag_maxima(_validate.unit_rows(x), _validate.unit_rows(e), block_rows)
    row_ok, col_ok = diag > row_max, diag > col_max
    items = (row_ok & col_ok).astype(np.float64)
    est = mean_estimate(items, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return MexaResult(mexa=est, row_aligned=row_ok, col_aligned=col_ok, n=int(x.shape[0]))
