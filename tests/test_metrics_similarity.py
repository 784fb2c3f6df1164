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
