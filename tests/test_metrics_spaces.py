"""Both retrieval spaces from one product (``space_search`` / ``retrieve_spaces``): the centred
space is searched directly, the plain cosines are derived from the centred product by the
rank-two identity of ``PlainFromCentred``."""
from __future__ import annotations

import numpy as np
import pytest

from alignkit.errors import AlignkitError
from alignkit.metrics import _validate, blocked, retrieve_both, retrieve_spaces, spaces, torch_tops
from alignkit.metrics.cpu_tops import plain_from_centred
from reference import product_search_by_sorting, recorded_products

FIELDS = ("src_radii", "tgt_radii", "src_nn", "src_csls", "tgt_nn", "tgt_csls")


def _languages(rng, ties: bool, offset: float = 2.0):
    """Two anisotropic clouds (a shared offset, like real encoder layers); with ``ties``,
    repeated rows (identical vectors tie exactly in both spaces). dim < 24 as in
    test_metrics_cpu_tops: at tiny shapes with larger dim the BLAS may pick another kernel
    for a 2-row block than for the whole product (other bits, not another ranking rule)."""
    n_src, n_tgt, dim = (int(v) for v in (rng.integers(20, 400), rng.integers(20, 400), rng.integers(4, 24)))
    common = offset * rng.standard_normal(dim)
    x = rng.standard_normal((n_src, dim)) + common
    y = rng.standard_normal((n_tgt, dim)) + common + 0.3 * rng.standard_normal(dim)
    if ties:
        x[n_src // 2:] = x[:n_src - n_src // 2]
        m = len(y) // 3
        y[:3 * m:3] = y[1:3 * m:3]
    return x.astype(np.float32), y.astype(np.float32)


def _derived_whole(x, y, product=None):
    """The centred product (``product(xcn, ycn)``, default the whole GEMM) and the plain one
    derived from it."""
    xcn, ycn, d = spaces.centred_operands(x, y)
    g = xcn @ ycn.T if product is None else product(xcn, ycn)
    p = np.empty_like(g)
    plain_from_centred(g, p, d.row, d.col)
    return g, p


@pytest.mark.parametrize("seed", range(8))
def test_both_spaces_equal_sorting_their_products_on_both_paths(seed):
    """Centred: the centred unit rows' product; plain: the derived product. Bit for bit,
    ties included, with small blocks (lone rows, many column merges), CPU and torch paths,
    each against the product its own GEMM blocks computed (reference.RecordedProducts)."""
    rng = np.random.default_rng(100 + seed)
    x, y = _languages(rng, ties=seed % 2 == 0)
    n = min(len(x), len(y))
    k, kmax = int(rng.integers(1, min(n, 12) + 1)), int(rng.integers(1, min(n, 12) + 1))
    q_src, q_tgt = int(rng.integers(0, len(x) + 1)), int(rng.integers(0, len(y) + 1))
    rows = [None, 2, 3, 16][seed % 4]
    xcn, ycn, d = spaces.centred_operands(x, y)
    with recorded_products() as rec:
        found = spaces.space_search(x, y, q_src, q_tgt, kmax=kmax, csls_k=k, block_rows=rows)
    runs = [("cpu", True, found[True], rec), ("cpu", False, found[False], rec)]
    for c in (True, False):
        with recorded_products() as rec:
            runs.append(("torch", c, torch_tops.torch_product_search(xcn, ycn, q_src, q_tgt, kmax=kmax, csls_k=k,
                                                                  block_rows=rows, derive=None if c else d), rec))
    for name, center, result, rec in runs:
        g, p = _derived_whole(x, y, lambda a, b: rec.product(a, b))
        for field, ref in zip(FIELDS, product_search_by_sorting(g if center else p, q_src, q_tgt, kmax, k)):
            np.testing.assert_array_equal(getattr(result, field), ref, err_msg=f"{name} {center} {field}")


@pytest.mark.parametrize("n_tgt", [1024, 1100, 2600])
def test_both_spaces_over_super_chunks_equal_sorting_their_products(n_tgt):
    """As above with rows wider than the scan's 1024-column super-chunks (its lane maxima and
    their ragged tail), ties included."""
    rng = np.random.default_rng(n_tgt)
    common = 2.0 * rng.standard_normal(16)
    x = rng.standard_normal((700, 16)) + common
    y = rng.standard_normal((n_tgt, 16)) + common
    x[350:] = x[:350]
    m = n_tgt // 3
    y[:3 * m:3] = y[1:3 * m:3]
    x, y = x.astype(np.float32), y.astype(np.float32)
    with recorded_products() as rec:
        found = spaces.space_search(x, y, 50, 60, kmax=10, csls_k=10, block_rows=64)
    g, p = _derived_whole(x, y, rec.product)
    for center, whole in ((True, g), (False, p)):
        for field, ref in zip(FIELDS, product_search_by_sorting(whole, 50, 60, 10, 10)):
            np.testing.assert_array_equal(getattr(found[center], field), ref, err_msg=f"{center} {field}")


def test_one_space_alone_equals_that_space_of_the_pair():
    rng = np.random.default_rng(7)
    x, y = _languages(rng, ties=False)
    both = spaces.space_search(x, y, 15, 12, block_rows=16)
    for c in (False, True):
        alone = spaces.space_search(x, y, 15, 12, centers=(c,), block_rows=16)
        assert list(alone) == [c]
        for field in FIELDS:
            np.testing.assert_array_equal(getattr(alone[c], field), getattr(both[c], field))


def test_centred_space_equals_product_search_of_the_centred_rows_bit_for_bit():
    rng = np.random.default_rng(8)
    x, y = _languages(rng, ties=True)
    xc = _validate.unit_rows(x - x.mean(0, dtype=np.float64).astype(np.float32))
    yc = _validate.unit_rows(y - y.mean(0, dtype=np.float64).astype(np.float32))
    direct = blocked.product_search(xc, yc, 30, 20)
    found = spaces.space_search(x, y, 30, 20)[True]
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(found, field), getattr(direct, field))


