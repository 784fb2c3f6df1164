"""Ratio-margin retrieval (Artetxe & Schwenk 2019; XTREME's BUCC, LASER), SPEC §2.

    margin(x, y) = cos(x, y) / (½ r_T(x) + ½ r_S(y)),   k = 4,

r_T(x) = mean cosine of x to its k nearest vectors of the other side (the candidate pool),
r_S(y) = mean cosine of candidate y to its k nearest vectors of the query side (the query
language's full set). Unlike CSLS (a difference), the ratio's ranking for one query depends
on r_T(x) too, so each query's scores are formed explicitly, one block of queries at a time:
a block ``[rows, pool]`` of cosines (~24 MB) divided by the denominators, then its exact
top-k with ties to the lower pool index (:func:`alignkit.metrics.torch_tops.row_topk`, the
order of ``np.argsort(-scores, kind="stable")``). No pool×pool matrix is ever held.

Radii are exact means of the k largest cosines: both sides' from one blocked product
(:func:`alignkit.metrics.blocked.product_search`) when the queries are the first rows of
their language's set, otherwise from FAISS exact search (:func:`csls_radii`).

The ratio needs positive denominators; with k = 4 nearest neighbours they are positive for
any real embedding space, and a space where they are not is refused (AlignkitError).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection, Sequence

import numpy as np
import torch

from alignkit.errors import AlignkitError
from alignkit.metrics import _validate
from alignkit.metrics.blocked import product_search
from alignkit.metrics.torch_tops import row_topk
from alignkit.metrics.retrieval import RetrievalResult, csls_radii
from alignkit.metrics.sentences import SentenceRetrievalResult
from alignkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, mean_estimate
from alignkit.workers import single_threaded_map

MARGIN_K = 4
_BLOCK_FLOATS = 6 * 2**20   # one [rows, pool] block of scores: 24 MB
_CANDIDATES = 128           # cosine candidates kept per query by the single pass


@dataclass(frozen=True)
class MarginRadii:
    """Neighbourhood means of a margin retrieval space: ``query`` ``[n_q]`` float64, r of
    each query row over the pool; ``pool`` ``[n_pool]`` float64, r of each pool row over
    the query side."""

    query: np.ndarray
    pool: np.ndarray


def _each_block(blocks: list[tuple[int, int]], fn: Callable[[int, int], None], device: torch.device) -> None:
    """``fn(start, stop)`` for every block. On a CPU: one worker per intra-op thread, each
    single-threaded, because the many small top-k ops of a block stall when split over
    OpenMP threads of a shared CPU (measured: a pass 3.2x slower with 2 threads than with 1
    under load); on a GPU, in order. (Same scheme as alignkit.metrics.blocked.)"""
    workers = 1 if device.type != "cpu" else max(1, min(torch.get_num_threads(), 8, len(blocks)))
    single_threaded_map(lambda b: fn(*b), list(blocks), workers)


def _check_denominators(r_q: np.ndarray, r_pool: np.ndarray) -> None:
    low = 0.5 * (float(r_q.min()) + float(r_pool.min()))
    if not low > 0:
        raise AlignkitError(f"margin denominators reach {low:.3g} <= 0 (mean cosine to the {MARGIN_K} nearest "
                            "neighbours is not positive); the ratio margin is undefined for these vectors, "
                            "use NN or CSLS retrieval instead")


def margin_topk(queries: np.ndarray, pool: np.ndarray, r_q: np.ndarray, r_pool: np.ndarray, kmax: int, *,
                device=None, block_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``kmax`` candidates of every query by ratio margin.

    queries ``[n, d]``, pool ``[m, d]``: unit-normalised float32 rows; r_q ``[n]``, r_pool
    ``[m]``: their neighbourhood means (see module docstring); 1 <= kmax <= m. Returns
    (scores ``[n, kmax]`` float32, pool indices ``[n, kmax]`` int64), best first, equal
    scores to the lower index. Computed in blocks of ``block_rows`` queries (default ~24 MB
    of scores per block); ``device`` "cuda" runs the blocks there (fp32 GEMM).
    """
    m = pool.shape[0]
    if not 1 <= kmax <= m:
        raise AlignkitError(f"k={kmax} is larger than the candidate pool ({m} vectors); use a smaller k")
    _check_denominators(r_q, r_pool)
    dev = torch.device(device or "cpu")
    y_t = torch.from_numpy(pool).to(dev).t()
    half_rp = torch.from_numpy(0.5 * r_pool.astype(np.float32)).to(dev)[None, :]
    rows = block_rows or max(1, _BLOCK_FLOATS // m)
    scores = np.empty((queries.shape[0], kmax), np.float32)
    ids = np.empty((queries.shape[0], kmax), np.int64)
    def block(i: int, j: int) -> None:
        s = torch.from_numpy(queries[i:j]).to(dev) @ y_t                           # [b, m] cosines
        half_rq = torch.from_numpy(0.5 * r_q[i:j].astype(np.float32)).to(dev)[:, None]
        v, top = row_topk(s.div_(half_rq + half_rp), kmax)
        scores[i:j], ids[i:j] = v.cpu().numpy(), top.cpu().numpy()

    n = queries.shape[0]
    with torch.inference_mode():
        _each_block([(i, min(i + rows, n)) for i in range(0, n, rows)], block, dev)
    return scores, ids


def _gold_table(gold: Sequence[Collection[int]], n: int, pool_size: int, name: str) -> list[frozenset]:
    if len(gold) != n:
        raise AlignkitError(f"{name} gold has {len(gold)} entries but there are {n} query vectors; "
                            "give one set of pool indices per query word")
    out = []
    for g in gold:
        try:
            s = frozenset(int(p) for p in g)
        except (TypeError, ValueError):
            raise AlignkitError(f"{name} gold must hold integer pool indices (one set per query word)") from None
        if s and (min(s) < 0 or max(s) >= pool_size):
            raise AlignkitError(f"{name} gold holds pool indices outside 0..{pool_size - 1}; "
                                "map gold translations to rows of the candidate pool")
        out.append(s)
    if not any(out):
        raise AlignkitError(f"none of the {n} {name} query words has a gold translation in the pool; "
                            "check that the pool contains the test lexicon's translations")
    return out


def ranking_result(ranked: np.ndarray, gold: Sequence[frozenset], pool_size: int, ks: Sequence[int], *,
                   method: str, center: bool, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                   seed: int = DEFAULT_SEED) -> RetrievalResult:
    """P@k (a hit when a gold index is in the top k; no gold = miss) of a ranking ``[n, max(ks)]``."""
    is_gold = np.array([[p in g for p in row] for row, g in zip(ranked.tolist(), gold)], dtype=bool)
    is_gold = is_gold.reshape(ranked.shape)
    first_hit = np.where(is_gold.any(axis=1), is_gold.argmax(axis=1), -1).astype(np.int64)
    found = first_hit >= 0
    precision = {k: mean_estimate((found & (first_hit < k)).astype(np.float64), confidence=confidence,
                                  n_resamples=n_resamples, seed=seed) for k in ks}
    return RetrievalResult(method=method, center=bool(center), precision=precision, ranked=ranked,
                           first_hit=first_hit, pool_size=int(pool_size),
                           coverage=float(np.mean([bool(g) for g in gold])), n=int(ranked.shape[0]))


def _ks(ks, smallest: int) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise AlignkitError(f"ks must be positive integers, got {ks}")
    if max(ks) > smallest:
        raise AlignkitError(f"k={max(ks)} is larger than the candidate pool ({smallest} vectors); "
                            "use a smaller k or a larger pool")
    return ks


def _centred(x: np.ndarray, space: np.ndarray | None = None) -> np.ndarray:
    return x - (x if space is None else space).mean(axis=0, dtype=np.float64).astype(np.float32)


def margin_retrieve(queries, pool, gold: Sequence[Collection[int]], *, ks: Sequence[int] = (1, 5, 10),
                    k: int = MARGIN_K, center: bool = False, query_space=None, confidence: float = 0.95,
                    n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> RetrievalResult:
    """Margin P@k of one direction, with the arguments and layout of
    :func:`alignkit.metrics.retrieval.retrieve` (``method`` is "margin").

    queries ``[n, dim]``, pool ``[pool_size, dim]``, gold (length n, sets of pool indices),
    ``query_space`` ``[m, dim]`` (the query language's full set for r_S of the candidates and
    its mean when centring; default the queries). ``k``: the neighbourhood size (4).
    Raises AlignkitError on the inputs ``retrieve`` refuses and on non-positive denominators.
    """
    x = _validate.vectors(queries, "query vectors")
    y = _validate.vectors(pool, "candidate pool vectors", dim=x.shape[1])
    qs = x if query_space is None else _validate.vectors(query_space, "query-space vectors", dim=x.shape[1])
    ks = _ks(ks, y.shape[0])
    if not 1 <= k <= min(y.shape[0], qs.shape[0]):
        raise AlignkitError(f"margin k={k} needs 1..{min(y.shape[0], qs.shape[0])} neighbours; use a smaller k")
    table = _gold_table(gold, x.shape[0], y.shape[0], "query")
    if center:
        x, y, qs = _centred(x, qs), _centred(y), (None if query_space is None else _centred(qs))
    xn, yn = _validate.unit_rows(x), _validate.unit_rows(y)
    qsn = xn if query_space is None else _validate.unit_rows(qs)
    r_q, r_pool = csls_radii(xn, yn, k), csls_radii(yn, qsn, k)
    _, ranked = margin_topk(xn, yn, r_q, r_pool, max(ks))
    return ranking_result(ranked, table, y.shape[0], ks, method="margin", center=center, confidence=confidence,
                          n_resamples=n_resamples, seed=seed)


def _order_by_margin(v: torch.Tensor, i: torch.Tensor, kmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First kmax of each row of (scores, indices) under (higher score, lower index)."""
    o = torch.argsort(i, dim=1)
    v, i = v.gather(1, o), i.gather(1, o)
    o = torch.argsort(v, dim=1, descending=True, stable=True)[:, :kmax]
    return v.gather(1, o), i.gather(1, o)


def _pass_blocks(n_src: int, q_src: int, rows: int) -> list[tuple[int, int]]:
    edges = sorted({*range(0, q_src, rows), *range(q_src, n_src, rows), n_src})
    return list(zip(edges[:-1], edges[1:]))


def _candidate_pass(a: torch.Tensor, b: torch.Tensor, q: int, k: int, n_cand: int, rows: int):
    """One blocked pass over the rows of a bᵀ: (radii ``[n_a]`` float64, the mean of each
    row's k largest cosines; the top ``n_cand`` cosines (values, indices) of the first q rows)."""
    n_a, kc = a.shape[0], min(n_cand, b.shape[0])
    radii = torch.empty(n_a, dtype=torch.float64, device=a.device)
    cand_v = torch.empty((q, kc), device=a.device)
    cand_i = torch.empty((q, kc), dtype=torch.long, device=a.device)
    bt = b.t()

    def block(start: int, stop: int) -> None:
        v, i = row_topk(a[start:stop] @ bt, max(k, kc) if start < q else k)   # block [rows, n_b]
        radii[start:stop] = v[:, :k].double().mean(1)
        if start < q:
            cand_v[start:stop], cand_i[start:stop] = v[:, :kc], i[:, :kc]

    _each_block(_pass_blocks(n_a, q, rows), block, a.device)
    return radii, (cand_v, cand_i)


def _rank_candidates(cand, r_q: torch.Tensor, r_pool: torch.Tensor, kmax: int, pool_size: int):
    """Margin top-kmax from cosine candidates ``[q, K]`` (sorted best first) and which rows
    are provably exact: the kmax-th margin must beat the best margin any non-candidate
    (cosine <= the K-th candidate's) could reach with the most favourable denominator."""
    cv, ci = cand
    half_q, half_p = (0.5 * r_q.float())[:, None], 0.5 * r_pool.float()
    v, i = _order_by_margin(cv / (half_q + half_p[ci]), ci, kmax)
    if cv.shape[1] >= pool_size:
        return v, i, torch.ones(v.shape[0], dtype=torch.bool, device=v.device)
    c_last = cv[:, -1:]
    bound = torch.where(c_last >= 0, c_last / (half_q + half_p.min()), c_last / (half_q + half_p.max()))
    return v, i, v[:, -1] > bound[:, 0]


def margin_rankings_by_candidates(xn: np.ndarray, yn: np.ndarray, q_src: int, q_tgt: int, kmax: int, *,
                             k: int = MARGIN_K, n_candidates: int = _CANDIDATES, device=None,
                             block_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Margin rankings of both directions from two blocked products, for many queries.

    xn ``[n_src, d]``, yn ``[n_tgt, d]``: unit-normalised float32; the first ``q_src`` rows of
    xn query yn and the first ``q_tgt`` rows of yn query xn; kmax <= min(n_src, n_tgt).
    Returns (src ranking ``[q_src, kmax]``, tgt ranking ``[q_tgt, kmax]``) int64, equal to
    :func:`margin_topk` on the same radii. A pass over the rows of X̂Ŷᵀ gives every source
    row's radius and the source queries' ``n_candidates`` largest cosines, a pass over the
    rows of ŶX̂ᵀ the same for the target side (two row passes cost less than one pass that
    also tracks column top-k, and less than radii + two ranking products). A query whose kmax-th margin does not strictly beat the
    bound on every other candidate is re-ranked exactly by :func:`margin_topk` (rare on real
    spaces; more with few candidates). Blocks of ``block_rows`` rows (default ~24 MB).
    """
    if not 1 <= kmax <= min(xn.shape[0], yn.shape[0]):
        raise AlignkitError(f"k={kmax} is larger than a candidate pool ({min(xn.shape[0], yn.shape[0])} vectors); "
                            "use a smaller k")
    dev = torch.device(device or "cpu")
    n_cand = max(n_candidates, kmax, k)
    with torch.inference_mode():
        x, y = torch.from_numpy(xn).to(dev), torch.from_numpy(yn).to(dev)
        src_r, row_cand = _candidate_pass(x, y, q_src, k, n_cand, block_rows or max(1, _BLOCK_FLOATS // y.shape[0]))
        tgt_r, col_cand = _candidate_pass(y, x, q_tgt, k, n_cand, block_rows or max(1, _BLOCK_FLOATS // x.shape[0]))
        _check_denominators(src_r.cpu().numpy(), tgt_r.cpu().numpy())
        out = []
        for own, other, cand, r_q, r_pool in ((xn, yn, row_cand, src_r[:q_src], tgt_r),
                                              (yn, xn, col_cand, tgt_r[:q_tgt], src_r)):
            _, ranked, exact = _rank_candidates(cand, r_q, r_pool, kmax, other.shape[0])
            ranked, redo = ranked.cpu().numpy(), torch.nonzero(~exact).flatten().cpu().numpy()
            if redo.size:
                ranked[redo] = margin_topk(own[redo], other, r_q.cpu().numpy()[redo], r_pool.cpu().numpy(), kmax,
                                           device=dev)[1]
            out.append(ranked)
    return out[0], out[1]


def margin_space(xn: np.ndarray, yn: np.ndarray, k: int = MARGIN_K, *, device=None) -> tuple[MarginRadii, MarginRadii]:
    """Radii of both directions from one blocked product X̂Ŷᵀ: (src→tgt, tgt→src).

    xn ``[n_src, d]``, yn ``[n_tgt, d]`` unit-normalised float32. src→tgt: query radii are
    every source row's r over Y, pool radii every target row's r over X; tgt→src the swap.
    """
    ps = product_search(xn, yn, 0, 0, kmax=1, csls_k=k, device=device)
    return MarginRadii(ps.src_radii, ps.tgt_radii), MarginRadii(ps.tgt_radii, ps.src_radii)


def margin_retrieve_both(src, tgt, src_gold: Sequence[Collection[int]], tgt_gold: Sequence[Collection[int]], *,
                         ks: Sequence[int] = (1, 5, 10), k: int = MARGIN_K, center: bool = False,
                         confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                         device=None) -> dict[tuple[str, str], RetrievalResult]:
    """Margin P@k in both directions, in the layout of :func:`retrieve_both`.

    src ``[n_src, dim]`` / tgt ``[n_tgt, dim]``: each language's full set, its test queries
    first (``len(src_gold)`` / ``len(tgt_gold)`` rows). src→tgt equals
    ``margin_retrieve(src[:len(src_gold)], tgt, src_gold, query_space=src)``, tgt→src the
    swap. Cost: one product n_src × n_tgt for all radii, plus queries × pool per direction
    (when queries are most of the sets, two products in all: :func:`_both_rankings`).
    Returns ``{("src->tgt", "margin"): RetrievalResult, ("tgt->src", "margin"): ...}``.
    """
    x = _validate.vectors(src, "source vectors")
    y = _validate.vectors(tgt, "target vectors", dim=x.shape[1])
    smallest = min(x.shape[0], y.shape[0])
    ks = _ks(ks, smallest)
    if not 1 <= k <= smallest:
        raise AlignkitError(f"margin k={k} needs 1..{smallest} neighbours; use a smaller k")
    for name, gold, q in (("source", src_gold, x), ("target", tgt_gold, y)):
        if len(gold) > q.shape[0]:
            raise AlignkitError(f"{len(gold)} {name} queries but only {q.shape[0]} {name} vectors; "
                                "the queries must be the first rows of their language's set")
    tables = (_gold_table(src_gold, len(src_gold), y.shape[0], "source"),
              _gold_table(tgt_gold, len(tgt_gold), x.shape[0], "target"))
    if center:
        x, y = _centred(x), _centred(y)
    xn, yn = _validate.unit_rows(x), _validate.unit_rows(y)
    ranks = _both_rankings(xn, yn, len(src_gold), len(tgt_gold), max(ks), k, device)
    kw = dict(center=center, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return {(direction, "margin"): ranking_result(ranked, table, pool_size, ks, method="margin", **kw)
            for direction, ranked, table, pool_size in (("src->tgt", ranks[0], tables[0], y.shape[0]),
                                                         ("tgt->src", ranks[1], tables[1], x.shape[0]))}


def _both_rankings(xn: np.ndarray, yn: np.ndarray, q_src: int, q_tgt: int, kmax: int, k: int,
                   device) -> tuple[np.ndarray, np.ndarray]:
    """Both directions' margin rankings by the cheaper exact route: with few queries, the
    radii from one product and a queries × pool product per direction; when the queries are
    a large share of the sets (Tatoeba, mining), :func:`margin_rankings_by_candidates`."""
    if q_src / xn.shape[0] + q_tgt / yn.shape[0] > 0.5:
        return margin_rankings_by_candidates(xn, yn, q_src, q_tgt, kmax, k=k, device=device)
    fwd, bwd = margin_space(xn, yn, k, device=device)
    return (margin_topk(xn[:q_src], yn, fwd.query[:q_src], fwd.pool, kmax, device=device)[1],
            margin_topk(yn[:q_tgt], xn, bwd.query[:q_tgt], bwd.pool, kmax, device=device)[1])


def margin_tatoeba(xx_vecs, en_vecs, *, k: int = MARGIN_K, center: bool = False, confidence: float = 0.95,
                   n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                   device=None) -> SentenceRetrievalResult:
    """Tatoeba accuracy with margin instead of cosine, xxx→eng and eng→xxx, like
    :func:`alignkit.metrics.sentences.tatoeba_accuracy` (row i of both arrays is a pair,
    n >= 2, every sentence of the other language is a candidate, hit when row i wins).

    xx_vecs ``[n, dim]``, en_vecs ``[n, dim]``; r of each sentence over the other language.
    """
    x, e = _validate.parallel_sentences(xx_vecs, en_vecs)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise AlignkitError(f"margin k={k} needs 1..{n} neighbours; use a smaller k")
    if center:
        x, e = _centred(x), _centred(e)
    xn, en = _validate.unit_rows(x), _validate.unit_rows(e)
    x2e, e2x = (r[:, 0] for r in _both_rankings(xn, en, n, n, 1, k, device))
    gold = np.arange(n)
    kw = dict(confidence=confidence, n_resamples=n_resamples, seed=seed)
    return SentenceRetrievalResult(xx_to_en=mean_estimate((x2e == gold).astype(np.float64), **kw),
                                   en_to_xx=mean_estimate((e2x == gold).astype(np.float64), **kw),
                                   xx_to_en_pred=x2e, en_to_xx_pred=e2x, n=int(n))
