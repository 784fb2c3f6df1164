"""Bilingual lexical similarity (BLS) of translation pairs at one layer (SPEC §2).

    bls_raw = mean over test pairs (s, t) of cos(x_s, y_t)
    bls     = bls_raw - c,   c = mean cosine over all source x target word combinations
                                 in the scored sets = dot(mean_s x̂_s, mean_t ŷ_t)

"Scored sets" are the source words and the target words that occur in the scored test
pairs, each word counted once. A source word with two gold translations contributes two
pairs to bls_raw but one vector to c. c removes anisotropy (all vectors of a transformer
layer share a common direction, which inflates every cosine), so bls ≈ 0 means "translations
are no closer than random cross-lingual word pairs".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alignkit.errors import AlignkitError
from alignkit.metrics import _validate
from alignkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate, mean_estimate


@dataclass(frozen=True)
class BLSResult:
    """BLS at one layer.

    bls:        Estimate of the anisotropy-corrected score; ``items`` ``[n_pairs]`` are
                cos(x_s, y_t) - correction per pair (so their mean is bls).
    bls_raw:    Estimate of the raw mean cosine; ``items`` ``[n_pairs]`` are cos(x_s, y_t).
    correction: c, the mean cosine over all n_src x n_tgt source x target combinations.
    n_src, n_tgt: number of unique source / target words in the scored sets.
    """

    bls: Estimate
    bls_raw: Estimate
    correction: float
    n_src: int
    n_tgt: int


def _pair_rows(pairs, n_src: int, n_tgt: int) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pairs)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] == 0:
        raise AlignkitError(f"pairs must be a non-empty [n_pairs, 2] array of (source row, target row), "
                            f"got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.integer):
        raise AlignkitError("pairs must hold integer row indices into the source and target vectors")
    s, t = p[:, 0].astype(np.int64), p[:, 1].astype(np.int64)
    if s.min() < 0 or s.max() >= n_src or t.min() < 0 or t.max() >= n_tgt:
        raise AlignkitError(f"pairs index rows outside the {n_src} source / {n_tgt} target vectors; "
                            "build pairs from the same word lists as the vectors")
    return s, t


def bls(src_vecs, tgt_vecs, pairs=None, *, confidence: float = 0.95,
        n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> BLSResult:
    """BLS and raw BLS with 95% bootstrap CIs over pairs.

    Two ways to give the test pairs:

    - ``pairs=None``: ``src_vecs`` ``[n, dim]`` and ``tgt_vecs`` ``[n, dim]``, row i of each
      is test pair i, and every row counts as a distinct word in the scored sets (pass each
      word once, or use the second form when words repeat across pairs).
    - ``pairs`` ``[n_pairs, 2]`` int: ``src_vecs`` ``[n_src, dim]`` holds unique source words,
      ``tgt_vecs`` ``[n_tgt, dim]`` unique target words, and each pair row is
      (source row, target row). The scored sets are the rows that occur in ``pairs``
      (unused rows are ignored).

    Vectors need not be normalised. The CI is BCa over pairs with the correction c held
    fixed (c averages n_src x n_tgt combinations, so its own sampling noise is negligible
    next to that of the per-pair cosines). ``n_resamples=0`` skips the CIs (NaN).
    """
    x = _validate.vectors(src_vecs, "source vectors")
    y = _validate.vectors(tgt_vecs, "target vectors", dim=x.shape[1])
    if pairs is None:
        if x.shape[0] != y.shape[0]:
            raise AlignkitError(f"source vectors have {x.shape[0]} rows but target vectors {y.shape[0]}; "
                                "without `pairs`, row i of each must be test pair i")
        s = t = np.arange(x.shape[0])
        s_set = t_set = s
    else:
        s, t = _pair_rows(pairs, x.shape[0], y.shape[0])
        s_set, t_set = np.unique(s), np.unique(t)
    xu, yu = _validate.unit_rows(x), _validate.unit_rows(y)
    # Accumulate in float64: the cosines are later averaged over up to ~10^4 pairs.
    cos = np.einsum("ij,ij->i", xu[s].astype(np.float64), yu[t].astype(np.float64))
    correction = float(xu[s_set].mean(axis=0, dtype=np.float64) @ yu[t_set].mean(axis=0, dtype=np.float64))
    raw = mean_estimate(cos, confidence=confidence, n_resamples=n_resamples, seed=seed)
    # The bootstrap is shift-equivariant, so bls's CI is raw's CI moved by -c.
    corrected = Estimate(value=raw.value - correction, ci_low=raw.ci_low - correction,
                         ci_high=raw.ci_high - correction, n=raw.n, items=cos - correction)
    return BLSResult(bls=corrected, bls_raw=raw, correction=correction,
                     n_src=int(s_set.size), n_tgt=int(t_set.size))
