"""Bootstrap CIs and paired comparisons of item-level scores."""
import math

import numpy as np
import pytest

from alignkit.errors import AlignkitError
from alignkit.stats import bootstrap_ci, mean_estimate, paired_difference


def test_bootstrap_ci_contains_the_mean_and_is_reproducible():
    x = np.random.default_rng(0).normal(0.3, 1.0, 400)
    lo, hi = bootstrap_ci(x)
    assert lo < x.mean() < hi
    assert 0.1 < hi - lo < 0.3  # ≈ 2 × 1.96 × 1/√400
    assert bootstrap_ci(x) == (lo, hi)


def test_bootstrap_ci_of_binary_hits_stays_in_range():
    hits = (np.random.default_rng(1).random(500) < 0.1).astype(float)
    lo, hi = bootstrap_ci(hits)
    assert 0 <= lo < hits.mean() < hi <= 1


def test_degenerate_samples_give_point_or_missing_intervals():
    assert bootstrap_ci(np.full(10, 0.7)) == (0.7, 0.7)
    assert all(math.isnan(v) for v in bootstrap_ci([0.5]))
    assert all(math.isnan(v) for v in bootstrap_ci([0.1, 0.9], n_resamples=0))


def test_mean_estimate_keeps_items():
    est = mean_estimate([1.0, 0.0, 1.0, 1.0])
    assert est.value == 0.75 and est.n == 4 and est.items.tolist() == [1.0, 0.0, 1.0, 1.0]


def test_paired_difference_of_identical_vectors_is_zero_with_p_one():
    a = np.random.default_rng(2).random(200)
    d = paired_difference(a, a.copy())
    assert (d.diff, d.ci_low, d.ci_high, d.p_value, d.n) == (0.0, 0.0, 0.0, 1.0, 200)


def test_paired_difference_detects_a_consistent_shift():
    base = np.random.default_rng(3).random(200)
    cand = base + 0.02 + 0.005 * np.random.default_rng(4).standard_normal(200)
    d = paired_difference(cand, base)
    assert d.diff == pytest.approx(0.02, abs=0.002)
    assert d.ci_low < 0.02 < d.ci_high and d.ci_low > 0
    assert d.p_value < 1e-3


def test_paired_difference_without_a_real_difference_has_large_p():
    rng = np.random.default_rng(5)
    base = rng.random(300)
    cand = base + rng.choice([-0.1, 0.1], 300)  # sign-symmetric noise, no shift
    d = paired_difference(cand, base)
    assert d.p_value > 0.2 and d.ci_low < 0 < d.ci_high


def test_pairing_matters_more_than_the_spread_of_items():
    # Items vary a lot, but every item improves by 1 point: a paired test sees it at once.
    base = np.random.default_rng(6).normal(50, 20, 30)
    d = paired_difference(base + 1, base)
    assert d.diff == pytest.approx(1.0) and d.p_value < 1e-3


def test_small_samples_use_the_exact_permutation_distribution():
    # n = 5: 2^5 = 32 sign patterns; all differences positive -> two-sided p = 2/32.
    d = paired_difference([2.0, 3, 4, 5, 6], [1.0, 2, 3, 4, 5])
    assert d.p_value == pytest.approx(2 / 32)


@pytest.mark.parametrize("a, b, message", [
    ([1.0, 2.0], [1.0], "candidate has 2 item scores but baseline has 1"),
    ([1.0, np.nan], [1.0, 2.0], "1 NaN or infinite"),
    ([], [], "is empty"),
])
def test_bad_item_vectors_raise_one_line_error(a, b, message):
    with pytest.raises(AlignkitError, match=message):
        paired_difference(a, b)
