"""Measurements of cross-lingual alignment: pure functions on arrays, no I/O (SPEC §2).

Each metric returns an :class:`alignkit.stats.Estimate` (or a small result object holding
several): the value, its bootstrap CI, n, and the item-level scores needed for paired
comparisons between checkpoints.
"""
from alignkit.metrics.clusters import gap_ratio, langid_acc, silhouette
from alignkit.metrics.retrieval import (METHODS, RetrievalResult, csls_radii, knn_search, retrieve, retrieve_both,
                                       retrieve_spaces)
from alignkit.metrics.sentences import SentenceRetrievalResult, tatoeba_accuracy
from alignkit.metrics.similarity import BLSResult, bls
from alignkit.metrics.tsne import TSNEMap, tsne_pairs

__all__ = [
    "BLSResult", "bls", "METHODS", "RetrievalResult", "retrieve", "retrieve_both", "retrieve_spaces", "knn_search",
    "csls_radii",
    "gap_ratio", "langid_acc", "silhouette", "SentenceRetrievalResult", "tatoeba_accuracy",
    "TSNEMap", "tsne_pairs",
]
