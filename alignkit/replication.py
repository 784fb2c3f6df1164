"""Statistics across training runs (SPEC §2 v2, v3): the seed is the unit of replication.

* :func:`seed_level_difference`: variant A − baseline B paired by seed (t-interval over seeds,
  two-level bootstrap, items-only statistics conditional on the checkpoints)
* :func:`holm`: Holm's step-down adjustment within a family of tests
* :func:`checkpoint_correlation`, :func:`seed_aware_correlation`: per-checkpoint quantities
  correlated, with intervals that resample checkpoints or whole seeds

Item-level estimates and paired tests of two fixed checkpoints are in :mod:`alignkit.stats`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from alignkit.errors import AlignkitError
from alignkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, as_items, paired_difference, remember, resample_counts

# When each variant is trained with several seeds, the unit of replication is the training run:
# a difference between variants is significant only when the interval over seeds excludes 0.
# Items-only intervals treat the checkpoints as fixed and are labelled "conditional on these
# checkpoints".


@dataclass(frozen=True)
class SeedLevelDifference:
    """Variant A − baseline B, paired by seed.

    seed_diffs: ``[n_seeds]`` d_s, the item-paired mean difference for seed s.
    diff:       mean of d_s.  seed_sd: SD of d_s (ddof 1; NaN for one seed).
    t_low, t_high, t_p: t-interval over seeds (df = n_seeds − 1) and one-sample t-test p of d_s.
    boot_low, boot_high: two-level bootstrap CI (resample seeds, then items within each
                resampled seed; percentile). Without item scores: seeds only.
    items_low, items_high, items_p: paired bootstrap CI / permutation p over items of the
                seed-averaged item scores, conditional on these checkpoints (NaN without items
                or when the seeds were not scored on the same items).
    significant: the seed-level t-interval excludes 0.
    n_seeds, n_items: seeds paired; items per seed (0 without item scores).
    """

    diff: float
    seed_diffs: np.ndarray
    seed_sd: float
    t_low: float
    t_high: float
    t_p: float
    boot_low: float
    boot_high: float
    items_low: float
    items_high: float
    items_p: float
    significant: bool
    n_seeds: int
    n_items: int


#: relative seed SD below which per-seed differences count as equal (float32 resolution)
ZERO_SPREAD = 1e-6


def seed_t_interval(seed_diffs, *, confidence: float = 0.95) -> tuple[float, float, float]:
    """(low, high, p): t-interval of the mean of ``seed_diffs`` ``[n_seeds]`` with df = n − 1,
    and the two-sided one-sample t-test p-value against 0.

    One seed, or zero spread: (nan, nan, nan). With no spread the t statistic is undefined
    (0/0 or x/0): the seeds cannot say how much the difference varies across training runs, so
    nothing is "certain" and nothing is significant. Zero means below float32 resolution: an SD
    under 1e-6 of the differences' size (scores are stored as float32, so equal differences
    computed from them can differ in their last bits and would give a huge, meaningless t).
    The t-test is computed from its definition (scipy's warns of cancellation near equal data).
    """
    d = as_items(seed_diffs, "per-seed differences")
    if d.size < 2:
        return math.nan, math.nan, math.nan
    m, sd = float(d.mean()), float(d.std(ddof=1))
    if not sd > ZERO_SPREAD * max(float(np.abs(d).max()), 1e-300):
        return math.nan, math.nan, math.nan
    se = sd / math.sqrt(d.size)
    half = float(sps.t.ppf(0.5 + confidence / 2, d.size - 1)) * se
    p = float(2.0 * sps.t.sf(abs(m) / se, d.size - 1))
    return m - half, m + half, p


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of ``p_values`` ``[m]`` (family-wise error, any dependence).

    Sorted p_(1) <= ... <= p_(m): adj_(i) = max over j <= i of min(1, (m − j + 1)·p_(j)); NaN
    p-values (undefined tests) stay NaN and do not count in m.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = ok.size
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj)
    return out


# Item-resample count tables of the two-level bootstrap by (n, rows, seed), stored as float32
# (small integer counts, exact) and widened to float64 for the slot means; oldest dropped first
# past _SLOT_BYTES.
_SLOT_TABLES: dict[tuple[int, int, int], np.ndarray] = {}
_SLOT_BYTES = 256 * 2**20


def _slot_counts(n: int, rows: int, seed: int) -> np.ndarray:
    """``[rows, n]`` float32: how often each of n items occurs in each of ``rows`` bootstrap resamples."""
    key = (n, rows, seed)
    if key not in _SLOT_TABLES:
        step = max(1, 2_000_000 // n)                               # bound the [step, n] index block
        return remember(_SLOT_TABLES, key,
                        resample_counts(np.random.default_rng([seed, n]), n, rows, step, np.float32), _SLOT_BYTES)
    return _SLOT_TABLES[key]


def two_level_bootstrap_ci(item_diffs, *, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                           seed: int = DEFAULT_SEED) -> tuple[float, float]:
    """Percentile CI of the mean over seeds of per-seed mean item differences, resampling
    seeds and then items within each resampled seed.

    ``item_diffs``: one 1-D array per seed of item-paired differences (A − B on the same
    items; lengths may differ between seeds). A seed drawn twice gets two independent item
    resamples. Fixed seed: the same inputs give the same interval. Fewer than 2 seeds or
    ``n_resamples == 0``: (nan, nan).
    """
    e = [as_items(x, f"item differences of seed {i + 1}") for i, x in enumerate(item_diffs)]
    if len(e) < 2 or n_resamples == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    n_seeds = len(e)
    picks = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))    # [B, S] seed drawn in each slot
    slot_means = np.empty(picks.shape, dtype=np.float64)
    for s, x in enumerate(e):
        b, j = np.nonzero(picks == s)
        if b.size:
            # slot (b, j) takes row b·S + j of one [B·S, n] table of item-resample counts: every
            # slot its own resample, the table drawn once per (n, B·S, seed) and reused
            counts = _slot_counts(x.size, n_resamples * n_seeds, seed)
            slot_means[b, j] = (counts[b * n_seeds + j].astype(np.float64) @ x) / x.size
    stat = slot_means.mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(stat, [alpha, 1 - alpha])
    return float(lo), float(hi)


def seed_level_difference(candidate, baseline, *, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                          seed: int = DEFAULT_SEED, item_ids=None) -> SeedLevelDifference:
    """Compare variant A (``candidate``) with baseline B paired by seed (SPEC §2 v2).

    ``candidate`` and ``baseline`` hold one entry per seed, in the same seed order: either a
    1-D array of item scores (position i = the same item in A and B for that seed) or a
    scalar (the seed's aggregate value, when no item scores were kept). Scalars give
    d_s = A_s − B_s, and the two-level bootstrap reduces to resampling seeds.

    The items-only statistics average each item over seeds, so they need the same items in
    every seed: ``item_ids`` (one array of item ids per seed, in score order) is checked for
    that, and differing sets are refused. ``significant``: the t-test's p < 1 − confidence
    (never when p is undefined: one seed or zero spread).
    """
    if len(candidate) != len(baseline) or len(candidate) == 0:
        raise AlignkitError(f"candidate has {len(candidate)} seeds but baseline has {len(baseline)}; "
                            "pair the runs by seed (one entry per seed in each)")
    a = [np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in candidate]
    b = [np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in baseline]
    for i, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape or x.ndim != 1:
            raise AlignkitError(f"seed {i + 1}: candidate has {x.size} item scores but baseline has {y.size}; "
                                "compare runs scored on the same items")
    e = [x - y for x, y in zip(a, b)]
    d = np.array([float(as_items(x, f"item differences of seed {i + 1}").mean()) for i, x in enumerate(e)])
    t_low, t_high, t_p = seed_t_interval(d, confidence=confidence)
    kw = dict(confidence=confidence, n_resamples=n_resamples, seed=seed)
    boot = two_level_bootstrap_ci(e, **kw)
    items = (math.nan, math.nan, math.nan)
    with_items = all(x.size >= 2 for x in a) and len({x.size for x in a}) == 1
    if with_items and item_ids is not None:
        ids = [np.asarray(i) for i in item_ids]
        differ = [k for k in range(1, len(ids)) if not np.array_equal(ids[k], ids[0])]
        if differ:
            raise AlignkitError(f"seeds 1 and {differ[0] + 1} were scored on different items; items-only "
                                "statistics average items across seeds and need the same item set in every seed")
    if with_items:
        cond = paired_difference(np.mean(a, axis=0), np.mean(b, axis=0), **kw)
        items = (cond.ci_low, cond.ci_high, cond.p_value)
    return SeedLevelDifference(
        diff=float(d.mean()), seed_diffs=d, seed_sd=float(d.std(ddof=1)) if d.size > 1 else math.nan,
        t_low=t_low, t_high=t_high, t_p=t_p, boot_low=boot[0], boot_high=boot[1],
        items_low=items[0], items_high=items[1], items_p=items[2],
        significant=bool(t_p < 1 - confidence), n_seeds=int(d.size), n_items=int(a[0].size) if with_items else 0)


@dataclass(frozen=True)
class CheckpointCorrelation:
    """Correlation between two per-checkpoint quantities (e.g. Δ alignment and Δ accuracy).

    n: checkpoints (one point each); pearson/spearman with two-sided p; *_low/*_high: percentile
    bootstrap CI over checkpoints (resamples where either side is constant are dropped).
    """

    n: int
    pearson: float
    pearson_p: float
    pearson_low: float
    pearson_high: float
    spearman: float
    spearman_p: float
    spearman_low: float
    spearman_high: float


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc, yc = x - x.mean(axis=-1, keepdims=True), y - y.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(-1) / np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))


def checkpoint_correlation(x, y, *, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                           seed: int = DEFAULT_SEED) -> CheckpointCorrelation:
    """Pearson and Spearman correlation of ``x`` and ``y`` ``[n_checkpoints]`` (one point per
    checkpoint, never per checkpoint × language) with bootstrap CIs over checkpoints."""
    xa, ya = as_items(x, "x"), as_items(y, "y")
    if xa.shape != ya.shape:
        raise AlignkitError(f"x has {xa.size} checkpoints but y has {ya.size}; pass one value per checkpoint in each")
    nan = math.nan
    if xa.size < 3 or xa.std() == 0 or ya.std() == 0:
        return CheckpointCorrelation(int(xa.size), nan, nan, nan, nan, nan, nan, nan, nan)
    pr, sr = sps.pearsonr(xa, ya), sps.spearmanr(xa, ya)
    cis = [(nan, nan), (nan, nan)]
    if n_resamples:
        idx = np.random.default_rng(seed).integers(0, xa.size, size=(n_resamples, xa.size))
        xb, yb = xa[idx], ya[idx]
        alpha = (1 - confidence) / 2
        for k, (u, v) in enumerate(((xb, yb), (sps.rankdata(xb, axis=1), sps.rankdata(yb, axis=1)))):
            r = _rowwise_pearson(u, v)
            r = r[np.isfinite(r)]
            if r.size:
                cis[k] = tuple(float(q) for q in np.quantile(r, [alpha, 1 - alpha]))
    return CheckpointCorrelation(int(xa.size), float(pr.statistic), float(pr.pvalue), *cis[0],
                                 float(sr.statistic), float(sr.pvalue), *cis[1])


@dataclass(frozen=True)
class SeedAwareCorrelation:
    """Pearson correlation of per-checkpoint x and y when checkpoints share training seeds.

    ``r``/``p``: over all checkpoints; ``ci_low``/``ci_high``: percentile bootstrap over
    checkpoints (treats them as independent); ``ci_low_seeds``/``ci_high_seeds``: bootstrap
    that resamples seeds, all checkpoints of a drawn seed together (the seed fixes the data
    order of every variant, so its checkpoints are not independent); ``r_within_seed`` and
    ``p_within_seed``: the correlation of x and y after removing each seed's mean (what varies
    between variants of one seed), tested with df = n − seeds − 1.
    """

    n: int
    n_seeds: int
    r: float
    p: float
    ci_low: float
    ci_high: float
    ci_low_seeds: float
    ci_high_seeds: float
    r_within_seed: float
    p_within_seed: float


def seed_aware_correlation(x, y, seeds, *, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                           seed: int = DEFAULT_SEED) -> SeedAwareCorrelation:
    """:class:`SeedAwareCorrelation` of ``x``, ``y`` ``[n_checkpoints]`` with each checkpoint's
    training ``seeds`` ``[n_checkpoints]``."""
    c = checkpoint_correlation(x, y, confidence=confidence, n_resamples=n_resamples, seed=seed)
    xa, ya = as_items(x, "x"), as_items(y, "y")
    s = np.asarray(seeds)
    if s.shape != xa.shape:
        raise AlignkitError(f"{s.size} seeds for {xa.size} checkpoints; pass one seed per checkpoint")
    nan = math.nan
    groups = [np.flatnonzero(s == k) for k in dict.fromkeys(s.tolist())]
    lo_s = hi_s = nan
    if n_resamples and len(groups) >= 2 and not math.isnan(c.pearson):
        rng = np.random.default_rng(seed)
        rs = []
        for _ in range(n_resamples):
            idx = np.concatenate([groups[g] for g in rng.integers(0, len(groups), size=len(groups))])
            r = _rowwise_pearson(xa[idx][None], ya[idx][None])[0]
            if np.isfinite(r):
                rs.append(r)
        if rs:
            alpha = (1 - confidence) / 2
            lo_s, hi_s = (float(q) for q in np.quantile(rs, [alpha, 1 - alpha]))
    xw, yw = xa.astype(np.float64).copy(), ya.astype(np.float64).copy()
    for g in groups:
        xw[g] -= xw[g].mean()
        yw[g] -= yw[g].mean()
    df = xa.size - len(groups) - 1
    rw = pw = nan
    if df >= 1 and xw.std() > 0 and yw.std() > 0:
        rw = float(_rowwise_pearson(xw[None], yw[None])[0])
        t = rw * math.sqrt(df / max(1e-300, 1.0 - rw * rw))
        pw = float(2.0 * sps.t.sf(abs(t), df))
    return SeedAwareCorrelation(int(xa.size), len(groups), c.pearson, c.pearson_p, c.pearson_low, c.pearson_high,
                                lo_s, hi_s, rw, pw)
