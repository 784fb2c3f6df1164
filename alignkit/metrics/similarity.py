"""Bilingual lexical similarity (BLS) of translation pairs at one layer (SPEC §2).

    bls_raw      = mean over test pairs (s, t) of cos(x_s, y_t)
    bls_baseline = c = mean cosine over all source x target word combinations in the scored
                   sets = dot(mean_s x̂_s, mean_t ŷ_t)
    bls          = bls_raw - c
    bls_z        = (bls_raw - c) / sd,  sd = SD of the cosine over the same combinations
    bls_auc      = mean over test pairs (s, t) of the share of scored target words t' that are
                   not gold translations of s with cos(x_s, y_t') < cos(x_s, y_t) (ties ½)

"Scored sets" are the source words and the target words that occur in the scored test
pairs, each word counted once. A source word with two gold translations contributes two
pairs to bls_raw but one vector to c. c removes anisotropy (all vectors of a transformer
layer share a common direction, which inflates every cosine), so bls ≈ 0 means "translations
are no closer than random cross-lingual word pairs".

``bls`` is in cosine units: a checkpoint whose cosines all shrink (smaller spread) can gain
``bls`` while no translation got closer. ``bls_z`` divides by the spread; ``bls_auc`` is a
rank statistic (the chance that a translation beats a random non-translation of the same
source), unchanged by any monotone rescaling of the cosines.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from alignkit.errors import AlignkitError
from alignkit.metrics import _validate
from alignkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate, mean_estimate

# Pairs compared against every scored target at once in blocks of this many rows.
_AUC_BLOCK = 256


@dataclass(frozen=True)
class BLSResult:
    """BLS at one layer.

    bls:        Estimate of the anisotropy-corrected score; ``items`` ``[n_pairs]`` are
                cos(x_s, y_t) - correction per pair (so their mean is bls).
    bls_raw:    Estimate of the raw mean cosine; ``items`` ``[n_pairs]`` are cos(x_s, y_t).
    bls_baseline: Estimate of c; ``items`` ``[n_src]`` are x̂_s · mean_t ŷ_t per unique source
                word (mean = c); CI over source words with the target set held fixed.
    bls_z:      Estimate of (bls_raw - c) / spread; ``items`` ``[n_pairs]`` are
                (cos - c) / spread per pair. CI over pairs with c and spread held fixed.
    bls_auc:    Estimate of the translation-vs-non-translation AUC; ``items`` ``[n_pairs]``
                are each pair's share in [0, 1]. CI over pairs.
    correction: c, the mean cosine over all n_src x n_tgt source x target combinations.
    spread:     SD of the cosine over the same combinations (population SD, cosine units).
    n_src, n_tgt: number of unique source / target words in the scored sets.
    """

    bls: Estimate
    bls_raw: Estimate
    correction: float
    n_src: int
    n_tgt: int
    bls_baseline: Estimate | None = None
    bls_z: Estimate | None = None
    bls_auc: Estimate | None = None
    spread: float = math.nan


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


def cosine_spread(xu: np.ndarray, yu: np.ndarray) -> tuple[float, float]:
    """Mean and SD of cos(x, y) over all ``n x m`` combinations of unit rows ``xu`` ``[n, d]``
    and ``yu`` ``[m, d]``, without forming the ``n x m`` matrix.

    mean = mean(x̂) · mean(ŷ); E[cos²] = ⟨X̂ᵀX̂, ŶᵀŶ⟩_F / (n·m) with ``d x d`` Gram matrices
    (float64), so the cost is O((n + m) d²).
    """
    x, y = xu.astype(np.float64), yu.astype(np.float64)
    mean = float(x.mean(axis=0) @ y.mean(axis=0))
    second = float(np.sum((x.T @ x) * (y.T @ y))) / (x.shape[0] * y.shape[0])
    return mean, math.sqrt(max(second - mean * mean, 0.0))


def auc_items(cos: np.ndarray, pair_src: np.ndarray, pair_tgt: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Per test pair, the share of non-gold targets its translation beats (ties count ½).

    cos:      ``[n_src, n_tgt]`` cosines between the scored source and target words
              (any monotone transform of them gives the same result: only order matters).
    pair_src, pair_tgt: ``[n_pairs]`` row / column of each test pair in ``cos``.
    gold:     ``[n_src, n_tgt]`` bool, True where the target is a gold translation of the source.
    Returns ``[n_pairs]`` float64 in [0, 1]: 0.5 = no better than a random non-translation.
    """
    cos = np.asarray(cos)
    n_other = (~gold).sum(axis=1)
    if np.any(n_other[pair_src] == 0):
        raise AlignkitError("bls_auc needs at least one scored target that is not a gold translation of "
                            "each source; score a lexicon with more than one target word")
    out = np.empty(pair_src.size, dtype=np.float64)

    def block(lo: int) -> None:
        s, t = pair_src[lo:lo + _AUC_BLOCK], pair_tgt[lo:lo + _AUC_BLOCK]
        rows, own = cos[s], cos[s, t][:, None]
        other = ~gold[s]
        wins = np.count_nonzero((rows < own) & other, axis=1) + 0.5 * np.count_nonzero((rows == own) & other, axis=1)
        out[lo:lo + s.size] = wins / n_other[s]

    # blocks are independent and numpy releases the GIL: one worker per core
    import torch

    from alignkit.workers import single_threaded_map

    single_threaded_map(block, list(range(0, pair_src.size, _AUC_BLOCK)), torch.get_num_threads())
    return out


