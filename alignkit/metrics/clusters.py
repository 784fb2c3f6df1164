"""Cluster-gap diagnostics between two languages' word vectors at one layer (SPEC §2).

All three take the source-language vectors ``[n_src, dim]`` and target-language vectors
``[n_tgt, dim]`` as they come out of the model (no normalisation):

- :func:`gap_ratio`  ‖μ_src − μ_tgt‖ / mean(rms_src, rms_tgt), rms = RMS distance of a
  language's vectors to its own centroid. 0 = same centre; >> 1 = separate clouds.
- :func:`langid_acc` 5-fold cross-validated logistic-regression accuracy at telling the
  language from the vector (0.5 = mixed, 1.0 = separate clusters).
- :func:`silhouette` silhouette coefficient with the language as the cluster label.
"""
from __future__ import annotations

import math

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import silhouette_samples
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from alignkit.metrics import _validate
from alignkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate, bootstrap_interval, mean_estimate


def _single_threaded(fn):
    """Run ``fn`` with one BLAS/OpenMP thread: its GEMMs are small ([1500, 384]-sized), and
    on a shared CPU multi-threaded small GEMMs and lbfgs steps stall (measured 3-5x slower
    with 2 threads than with 1 under load)."""
    import functools

    from threadpoolctl import threadpool_limits

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with threadpool_limits(1):
            return fn(*args, **kwargs)

    return run


