"""Word-translation retrieval P@k with FAISS exact inner-product search (SPEC §2).

One call scores one direction with one method: each query word (a unique test source
word, ``[n_queries, dim]``) ranks a candidate pool (``[pool_size, dim]``: test targets plus
frequent target words) and scores a hit at k if any gold translation is in its top k.

- ``nn``:   rank by cos(x, y).
- ``csls``: rank by CSLS(x, y) = 2 cos(x, y) - r_T(x) - r_S(y) (Conneau et al. 2018),
  r_T(x) = mean cos of x to its ``csls_k`` nearest pool vectors, r_S(y) = mean cos of y to
  its ``csls_k`` nearest vectors of the query language's full set (``query_space``).
  r_T(x) is the same for every candidate of query x, so the ranking needs only r_S: it is
  found with one FAISS search over augmented vectors, [x̂, 1] · [ŷ, -r_S(y)/2] =
  CSLS(x, y)/2 + r_T(x)/2. CSLS therefore costs two exact searches (r_S, then the ranking).
- ``center=True``: subtract each language's mean vector before unit-normalising
  (Libovický et al. 2020); the query language's mean is taken over ``query_space``, the
  target language's over the pool.

Ties are broken by the lower pool index, exactly as ``np.argsort(-scores, kind="stable")``
would (FAISS alone keeps an arbitrary member of a tie group at the k boundary, see
:func:`knn_search`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Collection, Sequence

import faiss
import numpy as np

from alignkit.errors import AlignkitError
from alignkit.metrics import _validate
from alignkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate, mean_estimate

METHODS = ("nn", "csls")


@dataclass(frozen=True)
class RetrievalResult:
    """Retrieval of one direction with one method.

    precision: ``{k: Estimate}`` for each requested k; ``Estimate.items`` ``[n]`` are the
               per-query hits (1.0 / 0.0), ``value`` is P@k (queries without gold count as misses).
    ranked:    ``[n, max(ks)]`` int64 pool indices, best first.
    first_hit: ``[n]`` int64, 0-based rank of the first gold candidate within ``ranked``,
               -1 when none is in the top max(ks).
    pool_size: number of candidates; coverage: share of queries with at least one gold
               candidate in the pool; n: number of queries.
    """

    method: str
    center: bool
    precision: dict[int, Estimate]
    ranked: np.ndarray
    first_hit: np.ndarray
    pool_size: int
    coverage: float
    n: int


# FAISS computes exact search as GEMM blocks of 4096 queries x 1024 base vectors, each
# followed by an OpenMP-parallel top-k pass. On a shared, oversubscribed CPU every parallel
# region can stall on a descheduled thread (measured: search 1.9x the bare GEMM with 21
# regions, ~1.1x with 3). Larger blocks mean fewer regions. FAISS allocates the block buffer
# lazily, so what becomes resident is the written [queries, base] block: we keep it under
# _BLOCK_FLOATS (128 MB).
_BASE_BLOCK = 8192
_BLOCK_FLOATS = 32 * 2**20


@contextmanager
def _large_blocks(n_base: int):
    old = faiss.cvar.distance_compute_blas_database_bs, faiss.cvar.distance_compute_blas_query_bs
    base_bs = max(old[0], _BASE_BLOCK)
    faiss.cvar.distance_compute_blas_database_bs = base_bs
    faiss.cvar.distance_compute_blas_query_bs = max(old[1], _BLOCK_FLOATS // min(n_base, base_bs))
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_database_bs, faiss.cvar.distance_compute_blas_query_bs = old


def _flat_search(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    with _large_blocks(base.shape[0]):
        return index.search(queries, k)


def knn_search(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product with deterministic ties (FAISS ``IndexFlatIP``).

    queries ``[nq, d]``, base ``[nb, d]`` float32 C-contiguous, ``1 <= k <= nb``.
    Returns ``(scores [nq, k] float32, ids [nq, k] int64)``, best first; equal scores are
    ordered by lower base index, and a tie group straddling rank k keeps its lowest indices.

    FAISS's heap keeps an arbitrary member of a tie group at the boundary, so we ask it for
    k + 1 results: where result k+1 scores strictly less than result k, the top-k set is
    exact and only needs re-sorting; the (rare) rows where they tie are recomputed by brute
    force for that row alone.
    """
    nb = base.shape[0]
    if not 1 <= k <= nb:
        raise AlignkitError(f"k={k} must be between 1 and the number of searched vectors ({nb})")
    extra = 1 if nb > k else 0
    D, I = _flat_search(queries, base, k + extra)
    if extra:
        tied = np.flatnonzero(D[:, k] == D[:, k - 1])
        D, I = D[:, :k].copy(), I[:, :k].copy()
        for r in tied:
            s = base @ queries[r]
            top = np.argsort(-s, kind="stable")[:k]
            D[r], I[r] = s[top], top
    order = np.lexsort((I, -D), axis=-1)
    return np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)


