"""Orthogonal Procrustes map between two embedding spaces (Schönemann 1966; MUSE "supervised").

``procrustes_p@k`` (SPEC §2): fit an orthogonal W on the TRAIN split of a lexicon, map the
test source vectors with it, then score retrieval exactly as :mod:`alignkit.metrics.retrieval`
does (NN and CSLS). It separates "alignable by a rotation" from "already aligned".

Direction of the map: W minimises ‖X W − Y‖_F over train pairs (source rows X, target rows
Y). The map fitted the other way, V = argmin ‖Y V − X‖_F over orthogonal V, is exactly Wᵀ
(‖Y Wᵀ − X‖ = ‖(Y − X W) Wᵀ‖ = ‖X W − Y‖, so the minimisers correspond), and cosines are
invariant under a rotation applied to both sides: cos(x W, y) = cos(x, y Wᵀ). So mapping the
source into the target space and retrieving in both directions from one product gives the
same scores (up to float rounding) as mapping each direction's queries with its own fitted
map; :func:`procrustes_retrieve_both` does the former.

Never fit on test pairs: every entry point takes the train and test pair lists and refuses
(:func:`check_train_test_disjoint`) when a test pair or a test source word occurs in train.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Collection, Iterable, Sequence

import numpy as np
from scipy.linalg import orthogonal_procrustes

from alignkit.errors import AlignkitError
from alignkit.metrics import _validate
from alignkit.metrics.retrieval import RetrievalResult, retrieve, retrieve_both
from alignkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED


def fit_procrustes(src_vecs, tgt_vecs, *, normalize: bool = True) -> np.ndarray:
    """Orthogonal W ``[dim, dim]`` minimising ‖X W − Y‖_F over train pairs.

    src_vecs ``[n, dim]``, tgt_vecs ``[n, dim]``: row i of each is train pair i. With
    ``normalize`` (default) rows are unit-normalised first, so every pair weighs the same
    (as for cosine scoring). Map new source vectors with ``src @ W`` (float64).
    """
    x = _validate.vectors(src_vecs, "train source vectors")
    y = _validate.vectors(tgt_vecs, "train target vectors", dim=x.shape[1])
    if x.shape[0] != y.shape[0]:
        raise AlignkitError(f"{x.shape[0]} train source but {y.shape[0]} train target vectors; "
                            "row i of each must be train pair i")
    if normalize:
        x, y = _validate.unit_rows(x), _validate.unit_rows(y)
    w, _ = orthogonal_procrustes(x.astype(np.float64), y.astype(np.float64))
    return w


def _pairs(pairs: Iterable, name: str) -> set[tuple[str, str]]:
    out = set()
    for p in pairs:
        try:
            s, t = p
        except (TypeError, ValueError):
            raise AlignkitError(f"{name} must be (source word, target word) pairs, got {p!r}") from None
        out.add((str(s), str(t)))
    return out


def check_train_test_disjoint(train_pairs: Iterable[tuple[str, str]],
                              test_pairs: Iterable[tuple[str, str]]) -> None:
    """Refuse a Procrustes fit whose train pairs leak into the test split.

    Raises AlignkitError when any test pair (source word, target word) is a train pair, or
    when any test source word is a train source word (a map fitted on the query word itself
    would score its own training data). Target words may be shared: the shipped splits are
    disjoint by source word only (MUSE style), and about half of their test target words also
    occur in train pairs with other source words.
    """
    train, test = _pairs(train_pairs, "train pairs"), _pairs(test_pairs, "test pairs")
    if not train:
        raise AlignkitError("no train pairs to fit the Procrustes map on; pass the lexicon's TRAIN split")
    both = sorted(train & test)
    if both:
        raise AlignkitError(f"{len(both)} test pairs are also train pairs (e.g. {both[0][0]!r}-{both[0][1]!r}); "
                            "fit the Procrustes map on the TRAIN split only, never on test pairs")
    shared = sorted({s for s, _ in train} & {s for s, _ in test})
    if shared:
        raise AlignkitError(f"{len(shared)} test source words are also train source words (e.g. {shared[0]!r}); "
                            "use train and test splits that are disjoint by source word")


def _centred(vecs: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    return vecs if mean is None else vecs - mean


def _mean(vecs: np.ndarray) -> np.ndarray:
    return vecs.mean(axis=0, dtype=np.float64).astype(np.float32)


def _fit_and_map(train_src, train_tgt, maps: Sequence[np.ndarray], src_mean, tgt_mean) -> list[np.ndarray]:
    """W from the (centred) train pairs; each of ``maps`` (source-language vectors, centred
    with ``src_mean``) unit-normalised and mapped by it, as float32."""
    x = _validate.vectors(train_src, "train source vectors")
    y = _validate.vectors(train_tgt, "train target vectors", dim=x.shape[1])
    if maps and x.shape[1] != maps[0].shape[1]:
        raise AlignkitError(f"train vectors have dimension {x.shape[1]} but test vectors {maps[0].shape[1]}; "
                            "take train and test vectors from the same layer of the same model")
    w = fit_procrustes(_centred(x, src_mean), _centred(y, tgt_mean))
    return [np.ascontiguousarray(_validate.unit_rows(_centred(v, src_mean)) @ w, dtype=np.float32) for v in maps]


def procrustes_retrieve_both(train_src, train_tgt, src, tgt, src_gold: Sequence[Collection[int]],
                             tgt_gold: Sequence[Collection[int]], *, train_pairs: Iterable[tuple[str, str]],
                             test_pairs: Iterable[tuple[str, str]], ks: Sequence[int] = (1, 5, 10),
                             center: bool = False, csls_k: int = 10, confidence: float = 0.95,
                             n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                             device=None) -> dict[tuple[str, str], RetrievalResult]:
    """``procrustes_p@k``: NN and CSLS P@k in both directions after an orthogonal map.

    train_src ``[n_train, dim]``, train_tgt ``[n_train, dim]``: row i of each is train pair i
    (``train_pairs[i]`` names it). src ``[n_src, dim]``, tgt ``[n_tgt, dim]``, src_gold,
    tgt_gold: exactly as :func:`alignkit.metrics.retrieval.retrieve_both` (test queries
    first, then frequent words). ``test_pairs``: the test split's (source, target) words.

    W is fitted on unit-normalised train pairs (after subtracting each language's mean over
    ``src`` / ``tgt`` when ``center``), ``src`` is mapped by it and both directions are
    scored by ``retrieve_both`` on (src W, tgt): tgt→src thereby uses Wᵀ, which is also the
    map fitted from target to source (module docstring). Returns
    ``{(direction, method): RetrievalResult}``. Raises AlignkitError when the splits overlap
    (:func:`check_train_test_disjoint`) and on every input :func:`retrieve_both` refuses.
    """
    check_train_test_disjoint(train_pairs, test_pairs)
    x = _validate.vectors(src, "source vectors")
    y = _validate.vectors(tgt, "target vectors", dim=x.shape[1])
    src_mean, tgt_mean = (_mean(x), _mean(y)) if center else (None, None)
    (xw,) = _fit_and_map(train_src, train_tgt, [x], src_mean, tgt_mean)
    out = retrieve_both(xw, _centred(y, tgt_mean), src_gold, tgt_gold, ks=ks, center=False, csls_k=csls_k,
                        confidence=confidence, n_resamples=n_resamples, seed=seed, device=device)
    # centring happened here, before the map; the results must still say it did
    return {key: replace(res, center=bool(center)) for key, res in out.items()}


def procrustes_retrieve(train_src, train_tgt, queries, pool, gold: Sequence[Collection[int]], *,
                        train_pairs: Iterable[tuple[str, str]], test_pairs: Iterable[tuple[str, str]],
                        ks: Sequence[int] = (1, 5, 10), method: str = "nn", center: bool = False,
                        csls_k: int = 10, query_space=None, confidence: float = 0.95,
                        n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> RetrievalResult:
    """``procrustes_p@k`` of one direction: :func:`alignkit.metrics.retrieval.retrieve` on
    ``queries`` (and ``query_space``) mapped by W fitted on the train pairs.

    train_src ``[n_train, dim]`` are vectors of the QUERY language, train_tgt of the pool's
    (for tgt→src pass the train pairs swapped: that fit is the transpose of the other way's).
    queries ``[n, dim]``, pool ``[pool_size, dim]``, gold, ks, method, csls_k, query_space: as
    in ``retrieve``. With ``center`` the query language's mean (over ``query_space``, default
    the queries) and the pool's mean are subtracted from test and train vectors alike before
    the fit. Raises AlignkitError like ``retrieve`` and when the splits overlap.
    """
    check_train_test_disjoint(train_pairs, test_pairs)
    x = _validate.vectors(queries, "query vectors")
    y = _validate.vectors(pool, "candidate pool vectors", dim=x.shape[1])
    qs = None if query_space is None else _validate.vectors(query_space, "query-space vectors", dim=x.shape[1])
    src_mean, tgt_mean = (_mean(x if qs is None else qs), _mean(y)) if center else (None, None)
    mapped = _fit_and_map(train_src, train_tgt, [x] + ([] if qs is None else [qs]), src_mean, tgt_mean)
    res = retrieve(mapped[0], _centred(y, tgt_mean), gold, ks=ks, method=method, center=False, csls_k=csls_k,
                   query_space=None if qs is None else mapped[1], confidence=confidence,
                   n_resamples=n_resamples, seed=seed)
    return replace(res, center=bool(center))
