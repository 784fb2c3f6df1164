"""Word-translation retrieval (NN / CSLS / +center) and Tatoeba sentence retrieval."""
import numpy as np
import pytest
from scipy.stats import ortho_group

from alignkit.errors import AlignkitError
from reference import prepared_spaces
from alignkit.metrics import knn_search, retrieve, tatoeba_accuracy
from alignkit.metrics.procrustes import fit_procrustes


# ---------------------------------------------------------------- brute-force reference

def _unit(a):
    a = np.asarray(a, np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def brute_scores(queries, pool, method="nn", center=False, csls_k=10, query_space=None):
    """The SPEC §2 definitions written out in float64 numpy: the full [n, pool] score matrix."""
    x, y, qs = prepared_spaces(queries, pool, query_space, center)
    s = x @ y.T
    if method == "csls":
        r_t = np.sort(s, axis=1)[:, ::-1][:, :csls_k].mean(axis=1)
        r_s = np.sort(y @ qs.T, axis=1)[:, ::-1][:, :csls_k].mean(axis=1)
        s = 2 * s - r_t[:, None] - r_s[None, :]
    return s


def brute_ranking(queries, pool, k, **kw):
    """Top-k by a stable sort, so equal scores go to the lower pool index."""
    return np.argsort(-brute_scores(queries, pool, **kw), axis=1, kind="stable")[:, :k]


def _precision(ranked, gold, k):
    return np.mean([bool(set(r[:k]) & set(g)) for r, g in zip(ranked, gold)])


def _latent_pairs(n, dim, noise, seed):
    """Two 'languages' that express the same n concepts: x_i = z_i + e, y_i = z_i + e'."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, dim))
    return z + noise * rng.standard_normal((n, dim)), z + noise * rng.standard_normal((n, dim))


# ---------------------------------------------------------------- known answers

@pytest.mark.parametrize("method", ["nn", "csls"])
@pytest.mark.parametrize("center", [False, True])
def test_identical_spaces_give_perfect_precision(method, center):
    rng = np.random.default_rng(0)
    words = rng.standard_normal((120, 32)).astype(np.float32)
    distractors = rng.standard_normal((300, 32)).astype(np.float32)
    pool = np.vstack([words, distractors])  # the translation of word i is pool row i
    res = retrieve(words, pool, [{i} for i in range(120)], method=method, center=center, n_resamples=0)
    assert res.precision[1].value == 1.0
    assert res.precision[10].value == 1.0
    assert (res.ranked[:, 0] == np.arange(120)).all()
    assert res.pool_size == 420 and res.coverage == 1.0 and res.n == 120


def test_rotation_drops_nn_to_chance_and_procrustes_on_train_split_restores_it():
    src, tgt = _latent_pairs(1000, 48, noise=0.2, seed=1)
    q = ortho_group.rvs(48, random_state=2)
    tgt = tgt @ q  # the target language is the same space, rotated
    train, test = np.arange(600), np.arange(600, 1000)  # disjoint source words
    gold = [{i} for i in range(len(test))]

    before = retrieve(src[test], tgt[test], gold, method="nn", n_resamples=0).precision[1].value
    assert before <= 0.02  # chance is 1/400; unrelated spaces give a handful of hits at most

    w = fit_procrustes(src[train], tgt[train])
    mapped = src[test] @ w
    for method in ("nn", "csls"):
        after = retrieve(mapped, tgt[test], gold, method=method, n_resamples=0).precision[1].value
        assert after >= 0.95, method


def test_procrustes_recovers_an_exact_rotation():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 16))
    q = ortho_group.rvs(16, random_state=4)
    w = fit_procrustes(x, x @ q, normalize=False)
    np.testing.assert_allclose(w, q, atol=1e-5)
    np.testing.assert_allclose(w @ w.T, np.eye(16), atol=1e-10)


# ---------------------------------------------------------------- FAISS == brute force

@pytest.mark.parametrize("method", ["nn", "csls"])
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("with_query_space", [False, True])
def test_faiss_ranking_equals_bruteforce_on_random_data(method, center, with_query_space):
    rng = np.random.default_rng(109)
    offset = rng.standard_normal(16)  # a shared direction, as in anisotropic layers
    queries = (rng.standard_normal((50, 16)) + offset).astype(np.float32)
    pool = (rng.standard_normal((250, 16)) + offset).astype(np.float32)
    qspace = np.vstack([queries, (rng.standard_normal((100, 16)) + offset).astype(np.float32)])
    gold = [set(rng.choice(250, size=rng.integers(1, 3), replace=False).tolist()) for _ in range(50)]
    kw = dict(method=method, center=center, query_space=qspace if with_query_space else None)
    # Precondition: no two of the top 11 scores are closer than 1e-5 (float32 rounding is
    # ~1e-7), so any correct implementation must give exactly this ranking.
    top = -np.sort(-brute_scores(queries, pool, **kw), axis=1)[:, :11]
    assert np.diff(top, axis=1).max() < -1e-5
    res = retrieve(queries, pool, gold, ks=(1, 5, 10), n_resamples=0, **kw)
    ref = brute_ranking(queries, pool, 10, **kw)
    np.testing.assert_array_equal(res.ranked, ref)
    for k in (1, 5, 10):
        assert res.precision[k].value == pytest.approx(_precision(ref, gold, k))
        np.testing.assert_array_equal(res.precision[k].items, [bool(set(r[:k]) & g) for r, g in zip(ref, gold)])


def _dyadic_unit_vectors(rng, n, dim=16):
    """Unit vectors with four entries ±1/2 (exact in float32): every cosine is an exact
    multiple of 1/4, so ties are real ties under any summation order."""
    v = np.zeros((n, dim), np.float32)
    for row in v:
        row[rng.choice(dim, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return v


@pytest.mark.parametrize("method", ["nn", "csls"])
def test_exact_ties_go_to_the_lower_pool_index_like_a_stable_sort(method):
    rng = np.random.default_rng(6)
    queries = _dyadic_unit_vectors(rng, 60)
    base = _dyadic_unit_vectors(rng, 40)
    pool = base[rng.integers(0, 40, size=400)]  # every pool vector occurs ~10 times
    gold = [{int(rng.integers(400))} for _ in range(60)]
    # csls_k = 8 keeps r_S (a mean of 8 multiples of 1/4) exact too, so CSLS ties between
    # different vectors are exact in FAISS and in numpy alike.
    res = retrieve(queries, pool, gold, ks=(1, 5, 10), method=method, csls_k=8, n_resamples=0)
    ref = brute_ranking(queries, pool, 10, method=method, csls_k=8)
    s = brute_scores(queries, pool, method=method, csls_k=8)
    assert (np.ptp(np.take_along_axis(s, ref[:, :2], axis=1), axis=1) == 0).sum() > 30  # ties at the top are common
    np.testing.assert_array_equal(res.ranked, ref)


def test_knn_search_keeps_lowest_indices_of_a_tie_group_at_rank_k():
    # FAISS on its own keeps an arbitrary member of such a group; knn_search must not.
    for seed in range(40):
        rng = np.random.default_rng(seed)
        base = rng.integers(-2, 3, size=(int(rng.integers(12, 400)), 3)).astype(np.float32)
        queries = rng.integers(-2, 3, size=(int(rng.choice([1, 7, 30])), 3)).astype(np.float32)
        k = int(rng.integers(1, 12))
        scores, ids = knn_search(queries, base, k)
        s = queries @ base.T
        ref = np.argsort(-s, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(ids, ref, err_msg=f"seed {seed}")
        np.testing.assert_array_equal(scores, np.take_along_axis(s, ref, axis=1))


def test_csls_demotes_a_hub_that_nn_prefers():
    # Source vectors share a direction a; a pool vector along a is close to every query (a
    # hub) and wins NN for many; CSLS subtracts its large r_S and gives the queries back.
    rng = np.random.default_rng(7)
    src, tgt = _latent_pairs(200, 32, noise=0.8, seed=8)
    a = 4.0 * _unit(rng.standard_normal((1, 32)))[0]
    pool = np.vstack([tgt, a])
    gold = [{i} for i in range(200)]
    nn = retrieve(src + a, pool, gold, method="nn", n_resamples=0)
    csls = retrieve(src + a, pool, gold, method="csls", n_resamples=0)
    hub_wins_nn, hub_wins_csls = (nn.ranked[:, 0] == 200).sum(), (csls.ranked[:, 0] == 200).sum()
    assert hub_wins_nn >= 50 and hub_wins_csls <= hub_wins_nn / 3
    assert csls.precision[1].value > nn.precision[1].value + 0.2


# ---------------------------------------------------------------- outputs and bad input

def test_queries_without_gold_count_as_misses_and_lower_coverage():
    rng = np.random.default_rng(9)
    words = rng.standard_normal((10, 8))
    gold = [{i} for i in range(8)] + [set(), set()]
    res = retrieve(words, words, gold, ks=(1, 5), n_resamples=0)
    assert res.coverage == pytest.approx(0.8)
    assert res.precision[1].value == pytest.approx(0.8)
    assert list(res.first_hit) == [0] * 8 + [-1, -1]


def test_precision_has_a_bootstrap_ci_around_the_value():
    src, tgt = _latent_pairs(300, 16, noise=0.9, seed=10)
    est = retrieve(src, tgt, [{i} for i in range(300)], ks=(1,), n_resamples=999).precision[1]
    assert 0.05 < est.value < 0.95
    assert est.ci_low < est.value < est.ci_high and est.n == 300


@pytest.mark.parametrize("bad, message", [
    (dict(ks=(1, 50)), "larger than the candidate pool"),
    (dict(method="cosine"), "unknown retrieval method"),
    (dict(method="csls", csls_k=31), "csls_k=31"),
    (dict(gold=[{0}] * 5), "gold has 5 entries"),
    (dict(gold=[{99}] * 20), "outside 0..29"),
    (dict(gold=[set()] * 20), "none of the 20 query words"),
    (dict(gold=[{"house"}] * 20), "integer pool indices"),
    (dict(queries=np.zeros((0, 8))), "query vectors is empty"),
    (dict(pool=np.ones((30, 9))), "dimension 9"),
])
def test_bad_input_raises_one_line_error(bad, message):
    rng = np.random.default_rng(11)
    args = dict(queries=rng.standard_normal((20, 8)), pool=rng.standard_normal((30, 8)),
                gold=[{i} for i in range(20)])
    args.update(bad)
    with pytest.raises(AlignkitError, match=message) as err:
        retrieve(args.pop("queries"), args.pop("pool"), args.pop("gold"), n_resamples=0, **args)
    assert "\n" not in str(err.value)


def test_nan_vectors_are_refused_with_the_number_of_bad_rows():
    rng = np.random.default_rng(12)
    pool = rng.standard_normal((30, 8))
    pool[[3, 7, 9]] = np.nan
    pool[11, 0] = np.inf
    with pytest.raises(AlignkitError, match="4 of 30 rows with NaN or infinite"):
        retrieve(rng.standard_normal((5, 8)), pool, [{0}] * 5)


# ---------------------------------------------------------------- Tatoeba

def test_tatoeba_accuracy_is_one_for_identical_vectors_and_counts_misses():
    rng = np.random.default_rng(13)
    en = rng.standard_normal((50, 16))
    res = tatoeba_accuracy(en.copy(), en, n_resamples=0)
    assert res.xx_to_en.value == 1.0 and res.en_to_xx.value == 1.0
    xx = en.copy()
    xx[[0, 1]] = xx[[1, 0]]  # two sentences swapped: both retrieve the wrong row, both ways
    res = tatoeba_accuracy(xx, en, n_resamples=0)
    assert res.xx_to_en.value == pytest.approx(48 / 50) and res.en_to_xx.value == pytest.approx(48 / 50)
    assert list(res.xx_to_en_pred[:2]) == [1, 0] and res.xx_to_en.items[:3].tolist() == [0, 0, 1]


def test_tatoeba_accuracy_equals_bruteforce_both_directions():
    xx, en = _latent_pairs(200, 24, noise=1.0, seed=14)
    res = tatoeba_accuracy(xx, en, n_resamples=0)
    s = _unit(xx) @ _unit(en).T
    assert res.xx_to_en.value == pytest.approx(np.mean(s.argmax(axis=1) == np.arange(200)))
    assert res.en_to_xx.value == pytest.approx(np.mean(s.argmax(axis=0) == np.arange(200)))
    assert 0.1 < res.xx_to_en.value < 0.95


def test_tatoeba_refuses_misaligned_inputs():
    with pytest.raises(AlignkitError, match="row i of each must be a translation pair"):
        tatoeba_accuracy(np.ones((5, 4)), np.ones((6, 4)))


# ---------------------------------------------------------------- one product for both directions

from alignkit.metrics import retrieve_both  # noqa: E402
from alignkit.metrics.blocked import product_search  # noqa: E402
from alignkit.metrics.torch_tops import row_top_values, row_topk  # noqa: E402


def _two_languages(rng, n_src, n_tgt, dim, q_src, q_tgt):
    offset = rng.standard_normal(dim)
    src = (rng.standard_normal((n_src, dim)) + offset).astype(np.float32)
    tgt = (rng.standard_normal((n_tgt, dim)) + offset).astype(np.float32)
    src_gold = [set(rng.choice(n_tgt, size=rng.integers(1, 3), replace=False).tolist()) for _ in range(q_src)]
    tgt_gold = [set(rng.choice(n_src, size=rng.integers(1, 3), replace=False).tolist()) for _ in range(q_tgt)]
    return src, tgt, src_gold, tgt_gold


@pytest.mark.parametrize("center", [False, True])
def test_one_product_equals_brute_force_in_both_directions(center):
    rng = np.random.default_rng(21)
    src, tgt, src_gold, tgt_gold = _two_languages(rng, 400, 3000, 16, 60, 50)
    out = retrieve_both(src, tgt, src_gold, tgt_gold, center=center, n_resamples=0)
    for direction, q, pool, gold in (("src->tgt", src, tgt, src_gold), ("tgt->src", tgt, src, tgt_gold)):
        queries = q[:len(gold)]
        for method in ("nn", "csls"):
            kw = dict(method=method, center=center, query_space=q)
            top = -np.sort(-brute_scores(queries, pool, **kw), axis=1)[:, :11]
            assert np.diff(top, axis=1).max() < -1e-6  # no near-ties: the ranking is unambiguous
            ref = brute_ranking(queries, pool, 10, **kw)
            res = out[direction, method]
            np.testing.assert_array_equal(res.ranked, ref, err_msg=f"{direction} {method}")
            assert res.pool_size == len(pool) and res.n == len(gold)
            for k in (1, 5, 10):
                assert res.precision[k].value == pytest.approx(_precision(ref, gold, k))
            # and exactly what the one-direction API gives
            single = retrieve(queries, pool, gold, method=method, center=center, query_space=q, n_resamples=0)
            np.testing.assert_array_equal(res.ranked, single.ranked)


def test_one_product_rankings_over_many_small_ranking_blocks(monkeypatch):
    """Rankings in blocks of 7 rows (a ragged last one) reuse one CSLS score buffer per
    worker; they must still equal brute force in both directions."""
    import alignkit.metrics.blocks as blocks

    rng = np.random.default_rng(26)
    src, tgt, src_gold, tgt_gold = _two_languages(rng, 300, 700, 16, 45, 38)
    monkeypatch.setattr(blocks, "CPU_BLOCK_BYTES", 4 * 700 * 7)   # step = 7 rows, 16-row product blocks
    out = retrieve_both(src, tgt, src_gold, tgt_gold, n_resamples=0)
    for direction, q, pool, n in (("src->tgt", src, tgt, 45), ("tgt->src", tgt, src, 38)):
        for method in ("nn", "csls"):
            ref = brute_ranking(q[:n], pool, 10, method=method, query_space=q)
            np.testing.assert_array_equal(out[direction, method].ranked, ref, err_msg=f"{direction} {method}")


def test_one_product_radii_equal_brute_force_over_many_blocks_and_workers():
    rng = np.random.default_rng(22)
    x = _unit(rng.standard_normal((1500, 12)) + 0.5).astype(np.float32)
    y = _unit(rng.standard_normal((2900, 12)) + 0.5).astype(np.float32)
    s = x.astype(np.float64) @ y.T.astype(np.float64)
    for block_rows in (16, 48, 1024):  # 16-row blocks: the column bounds are merged ~90 times
        ps = product_search(x, y, 40, 30, kmax=10, csls_k=10, block_rows=block_rows)
        np.testing.assert_allclose(ps.src_radii, np.sort(s, 1)[:, -10:].mean(1), atol=1e-6)
        np.testing.assert_allclose(ps.tgt_radii, np.sort(s, 0)[-10:].mean(0), atol=1e-6)
        np.testing.assert_array_equal(ps.tgt_nn, np.argsort(-s[:, :30].T, 1, kind="stable")[:, :10])


def test_one_product_keeps_exact_ties_in_stable_order():
    rng = np.random.default_rng(23)
    base = _dyadic_unit_vectors(rng, 30)
    src = base[rng.integers(0, 30, size=700)]   # every vector occurs ~20 times: ties everywhere
    tgt = base[rng.integers(0, 30, size=2700)]
    src_gold = [{int(rng.integers(2700))} for _ in range(50)]
    tgt_gold = [{int(rng.integers(700))} for _ in range(40)]
    out = retrieve_both(src, tgt, src_gold, tgt_gold, csls_k=8, n_resamples=0)
    for direction, q, pool, n in (("src->tgt", src, tgt, 50), ("tgt->src", tgt, src, 40)):
        for method in ("nn", "csls"):
            ref = brute_ranking(q[:n], pool, 10, method=method, csls_k=8, query_space=q)
            np.testing.assert_array_equal(out[direction, method].ranked, ref, err_msg=f"{direction} {method}")


@pytest.mark.parametrize("seed", range(6))
def test_row_topk_equals_a_stable_sort_with_many_ties(seed):
    import torch

    rng = np.random.default_rng(seed)
    n = int(rng.choice([30, 300, 2600, 5000]))
    s = rng.integers(-3, 4, size=(int(rng.integers(1, 40)), n)).astype(np.float32)  # 7 values: huge tie groups
    k = int(rng.integers(1, 12))
    v, i = row_topk(torch.from_numpy(s), k)
    ref = np.argsort(-s, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(i.numpy(), ref)
    np.testing.assert_array_equal(v.numpy(), np.take_along_axis(s, ref, 1))


@pytest.mark.parametrize("seed", range(4))
def test_row_top_values_are_the_k_largest_values_of_each_row(seed):
    import torch

    rng = np.random.default_rng(seed)
    n = int(rng.choice([30, 300, 2600, 5000]))
    rows = int(rng.integers(1, 40))
    s = rng.integers(-3, 4, size=(rows, n)).astype(np.float32) if seed % 2 else \
        rng.standard_normal((rows, n)).astype(np.float32)          # huge tie groups / none
    k = int(rng.integers(1, 12))
    np.testing.assert_array_equal(row_top_values(torch.from_numpy(s), k).numpy(), -np.sort(-s, axis=1)[:, :k])


@pytest.mark.parametrize("m", [100, 1037, 1500])   # fewer than k groups of 16 rows (fallback), a ragged tail, even
@pytest.mark.parametrize("ties", [False, True])
def test_column_seed_is_the_k_largest_values_of_every_column(m, ties):
    import torch

    from alignkit.metrics.torch_tops import _column_seed

    rng = np.random.default_rng(m)
    s = rng.integers(-3, 4, size=(m, 700)).astype(np.float32) if ties else \
        rng.standard_normal((m, 700)).astype(np.float32)
    s[:, 5] = 1.0                                   # a constant column: every value ties
    seed = _column_seed(torch.from_numpy(s), 10, step=64, workers=1).numpy()
    np.testing.assert_array_equal(-np.sort(-seed, axis=1), -np.sort(-s.T, axis=1)[:, :10])


def test_one_product_refuses_bad_input_with_one_line_errors():
    rng = np.random.default_rng(24)
    src, tgt, sg, tg = _two_languages(rng, 40, 50, 8, 10, 10)
    for kwargs, message in ((dict(ks=(1, 60)), "larger than a candidate pool"), (dict(csls_k=0), "csls_k=0")):
        with pytest.raises(AlignkitError, match=message) as err:
            retrieve_both(src, tgt, sg, tg, n_resamples=0, **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(AlignkitError, match="none of the 10 target query words"):
        retrieve_both(src, tgt, sg, [set()] * 10, n_resamples=0)
    with pytest.raises(AlignkitError, match="outside 0..49"):
        retrieve_both(src, tgt, [{77}] * 10, tg, n_resamples=0)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_one_product_on_cuda_equals_the_cpu_path():
    rng = np.random.default_rng(25)
    src, tgt, sg, tg = _two_languages(rng, 3000, 3500, 32, 200, 150)
    cpu = retrieve_both(src, tgt, sg, tg, n_resamples=0)
    gpu = retrieve_both(src, tgt, sg, tg, n_resamples=0, device="cuda")
    for key in cpu:
        agree = (cpu[key].ranked == gpu[key].ranked).mean()
        assert agree > 0.999, key  # fp32 on both; only near-ties may order differently
