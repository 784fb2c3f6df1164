"""BLS and raw BLS (SPEC §2)."""
import numpy as np
import pytest

from alignkit.errors import AlignkitError
from alignkit.metrics import bls


def _cos_matrix(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def test_identical_spaces_give_bls_raw_one():
    x = np.random.default_rng(0).standard_normal((80, 16))
    res = bls(x, 3.0 * x)  # scale does not matter: cosine
    assert res.bls_raw.value == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(res.bls_raw.items, 1.0, atol=1e-6)
    assert res.bls.value == pytest.approx(1.0 - res.correction)


def test_bls_equals_bruteforce_mean_over_pairs_and_all_combinations():
    rng = np.random.default_rng(1)
    src, tgt = rng.standard_normal((7, 5)) + 0.5, rng.standard_normal((9, 5)) + 0.5
    # Source 0 has two translations and target 4 serves two sources; rows 6 (src) and
    # 8 (tgt) belong to no pair and must not enter the scored sets.
    pairs = np.array([[0, 0], [0, 1], [1, 2], [2, 3], [3, 4], [4, 4], [5, 5], [5, 7]])
    res = bls(src, tgt, pairs, n_resamples=0)
    cos = _cos_matrix(src, tgt)
    raw = np.mean([cos[s, t] for s, t in pairs])
    all_combinations = cos[np.ix_([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5, 7])].mean()
    assert res.bls_raw.value == pytest.approx(raw, abs=1e-6)
    assert res.correction == pytest.approx(all_combinations, abs=1e-6)
    assert res.bls.value == pytest.approx(raw - all_combinations, abs=1e-6)
    assert (res.n_src, res.n_tgt, res.bls.n) == (6, 7, 8)
    np.testing.assert_allclose(res.bls.items, [cos[s, t] - all_combinations for s, t in pairs], atol=1e-6)


def test_row_aligned_form_uses_every_row_once():
    rng = np.random.default_rng(2)
    src, tgt = rng.standard_normal((30, 8)), rng.standard_normal((30, 8))
    res = bls(src, tgt, n_resamples=0)
    cos = _cos_matrix(src, tgt)
    assert res.bls_raw.value == pytest.approx(np.trace(cos) / 30, abs=1e-6)
    assert res.correction == pytest.approx(cos.mean(), abs=1e-6)


def test_correction_removes_anisotropy_from_unrelated_pairs():
    # Every vector shares a large common direction: raw cosines of unrelated words are high,
    # the corrected score is ~0.
    rng = np.random.default_rng(3)
    common = 4.0 * np.ones(32)
    src, tgt = rng.standard_normal((400, 32)) + common, rng.standard_normal((400, 32)) + common
    res = bls(src, tgt, n_resamples=0)
    assert res.bls_raw.value > 0.8
    assert abs(res.bls.value) < 0.01


def test_ci_brackets_the_value_and_is_shifted_by_the_correction():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((300, 16))
    res = bls(z + rng.standard_normal((300, 16)), z + rng.standard_normal((300, 16)))
    for est in (res.bls, res.bls_raw):
        assert est.ci_low < est.value < est.ci_high and est.n == 300
    assert res.bls.ci_low == pytest.approx(res.bls_raw.ci_low - res.correction)


def test_same_inputs_give_the_same_ci():
    rng = np.random.default_rng(5)
    src, tgt = rng.standard_normal((100, 8)), rng.standard_normal((100, 8))
    a, b = bls(src, tgt, n_resamples=999), bls(src, tgt, n_resamples=999)
    assert (a.bls_raw.ci_low, a.bls_raw.ci_high) == (b.bls_raw.ci_low, b.bls_raw.ci_high)


@pytest.mark.parametrize("src, tgt, pairs, message", [
    (np.ones((3, 4)), np.ones((4, 4)), None, "row i of each must be test pair i"),
    (np.ones((3, 4)), np.ones((3, 5)), None, "dimension 5"),
    (np.ones((3, 4)), np.ones((3, 4)), np.array([[0, 3]]), "outside the 3 source / 3 target"),
    (np.ones((3, 4)), np.ones((3, 4)), np.zeros((0, 2), int), "non-empty"),
    (np.ones((0, 4)), np.ones((0, 4)), None, "source vectors is empty"),
    (np.array([[1.0, np.nan], [1.0, 2.0]]), np.ones((2, 2)), None, "1 of 2 rows with NaN"),
])
def test_bad_input_raises_one_line_error(src, tgt, pairs, message):
    with pytest.raises(AlignkitError, match=message):
        bls(src, tgt, pairs)


# --- scale-free BLS (SPEC §2 v2): bls_baseline, bls_z, bls_auc ------------------------------

def _bruteforce_auc(cos, pairs):
    """Count, for each pair, the non-gold targets its translation beats (ties ½), one by one."""
    gold = {}
    for s, t in pairs:
        gold.setdefault(s, set()).add(t)
    targets = sorted({t for _, t in pairs})
    out = []
    for s, t in pairs:
        others = [u for u in targets if u not in gold[s]]
        wins = sum(1.0 if cos[s, u] < cos[s, t] else 0.5 if cos[s, u] == cos[s, t] else 0.0 for u in others)
        out.append(wins / len(others))
    return np.array(out)


def test_bls_auc_equals_a_bruteforce_count_with_ties_as_half():
    from alignkit.metrics.similarity import auc_items

    rng = np.random.default_rng(10)
    # cosines on a coarse grid, so ties occur often
    cos = np.round(rng.uniform(-1, 1, (6, 8)), 1)
    pairs = [(0, 0), (0, 1), (1, 2), (2, 2), (3, 4), (4, 5), (5, 6), (5, 7), (1, 3)]
    ps, pt = np.array(pairs).T
    gold = np.zeros(cos.shape, bool)
    gold[ps, pt] = True
    got = auc_items(cos, ps, pt, gold)
    want = _bruteforce_auc(cos, pairs)
    assert np.any(cos[ps][:, None] == cos[ps, pt][:, None])  # the data really has ties
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_bls_auc_is_unchanged_by_a_monotone_rescaling_of_the_cosines():
    from alignkit.metrics.similarity import auc_items

    rng = np.random.default_rng(11)
    cos = rng.uniform(-1, 1, (40, 50))
    ps, pt = np.arange(40), rng.permutation(50)[:40]
    gold = np.zeros(cos.shape, bool)
    gold[ps, pt] = True
    a = auc_items(cos, ps, pt, gold)
    for f in (lambda c: 0.01 * c + 0.9, np.arctanh, lambda c: np.exp(5 * c), lambda c: (c + 1) ** 3):
        np.testing.assert_array_equal(auc_items(f(cos), ps, pt, gold), a)


def test_bls_auc_of_vectors_matches_bruteforce_and_anisotropy_does_not_move_it():
    rng = np.random.default_rng(12)
    src, tgt = rng.standard_normal((7, 5)), rng.standard_normal((9, 5))
    tgt[:6] += 0.8 * src[[0, 0, 1, 2, 3, 5]]
    pairs = np.array([[0, 0], [0, 1], [1, 2], [2, 3], [3, 4], [4, 4], [5, 5], [5, 7]])
    res = bls(src, tgt, pairs, n_resamples=0)
    cos = _cos_matrix(src, tgt)
    want = _bruteforce_auc(cos, [tuple(p) for p in pairs])
    np.testing.assert_allclose(res.bls_auc.items, want, atol=1e-9)
    assert res.bls_auc.value == pytest.approx(want.mean(), abs=1e-9) and res.bls_auc.n == 8


def test_bls_auc_is_one_half_without_alignment_and_one_when_translations_are_nearest():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((400, 32))
    assert bls(x, rng.standard_normal((400, 32)), n_resamples=0).bls_auc.value == pytest.approx(0.5, abs=0.02)
    assert bls(x, x + 0.01 * rng.standard_normal((400, 32)), n_resamples=0).bls_auc.value == 1.0


def test_bls_z_and_baseline_equal_bruteforce_mean_and_sd_over_all_combinations():
    rng = np.random.default_rng(14)
    src, tgt = rng.standard_normal((7, 5)) + 0.5, rng.standard_normal((9, 5)) + 0.5
    pairs = np.array([[0, 0], [0, 1], [1, 2], [2, 3], [3, 4], [4, 4], [5, 5], [5, 7]])
    res = bls(src, tgt, pairs, n_resamples=0)
    full = _cos_matrix(src, tgt)[np.ix_([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5, 7])]
    raw = np.mean([_cos_matrix(src, tgt)[s, t] for s, t in pairs])
    # vectors are unit-normalised in float32, hence 1e-6
    assert res.bls_baseline.value == pytest.approx(full.mean(), abs=1e-6)
    assert res.bls_baseline.n == 6  # items: one per unique source word
    assert res.spread == pytest.approx(full.std(), abs=1e-6)
    assert res.bls_z.value == pytest.approx((raw - full.mean()) / full.std(), abs=1e-5)


def test_bls_follows_the_cosine_spread_while_bls_auc_barely_moves():
    # A shared direction added to both spaces squeezes every cosine towards c: bls (cosine
    # units) falls several-fold although each source's ranking of targets hardly changes.
    rng = np.random.default_rng(15)
    z = rng.standard_normal((300, 16))
    src, tgt = z + rng.standard_normal((300, 16)), z + rng.standard_normal((300, 16))
    a = bls(src, tgt, n_resamples=0)
    common = 3.0 * np.ones(16)
    b = bls(src + common, tgt + common, n_resamples=0)
    assert b.spread < 0.3 * a.spread and b.bls_baseline.value > a.bls_baseline.value + 0.5
    assert b.bls.value < 0.3 * a.bls.value
    assert abs(b.bls_auc.value - a.bls_auc.value) < 0.02


def test_ci_of_bls_z_is_raw_ci_shifted_and_scaled_with_c_and_spread_fixed():
    rng = np.random.default_rng(16)
    z = rng.standard_normal((300, 16))
    res = bls(z + rng.standard_normal((300, 16)), z + rng.standard_normal((300, 16)), n_resamples=999)
    assert res.bls_z.ci_low == pytest.approx((res.bls_raw.ci_low - res.correction) / res.spread)
    assert res.bls_z.ci_high == pytest.approx((res.bls_raw.ci_high - res.correction) / res.spread)
    for est in (res.bls_z, res.bls_auc, res.bls_baseline):
        assert est.ci_low < est.value < est.ci_high
    assert res.bls_baseline.value == pytest.approx(res.correction)


def test_bls_auc_without_a_non_translation_is_a_one_line_error():
    with pytest.raises(AlignkitError, match="at least one scored target that is not a gold"):
        bls(np.eye(3)[:2], np.eye(3)[:1], np.array([[0, 0], [1, 0]]))
