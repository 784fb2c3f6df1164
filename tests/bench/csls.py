"""Benchmark: CSLS retrieval time against the bare GEMMs it needs (SPEC §4: target <= 1.3x).

    python tests/bench/csls.py [--queries 1500] [--pool 21500] [--dim 384] [--repeats 5]
                               [--query-space queries|full|both]

What CSLS ranking needs, for n queries, a pool of p candidates and a query-language set of
m vectors (``query_space``; m = n when it is the queries themselves):

- r_S(y) for every candidate: a [p, dim] x [dim, m] product (then top-10 per row);
- the scores 2cos(x, y) - r_S(y): a [n, dim+1] x [dim+1, p] product (then top-k per row).
(r_T(x) is constant per query and does not change a ranking, so it costs nothing.)

The bare GEMMs are timed with numpy (float32, unit vectors prepared in advance, output
buffers reused; the [p, m] product in row blocks so its output fits in memory), the
function is ``alignkit.metrics.retrieve(..., method="csls")`` end to end (validation,
normalisation, FAISS searches, tie handling, hits). Each is the median of ``--repeats``
runs, interleaved so that both see the same machine load. Two query-space settings and
both directions (src->tgt and tgt->src, same shapes) are measured.

When m = n, the [p, m] product is the transpose of the score product, so a single GEMM is
a lower bound no FAISS-based implementation reaches (FAISS cannot hand back the full score
matrix to reuse); that ratio is printed too.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import faiss
import numpy as np

from alignkit.metrics import retrieve


def _unit(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a / np.linalg.norm(a, axis=1, keepdims=True), dtype=np.float32)


def _blocked_gemm(a: np.ndarray, b_t: np.ndarray, out: np.ndarray, rows: int = 4096) -> None:
    """a @ b_t in row blocks of ``rows`` into the reused buffer ``out`` [rows, b_t.shape[1]]."""
    for i in range(0, a.shape[0], rows):
        blk = a[i:i + rows]
        np.matmul(blk, b_t, out=out[: blk.shape[0]])


def _median_time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=1500)
    ap.add_argument("--pool", type=int, default=21500)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--query-space", choices=["queries", "full", "both"], default="both",
                    help="which query_space setting(s) to measure")
    args = ap.parse_args()
    n, p, d, reps = args.queries, args.pool, args.dim, args.repeats

    rng = np.random.default_rng(0)
    offset = rng.standard_normal(d).astype(np.float32)  # anisotropy, as in real layers
    lang = {"src": (rng.standard_normal((p, d), dtype=np.float32) + offset),
            "tgt": (rng.standard_normal((p, d), dtype=np.float32) + offset)}
    # Test words are the first n rows of each language's set; the pool is the whole set.
    gold = [{i} for i in range(n)]

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"FAISS {faiss.__version__} with {faiss.omp_get_max_threads()} OpenMP threads, numpy {np.__version__}")
    print(f"shapes: {n} queries x {p} pool x {d} dims, CSLS k=10, P@1/5/10, median of {reps} runs\n")

    settings = ("queries", "full") if args.query_space == "both" else (args.query_space,)
    for setting in settings:
        m = n if setting == "queries" else p
        print(f"query_space = {'the queries' if setting == 'queries' else 'the full query-language set'} (m = {m})")
        for direction, (qlang, plang) in (("src->tgt", ("src", "tgt")), ("tgt->src", ("tgt", "src"))):
            queries, pool, qfull = lang[qlang][:n], lang[plang], lang[qlang][:m]
            qspace = None if setting == "queries" else qfull
            # Bare GEMMs on prepared unit vectors.
            xq, yp, xs = _unit(queries), _unit(pool), _unit(qfull)
            xq_aug = np.hstack([xq, np.ones((n, 1), np.float32)])
            yp_aug_t = np.ascontiguousarray(np.hstack([yp, np.zeros((p, 1), np.float32)]).T)
            xs_t = np.ascontiguousarray(xs.T)
            buf_r = np.empty((min(4096, p), m), np.float32)
            buf_s = np.empty((n, p), np.float32)

            def gemm_radii():
                _blocked_gemm(yp, xs_t, buf_r)

            def gemm_scores():
                np.matmul(xq_aug, yp_aug_t, out=buf_s)

            def csls():
                return retrieve(queries, pool, gold, method="csls", query_space=qspace, n_resamples=0)

            def nn():
                return retrieve(queries, pool, gold, method="nn", n_resamples=0)

            csls()  # warm-up (FAISS/BLAS thread pools, page faults)
            t_r, t_s, t_c, t_n = [], [], [], []
            for _ in range(reps):
                t_r += _median_time(gemm_radii, 1)
                t_s += _median_time(gemm_scores, 1)
                t_c += _median_time(csls, 1)
                t_n += _median_time(nn, 1)
            r, s, c, nn_t = (statistics.median(t) for t in (t_r, t_s, t_c, t_n))
            res = csls()
            print(f"  {direction}: GEMM r_S [{p}x{d}]x[{d}x{m}] {r * 1e3:7.1f} ms, "
                  f"GEMM scores [{n}x{d + 1}]x[{d + 1}x{p}] {s * 1e3:7.1f} ms")
            print(f"    retrieve(csls) {c * 1e3:7.1f} ms  -> ratio to the bare GEMMs it needs: {c / (r + s):.2f}x"
                  + (f" (to one shared GEMM: {c / s:.2f}x)" if setting == "queries" else ""))
            print(f"    retrieve(nn)   {nn_t * 1e3:7.1f} ms  -> ratio to its one GEMM: {nn_t / s:.2f}x"
                  f"   [P@1 csls on random data = {res.precision[1].value:.3f}]")
        print()
    # What the confidence intervals add on top (9999 BCa resamples per k).
    queries, pool = lang["src"][:n], lang["tgt"]
    t_ci = statistics.median(_median_time(lambda: retrieve(queries, pool, gold, method="csls"), max(1, reps // 2)))
    print(f"retrieve(csls) with bootstrap CIs for P@1/5/10 (query_space = queries): {t_ci * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