def _two_sets(src_vecs, tgt_vecs, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    x = _validate.vectors(src_vecs, "source vectors", min_rows=min_rows).astype(np.float64)
    y = _validate.vectors(tgt_vecs, "target vectors", dim=x.shape[1], min_rows=min_rows).astype(np.float64)
    return x, y


def _gap_from_counts(cx, cy, x, y, x_sq, y_sq):
    """gap_ratio for resamples given as count matrices cx ``[b, n_src]``, cy ``[b, n_tgt]``.

    With weights w (summing to 1): centroid μ = w·X and mean squared distance to it
    = w·‖x‖² − ‖μ‖², so a resample costs one small GEMM instead of a gather.
    """
    wx, wy = cx / cx.sum(axis=1, keepdims=True), cy / cy.sum(axis=1, keepdims=True)
    mx, my = (wx @ x).astype(np.float64), (wy @ y).astype(np.float64)
    rms_x = np.sqrt(np.maximum(wx @ x_sq - np.einsum("bd,bd->b", mx, mx), 0.0))
    rms_y = np.sqrt(np.maximum(wy @ y_sq - np.einsum("bd,bd->b", my, my), 0.0))
    spread = 0.5 * (rms_x + rms_y)
    dist = np.linalg.norm(mx - my, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, dist / spread, np.where(dist > 0, np.inf, 0.0))


def _gap_jackknife(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Leave-one-out gap_ratio, closed form: ``[n_src]`` (source row i left out), ``[n_tgt]``.

    Without row i a set's mean is (n·μ − x_i)/(n − 1) and its mean squared norm
    (n·E‖x‖² − ‖x_i‖²)/(n − 1); O(n·dim) instead of n full evaluations.
    """
    def spread(m_sq, mu):
        return np.sqrt(np.maximum(m_sq - np.einsum("...d,...d->...", mu, mu), 0.0))

    out = []
    for a, b in ((x, y), (y, x)):
        n, sq = len(a), np.einsum("nd,nd->n", a, a)
        mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
        mu_loo = (n * mu_a - a) / (n - 1)                           # [n, dim]
        rms_loo = spread((n * sq.mean() - sq) / (n - 1), mu_loo)
        rms_b = spread(np.einsum("nd,nd->n", b, b).mean(), mu_b)
        half = 0.5 * (rms_loo + rms_b)
        dist = np.linalg.norm(mu_loo - mu_b, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.where(half > 0, dist / half, np.where(dist > 0, np.inf, 0.0)))
    return out


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """Resampled index arrays ``[..., m]`` -> counts ``[b, n]`` of each original row."""
    idx = idx.reshape(-1, idx.shape[-1])
    flat = idx + n * np.arange(idx.shape[0])[:, None]
    return np.bincount(flat.ravel(), minlength=n * idx.shape[0]).reshape(idx.shape[0], n).astype(np.float32)


@_single_threaded
def gap_ratio(src_vecs, tgt_vecs, *, confidence: float = 0.95, n_resamples: int = 999,
              seed: int = DEFAULT_SEED) -> Estimate:
    """‖μ_src − μ_tgt‖ / ((rms_src + rms_tgt) / 2); src ``[n_src, d]``, tgt ``[n_tgt, d]``.

    CI: BCa bootstrap resampling the two word sets independently (scipy.stats.bootstrap,
    fixed seed; percentile where BCa is undefined, e.g. for identical clouds, whose
    resamples are all > 0; ``n_resamples=0`` skips it; each resample costs a [n, dim] GEMM, hence the
    smaller default). Not a mean of items, so ``items`` is None.
    Two identical clouds give exactly 0; zero spread with distinct centres gives inf.
    """
    x, y = _two_sets(src_vecs, tgt_vecs, min_rows=1)
    # The ratio is translation-invariant; removing the common offset (large in anisotropic
    # layers) keeps E‖x‖² − ‖μ‖² free of cancellation.
    offset = np.vstack([x, y]).mean(axis=0)
    x, y = x - offset, y - offset
    value = float(_gap_from_counts(np.ones((1, len(x))), np.ones((1, len(y))), x, y,
                                   np.einsum("nd,nd->n", x, x), np.einsum("nd,nd->n", y, y))[0])
    # Resamples run in float32 (their GEMMs dominate); the point value above is float64.
    x64, y64 = x, y
    x, y = x.astype(np.float32), y.astype(np.float32)
    x_sq, y_sq = np.einsum("nd,nd->n", x, x), np.einsum("nd,nd->n", y, y)
    lo = hi = math.nan
    if n_resamples and min(len(x), len(y)) >= 2 and math.isfinite(value):

        def stat(ix, iy, axis=-1):
            shape = np.broadcast_shapes(ix.shape[:-1], iy.shape[:-1])
            r = _gap_from_counts(_counts(ix, len(x)), _counts(iy, len(y)), x, y, x_sq, y_sq)
            return r.reshape(shape)

        lo, hi = bootstrap_interval((np.arange(len(x)), np.arange(len(y))), stat, confidence=confidence,
                                    n_resamples=n_resamples, seed=seed, batch=200,
                                    jackknife=lambda: _gap_jackknife(x64, y64))
    return Estimate(value=value, ci_low=lo, ci_high=hi, n=len(x) + len(y), items=None)


# langid_acc fits on at most this many words per language (a fixed, seeded sample): the
# 5-fold logistic regression on all ~1500 + 1500 test words of a pair cost more than every
# other cluster metric together, and 2 x 500 words pin the accuracy to about ±1.5 points.
LANGID_SAMPLE = 500


def _balanced(x: np.ndarray, y: np.ndarray, seed: int, cap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Subsample (fixed seed) so both languages have min(n_src, n_tgt, cap) rows."""
    m = min(len(x), len(y), cap or len(x))
    rng = np.random.default_rng(seed)
    if len(x) > m:
        x = x[np.sort(rng.choice(len(x), m, replace=False))]
    if len(y) > m:
        y = y[np.sort(rng.choice(len(y), m, replace=False))]
    return x, y


@_single_threaded
def langid_acc(src_vecs, tgt_vecs, *, folds: int = 5, balance: bool = True, confidence: float = 0.95,
               n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
               sample: int | None = LANGID_SAMPLE) -> Estimate:
    """Cross-validated accuracy of predicting the language of a vector.

    src ``[n_src, d]``, tgt ``[n_tgt, d]``. Classifier: standardise, then scikit-learn
    LogisticRegression (L2, C=0.1, tol 1e-3); ``folds``-fold stratified CV, shuffled with ``seed``.
    With ``balance`` (default) the larger set is first subsampled to the smaller one's size
    so that chance is 0.5, and both to at most ``sample`` words per language (default
    LANGID_SAMPLE = 500; ``None`` = all), drawn with ``seed``, so every layer uses the same
    words. ``items`` ``[2m]`` are the out-of-fold correctness (1/0) of every sampled vector,
    source rows first; their mean is the accuracy.
    """
    x, y = _two_sets(src_vecs, tgt_vecs, min_rows=folds)
    if balance:
        x, y = _balanced(x, y, seed, sample)
    X = np.vstack([x, y])
    labels = np.r_[np.zeros(len(x), int), np.ones(len(y), int)]
    # Word vectors of two languages are often nearly separable, where an unregularised fit
    # runs lbfgs for thousands of iterations; C=0.1 and tol=1e-3 converge ~5x faster and change
    # held-out accuracy by well under a point (it is a diagnostic, not a classifier).
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, tol=1e-3, max_iter=500))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pred = cross_val_predict(model, X, labels, cv=cv)
    return mean_estimate((pred == labels).astype(np.float64), confidence=confidence,
                         n_resamples=n_resamples, seed=seed)


