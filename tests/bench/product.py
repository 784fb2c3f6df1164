"""Benchmark: one shared product (retrieve_both) against four FAISS searches (retrieve) and the bare GEMM.

    python tests/bench/product.py [--n-src 21000] [--n-tgt 21500] [--queries 1500] [--reps 3] [--device cpu]
                                  [--vectors SRC.npy TGT.npy] [--against GIT_REV]

Shapes of one layer and one retrieval space of the main job (en-tr: ~21000 source and
~21500 target pool words, ~1500 test words each side, 384 dims). Per repeat, side by side:
the bare blocked GEMM S = X Yᵀ (numpy's BLAS on a CPU, torch.mm on a GPU, into a reused
2048-row buffer), the four
single-direction searches the scorer used to run (``retrieve`` NN and CSLS, both
directions: two full pool x pool radius searches plus four query searches, FAISS), and
``retrieve_both`` (one blocked product, both directions, NN and CSLS). Checks the rankings
are identical, prints wall and process CPU seconds, ratios to the GEMM, phase times of
``product_search`` and the load.

``--vectors`` uses two saved ``[n, dim]`` float32 arrays (e.g. one layer of the vector cache)
instead of the synthetic ones (the first ``--queries`` rows of each side are the queries,
each other's gold). ``--against REV`` also times ``product_search`` as it was at git
revision REV (loaded from ``git show``), interleaved with the current one on the same
inputs, checks that every output (radii and the four rankings) is identical, and prints
the median process-CPU ratio of each to the bare GEMM: with other jobs on the machine,
CPU seconds compare the two more fairly than wall time.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import alignkit.metrics.blocked as blocked
from alignkit.metrics.retrieval import retrieve, retrieve_both


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def module_at(rev: str):
    """alignkit.metrics.blocked as it was at git revision ``rev``, as a separate module."""
    root = Path(__file__).resolve().parents[2]
    src = subprocess.run(["git", "show", f"{rev}:alignkit/metrics/blocked.py"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "blocked_at_rev.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("blocked_at_rev", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-src", type=int, default=21000)
    ap.add_argument("--n-tgt", type=int, default=21500)
    ap.add_argument("--queries", type=int, default=1500)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--vectors", nargs=2, metavar=("SRC", "TGT"))
    ap.add_argument("--against", metavar="GIT_REV")
    a = ap.parse_args()
    q = a.queries
    if a.vectors:
        x, y = (np.ascontiguousarray(np.load(f), dtype=np.float32) for f in a.vectors)
        a.n_src, a.n_tgt, a.dim = len(x), len(y), x.shape[1]
    else:
        rng = np.random.default_rng(0)
        off = rng.standard_normal(a.dim).astype(np.float32) * 0.3
        x = rng.standard_normal((a.n_src, a.dim)).astype(np.float32) + off
        y = rng.standard_normal((a.n_tgt, a.dim)).astype(np.float32) + off
        y[:q] = 0.7 * x[:q] + 0.3 * y[:q]           # query i's translation is row i on the other side
    gold = [{i} for i in range(q)]
    dev = torch.device(a.device)
    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    buf = torch.empty((2048, a.n_tgt), device=dev)

    nbuf = np.empty((2048, a.n_tgt), np.float32)

    def gemm():
        """The bare blocked GEMM: numpy's BLAS on a CPU (the faster one here, and the search's),
        torch.mm on a GPU."""
        for s in range(0, a.n_src, 2048):
            e = min(a.n_src, s + 2048)
            if dev.type == "cpu":
                np.matmul(x[s:e], y.T, out=nbuf[:e - s])
            else:
                torch.mm(xt[s:e], yt.t(), out=buf[:e - s])
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def four_searches():
        out = {}
        for m in ("nn", "csls"):
            out["src->tgt", m] = retrieve(x[:q], y, gold, method=m, query_space=x, n_resamples=0)
            out["tgt->src", m] = retrieve(y[:q], x, gold, method=m, query_space=y, n_resamples=0)
        return out

    flops = 2.0 * a.n_src * a.n_tgt * a.dim
    print(f"shapes {a.n_src} x {a.n_tgt} x {a.dim}, {q} queries per side, device {a.device}, "
          f"torch threads {torch.get_num_threads()}")
    if a.against:
        compare(a, x, y, q, gemm, flops)
        return
    for rep in range(a.reps):
        _, g, gc = timed(gemm)
        old, o, oc = timed(four_searches)
        new, n, nc = timed(lambda: retrieve_both(x, y, gold, gold, n_resamples=0, device=a.device))
        same = all((old[k].ranked == new[k].ranked).all() for k in old)
        print(f"rep {rep + 1}: GEMM {g:.2f} s ({flops / g / 1e9:.0f} GFLOP/s, cpu {gc:.2f} s) | "
              f"4 FAISS searches {o:.2f} s ({o / g:.2f}x, cpu {oc:.2f} s) | retrieve_both {n:.2f} s "
              f"({n / g:.2f}x, cpu {nc:.2f} s) | same rankings: {same} | load {os.getloadavg()[0]:.2f}")


def compare(a, x, y, q, gemm, flops) -> None:
    """Interleaved repeats of the bare GEMM, product_search at ``a.against`` and now."""
    then = module_at(a.against)
    xn, yn = unit(x), unit(y)
    fields = ("src_radii", "tgt_radii", "src_nn", "src_csls", "tgt_nn", "tgt_csls")
    cpu: dict[str, list[float]] = {"GEMM": [], a.against: [], "now": []}
    for rep in range(a.reps):
        _, g, gc = timed(gemm)
        old, o, oc = timed(lambda: then.product_search(xn, yn, q, q, device=a.device))
        new, n, nc = timed(lambda: blocked.product_search(xn, yn, q, q, device=a.device))
        same = all(np.array_equal(getattr(old, f), getattr(new, f)) for f in fields)
        for k, v in zip(cpu, (gc, oc, nc)):
            cpu[k].append(v)
        print(f"rep {rep + 1}: GEMM {g:.2f} s ({flops / g / 1e9:.0f} GFLOP/s, cpu {gc:.2f} s) | {a.against} "
              f"{o:.2f} s (cpu {oc:.2f} s, {oc / gc:.2f}x) | now {n:.2f} s (cpu {nc:.2f} s, {nc / gc:.2f}x) | "
              f"identical outputs: {same} | load {os.getloadavg()[0]:.2f}")
    med = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"median process CPU: GEMM {med['GEMM']:.2f} s; {a.against} {med[a.against]:.2f} s "
          f"({med[a.against] / med['GEMM']:.2f}x); now {med['now']:.2f} s ({med['now'] / med['GEMM']:.2f}x)")


if __name__ == "__main__":
    main()
