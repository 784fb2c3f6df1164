"""Cluster gap diagnostics (gap_ratio, langid_acc, silhouette) and t-SNE coordinates."""
import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from alignkit.errors import AlignkitError
from alignkit.metrics import gap_ratio, langid_acc, silhouette, tsne_pairs


def _clouds(shift, n=(200, 260), dim=16, seed=0):
    rng = np.random.default_rng(seed)
    offset = np.zeros(dim)
    offset[0] = shift
    return rng.standard_normal((n[0], dim)) + 5.0, rng.standard_normal((n[1], dim)) + 5.0 + offset


def test_gap_ratio_of_two_identical_clouds_is_zero():
    x, _ = _clouds(0)
    est = gap_ratio(x, x.copy())
    assert est.value == 0.0
    assert 0.0 < est.ci_low < est.ci_high < 0.5  # resampling makes two copies differ a little
    assert est.items is None and est.n == 2 * len(x)


def test_gap_ratio_equals_its_definition_and_grows_with_distance():
    x, y = _clouds(3.0)
    rms = lambda a: np.sqrt(((a - a.mean(axis=0)) ** 2).sum(axis=1).mean())
    expected = np.linalg.norm(x.mean(axis=0) - y.mean(axis=0)) / ((rms(x) + rms(y)) / 2)
    est = gap_ratio(x, y)
    assert est.value == pytest.approx(expected, rel=1e-6)  # vectors are scored in float32
    assert est.ci_low < est.value < est.ci_high
    far = gap_ratio(*_clouds(100.0), n_resamples=0)
    assert far.value > 20 and np.isnan(far.ci_low)


def test_langid_accuracy_is_chance_for_mixed_and_one_for_separated_clusters():
    mixed = langid_acc(*_clouds(0.0), n_resamples=0)
    assert 0.4 < mixed.value < 0.6
    separated = langid_acc(*_clouds(30.0))
    assert separated.value == 1.0 and (separated.ci_low, separated.ci_high) == (1.0, 1.0)


def test_langid_balances_the_languages_and_keeps_per_vector_correctness():
    est = langid_acc(*_clouds(1.0, n=(150, 400)), n_resamples=0)
    assert est.n == 300  # 150 of each language
    assert set(np.unique(est.items)) <= {0.0, 1.0} and est.value == est.items.mean()


def test_silhouette_matches_sklearn_and_orders_mixed_below_separated():
    x, y = _clouds(0.0)
    mixed = silhouette(x, y, n_resamples=0)
    labels = np.r_[np.zeros(len(x)), np.ones(len(y))]
    assert mixed.value == pytest.approx(silhouette_score(np.vstack([x, y]), labels))
    assert abs(mixed.value) < 0.05
    assert silhouette(*_clouds(30.0), n_resamples=0).value > 0.8


@pytest.mark.parametrize("blocks", [False, True])
def test_silhouette_items_equal_sklearns_with_duplicates_whole_or_in_blocks(blocks, monkeypatch):
    """The two-cluster fast path gives scikit-learn's per-vector values: duplicate vectors
    within and across the languages (distance 0; d² rounding below 0 is clipped), Gram
    matrix whole or in row blocks of 7 rows; other metrics go to sklearn itself."""
    import alignkit.metrics.clusters as clusters
    from sklearn.metrics import silhouette_samples

    if blocks:
        monkeypatch.setattr(clusters, "_GRAM_ROWS", 10)
        monkeypatch.setattr(clusters, "_BLOCK_BYTES", 8 * 7 * 260)
    x, y = _clouds(1.5)
    x[5] = x[6] = x[7]                                       # duplicates inside a language
    x[:2] = y[:2] = 0.0                                      # and across the languages
    labels = np.r_[np.zeros(len(x)), np.ones(len(y))]
    v = np.vstack([x, y]).astype(np.float32).astype(np.float64)    # the vectors are checked as float32
    for metric in ("euclidean", "cosine"):
        got = silhouette(x, y, metric=metric, n_resamples=0)
        np.testing.assert_allclose(got.items, silhouette_samples(v, labels, metric=metric), rtol=0, atol=1e-12)


def test_cluster_metrics_refuse_bad_input():
    x, y = _clouds(0.0)
    with pytest.raises(AlignkitError, match="dimension 8"):
        gap_ratio(x, y[:, :8])
    y[3, 2] = np.nan
    with pytest.raises(AlignkitError, match="1 of 260 rows with NaN"):
        silhouette(x, y)
    with pytest.raises(AlignkitError, match="at least 5 vectors"):
        langid_acc(x[:4], x[:4])


def test_tsne_gives_two_coordinates_per_sampled_word_reproducibly():
    x, y = _clouds(20.0, n=(120, 120))
    a = tsne_pairs(x, y, sample=40, seed=1)
    b = tsne_pairs(x, y, sample=40, seed=1)
    assert a.src_xy.shape == (40, 2) and a.tgt_xy.shape == (40, 2) and len(np.unique(a.index)) == 40
    np.testing.assert_array_equal(a.src_xy, b.src_xy)
    # Far-apart languages stay apart in the map: every source point is nearer the source centre.
    cs, ct = a.src_xy.mean(axis=0), a.tgt_xy.mean(axis=0)
    assert (np.linalg.norm(a.src_xy - cs, axis=1) < np.linalg.norm(a.src_xy - ct, axis=1)).all()


def test_langid_fits_on_a_fixed_sample_of_at_most_500_words_per_language():
    x, y = _clouds(1.0, n=(1200, 900))
    est = langid_acc(x, y, n_resamples=0)
    assert est.n == 1000  # 500 of each language
    again = langid_acc(x, y, n_resamples=0)
    np.testing.assert_array_equal(est.items, again.items)  # the same words every time
    assert langid_acc(x, y, n_resamples=0, sample=None).n == 1800
    assert abs(langid_acc(x, y, n_resamples=0, sample=None).value - est.value) < 0.06


def test_gap_ratio_ci_with_closed_form_jackknife_equals_scipys_generic_bca(monkeypatch):
    import alignkit.metrics.clusters as clusters

    x, y = _clouds(0.7, n=(120, 90))
    fast = gap_ratio(x, y, n_resamples=199)
    generic = clusters.bootstrap_interval
    monkeypatch.setattr(clusters, "bootstrap_interval",
                        lambda *a, jackknife=None, **k: generic(*a, **k))  # scipy's own jackknife
    slow = gap_ratio(x, y, n_resamples=199)
    assert (fast.ci_low, fast.ci_high) == pytest.approx((slow.ci_low, slow.ci_high), rel=1e-9)
    assert fast.ci_low < fast.value < fast.ci_high
