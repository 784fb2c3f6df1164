"""Bootstrap CIs and paired comparisons of item-level scores."""
import math

import numpy as np
import scipy.stats as sps
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


# --- across training runs (SPEC §2 v2) --------------------------------------------------------

def test_seed_t_interval_equals_scipy_on_known_numbers():
    from scipy import stats as sps

    from alignkit.replication import seed_t_interval

    d = np.array([4.9, -2.2, 7.8])  # rt+cl − rt, Tatoeba ur→en, points, per seed (committed study)
    lo, hi, p = seed_t_interval(d)
    want = sps.t.interval(0.95, df=2, loc=d.mean(), scale=sps.sem(d))
    assert (lo, hi) == pytest.approx(want, rel=1e-12)
    assert p == pytest.approx(sps.ttest_1samp(d, 0).pvalue, rel=1e-12)
    assert (round(lo, 1), round(hi, 1), round(p, 2)) == (-9.3, 16.3, 0.36)


def test_seed_t_interval_degenerate_cases():
    from alignkit.replication import seed_t_interval

    assert all(math.isnan(v) for v in seed_t_interval([0.3]))
    assert all(math.isnan(v) for v in seed_t_interval([0.0, 0.0, 0.0]))  # no spread: undefined (SPEC §2 v3)


def _seeded_items(seed_offsets, n=400, noise=0.3, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    base = [rng.normal(0.5, 0.2, n) for _ in seed_offsets]
    cand = [b + off + noise * rng.standard_normal(n) for b, off in zip(base, seed_offsets)]
    return cand, base


def test_two_level_bootstrap_is_wider_than_items_only_when_seeds_vary():
    from alignkit.replication import seed_level_difference

    cand, base = _seeded_items([0.10, -0.05, 0.04, 0.12, -0.02])  # real seed-to-seed variance
    r = seed_level_difference(cand, base, n_resamples=2000)
    assert r.n_seeds == 5 and r.n_items == 400
    assert r.boot_low <= r.diff <= r.boot_high
    assert (r.boot_high - r.boot_low) > 2 * (r.items_high - r.items_low)
    # the items-only interval excludes 0 (conditional on these checkpoints) but the seeds do not
    assert r.items_low > 0 and r.items_p < 0.01
    assert r.t_low < 0 < r.t_high and not r.significant


def test_seed_level_difference_is_significant_when_every_seed_agrees():
    from alignkit.replication import seed_level_difference

    cand, base = _seeded_items([0.10, 0.11, 0.09, 0.10], noise=0.05)
    r = seed_level_difference(cand, base, n_resamples=1000)
    assert r.significant and r.t_low > 0.05 and r.boot_low > 0.05
    np.testing.assert_allclose(r.seed_diffs, [np.mean(c - b) for c, b in zip(cand, base)])
    assert r.seed_sd == pytest.approx(np.std(r.seed_diffs, ddof=1))


def test_two_level_bootstrap_without_seed_variance_shrinks_like_independent_item_resamples():
    # Two seeds with identical item differences: the seed draw adds nothing, and each slot is an
    # independent item resample, so the interval of their mean is the items-only one over √2.
    from alignkit.replication import two_level_bootstrap_ci
    from alignkit.stats import paired_difference

    rng = np.random.default_rng(3)
    e = rng.normal(0.02, 0.3, 2000)
    lo, hi = two_level_bootstrap_ci([e], n_resamples=0)
    assert math.isnan(lo) and math.isnan(hi)
    lo, hi = two_level_bootstrap_ci([e, e.copy()], n_resamples=4000)
    one = paired_difference(e, np.zeros_like(e), n_resamples=4000)
    width, one_width = hi - lo, one.ci_high - one.ci_low
    assert width == pytest.approx(one_width / math.sqrt(2), rel=0.1)  # two independent item resamples


def test_scalar_seed_values_use_seeds_only():
    from alignkit.replication import seed_level_difference

    r = seed_level_difference([0.52, 0.49, 0.55], [0.50, 0.51, 0.47], n_resamples=500)
    np.testing.assert_allclose(r.seed_diffs, [0.02, -0.02, 0.08])
    assert r.n_items == 0 and math.isnan(r.items_low)
    assert -0.02 - 1e-12 <= r.boot_low <= r.boot_high <= 0.08 + 1e-12
    again = seed_level_difference([0.52, 0.49, 0.55], [0.50, 0.51, 0.47], n_resamples=500)
    assert (again.boot_low, again.boot_high) == (r.boot_low, r.boot_high)  # fixed seed


def test_seed_level_difference_rejects_unpaired_input():
    from alignkit.replication import seed_level_difference

    with pytest.raises(AlignkitError, match="candidate has 2 seeds but baseline has 3"):
        seed_level_difference([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(AlignkitError, match="seed 2: candidate has 3 item scores but baseline has 2"):
        seed_level_difference([[1.0, 2.0], [1.0, 2.0, 3.0]], [[1.0, 2.0], [1.0, 2.0]])


def test_checkpoint_correlation_of_a_linear_relation_and_its_bootstrap_ci():
    from alignkit.replication import checkpoint_correlation

    x = np.arange(15, dtype=float)
    c = checkpoint_correlation(x, 2 * x + 1, n_resamples=500)
    assert c.n == 15 and c.pearson == pytest.approx(1.0) and c.spearman == pytest.approx(1.0)
    assert c.pearson_low == pytest.approx(1.0) and c.spearman_high == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    u = rng.standard_normal(200)
    noisy = checkpoint_correlation(u, 0.5 * u + rng.standard_normal(200), n_resamples=2000)
    assert noisy.pearson_low < noisy.pearson < noisy.pearson_high
    assert noisy.pearson_low < 0.447 < noisy.pearson_high  # true r = 0.5 / sqrt(1.25)
    assert noisy.spearman_low < noisy.spearman < noisy.spearman_high
    with pytest.raises(AlignkitError, match="one value per checkpoint"):
        checkpoint_correlation(x, x[:5])


def test_holm_equals_a_hand_computed_example():
    from alignkit.replication import holm

    # sorted p: 0.01, 0.02, 0.03, 0.04 (m = 4): 4*0.01, max(that, 3*0.02), max(.., 2*0.03), max(.., 1*0.04)
    p = np.array([0.03, 0.01, np.nan, 0.04, 0.02])
    np.testing.assert_allclose(holm(p), [0.06, 0.04, np.nan, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1, monotone in the sorted order
    assert np.isnan(holm([np.nan])).all()


def test_zero_seed_spread_gives_undefined_p_and_is_never_significant():
    from alignkit.replication import seed_level_difference, seed_t_interval

    assert all(np.isnan(seed_t_interval([0.02, 0.02, 0.02])))
    assert all(np.isnan(seed_t_interval([0.0, 0.0, 0.0])))
    # float32-rounding noise on equal differences is no spread either (it would give a huge t)
    assert all(np.isnan(seed_t_interval(np.float32(0.0318) + np.array([0.0, 1e-9, -1e-9]))))
    r = seed_level_difference([0.7, 0.8, 0.9], [0.6, 0.7, 0.8])
    assert np.isnan(r.t_p) and not r.significant
    lo, hi, p = seed_t_interval([0.01, 0.02, 0.03])  # t = 0.02/(0.01/sqrt 3), df 2
    assert p == pytest.approx(2 * sps.t.sf(0.02 / (0.01 / np.sqrt(3)), 2)) and lo < 0.02 < hi


def test_items_only_statistics_refuse_item_sets_that_differ_across_seeds():
    from alignkit.replication import seed_level_difference

    a, b = [np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0])], [np.array([0.0, 0.0, 1.0])] * 2
    ok = seed_level_difference(a, b, n_resamples=50, item_ids=[np.array(["x", "y", "z"])] * 2)
    assert not np.isnan(ok.items_low)
    with pytest.raises(AlignkitError, match="different items"):
        seed_level_difference(a, b, n_resamples=50, item_ids=[np.array(["x", "y", "z"]), np.array(["x", "y", "w"])])


def test_seed_cluster_bootstrap_is_wider_than_the_checkpoint_bootstrap_with_seed_effects():
    from alignkit.replication import seed_aware_correlation

    rng = np.random.default_rng(3)
    seeds = np.repeat(np.arange(4), 5)  # 4 seeds x 5 variants
    effect = rng.normal(0, 1, 4)[seeds]  # a shared seed effect moves x and y together
    x = effect + 0.3 * rng.normal(size=20)
    y = effect + 0.3 * rng.normal(size=20)
    c = seed_aware_correlation(x, y, seeds, n_resamples=2000)
    assert c.n == 20 and c.n_seeds == 4 and c.r > 0.8
    assert (c.ci_high_seeds - c.ci_low_seeds) > 1.5 * (c.ci_high - c.ci_low)
    # within seeds x and y are independent noise: the correlation the seeds do not explain is small
    assert abs(c.r_within_seed) < 0.5 and c.p_within_seed > 0.05


def test_sign_flip_test_agrees_with_scipys_permutation_test():
    # The same null (swapping an item's two scores = flipping its difference's sign), drawn
    # differently: p agrees with scipy's within Monte Carlo error of both.
    from scipy import stats as sps

    from alignkit.stats import _mean_diff, sign_flip_p

    rng = np.random.default_rng(11)
    for shift in (0.0, 0.03):
        a, b = rng.random(600) + shift, rng.random(600)
        ours = sign_flip_p(a - b, n_resamples=20000)
        ref = sps.permutation_test((a, b), _mean_diff, permutation_type="samples", vectorized=True,
                                   n_resamples=20000, rng=np.random.default_rng(5)).pvalue
        assert abs(ours - ref) < 4 * math.sqrt(2 * max(ref, 0.01) * (1 - ref) / 20000) + 2e-4


def test_sign_flip_test_known_values():
    from alignkit.stats import sign_flip_p

    d = np.linspace(0.1, 1.0, 20)  # all positive: no flip pattern but the identity reaches the mean
    assert sign_flip_p(d, n_resamples=999) == pytest.approx(2 / 1000)
    assert sign_flip_p(-d, n_resamples=999) == pytest.approx(2 / 1000)
    x = np.random.default_rng(2).normal(0, 1, 300)
    assert sign_flip_p(x, n_resamples=500) == sign_flip_p(-x, n_resamples=500)  # the null is symmetric
    assert sign_flip_p(x, n_resamples=500, seed=3) == sign_flip_p(x, n_resamples=500, seed=3)  # fixed seed