def csls_radii(vecs: np.ndarray, space: np.ndarray, k: int = 10) -> np.ndarray:
    """r(v) = mean inner product of each row of ``vecs`` ``[n, d]`` with its k nearest rows
    of ``space`` ``[m, d]`` (both unit-normalised float32, so this is mean cosine).

    Returns ``[n]`` float64. FAISS exact search; ties do not matter (only values are used).
    """
    if not 1 <= k <= space.shape[0]:
        raise AlignkitError(f"CSLS neighbourhood k={k} must be between 1 and the set size ({space.shape[0]})")
    D, _ = _flat_search(vecs, space, k)
    return D.astype(np.float64).mean(axis=1)


def _gold_matrix(gold: Sequence[Collection[int]], n: int, pool_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Gold sets -> sorted int64 keys q * pool_size + p, and the per-query 'has gold' mask."""
    if len(gold) != n:
        raise AlignkitError(f"gold has {len(gold)} entries but there are {n} query vectors; "
                            "give one set of pool indices per query word")
    rows, cols = [], []
    for q, g in enumerate(gold):
        for p in g:
            rows.append(q)
            cols.append(p)
    try:
        cols_a = np.asarray(cols, dtype=np.int64)
    except (TypeError, ValueError):
        raise AlignkitError("gold must hold integer pool indices (one set per query word)") from None
    if cols_a.size and (cols_a.min() < 0 or cols_a.max() >= pool_size):
        raise AlignkitError(f"gold holds pool indices outside 0..{pool_size - 1}; "
                            "map gold translations to rows of the candidate pool")
    rows_a = np.asarray(rows, dtype=np.int64)
    has_gold = np.zeros(n, dtype=bool)
    has_gold[rows_a] = True
    return np.unique(rows_a * pool_size + cols_a), has_gold


def retrieve(queries, pool, gold: Sequence[Collection[int]], *, ks: Sequence[int] = (1, 5, 10),
             method: str = "nn", center: bool = False, csls_k: int = 10, query_space=None,
             confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
             seed: int = DEFAULT_SEED) -> RetrievalResult:
    """P@k of word-translation retrieval from ``queries`` to ``pool``.

    queries     ``[n, dim]``: one vector per unique test source word (the query language).
    pool        ``[pool_size, dim]``: candidate vectors (the other language).
    gold        length-n sequence; ``gold[i]`` is the set of pool indices that are correct
                translations of query i (empty when none is in the pool: counts as a miss).
    ks          the k of P@k; every k must be <= pool_size.
    method      ``"nn"`` (cosine) or ``"csls"``; ``center`` subtracts language means first.
    csls_k      neighbourhood size of the CSLS radii (MUSE: 10).
    query_space ``[m, dim]``, optional: the query language's full set, used for r_S(y) of
                every candidate and for the query-language mean when centering. Default:
                the queries themselves. For the MUSE definition pass the reverse direction's
                pool (test source words + frequent source-language words).

    Vectors need not be normalised. Raises AlignkitError on empty inputs, NaN/inf rows,
    dimension mismatch, k > pool size, bad gold indices, or no query with gold in the pool.
    """
    if method not in METHODS:
        raise AlignkitError(f"unknown retrieval method {method!r}; use one of {', '.join(METHODS)}")
    x = _validate.vectors(queries, "query vectors")
    y = _validate.vectors(pool, "candidate pool vectors", dim=x.shape[1])
    qs = x if query_space is None else _validate.vectors(query_space, "query-space vectors", dim=x.shape[1])
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise AlignkitError(f"ks must be positive integers, got {ks}")
    kmax = max(ks)
    if kmax > y.shape[0]:
        raise AlignkitError(f"k={kmax} is larger than the candidate pool ({y.shape[0]} words); "
                            "use a smaller k or a larger pool")
    if method == "csls":
        if not 1 <= csls_k <= min(y.shape[0], qs.shape[0]):
            raise AlignkitError(f"csls_k={csls_k} needs 1..{min(y.shape[0], qs.shape[0])} neighbours, but the pool has "
                                f"{y.shape[0]} and the query space {qs.shape[0]} vectors; use a smaller csls_k")
    keys, has_gold = _gold_matrix(gold, x.shape[0], y.shape[0])
    if not has_gold.any():
        raise AlignkitError(f"none of the {x.shape[0]} query words has a gold translation in the pool; "
                            "check that the pool contains the test lexicon's target words")

    if center:
        q_mean = qs.mean(axis=0, dtype=np.float64).astype(np.float32)
        x, y = x - q_mean, y - y.mean(axis=0, dtype=np.float64).astype(np.float32)
        qs = x if query_space is None else qs - q_mean
    xn, yn = _validate.unit_rows(x), _validate.unit_rows(y)

    if method == "nn":
        _, ranked = knn_search(xn, yn, kmax)
    else:
        qsn = xn if query_space is None else _validate.unit_rows(qs)
        r_s = csls_radii(yn, qsn, csls_k)
        x_aug = np.hstack([xn, np.ones((xn.shape[0], 1), np.float32)])
        y_aug = np.hstack([yn, (-0.5 * r_s).astype(np.float32)[:, None]])
        _, ranked = knn_search(x_aug, y_aug, kmax)

    return _hits(ranked, keys, has_gold, y.shape[0], ks, method=method, center=center, confidence=confidence,
                 n_resamples=n_resamples, seed=seed)


# ---------------------------------------------------------------- both directions, one product

def _hits(ranked: np.ndarray, keys: np.ndarray, has_gold: np.ndarray, pool_size: int, ks, *, method: str,
          center: bool, confidence: float, n_resamples: int, seed: int) -> RetrievalResult:
    """P@k estimates from a ranking ``[n, max(ks)]`` and the gold keys of :func:`_gold_matrix`."""
    n = ranked.shape[0]
    is_gold = np.isin(np.arange(n)[:, None] * pool_size + ranked, keys)  # [n, kmax]
    first_hit = np.where(is_gold.any(axis=1), is_gold.argmax(axis=1), -1).astype(np.int64)
    found = first_hit >= 0
    precision = {k: mean_estimate((found & (first_hit < k)).astype(np.float64), confidence=confidence,
                                  n_resamples=n_resamples, seed=seed) for k in ks}
    return RetrievalResult(method=method, center=bool(center), precision=precision, ranked=ranked,
                           first_hit=first_hit, pool_size=int(pool_size), coverage=float(has_gold.mean()), n=n)


def _both_inputs(src, tgt, src_gold, tgt_gold, ks, csls_k):
    """Checked vectors, ks and per-side gold keys for :func:`retrieve_both` / :func:`retrieve_spaces`."""
    x = _validate.vectors(src, "source vectors")
    y = _validate.vectors(tgt, "target vectors", dim=x.shape[1])
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise AlignkitError(f"ks must be positive integers, got {ks}")
    kmax, smallest = max(ks), min(x.shape[0], y.shape[0])
    if kmax > smallest:
        raise AlignkitError(f"k={kmax} is larger than a candidate pool ({smallest} words); "
                            "use a smaller k or a larger pool")
    if not 1 <= csls_k <= smallest:
        raise AlignkitError(f"csls_k={csls_k} needs 1..{smallest} neighbours; use a smaller csls_k")
    sides = []
    for name, gold, q, pool in (("source", src_gold, x, y), ("target", tgt_gold, y, x)):
        if len(gold) > q.shape[0]:
            raise AlignkitError(f"{len(gold)} {name} queries but only {q.shape[0]} {name} vectors; "
                                "the queries must be the first rows of their language's set")
        keys, has_gold = _gold_matrix(gold, len(gold), pool.shape[0])
        if not has_gold.any():
            raise AlignkitError(f"none of the {len(gold)} {name} query words has a gold translation in the "
                                "pool; check that the pool contains the test lexicon's translations")
        sides.append((keys, has_gold))
    return x, y, ks, kmax, sides


def _both_results(ps, sides, n_src: int, n_tgt: int, ks, **kw) -> dict[tuple[str, str], RetrievalResult]:
    out = {}
    for direction, (keys, has_gold), pool_size, ranks in (
            ("src->tgt", sides[0], n_tgt, (ps.src_nn, ps.src_csls)),
            ("tgt->src", sides[1], n_src, (ps.tgt_nn, ps.tgt_csls))):
        for method, ranked in zip(METHODS, ranks):
            out[direction, method] = _hits(ranked, keys, has_gold, pool_size, ks, method=method, **kw)
    return out


def retrieve_both(src, tgt, src_gold: Sequence[Collection[int]], tgt_gold: Sequence[Collection[int]], *,
                  ks: Sequence[int] = (1, 5, 10), center: bool = False, csls_k: int = 10,
                  confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                  device=None) -> dict[tuple[str, str], RetrievalResult]:
    """NN and CSLS P@k in both directions from one blocked product per call (SPEC §2).

    src ``[n_src, dim]``: the source language's full set (test source words first, then
    frequent words); tgt ``[n_tgt, dim]`` likewise. ``src_gold[i]`` holds the tgt indices of
    the translations of source query i (the queries are the first len(src_gold) rows of
    src); ``tgt_gold[j]`` the src indices for target query j. The src→tgt direction equals
    ``retrieve(src[:len(src_gold)], tgt, src_gold, query_space=src)`` and tgt→src
    ``retrieve(tgt[:len(tgt_gold)], src, tgt_gold, query_space=tgt)``, for both methods, but
    S = X̂Ŷᵀ is computed once: its row top-k gives r over tgt, its column top-k r over src
    (:func:`alignkit.metrics.blocked.product_search`; ``device`` "cuda" runs it there).
    For both spaces at once, :func:`retrieve_spaces` needs one product instead of two.

    Returns ``{(direction, method): RetrievalResult}``, direction "src->tgt" / "tgt->src",
    method "nn" / "csls". Raises AlignkitError like :func:`retrieve`.
    """
    from alignkit.metrics.blocked import product_search

    x, y, ks, kmax, sides = _both_inputs(src, tgt, src_gold, tgt_gold, ks, csls_k)
    if center:
        (x, _), (y, _) = _validate.centred(x), _validate.centred(y)
    ps = product_search(_validate.unit_rows(x), _validate.unit_rows(y), len(src_gold), len(tgt_gold),
                        kmax=kmax, csls_k=csls_k, device=device)
    return _both_results(ps, sides, x.shape[0], y.shape[0], ks, center=center, confidence=confidence,
                         n_resamples=n_resamples, seed=seed)


def retrieve_spaces(src, tgt, src_gold: Sequence[Collection[int]], tgt_gold: Sequence[Collection[int]], *,
                    ks: Sequence[int] = (1, 5, 10), centers: Sequence[bool] = (False, True), csls_k: int = 10,
                    confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                    device=None) -> dict[bool, dict[tuple[str, str], RetrievalResult]]:
    """:func:`retrieve_both` for the plain (False) and centred (True) spaces together, from
    one product of the centred unit rows per block; the plain cosines are derived from it by
    an exact identity in float64 (:func:`alignkit.metrics.spaces.space_search`).

    Returns ``{center: {(direction, method): RetrievalResult}}``. The centred results equal
    ``retrieve_both(center=True)`` exactly; the plain ones equal ``retrieve_both(center=False)``
    except where two candidates' cosines differ by float32 rounding (~1e-7): the derived
    cosines are the more accurate (docs/benchmarks.md gives the measurement).
    """
    from alignkit.metrics.spaces import space_search

    x, y, ks, kmax, sides = _both_inputs(src, tgt, src_gold, tgt_gold, ks, csls_k)
    centers = tuple(dict.fromkeys(bool(c) for c in centers))
    if not centers:
        raise AlignkitError("centers is empty; give False (plain), True (centred) or both")
    found = space_search(x, y, len(src_gold), len(tgt_gold), centers=centers, kmax=kmax, csls_k=csls_k,
                         device=device)
    return {c: _both_results(found[c], sides, x.shape[0], y.shape[0], ks, center=c, confidence=confidence,
                             n_resamples=n_resamples, seed=seed) for c in centers}
