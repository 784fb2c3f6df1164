"""procrustes_p@k: an orthogonal map fitted on TRAIN pairs, then retrieval as retrieve/retrieve_both."""
import numpy as np
import pytest
from scipy.stats import ortho_group

from alignkit.errors import AlignkitError
from alignkit.metrics import retrieve, retrieve_both
from alignkit.metrics.procrustes import (check_train_test_disjoint, fit_procrustes, procrustes_retrieve,
                                         procrustes_retrieve_both)

DIM, N_TEST, N_TRAIN, N_FREQ = 64, 300, 600, 200


def _lexicon(seed, rotate, noise=0.05):
    """Train and test pairs of one latent vocabulary; the target side optionally rotated.

    Returns train (src, tgt, pairs) and the test layout of retrieve_both: src = test sources
    then frequent source words, tgt = test targets then frequent target words, gold i -> i.
    """
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_TEST + N_FREQ
    z = rng.standard_normal((n, DIM))
    q = ortho_group.rvs(DIM, random_state=seed) if rotate else np.eye(DIM)
    src = (z + noise * rng.standard_normal(z.shape)).astype(np.float32)
    tgt = ((z + noise * rng.standard_normal(z.shape)) @ q).astype(np.float32)
    tr, te = slice(0, N_TRAIN), slice(N_TRAIN, n)
    train_pairs = [(f"s{i}", f"t{i}") for i in range(N_TRAIN)]
    test_pairs = [(f"s{i}", f"t{i}") for i in range(N_TRAIN, N_TRAIN + N_TEST)]
    gold = [{i} for i in range(N_TEST)]
    return src[tr], tgt[tr], train_pairs, src[te], tgt[te], test_pairs, gold


def _both(seed, rotate, **kw):
    trs, trt, trp, s, t, tep, gold = _lexicon(seed, rotate)
    return procrustes_retrieve_both(trs, trt, s, t, gold, gold, train_pairs=trp, test_pairs=tep, ks=(1,),
                                    n_resamples=0, **kw)


@pytest.mark.parametrize("center", [False, True])
def test_identical_spaces_give_procrustes_p1_of_one(center):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((N_TRAIN + N_TEST, DIM)).astype(np.float32)
    train, test = z[:N_TRAIN], z[N_TRAIN:]
    gold = [{i} for i in range(N_TEST)]
    out = procrustes_retrieve_both(train, train, test, test, gold, gold, n_resamples=0, ks=(1,), center=center,
                                   train_pairs=[(f"a{i}", f"b{i}") for i in range(N_TRAIN)],
                                   test_pairs=[(f"c{i}", f"d{i}") for i in range(N_TEST)])
    assert {key: res.precision[1].value for key, res in out.items()} == {key: 1.0 for key in out}
    assert all(res.center == center for res in out.values())


def test_fitted_map_of_identical_spaces_is_the_identity():
    z = np.random.default_rng(0).standard_normal((200, 16))
    np.testing.assert_allclose(fit_procrustes(z, z), np.eye(16), atol=1e-6)


def test_rotation_defeats_plain_retrieval_and_procrustes_undoes_it():
    trs, trt, trp, s, t, tep, gold = _lexicon(seed=7, rotate=True)
    plain = retrieve(s[:N_TEST], t, gold, ks=(1,), n_resamples=0).precision[1].value
    assert plain < 0.05  # chance is 1 / 500 candidates
    out = procrustes_retrieve_both(trs, trt, s, t, gold, gold, train_pairs=trp, test_pairs=tep, ks=(1,),
                                   n_resamples=0)
    for key, res in out.items():
        assert res.precision[1].value >= 0.99, key
        assert res.precision[1].n == N_TEST


def test_fitted_map_recovers_the_rotation():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 32))
    q = ortho_group.rvs(32, random_state=1)
    np.testing.assert_allclose(fit_procrustes(x, x @ q), q, atol=1e-5)


