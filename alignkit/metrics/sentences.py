"""Tatoeba sentence retrieval accuracy (XTREME-R) at one layer (SPEC §2).

Row i of the non-English and the English arrays is a translation pair. Each sentence
retrieves its 1-nearest neighbour by cosine among all sentences of the other language
(FAISS exact inner-product search, ties to the lower index); a hit when that is row i.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alignkit.metrics import _validate
from alignkit.metrics.retrieval import knn_search
from alignkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate, mean_estimate


@dataclass(frozen=True)
class SentenceRetrievalResult:
    """Accuracy both ways. ``xx_to_en`` / ``en_to_xx``: Estimates whose ``items`` ``[n]``
    are per-sentence hits (1/0); ``xx_to_en_pred`` / ``en_to_xx_pred``: ``[n]`` int64 row
    retrieved for each query sentence."""

    xx_to_en: Estimate
    en_to_xx: Estimate
    xx_to_en_pred: np.ndarray
    en_to_xx_pred: np.ndarray
    n: int


def tatoeba_accuracy(xx_vecs, en_vecs, *, center: bool = False, confidence: float = 0.95,
                     n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> SentenceRetrievalResult:
    """1-NN retrieval accuracy, xxx→eng and eng→xxx.

    xx_vecs ``[n, dim]`` (non-English sentence vectors), en_vecs ``[n, dim]`` (their English
    translations, same order), n >= 2. ``center`` subtracts each language's mean vector
    before normalising (off by default: XTREME-R uses plain cosine).
    """
    x, e = _validate.parallel_sentences(xx_vecs, en_vecs, center=center)
    xn, en = _validate.unit_rows(x), _validate.unit_rows(e)
    gold = np.arange(x.shape[0])
    x2e = knn_search(xn, en, 1)[1][:, 0]
    e2x = knn_search(en, xn, 1)[1][:, 0]
    kw = dict(confidence=confidence, n_resamples=n_resamples, seed=seed)
    return SentenceRetrievalResult(xx_to_en=mean_estimate((x2e == gold).astype(np.float64), **kw),
                                   en_to_xx=mean_estimate((e2x == gold).astype(np.float64), **kw),
                                   xx_to_en_pred=x2e, en_to_xx_pred=e2x, n=int(x.shape[0]))