def _scored_sets(x, y, pairs):
    """(pair source rows, pair target rows, unique source rows, unique target rows)."""
    if pairs is None:
        if x.shape[0] != y.shape[0]:
            raise AlignkitError(f"source vectors have {x.shape[0]} rows but target vectors {y.shape[0]}; "
                                "without `pairs`, row i of each must be test pair i")
        s = np.arange(x.shape[0])
        return s, s, s, s
    s, t = _pair_rows(pairs, x.shape[0], y.shape[0])
    return s, t, np.unique(s), np.unique(t)


def bls(src_vecs, tgt_vecs, pairs=None, *, confidence: float = 0.95,
        n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> BLSResult:
    """BLS, raw BLS, baseline, z-scored BLS and AUC, each with a 95% bootstrap CI.

    Two ways to give the test pairs:

    - ``pairs=None``: ``src_vecs`` ``[n, dim]`` and ``tgt_vecs`` ``[n, dim]``, row i of each
      is test pair i, and every row counts as a distinct word in the scored sets (pass each
      word once, or use the second form when words repeat across pairs).
    - ``pairs`` ``[n_pairs, 2]`` int: ``src_vecs`` ``[n_src, dim]`` holds unique source words,
      ``tgt_vecs`` ``[n_tgt, dim]`` unique target words, and each pair row is
      (source row, target row). The scored sets are the rows that occur in ``pairs``
      (unused rows are ignored); the gold translations of a source (for ``bls_auc``) are
      all targets it is paired with.

    Vectors need not be normalised. The CIs of bls, bls_raw, bls_z and bls_auc are BCa over
    pairs with c and the spread held fixed (both average n_src x n_tgt combinations, so their
    own sampling noise is small next to that of the per-pair scores); bls_baseline's CI is over
    source words. ``n_resamples=0`` skips the CIs (NaN).
    """
    x = _validate.vectors(src_vecs, "source vectors")
    y = _validate.vectors(tgt_vecs, "target vectors", dim=x.shape[1])
    s, t, s_set, t_set = _scored_sets(x, y, pairs)
    # only the scored rows (unit_rows is row-wise: the same bits as normalising the whole pool)
    xs = _validate.unit_rows(x[s_set]).astype(np.float64)   # [n_src, d]
    yt = _validate.unit_rows(y[t_set]).astype(np.float64)   # [n_tgt, d]
    ps, pt = np.searchsorted(s_set, s), np.searchsorted(t_set, t)  # pair rows within the scored sets
    # Accumulate in float64: the cosines are later averaged over up to ~10^4 pairs.
    cos_all = xs @ yt.T                                       # [n_src, n_tgt]
    cos = cos_all[ps, pt]
    correction, spread = cosine_spread(xs, yt)
    kw = dict(confidence=confidence, n_resamples=n_resamples, seed=seed)
    raw = mean_estimate(cos, **kw)
    # The bootstrap is affine-equivariant, so bls's and bls_z's CIs are raw's CI moved (and scaled).
    corrected = _affine(raw, -correction, 1.0)
    z = _affine(raw, -correction, 1.0 / spread) if spread > 0 else None
    gold = np.zeros(cos_all.shape, dtype=bool)
    gold[ps, pt] = True
    auc = mean_estimate(auc_items(cos_all, ps, pt, gold), **kw)
    baseline = mean_estimate(xs @ yt.mean(axis=0), **kw)
    return BLSResult(bls=corrected, bls_raw=raw, correction=correction, n_src=int(s_set.size),
                     n_tgt=int(t_set.size), bls_baseline=baseline, bls_z=z, bls_auc=auc, spread=spread)


def _affine(est: Estimate, shift: float, scale: float) -> Estimate:
    """``(est + shift) * scale`` for value, CI bounds and items (scale > 0)."""
    return Estimate(value=(est.value + shift) * scale, ci_low=(est.ci_low + shift) * scale,
                    ci_high=(est.ci_high + shift) * scale, n=est.n, items=(est.items + shift) * scale)
