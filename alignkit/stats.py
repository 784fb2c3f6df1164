"""Confidence intervals and paired significance tests for item-level scores (SPEC §2).

Every metric in :mod:`alignkit.metrics` reports an :class:`Estimate`: the aggregate value,
its 95% bootstrap CI and the item-level scores it is the mean of (one per test pair, query
word, sentence...). Keeping the items is what makes :func:`paired_difference` possible: two
checkpoints scored on the same items are compared item by item, not just by their means.

All randomness uses a fixed seed, so the same inputs always give the same CI and p-value.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from alignkit.errors import AlignkitError

DEFAULT_RESAMPLES = 9999
DEFAULT_SEED = 0
# Resamples are drawn in chunks: one [9999, n] block is slower than ten cache-sized ones.
_BATCH = 1000


@dataclass(frozen=True)
class Estimate:
    """A measured value with its confidence interval.

    value:   the aggregate (for mean-type metrics, ``items.mean()``).
    ci_low, ci_high: bounds of the bootstrap CI (NaN when not computed or n < 2).
    n:       number of items the value is computed from.
    items:   ``[n]`` float64 item-level scores whose mean is ``value``, or ``None`` for a
             statistic that is not a mean of items (e.g. ``gap_ratio``).
    """

    value: float
    ci_low: float
    ci_high: float
    n: int
    items: np.ndarray | None = None


@dataclass(frozen=True)
class PairedDifference:
    """Difference ``mean(candidate) - mean(baseline)`` over the same items.

    diff: the difference; ci_low/ci_high: its paired-bootstrap CI; p_value: two-sided
    paired permutation p-value (null: the two checkpoints are exchangeable on every item);
    n: number of items.
    """

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def _as_items(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise AlignkitError(f"{name} must be a 1-D array of item scores, got shape {x.shape}")
    if x.size == 0:
        raise AlignkitError(f"{name} is empty; pass at least one item score")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise AlignkitError(f"{name} has {bad} NaN or infinite item scores; drop or fix those items")
    return x


def bootstrap_interval(samples: tuple, statistic, *, confidence: float = 0.95,
                       n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                       batch: int = _BATCH) -> tuple[float, float]:
    """BCa bootstrap CI of any vectorised ``statistic(*samples, axis=-1)``.

    ``samples`` are 1-D arrays resampled independently (scipy.stats.bootstrap, fixed seed).
    Where BCa is undefined (e.g. the observed value lies outside every resampled value, as
    for a distance between identical clouds) the percentile interval is returned instead.
    """
    def run(method):
        with warnings.catch_warnings():
            # BCa warns on near-degenerate samples (1 hit in 1500); the fallback covers them.
            warnings.simplefilter("ignore", sps.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            res = sps.bootstrap(samples, statistic, n_resamples=n_resamples, confidence_level=confidence,
                                method=method, vectorized=True, batch=batch,
                                rng=np.random.default_rng(seed))
        return float(res.confidence_interval.low), float(res.confidence_interval.high)

    lo, hi = run("BCa")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = run("percentile")
    return lo, hi


def bootstrap_ci(items, *, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED) -> tuple[float, float]:
    """BCa bootstrap CI of the mean of ``items`` ``[n]`` (scipy.stats.bootstrap, fixed seed).

    Returns ``(nan, nan)`` when ``n_resamples == 0`` (CI not wanted) or n < 2, and
    ``(v, v)`` when every item equals v (the resampling distribution is a single point,
    where BCa is undefined).
    """
    x = _as_items(items, "items")
    if n_resamples == 0 or x.size < 2:
        return math.nan, math.nan
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    return bootstrap_interval((x,), np.mean, confidence=confidence, n_resamples=n_resamples, seed=seed)


def mean_estimate(items, *, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                  seed: int = DEFAULT_SEED) -> Estimate:
    """Mean of ``items`` ``[n]`` with its bootstrap CI, keeping the items."""
    x = _as_items(items, "items")
    lo, hi = bootstrap_ci(x, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return Estimate(value=float(x.mean()), ci_low=lo, ci_high=hi, n=int(x.size), items=x)


def _mean_diff(a, b, axis=-1):
    return np.mean(a - b, axis=axis)


def paired_difference(candidate, baseline, *, confidence: float = 0.95,
                      n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> PairedDifference:
    """Compare two checkpoints on the same items: ``candidate`` and ``baseline`` are ``[n]``
    item-level scores, position i being the same item in both.

    diff = mean(candidate - baseline); CI = BCa bootstrap over items of the paired
    differences; p-value = two-sided paired permutation test (scipy.stats.permutation_test,
    ``permutation_type='samples'``: each item's two scores are swapped at random, exact
    enumeration when 2^n <= n_resamples). Identical vectors give diff 0, CI (0, 0), p = 1.
    ``n_resamples=0`` skips the CI and p-value (NaN).
    """
    a = _as_items(candidate, "candidate item scores")
    b = _as_items(baseline, "baseline item scores")
    if a.shape != b.shape:
        raise AlignkitError(f"candidate has {a.size} item scores but baseline has {b.size}; "
                            "compare runs scored on the same items")
    d = a - b
    lo, hi = bootstrap_ci(d, confidence=confidence, n_resamples=n_resamples, seed=seed)
    if n_resamples == 0:
        p = math.nan
    elif np.all(d == 0):
        p = 1.0
    else:
        res = sps.permutation_test((a, b), _mean_diff, permutation_type="samples",
                                   alternative="two-sided", n_resamples=n_resamples,
                                   vectorized=True, batch=_BATCH, rng=np.random.default_rng(seed))
        p = float(res.pvalue)
    return PairedDifference(diff=float(d.mean()), ci_low=lo, ci_high=hi, p_value=p, n=int(d.size))
