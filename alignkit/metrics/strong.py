"""Strong alignment P@1 (after LAReQA, Roy et al. 2020), SPEC §2.

Weak alignment (Tatoeba, word retrieval) only asks that a query's translation beats the
other sentences OF THE OTHER LANGUAGE. Strong alignment puts both languages in one pool:
the candidates of a query are every item of the other language followed by every item of
the query's own language except the query itself, and a hit needs the nearest candidate
(by cosine) to be a gold translation. A model whose languages sit in separate clusters can
be perfect on weak alignment and near zero here.

Pool order is (other language, then own language), ties to the lower index, so an exact
tie between a translation and a same-language item goes to the translation; hence on the
same inputs a strong hit is always a weak hit (strong P@1 <= weak P@1 item by item).
Search: FAISS exact top-2 (:func:`alignkit.metrics.retrieval.knn_search`), the first
result that is not the query itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Sequence

import numpy as np

from alignkit.errors import AlignkitError
from alignkit.metrics import _validate
from alignkit.metrics.retrieval import knn_search
from alignkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate, mean_estimate


@dataclass(frozen=True)
class StrongResult:
    """Strong P@1 of one direction.

    p1:   Estimate whose ``items`` ``[n]`` are per-query hits (1.0 / 0.0).
    pred: ``[n]`` int64 row of the nearest candidate in its own language's array.
    pred_same_language: ``[n]`` bool, the nearest candidate is of the query's language.
    same_language_misses: share of the misses whose nearest candidate is same-language
          (NaN when there is no miss): how much of the gap to weak P@1 is language clustering.
    n: number of queries.
    """

    p1: Estimate
    pred: np.ndarray
    pred_same_language: np.ndarray
    same_language_misses: float
    n: int


@dataclass(frozen=True)
class StrongSentenceResult:
    """Strong P@1 of parallel sentences both ways: ``xx_to_en``, ``en_to_xx``; n pairs."""

    xx_to_en: StrongResult
    en_to_xx: StrongResult
    n: int


def _nearest_other_than_self(qn: np.ndarray, other: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For query i = own row i, the nearest of [other; own without row i]: (index in its own
    array ``[n]`` int64, is-same-language ``[n]`` bool). qn ``[n, d]`` = own[:n]."""
    pool = np.vstack([other, own])
    _, ids = knn_search(qn, pool, 2)
    is_self = ids[:, 0] == other.shape[0] + np.arange(qn.shape[0])
    best = np.where(is_self, ids[:, 1], ids[:, 0])
    same = best >= other.shape[0]
    return np.where(same, best - other.shape[0], best).astype(np.int64), same


def _result(hit: np.ndarray, pred: np.ndarray, same: np.ndarray, confidence: float, n_resamples: int,
            seed: int) -> StrongResult:
    misses = ~hit
    share = float(same[misses].mean()) if misses.any() else float("nan")
    return StrongResult(p1=mean_estimate(hit.astype(np.float64), confidence=confidence, n_resamples=n_resamples,
                                         seed=seed),
                        pred=pred, pred_same_language=same, same_language_misses=share, n=int(hit.size))


def _prepared(a: np.ndarray, b: np.ndarray, center: bool) -> tuple[np.ndarray, np.ndarray]:
    if center:
        (a, _), (b, _) = _validate.centred(a), _validate.centred(b)
    return _validate.unit_rows(a), _validate.unit_rows(b)


def strong_tatoeba(xx_vecs, en_vecs, *, center: bool = False, confidence: float = 0.95,
                   n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> StrongSentenceResult:
    """Strong P@1 of parallel sentences, xxx→eng and eng→xxx.

    xx_vecs ``[n, dim]``, en_vecs ``[n, dim]`` (row i of both is a pair), n >= 2. Query
    x_i ranks all n English sentences and the n − 1 other non-English ones; a hit when e_i
    is the nearest. ``center`` subtracts each language's mean first.
    """
    x, e = _validate.parallel_sentences(xx_vecs, en_vecs)
    xn, en = _prepared(x, e, center)
    gold, kw = np.arange(x.shape[0]), dict(confidence=confidence, n_resamples=n_resamples, seed=seed)
    out = []
    for own, other in ((xn, en), (en, xn)):
        pred, same = _nearest_other_than_self(own, other, own)
        out.append(_result(~same & (pred == gold), pred, same, **kw))
    return StrongSentenceResult(xx_to_en=out[0], en_to_xx=out[1], n=int(x.shape[0]))


def _gold_hits(pred: np.ndarray, same: np.ndarray, gold: Sequence[Collection[int]], pool_size: int,
               name: str) -> np.ndarray:
    hit = np.zeros(pred.size, dtype=bool)
    any_gold = False
    for i, g in enumerate(gold):
        try:
            g = {int(p) for p in g}
        except (TypeError, ValueError):
            raise AlignkitError(f"{name} gold must hold integer indices of the other language (one set per query)") from None
        if g and (min(g) < 0 or max(g) >= pool_size):
            raise AlignkitError(f"{name} gold holds indices outside 0..{pool_size - 1}; "
                                "map gold translations to rows of the other language's set")
        any_gold |= bool(g)
        hit[i] = not same[i] and int(pred[i]) in g
    if not any_gold:
        raise AlignkitError(f"none of the {len(gold)} {name} query words has a gold translation in the "
                            "other language's set; check that it contains the test lexicon's translations")
    return hit


def strong_retrieve_both(src, tgt, src_gold: Sequence[Collection[int]], tgt_gold: Sequence[Collection[int]], *,
                         center: bool = False, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                         seed: int = DEFAULT_SEED) -> dict[str, StrongResult]:
    """Strong P@1 of word translation both ways, in the layout of :func:`retrieve_both`.

    src ``[n_src, dim]`` / tgt ``[n_tgt, dim]``: each language's full set (test words first,
    then frequent words). Source query i (row i, i < len(src_gold)) ranks every tgt row and
    every other src row; a hit when the nearest is a tgt row in ``src_gold[i]`` (queries
    without gold count as misses). tgt→src likewise. Returns ``{"src->tgt": StrongResult,
    "tgt->src": StrongResult}``; ``pred`` indexes tgt or src as ``pred_same_language`` says.
    """
    x = _validate.vectors(src, "source vectors", min_rows=2)
    y = _validate.vectors(tgt, "target vectors", dim=x.shape[1], min_rows=2)
    for name, gold, q in (("source", src_gold, x), ("target", tgt_gold, y)):
        if not 1 <= len(gold) <= q.shape[0]:
            raise AlignkitError(f"{len(gold)} {name} queries for {q.shape[0]} {name} vectors; the queries must be "
                                "the first rows of their language's set (at least one)")
    xn, yn = _prepared(x, y, center)
    kw = dict(confidence=confidence, n_resamples=n_resamples, seed=seed)
    out = {}
    for direction, name, gold, own, other in (("src->tgt", "source", src_gold, xn, yn),
                                              ("tgt->src", "target", tgt_gold, yn, xn)):
        pred, same = _nearest_other_than_self(own[:len(gold)], other, own)
        out[direction] = _result(_gold_hits(pred, same, gold, other.shape[0], name), pred, same, **kw)
    return out
