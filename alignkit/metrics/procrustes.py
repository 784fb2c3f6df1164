"""Orthogonal Procrustes map between two embedding spaces (Schönemann 1966; MUSE "supervised").

Used as a sanity check (a rotation of one space must be undone by it) and as an optional
mapped baseline: fit on the TRAIN split of a lexicon, score the test split.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import orthogonal_procrustes

from alignkit.errors import AlignkitError
from alignkit.metrics import _validate


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
