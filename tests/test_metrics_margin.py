"""Ratio-margin retrieval (k = 4): scores, rankings and P@k against a brute-force numpy version."""
import numpy as np
import pytest

from alignkit.errors import AlignkitError
from reference import prepared_spaces
from alignkit.metrics import tatoeba_accuracy
from alignkit.metrics.margin import (MarginRadii, margin_rankings_by_candidates, margin_retrieve, margin_retrieve_both,
                                     margin_space, margin_tatoeba, margin_topk)


def _unit(a):
    a = np.asarray(a, np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def brute_margin(queries, pool, query_space=None, k=4, center=False):
    """SPEC §2 in float64 on full matrices: cos / (mean top-k cos of x to the pool / 2 +
    mean top-k cos of y to the query space / 2). Returns (scores [n, m], r_x [n], r_y [m])."""
    x, y, qs = prepared_spaces(queries, pool, query_space, center)
    s = x @ y.T
    r_x = np.sort(s, axis=1)[:, -k:].mean(axis=1)
    r_y = np.sort(y @ qs.T, axis=1)[:, -k:].mean(axis=1)
    return s / (0.5 * r_x[:, None] + 0.5 * r_y[None, :]), r_x, r_y


def brute_ranking(scores, kmax):
    return np.argsort(-scores, axis=1, kind="stable")[:, :kmax]


def _pairs(n, dim, noise, seed, n_extra=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n + n_extra, dim))
    return ((z + noise * rng.standard_normal(z.shape)).astype(np.float32),
            (z + noise * rng.standard_normal(z.shape)).astype(np.float32))


def test_margin_topk_scores_equal_brute_force():
    x, y = _pairs(120, 16, noise=1.0, seed=0, n_extra=80)
    want, r_x, r_y = brute_margin(x, y)
    xn, yn = _unit(x).astype(np.float32), _unit(y).astype(np.float32)
    scores, ids = margin_topk(xn, yn, r_x, r_y, 10, block_rows=33)
    np.testing.assert_allclose(scores, np.take_along_axis(want, ids, 1), rtol=1e-5)
    np.testing.assert_allclose(scores, -np.sort(-want, axis=1)[:, :10], rtol=1e-5)
    np.testing.assert_array_equal(ids, brute_ranking(want, 10))


def test_radii_of_one_product_equal_brute_force_both_ways():
    x, y = _pairs(150, 16, noise=1.0, seed=1, n_extra=50)
    xn, yn = _unit(x).astype(np.float32), _unit(y).astype(np.float32)
    fwd, bwd = margin_space(xn, yn)
    _, r_x, r_y = brute_margin(x, y)
    np.testing.assert_allclose(fwd.query, r_x, atol=1e-6)
    np.testing.assert_allclose(fwd.pool, r_y, atol=1e-6)
    np.testing.assert_array_equal(bwd.query, fwd.pool)
    np.testing.assert_array_equal(bwd.pool, fwd.query)
    assert isinstance(fwd, MarginRadii)


@pytest.mark.parametrize("center", [False, True])
def test_margin_p_at_k_equals_brute_force(center):
    x, y = _pairs(100, 16, noise=1.0, seed=2, n_extra=150)
    y = y + 0.5  # an offset that centring removes
    queries, gold = x[:100], [{i} for i in range(100)]
    res = margin_retrieve(queries, y, gold, ks=(1, 5), center=center, query_space=x, n_resamples=0)
    want = brute_ranking(brute_margin(queries, y, query_space=x, center=center)[0], 5)
    np.testing.assert_array_equal(res.ranked, want)
    for k in (1, 5):
        assert res.precision[k].value == np.mean([i in want[i, :k] for i in range(100)])
    assert 0.1 < res.precision[1].value < 0.95 and res.method == "margin" and res.center == center


def test_exact_ties_go_to_the_lower_pool_index():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    pool = np.vstack([rng.standard_normal((30, 8)), x[:10]]).astype(np.float32)  # x[i] is pool row 30 + i
    pool = np.vstack([pool, x[:10]])              # ... and again at row 40 + i: an exact tie
    scores, _, _ = brute_margin(x, pool)
    assert np.array_equal(scores[:, 30:40], scores[:, 40:50])
    gold_low, gold_high = [{30 + i} for i in range(10)], [{40 + i} for i in range(10)]
    low = margin_retrieve(x[:10], pool, gold_low, ks=(1,), query_space=x, n_resamples=0)
    high = margin_retrieve(x[:10], pool, gold_high, ks=(1,), query_space=x, n_resamples=0)
    np.testing.assert_array_equal(low.ranked[:, 0], 30 + np.arange(10))
    assert low.precision[1].value == 1.0 and high.precision[1].value == 0.0


def test_both_directions_equal_the_single_direction_calls():
    x, y = _pairs(80, 16, noise=1.0, seed=4, n_extra=220)
    sg, tg = [{i} for i in range(80)], [{i} for i in range(60)]
    both = margin_retrieve_both(x, y, sg, tg, ks=(1, 10), n_resamples=0)
    fwd = margin_retrieve(x[:80], y, sg, ks=(1, 10), query_space=x, n_resamples=0)
    bwd = margin_retrieve(y[:60], x, tg, ks=(1, 10), query_space=y, n_resamples=0)
    np.testing.assert_array_equal(both["src->tgt", "margin"].ranked, fwd.ranked)
    np.testing.assert_array_equal(both["tgt->src", "margin"].ranked, bwd.ranked)
    assert both["tgt->src", "margin"].n == 60 and both["src->tgt", "margin"].pool_size == 300