@_single_threaded
def silhouette(src_vecs, tgt_vecs, *, metric: str = "euclidean", confidence: float = 0.95,
               n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Estimate:
    """Silhouette coefficient with language as the label (scikit-learn).

    src ``[n_src, d]``, tgt ``[n_tgt, d]``, each with >= 2 rows. ``items`` ``[n_src + n_tgt]``
    are the per-vector silhouette values (source rows first); their mean is the score
    (-1..1; ~0 = mixed, 1 = tight separate clusters). ``metric`` as in
    sklearn.metrics.pairwise_distances ("euclidean", "cosine", ...).
    """
    x, y = _two_sets(src_vecs, tgt_vecs, min_rows=2)
    if metric in ("euclidean", "l2"):
        s = _two_cluster_silhouette(np.vstack([x, y]), len(x))
    else:
        labels = np.r_[np.zeros(len(x), int), np.ones(len(y), int)]
        s = silhouette_samples(np.vstack([x, y]), labels, metric=metric)
    return mean_estimate(s, confidence=confidence, n_resamples=n_resamples, seed=seed)


_GRAM_ROWS = 8192          # silhouette: whole Gram matrix up to this many vectors (512 MB)
_BLOCK_BYTES = 64 * 2**20  # else row blocks of this size


def _two_cluster_silhouette(v: np.ndarray, n_first: int) -> np.ndarray:
    """``silhouette_samples(v, labels)`` (Euclidean, float64 ``v``) for two clusters: rows
    ``:n_first`` and the rest, each >= 2 rows. The same arithmetic as scikit-learn's
    (d² = |u|² + |w|² − 2u·w clipped at 0, self-distance 0, a = own-cluster mean over the
    other members, b = other-cluster mean, (b − a) / max(a, b), NaN -> 0), but one fused
    pass over the float64 Gram matrix instead of its generic chunked reductions: measured
    1.35x faster at 6573 words (en-de test words: 0.72 -> 0.53 s, one thread), equal to it
    to ~1e-15 (tests/test_metrics_clusters.py)."""
    from alignkit.metrics.cpu_distances import distance_sums

    sq = np.einsum("ij,ij->i", v, v)
    n = len(v)
    sums = np.empty((n, 2))
    # the whole Gram matrix up to _GRAM_ROWS rows (512 MB; BLAS computes v vᵀ as a symmetric rank-k
    # update, ~1.6x faster than blocks), else ~64 MB row blocks
    step = n if n <= _GRAM_ROWS else max(1, _BLOCK_BYTES // (8 * n))
    for i in range(0, n, step):
        j = min(i + step, n)
        distance_sums(v[i:j] @ v.T, sq, i, n_first, sums[i:j])
    own = (np.arange(n) >= n_first).astype(int)
    sizes = np.array([n_first, n - n_first], dtype=np.float64)
    a = sums[np.arange(n), own] / (sizes[own] - 1)
    b = sums[np.arange(n), 1 - own] / sizes[1 - own]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num((b - a) / np.maximum(a, b))
