"""Ratio-margin retrieval (Artetxe & Schwenk 2019; XTREME's BUCC, LASER), SPEC §2.

    margin(x, y) = cos(x, y) / (½ r_T(x) + ½ r_S(y)),   k = 4,

r_T(x) = mean cosine of x to its k nearest vectors of the other side (the candidate pool),
r_S(y) = mean cosine of candidate y to its k nearest vectors of the query side (the query
language's full set). Unlike CSLS (a difference), the ratio's ranking for one query depends
on r_T(x) too, so each query's scores are formed explicitly, one block of queries at a time:
a block ``[rows, pool]`` of cosines (~24 MB) divided by the denominators, then its exact
top-k with ties to the lower pool index (:func:`alignkit.metrics.blocked.row_topk`, the
order of ``np.argsort(-scores, kind="stable")``). No pool×pool matrix is ever held.

Radii are exact means of the k largest cosines: both sides' from one blocked product
(:func:`alignkit.metrics.blocked.product_search`) when the queries are the first rows of
their language's set, otherwise from FAISS exact search (:func:`csls_radii`).

The ratio needs positive denominators; with k = 4 nearest neighbours they are positive for
any real embedding space, and a space where they are not is refused (AlignkitError).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Sequence

import numpy as np
import torch

from alignkit.errors import AlignkitError
from alignkit.metrics import _validate
from alignkit.metrics.blocked import product_search, row_topk
from alignkit.metrics.retrieval import RetrievalResult, csls_radii
from alignkit.metrics.sentences import SentenceRetrievalResult
from alignkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, mean_estimate

MARGIN_K = 4
_BLOCK_FLOATS = 6 * 2**20   # one [rows, pool] block of scores: 24 MB


@dataclass(frozen=True)
class MarginRadii:
    """Neighbourhood means of a margin retrieval space: ``query`` ``[n_q]`` float64, r of
    each query row over the pool; ``pool`` ``[n_pool]`` float64, r of each pool row over
    the query side."""

    query: np.ndarray
    pool: np.ndarray


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
    with torch.inference_mode():
        for i in range(0, queries.shape[0], rows):
            j = min(i + rows, queries.shape[0])
            s = torch.from_numpy(queries[i:j]).to(dev) @ y_t                       # [b, m] cosines
            half_rq = torch.from_numpy(0.5 * r_q[i:j].astype(np.float32)).to(dev)[:, None]
            v, top = row_topk(s.div_(half_rq + half_rp), kmax)
            scores[i:j], ids[i:j] = v.cpu().numpy(), top.cpu().numpy()
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
    swap. Cost: one product n_src × n_tgt for all radii, plus queries × pool per direction.
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
    radii = margin_space(xn, yn, k, device=device)
    kw = dict(center=center, confidence=confidence, n_resamples=n_resamples, seed=seed)
    out = {}
    for direction, own, other, r, table in (("src->tgt", xn, yn, radii[0], tables[0]),
                                            ("tgt->src", yn, xn, radii[1], tables[1])):
        nq = len(table)
        _, ranked = margin_topk(own[:nq], other, r.query[:nq], r.pool, max(ks), device=device)
        out[direction, "margin"] = ranking_result(ranked, table, other.shape[0], ks, method="margin", **kw)
    return out


def margin_tatoeba(xx_vecs, en_vecs, *, k: int = MARGIN_K, center: bool = False, confidence: float = 0.95,
                   n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                   device=None) -> SentenceRetrievalResult:
    """Tatoeba accuracy with margin instead of cosine, xxx→eng and eng→xxx, like
    :func:`alignkit.metrics.sentences.tatoeba_accuracy` (row i of both arrays is a pair,
    n >= 2, every sentence of the other language is a candidate, hit when row i wins).

    xx_vecs ``[n, dim]``, en_vecs ``[n, dim]``; r of each sentence over the other language.
    """
    x = _validate.vectors(xx_vecs, "non-English sentence vectors", min_rows=2)
    e = _validate.vectors(en_vecs, "English sentence vectors", dim=x.shape[1], min_rows=2)
    if x.shape[0] != e.shape[0]:
        raise AlignkitError(f"{x.shape[0]} non-English but {e.shape[0]} English sentence vectors; "
                            "row i of each must be a translation pair")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise AlignkitError(f"margin k={k} needs 1..{n} neighbours; use a smaller k")
    if center:
        x, e = _centred(x), _centred(e)
    xn, en = _validate.unit_rows(x), _validate.unit_rows(e)
    r_x2e, r_e2x = margin_space(xn, en, k, device=device)
    x2e = margin_topk(xn, en, r_x2e.query, r_x2e.pool, 1, device=device)[1][:, 0]
    e2x = margin_topk(en, xn, r_e2x.query, r_e2x.pool, 1, device=device)[1][:, 0]
    gold = np.arange(n)
    kw = dict(confidence=confidence, n_resamples=n_resamples, seed=seed)
    return SentenceRetrievalResult(xx_to_en=mean_estimate((x2e == gold).astype(np.float64), **kw),
                                   en_to_xx=mean_estimate((e2x == gold).astype(np.float64), **kw),
                                   xx_to_en_pred=x2e, en_to_xx_pred=e2x, n=int(n))
