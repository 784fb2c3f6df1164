"""2-D t-SNE coordinates for a sample of translation pairs (SPEC §2); plotting is elsewhere."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from alignkit.errors import AlignkitError
from alignkit.metrics import _validate
from alignkit.stats import DEFAULT_SEED


@dataclass(frozen=True)
class TSNEMap:
    """src_xy / tgt_xy: ``[m, 2]`` coordinates of the sampled pairs' source / target
    vectors (row j of each is one pair, so a line joins src_xy[j] and tgt_xy[j]);
    index: ``[m]`` int64 rows of the input arrays that were sampled (sorted)."""

    src_xy: np.ndarray
    tgt_xy: np.ndarray
    index: np.ndarray


def tsne_pairs(src_vecs, tgt_vecs, *, sample: int = 300, perplexity: float = 30.0,
               metric: str = "cosine", seed: int = DEFAULT_SEED) -> TSNEMap:
    """Embed ``m = min(sample, n)`` translation pairs in 2-D with scikit-learn TSNE.

    src_vecs ``[n, dim]``, tgt_vecs ``[n, dim]``: row i of each is pair i (n >= 2). Pairs
    are drawn without replacement with ``seed``; both languages' vectors are embedded
    together (2m points, PCA init, ``random_state=seed``), so the result is reproducible.
    Perplexity is capped below the number of points, as TSNE requires. ~2 s for 300 pairs.
    """
    x = _validate.vectors(src_vecs, "source vectors", min_rows=2)
    y = _validate.vectors(tgt_vecs, "target vectors", dim=x.shape[1], min_rows=2)
    if x.shape[0] != y.shape[0]:
        raise AlignkitError(f"{x.shape[0]} source but {y.shape[0]} target vectors; row i of each must be pair i")
    if sample < 2:
        raise AlignkitError(f"t-SNE sample size must be at least 2 pairs, got {sample}")
    n = x.shape[0]
    index = np.arange(n) if n <= sample else np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    m = index.size
    points = np.vstack([x[index], y[index]]).astype(np.float64)
    # Exact gradients are cheaper below ~200 points; Barnes-Hut runs on one OpenMP thread
    # because on a shared, busy CPU its threads can stall for tens of seconds.
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (2 * m - 1) / 3), metric=metric,
                init="pca", random_state=seed, method="exact" if 2 * m <= 200 else "barnes_hut")
    with threadpool_limits(1, user_api="openmp"):
        xy = tsne.fit_transform(points)
    return TSNEMap(src_xy=xy[:m], tgt_xy=xy[m:], index=index.astype(np.int64))
