"""strong_p@1: both languages in one candidate pool, the query itself removed."""
import numpy as np
import pytest

from alignkit.errors import AlignkitError
from alignkit.metrics import retrieve_both, tatoeba_accuracy
from alignkit.metrics.strong import strong_retrieve_both, strong_tatoeba


def _noisy_pairs(n, dim, noise, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, dim))
    return ((z + noise * rng.standard_normal(z.shape)).astype(np.float32),
            (z + noise * rng.standard_normal(z.shape)).astype(np.float32))


def _clustered_languages(n=200, dim=16, offset=10.0, seed=0):
    """x_i = [z_i, c, 0], e_i = [z_i, 0, c] with |z_i| = 4: across languages cos is
    z_i·z_j / (16 + c²), largest for j = i (weak retrieval is perfect); within a language it
    is (z_i·z_j + c²) / (16 + c²) >= (c² − 16) / (16 + c²), above any cross-language cosine."""
    z = np.random.default_rng(seed).standard_normal((n, dim))
    z *= 4.0 / np.linalg.norm(z, axis=1, keepdims=True)
    col = np.full((n, 1), offset)
    zero = np.zeros((n, 1))
    return np.hstack([z, col, zero]).astype(np.float32), np.hstack([z, zero, col]).astype(np.float32)


def test_a_removed_language_offset_gives_strong_p1_of_one():
    x = np.random.default_rng(1).standard_normal((300, 32)).astype(np.float32)
    e = x + 5.0  # target = source + c; centring removes c
    res = strong_tatoeba(x, e, center=True, n_resamples=0)
    assert res.xx_to_en.p1.value == 1.0 and res.en_to_xx.p1.value == 1.0
    assert np.isnan(res.xx_to_en.same_language_misses)
    uncentred = strong_tatoeba(x, e, n_resamples=0)
    assert uncentred.xx_to_en.p1.value < 0.5  # the offset leaves the languages apart


def test_words_with_a_removed_offset_give_strong_p1_of_one():
    rng = np.random.default_rng(2)
    src = rng.standard_normal((400, 32)).astype(np.float32)
    perm = rng.permutation(400)
    tgt = src[perm] + 3.0                           # tgt row j translates src row perm[j]
    where = np.argsort(perm)                        # src row i is tgt row where[i]
    src_gold = [{int(where[i])} for i in range(150)]
    tgt_gold = [{int(perm[j])} for j in range(100)]
    out = strong_retrieve_both(src, tgt, src_gold, tgt_gold, center=True, n_resamples=0)
    assert out["src->tgt"].p1.value == 1.0 and out["tgt->src"].p1.value == 1.0
    assert out["src->tgt"].n == 150 and out["tgt->src"].n == 100


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_strong_hits_are_weak_hits_on_sentences(seed):
    x, e = _noisy_pairs(250, 16, noise=0.8, seed=seed)
    strong = strong_tatoeba(x, e, n_resamples=0)
    weak = tatoeba_accuracy(x, e, n_resamples=0)
    for s, w in ((strong.xx_to_en, weak.xx_to_en), (strong.en_to_xx, weak.en_to_xx)):
        assert np.all(s.p1.items <= w.items)
        assert s.p1.value <= w.value
    assert strong.xx_to_en.p1.value < weak.xx_to_en.value  # noisy enough to differ


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_strong_hits_are_weak_hits_on_words(seed):
    x, y = _noisy_pairs(300, 16, noise=0.8, seed=seed)
    gold = [{i} for i in range(120)]
    strong = strong_retrieve_both(x, y, gold, gold, n_resamples=0)
    weak = retrieve_both(x, y, gold, gold, ks=(1,), n_resamples=0)
    for d in ("src->tgt", "tgt->src"):
        assert np.all(strong[d].p1.items <= weak[d, "nn"].precision[1].items)
    assert strong["src->tgt"].p1.value < weak["src->tgt", "nn"].precision[1].value


def test_weak_alignment_can_be_perfect_while_strong_fails():
    x, e = _clustered_languages()
    assert tatoeba_accuracy(x, e, n_resamples=0).xx_to_en.value == 1.0
    res = strong_tatoeba(x, e, n_resamples=0)
    assert res.xx_to_en.p1.value == 0.0 and res.en_to_xx.p1.value == 0.0
    assert res.xx_to_en.same_language_misses == 1.0 and res.xx_to_en.pred_same_language.all()


def test_the_query_itself_is_never_its_own_neighbour():
    x, e = _clustered_languages(n=50)
    res = strong_tatoeba(x, e, n_resamples=0)
    assert not np.any(res.xx_to_en.pred == np.arange(50))


def test_an_exact_tie_goes_to_the_translation():
    v = np.array([1.0, 0.0, 0.0], np.float32)
    x = np.stack([v, v, [0, 1, 0]]).astype(np.float32)        # x0 and x1 identical
    e = np.stack([v, [0, 0, 1], [0, 1, 0]]).astype(np.float32)  # e0 = x0
    res = strong_tatoeba(x, e, n_resamples=0)
    assert res.xx_to_en.pred[0] == 0 and not res.xx_to_en.pred_same_language[0]
    assert res.xx_to_en.p1.items[0] == 1.0
    assert res.xx_to_en.pred[1] == 0 and res.xx_to_en.p1.items[1] == 0.0  # e0 ties x0, e0 is first


def test_strong_results_have_bootstrap_cis():
    x, e = _noisy_pairs(200, 16, noise=0.8, seed=7)
    est = strong_tatoeba(x, e, n_resamples=999).xx_to_en.p1
    assert est.ci_low < est.value < est.ci_high and est.items.shape == (200,)


@pytest.mark.parametrize("src_gold, message", [
    ([{9}], "outside 0..4"),
    ([set()], "none of the 1 source"),
    ([{0}] * 6, "6 source queries for 5 source vectors"),
    ([], "0 source queries"),
])
def test_bad_word_gold_is_refused(src_gold, message):
    x, y = _noisy_pairs(5, 4, noise=1.0, seed=0)
    with pytest.raises(AlignkitError, match=message):
        strong_retrieve_both(x, y, src_gold, [{0}], n_resamples=0)


def test_mismatched_sentences_are_refused():
    with pytest.raises(AlignkitError, match="3 non-English but 4 English"):
        strong_tatoeba(np.ones((3, 2)), np.ones((4, 2)), n_resamples=0)
