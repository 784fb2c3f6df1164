"""The vectorised BCa bootstrap of a mean against scipy.stats.bootstrap (its reference)."""
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from alignkit.stats import bootstrap_ci

DISTRIBUTIONS = {
    "normal": lambda rng, n: rng.standard_normal(n),
    "exponential (skewed)": lambda rng, n: rng.exponential(size=n),
    "lognormal (heavy tail)": lambda rng, n: rng.lognormal(sigma=1.2, size=n),
    "rare hits (p = 0.03)": lambda rng, n: (rng.random(n) < 0.03).astype(float),
    "common hits (p = 0.7)": lambda rng, n: (rng.random(n) < 0.7).astype(float),
}


def _scipy_bca(x, n_resamples, seed, method="BCa"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.bootstrap((x,), np.mean, n_resamples=n_resamples, method=method, vectorized=True,
                            batch=1000, rng=np.random.default_rng(seed))
    return res.confidence_interval.low, res.confidence_interval.high, res.standard_error


@pytest.mark.parametrize("name", DISTRIBUTIONS)
@pytest.mark.parametrize("n", [30, 300, 2500])
def test_same_seed_gives_scipys_bca_interval(name, n):
    # Same seed, same resamples: the interval is scipy's up to rounding of the means. (With
    # n < ~10, resamples that are permutations of the sample have mean == the mean up to
    # rounding, and z0 counts them by rounding; there the two may differ by one resample.)
    x = DISTRIBUTIONS[name](np.random.default_rng(n), n)
    if np.all(x == x[0]):
        pytest.skip("constant sample")
    lo, hi, _ = _scipy_bca(x, 1999, seed=3)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        lo, hi, _ = _scipy_bca(x, 1999, seed=3, method="percentile")
    assert bootstrap_ci(x, n_resamples=1999, seed=3) == pytest.approx((lo, hi), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_other_seeds_agree_within_monte_carlo_error(name):
    # Independent resamples: the ends move by Monte-Carlo noise only, a fraction of the SE.
    x = DISTRIBUTIONS[name](np.random.default_rng(1), 1500)
    ours = np.array([bootstrap_ci(x, n_resamples=1000, seed=s) for s in range(8)])
    ref = np.array([_scipy_bca(x, 1000, seed=100 + s)[:2] for s in range(8)])
    se = _scipy_bca(x, 1000, seed=0)[2]
    assert np.abs(ours.mean(0) - ref.mean(0)).max() < 0.15 * se
    assert ours.std(0).max() < 0.2 * se and ref.std(0).max() < 0.2 * se


def test_undefined_bca_falls_back_to_the_percentile_interval_like_scipy():
    # Two items: every resampled mean is 1, 1.5 or 2 and the mean 1.5 is hit often; with a
    # skew this extreme a_hat * z can reach 1 and BCa's level formula breaks down.
    x = np.array([0.0] * 3 + [1.0])
    lo, hi = bootstrap_ci(x, n_resamples=500, seed=0)
    ref_lo, ref_hi, _ = _scipy_bca(x, 500, 0)
    if not (np.isfinite(ref_lo) and np.isfinite(ref_hi)):
        ref_lo, ref_hi, _ = _scipy_bca(x, 500, 0, method="percentile")
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi))
    assert 0.0 <= lo <= x.mean() <= hi <= 1.0