@pytest.mark.parametrize("offset", [0.0, 1.0, 4.0])
def test_derived_plain_cosines_are_no_less_accurate_than_a_float32_gemm(offset):
    """The identity is exact; in float64 it carries only the centred GEMM's rounding, scaled
    by |x_c||y_c| / (|x||y|) < 1, so against float64 cosines its worst error is at most the
    plain float32 GEMM's (on anisotropic clouds, several times smaller)."""
    rng = np.random.default_rng(9)
    common = offset * rng.standard_normal(384)
    x = (rng.standard_normal((600, 384)) + common).astype(np.float32)
    y = (rng.standard_normal((900, 384)) + common).astype(np.float32)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    exact = (x64 @ y64.T) / np.outer(np.linalg.norm(x64, axis=1), np.linalg.norm(y64, axis=1))
    direct = _validate.unit_rows(x) @ _validate.unit_rows(y).T
    _, derived = _derived_whole(x, y)
    err_derived, err_direct = np.abs(derived - exact).max(), np.abs(direct - exact).max()
    assert err_derived < 2e-6
    assert err_derived <= 1.5 * err_direct
    if offset >= 4.0:
        assert err_derived < err_direct / 2


def test_zero_vectors_and_vectors_at_the_mean_get_their_plain_cosines():
    """A zero vector has cosine 0 with everything (as unit_rows gives it); a vector equal to
    its language's mean has a zero centred row, yet its plain cosines are still right."""
    rng = np.random.default_rng(10)
    m = np.round(rng.standard_normal(8) * 8) / 8 + 1            # dyadic: the mean below is exact
    d = np.round(rng.standard_normal((20, 8)) * 8) / 8
    x = np.vstack([m, m + d, m - d]).astype(np.float32)        # mean exactly m, so x[0] - mean = 0
    y = (rng.standard_normal((50, 8)) + 1).astype(np.float32)
    y[7] = 0.0
    xcn, _, _ = spaces.centred_operands(x, y)
    assert not xcn[0].any()
    _, derived = _derived_whole(x, y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    norms = np.outer(np.linalg.norm(x64, axis=1), np.linalg.norm(y64, axis=1))
    exact = np.divide(x64 @ y64.T, norms, out=np.zeros_like(norms), where=norms > 0)
    np.testing.assert_array_equal(derived[:, 7], 0.0)
    np.testing.assert_allclose(derived, exact, atol=2e-6)


def _two_languages(rng, n_src, n_tgt, dim, q_src, q_tgt):
    offset = 1.5 * rng.standard_normal(dim)
    src = (rng.standard_normal((n_src, dim)) + offset).astype(np.float32)
    tgt = (rng.standard_normal((n_tgt, dim)) + offset).astype(np.float32)
    src_gold = [set(rng.choice(n_tgt, size=rng.integers(1, 3), replace=False).tolist()) for _ in range(q_src)]
    tgt_gold = [set(rng.choice(n_src, size=rng.integers(1, 3), replace=False).tolist()) for _ in range(q_tgt)]
    return src, tgt, src_gold, tgt_gold


def test_retrieve_spaces_equals_retrieve_both_in_each_space():
    """Centred: identical (the same product). Plain: identical rankings and P@k where no two
    candidates are within float32 rounding (~1e-7) of each other (checked: gaps > 1e-6)."""
    rng = np.random.default_rng(11)
    src, tgt, src_gold, tgt_gold = _two_languages(rng, 500, 2500, 16, 70, 60)
    both = retrieve_spaces(src, tgt, src_gold, tgt_gold, n_resamples=200)
    for center in (False, True):
        ref = retrieve_both(src, tgt, src_gold, tgt_gold, center=center, n_resamples=200)
        assert set(both[center]) == set(ref)
        for key, r in ref.items():
            got = both[center][key]
            np.testing.assert_array_equal(got.ranked, r.ranked, err_msg=f"{center} {key}")
            assert got.center == center and got.method == key[1]
            for k in (1, 5, 10):
                assert (got.precision[k].value, got.precision[k].ci_low, got.precision[k].ci_high) == \
                    (r.precision[k].value, r.precision[k].ci_low, r.precision[k].ci_high)
    # the plain check above is meaningful only without near-ties in the top lists
    s = _validate.unit_rows(src[:70]) @ _validate.unit_rows(tgt).T
    top = -np.sort(-s, axis=1)[:, :11]
    assert np.diff(top, axis=1).max() < -1e-6


def test_retrieve_spaces_refuses_bad_input_like_retrieve_both():
    rng = np.random.default_rng(12)
    src, tgt, sg, tg = _two_languages(rng, 30, 40, 8, 10, 10)
    with pytest.raises(AlignkitError, match="centers is empty"):
        retrieve_spaces(src, tgt, sg, tg, centers=(), n_resamples=0)
    with pytest.raises(AlignkitError, match="larger than a candidate pool"):
        retrieve_spaces(src, tgt, sg, tg, ks=(1, 50), n_resamples=0)
    bad = src.copy()
    bad[2, 1] = np.nan
    with pytest.raises(AlignkitError, match="NaN"):
        retrieve_spaces(bad, tgt, sg, tg, n_resamples=0)


def test_cpu_search_takes_only_the_product_then_its_plain_derivation():
    """The one-pass kernel scans the product, then the plain space made from it: any other
    order or count of outputs is a programming error, refused before any work."""
    from alignkit.metrics.cpu_tops import cpu_product_search

    x, y = _languages(np.random.default_rng(5), ties=False)
    xcn, ycn, d = spaces.centred_operands(x, y)
    for outputs in ((d, None), (None, None), (None, d, d), ()):
        with pytest.raises(ValueError, match="outputs"):
            cpu_product_search(xcn, ycn, 5, 5, 3, 3, None, outputs)
