"""Input checks shared by the metrics: metrics raise AlignkitError at their boundary."""
from __future__ import annotations

import numpy as np

from alignkit.errors import AlignkitError


def vectors(arr, name: str, *, dim: int | None = None, min_rows: int = 1) -> np.ndarray:
    """Check ``arr`` is a finite ``[n, dim]`` array with at least ``min_rows`` rows; return it
    as C-contiguous float32 (what FAISS needs; no copy when it already is)."""
    x = np.asarray(arr)
    if x.ndim != 2:
        raise AlignkitError(f"{name} must be a 2-D [rows, dim] array of vectors, got shape {x.shape}")
    if x.shape[0] < min_rows:
        what = "is empty" if x.shape[0] == 0 else f"has {x.shape[0]} rows"
        raise AlignkitError(f"{name} {what}; it needs at least {min_rows} vectors")
    if x.shape[1] == 0:
        raise AlignkitError(f"{name} has vectors of dimension 0; pass real embeddings")
    if dim is not None and x.shape[1] != dim:
        raise AlignkitError(f"{name} has dimension {x.shape[1]} but the other vectors have {dim}; "
                            "score vectors from the same layer of the same model")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise AlignkitError(f"{name} has {int(bad.sum())} of {x.shape[0]} rows with NaN or infinite "
                            "values; re-extract those vectors (check the checkpoint for NaN weights)")
    return x


def centred(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``x`` minus its float32 column mean, that mean): the ``+center`` space before
    normalising (the mean is summed in float64)."""
    mean = column_mean(x)
    return x - mean, mean


def column_mean(x: np.ndarray) -> np.ndarray:
    """The float32 column mean of ``x`` (summed in float64): what :func:`centred` subtracts."""
    return x.mean(axis=0, dtype=np.float64).astype(np.float32)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` ``[n, d]`` with every row scaled to unit L2 norm (float32, new array).

    Zero rows stay zero (cosine 0 with everything) instead of becoming NaN.
    """
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, np.finfo(np.float32).tiny, out=norms)
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def parallel_sentences(xx_vecs, en_vecs, *, center: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``[n, dim]`` non-English and English sentence vectors (row i of both is a
    translation pair, n >= 2), each language's mean subtracted when ``center``."""
    x = vectors(xx_vecs, "non-English sentence vectors", min_rows=2)
    e = vectors(en_vecs, "English sentence vectors", dim=x.shape[1], min_rows=2)
    if x.shape[0] != e.shape[0]:
        raise AlignkitError(f"{x.shape[0]} non-English but {e.shape[0]} English sentence vectors; "
                            "row i of each must be a translation pair")
    if center:
        (x, _), (e, _) = centred(x), centred(e)
    return x, e
