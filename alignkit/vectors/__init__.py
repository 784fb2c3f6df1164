"""Per-layer word and sentence vectors (SPEC §2): :mod:`~alignkit.vectors.extract` (public API,
``.npz`` writer), :mod:`~alignkit.vectors.forward` (batching, pooled forward passes),
:mod:`~alignkit.vectors.occurrences` (contextual mode), :mod:`~alignkit.vectors.cache`."""
from alignkit.vectors.extract import (ExtractionInfo, VectorArray, corpus_hash, extract_to_npz, parse_layers,
                                      sentence_vectors, word_vectors, write_vectors_npz)

__all__ = ["ExtractionInfo", "VectorArray", "corpus_hash", "extract_to_npz", "parse_layers", "sentence_vectors",
           "word_vectors", "write_vectors_npz"]
