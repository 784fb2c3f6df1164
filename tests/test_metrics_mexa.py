"""MEXA: share of pairs whose cosine strictly tops its row and its column."""
import numpy as np
import pytest

from alignkit.errors import AlignkitError
from alignkit.metrics.mexa import mexa


def brute_mexa_items(x, e):
    """The definition in float64 numpy on the full matrix: strict maximum of row and column."""
    x = np.asarray(x, np.float64)
    e = np.asarray(e, np.float64)
    c = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (e / np.linalg.norm(e, axis=1, keepdims=True)).T
    n = len(c)
    off = c + np.diag(np.full(n, -np.inf))
    d = np.diag(c)
    return ((d > off.max(axis=1)) & (d > off.max(axis=0))).astype(float)


def _noisy_pairs(n, dim, noise, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, dim))
    return ((z + noise * rng.standard_normal((n, dim))).astype(np.float32),
            (z + noise * rng.standard_normal((n, dim))).astype(np.float32))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mexa_equals_brute_force_count_on_random_data(seed):
    x, e = _noisy_pairs(300, 16, noise=1.0, seed=seed)
    want = brute_mexa_items(x, e)
    got = mexa(x, e, n_resamples=0, block_rows=37)  # blocks that do not divide n
    assert 0.1 < want.mean() < 0.9
    np.testing.assert_array_equal(got.mexa.items, want)
    assert got.mexa.value == want.mean() and got.n == 300


def test_blocking_does_not_change_the_items():
    x, e = _noisy_pairs(500, 24, noise=1.2, seed=4)
    ref = mexa(x, e, n_resamples=0, block_rows=500).mexa.items
    for rows in (1, 7, 64):
        np.testing.assert_array_equal(mexa(x, e, n_resamples=0, block_rows=rows).mexa.items, ref)


def test_ties_are_not_strict_maxima():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 8)).astype(np.float32)
    e = x.copy()
    e[4] = e[1]   # row ties: C[1, 1] == C[1, 4] (pair 1) and C[4, 4] == C[4, 1] (pair 4)
    x[5] = x[2]   # column tie C[2, 2] == C[5, 2] (pair 2); pair 5 loses row 5 to C[5, 2] = 1
    res = mexa(x, e, n_resamples=0)
    np.testing.assert_array_equal(res.mexa.items, brute_mexa_items(x, e))
    assert res.mexa.items.tolist() == [1, 0, 0, 1, 0, 0]
    assert not res.row_aligned[1] and not res.col_aligned[2]


def test_identical_languages_give_mexa_one():
    x = np.random.default_rng(1).standard_normal((200, 32)).astype(np.float32)
    res = mexa(x, x * 3.0, n_resamples=0)
    assert res.mexa.value == 1.0 and res.row_aligned.all() and res.col_aligned.all()


def test_row_and_column_conditions_are_both_needed():
    # e1 is nearer x1 than e0 is (row 1 won) but nearer still to x0 (column 1 lost)
    x = np.array([[1.0, 0.0], [0.6, 0.8]], np.float32)
    e = np.array([[1.0, 0.0], [0.95, 0.31]], np.float32)
    res = mexa(x, e, n_resamples=0)
    assert res.row_aligned.tolist() == [True, True] and res.col_aligned.tolist() == [True, False]
    assert res.mexa.items.tolist() == [1.0, 0.0]


def test_centring_removes_a_language_offset():
    x, _ = _noisy_pairs(100, 16, noise=0.0, seed=3)
    shifted = x + 50.0
    assert mexa(x, shifted, n_resamples=0).mexa.value < 0.5
    assert mexa(x, shifted, center=True, n_resamples=0).mexa.value == 1.0


def test_mexa_has_a_bootstrap_ci():
    x, e = _noisy_pairs(200, 16, noise=1.0, seed=5)
    est = mexa(x, e, n_resamples=999).mexa
    assert est.ci_low < est.value < est.ci_high


@pytest.mark.parametrize("x, e, message", [
    (np.zeros((3, 4)), np.zeros((2, 4)), "3 non-English but 2 English"),
    (np.zeros((1, 4)), np.zeros((1, 4)), "at least 2"),
    (np.zeros((3, 4)), np.full((3, 4), np.nan), "NaN"),
    (np.zeros((3, 4)), np.zeros((3, 5)), "dimension 5"),
])
def test_bad_inputs_are_refused(x, e, message):
    with pytest.raises(AlignkitError, match=message):
        mexa(x, e, n_resamples=0)