def test_margin_tatoeba_equals_brute_force_and_not_cosine():
    x, e = _pairs(200, 12, noise=1.0, seed=5)
    res = margin_tatoeba(x, e, n_resamples=0)
    want_x2e = brute_ranking(brute_margin(x, e)[0], 1)[:, 0]
    want_e2x = brute_ranking(brute_margin(e, x)[0], 1)[:, 0]
    np.testing.assert_array_equal(res.xx_to_en_pred, want_x2e)
    np.testing.assert_array_equal(res.en_to_xx_pred, want_e2x)
    assert res.xx_to_en.value == np.mean(want_x2e == np.arange(200))
    cos = tatoeba_accuracy(x, e, n_resamples=0)
    assert not np.array_equal(cos.xx_to_en_pred, res.xx_to_en_pred)  # the margin re-ranks hubs


def test_margin_results_have_bootstrap_cis():
    x, e = _pairs(150, 12, noise=1.0, seed=6)
    res = margin_tatoeba(x, e, n_resamples=999)
    assert res.xx_to_en.ci_low < res.xx_to_en.value < res.xx_to_en.ci_high
    assert res.xx_to_en.items.shape == (150,)


def test_non_positive_denominators_are_refused():
    x = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    with pytest.raises(AlignkitError, match="margin denominators reach .* <= 0"):
        margin_retrieve(x, -x, [{0}, {1}], ks=(1,), k=2, n_resamples=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(ks=(50,)), "k=50 is larger than the candidate pool"),
    (dict(k=0), "margin k=0 needs"),
    (dict(ks=(0,)), "ks must be positive"),
])
def test_bad_sizes_are_refused(kwargs, message):
    x, y = _pairs(20, 4, noise=1.0, seed=0)
    with pytest.raises(AlignkitError, match=message):
        margin_retrieve(x, y, [{i} for i in range(20)], n_resamples=0, **kwargs)


def test_bad_gold_is_refused():
    x, y = _pairs(5, 4, noise=1.0, seed=0)
    with pytest.raises(AlignkitError, match="outside 0..4"):
        margin_retrieve(x, y, [{7}] * 5, ks=(1,), n_resamples=0)
    with pytest.raises(AlignkitError, match="none of the 5"):
        margin_retrieve(x, y, [set()] * 5, ks=(1,), n_resamples=0)
    with pytest.raises(AlignkitError, match="gold has 4 entries"):
        margin_retrieve(x, y, [{1}] * 4, ks=(1,), n_resamples=0)


# ---------------------------------------------------------------- the candidate route (many queries)

def _two_product_reference(xn, yn, q_src, q_tgt, kmax):
    fwd, bwd = margin_space(xn, yn)
    return (margin_topk(xn[:q_src], yn, fwd.query[:q_src], fwd.pool, kmax)[1],
            margin_topk(yn[:q_tgt], xn, bwd.query[:q_tgt], bwd.pool, kmax)[1])


@pytest.mark.parametrize("n_candidates", [128, 12, 1])  # 1 and 12: most rows need the exact re-rank
def test_candidate_rankings_equal_the_radii_then_rank_route(n_candidates):
    x, y = _pairs(260, 16, noise=1.0, seed=8, n_extra=140)
    xn, yn = _unit(x).astype(np.float32), _unit(y).astype(np.float32)
    got = margin_rankings_by_candidates(xn, yn, 260, 200, 10, n_candidates=n_candidates, block_rows=45)
    want = _two_product_reference(xn, yn, 260, 200, 10)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], brute_ranking(brute_margin(x[:260], y, query_space=x)[0], 10))


def _exact_unit_rows(rng, n: int) -> np.ndarray:
    """n distinct unit vectors in 8 dims with four entries ±0.5: every cosine between them is a
    multiple of 1/4, exact in any summation order, so ties stay exact whatever the BLAS."""
    rows: dict[bytes, np.ndarray] = {}
    while len(rows) < n:
        v = np.zeros(8, np.float32)
        v[rng.choice(8, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
        rows.setdefault(v.tobytes(), v)
    return np.stack(list(rows.values()))


def test_candidate_route_keeps_exact_ties_to_the_lower_index():
    rng = np.random.default_rng(9)
    v = _exact_unit_rows(rng, 80)
    x = v[:60]
    y = np.vstack([v[60:], x[:20], x[:20]])  # rows 20+i and 40+i tie exactly (cosine 1)
    xn, yn = _unit(x).astype(np.float32), _unit(y).astype(np.float32)
    src, _ = margin_rankings_by_candidates(xn, yn, 60, 60, 3, n_candidates=4, block_rows=7)
    np.testing.assert_array_equal(src[:20, :2], np.stack([20 + np.arange(20), 40 + np.arange(20)], 1))
    np.testing.assert_array_equal(src, _two_product_reference(xn, yn, 60, 60, 3)[0])


def test_many_queries_take_the_candidate_route_and_match_single_direction_calls():
    x, y = _pairs(250, 16, noise=1.0, seed=10, n_extra=50)
    sg, tg = [{i} for i in range(250)], [{i} for i in range(200)]
    both = margin_retrieve_both(x, y, sg, tg, ks=(1, 5), n_resamples=0)
    fwd = margin_retrieve(x[:250], y, sg, ks=(1, 5), query_space=x, n_resamples=0)
    bwd = margin_retrieve(y[:200], x, tg, ks=(1, 5), query_space=y, n_resamples=0)
    np.testing.assert_array_equal(both["src->tgt", "margin"].ranked, fwd.ranked)
    np.testing.assert_array_equal(both["tgt->src", "margin"].ranked, bwd.ranked)