def test_reverse_direction_equals_the_map_fitted_the_other_way():
    """tgt->src of the one-product call (which uses W^T) ranks exactly like a map fitted
    from target to source on the swapped train pairs."""
    trs, trt, trp, s, t, tep, gold = _lexicon(seed=11, rotate=True, noise=1.0)
    both = procrustes_retrieve_both(trs, trt, s, t, gold, gold, train_pairs=trp, test_pairs=tep, ks=(1, 5),
                                    n_resamples=0)
    for method in ("nn", "csls"):
        swapped = procrustes_retrieve(trt, trs, t[:N_TEST], s, gold, ks=(1, 5), method=method, query_space=t,
                                      train_pairs=[(b, a) for a, b in trp], test_pairs=[(b, a) for a, b in tep],
                                      n_resamples=0)
        ref = both["tgt->src", method]
        assert 0.2 < ref.precision[1].value < 0.99  # noisy enough that rankings are informative
        assert (swapped.ranked[:, 0] == ref.ranked[:, 0]).mean() > 0.99
        assert abs(swapped.precision[5].value - ref.precision[5].value) < 0.01


def test_one_direction_equals_retrieve_on_mapped_vectors():
    trs, trt, trp, s, t, tep, gold = _lexicon(seed=5, rotate=True, noise=1.0)
    w = fit_procrustes(trs, trt)
    unit = s / np.linalg.norm(s, axis=1, keepdims=True)
    ref = retrieve((unit[:N_TEST] @ w).astype(np.float32), t, gold, method="csls", query_space=(unit @ w).astype(np.float32),
                   n_resamples=0)
    got = procrustes_retrieve(trs, trt, s[:N_TEST], t, gold, method="csls", query_space=s, train_pairs=trp,
                              test_pairs=tep, n_resamples=0)
    assert (got.ranked == ref.ranked).mean() > 0.99
    assert got.precision[1].value == pytest.approx(ref.precision[1].value, abs=0.01)


def test_matches_retrieve_both_on_premapped_vectors():
    trs, trt, trp, s, t, tep, gold = _lexicon(seed=2, rotate=True, noise=1.0)
    w = fit_procrustes(trs, trt)
    xw = (s / np.linalg.norm(s, axis=1, keepdims=True)) @ w
    ref = retrieve_both(xw.astype(np.float32), t, gold, gold, ks=(1,), n_resamples=0)
    got = procrustes_retrieve_both(trs, trt, s, t, gold, gold, train_pairs=trp, test_pairs=tep, ks=(1,),
                                   n_resamples=0)
    for key in ref:
        np.testing.assert_array_equal(got[key].ranked, ref[key].ranked)


def test_fitting_with_test_pairs_is_refused():
    trs, trt, trp, s, t, tep, gold = _lexicon(seed=0, rotate=False)
    leaked = trp[:-1] + [tep[3]]
    with pytest.raises(AlignkitError, match="1 test pairs are also train pairs.*'s603'-'t603'"):
        procrustes_retrieve_both(trs, trt, s, t, gold, gold, train_pairs=leaked, test_pairs=tep, n_resamples=0)
    with pytest.raises(AlignkitError, match="test pairs are also train pairs"):
        procrustes_retrieve(trs, trt, s[:N_TEST], t, gold, train_pairs=leaked, test_pairs=tep, n_resamples=0)


def test_test_source_word_in_train_is_refused():
    with pytest.raises(AlignkitError, match="1 test source words are also train source words.*'dog'"):
        check_train_test_disjoint([("dog", "Hund"), ("cat", "Katze")], [("dog", "Köter"), ("bird", "Vogel")])


def test_shared_target_words_are_allowed():
    check_train_test_disjoint([("dog", "Hund")], [("hound", "Hund")])


@pytest.mark.parametrize("train, test, message", [
    ([], [("a", "b")], "no train pairs"),
    (["abc"], [("a", "b")], "train pairs must be"),
])
def test_bad_pair_lists_are_refused(train, test, message):
    with pytest.raises(AlignkitError, match=message):
        check_train_test_disjoint(train, test)


def test_train_vectors_of_another_dimension_are_refused():
    trs, trt, trp, s, t, tep, gold = _lexicon(seed=0, rotate=False)
    with pytest.raises(AlignkitError, match="train vectors have dimension 32 but test vectors 64"):
        procrustes_retrieve_both(trs[:, :32], trt[:, :32], s, t, gold, gold, train_pairs=trp, test_pairs=tep,
                                 n_resamples=0)
