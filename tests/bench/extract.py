"""Benchmark: isolated word extraction against the matmul-bound limit (SPEC §4).

    python tests/bench/extract.py [--rounds 5] [--naive-words 40] [--threads N]

Everything is measured side by side in one run, in interleaved rounds (the machine may be
shared and noisy), and reported as medians over rounds of per-round figures:

- fp32 GEMM FLOP/s: the model's own projection GEMMs alone (Q, K, V, O, FF up, FF down; no
  bias, nothing else) over as many tokens as the extraction processes, through all layers,
  so both take about as long and see the same machine; run just before and just after the
  extraction, with torch.matmul (MKL) and with oneDNN (the GEMM library alignkit's fused CPU
  forward uses), in chunks of alignkit's batch size and of 8192 rows. The limit uses the
  fastest of these, so a slow library or an unlucky shape never flatters the ratio;
- FLOPs per word, counted from the model shape and the real tokenised lengths, specials
  included: per layer per token 2*(4*H*H + 2*H*FF) for the projections plus 2*2*len*H for
  attention (QK^T and PV); embeddings, LayerNorm, GELU and softmax are not counted;
- limit words/s = GEMM FLOP/s / FLOPs per word;
- words/s for (a) a one-word-per-forward loop (transformers forward, a subset of the words
  each round), (b) padded batches of 256 in input order (transformers forward, attention
  mask), (c) alignkit's ``word_vectors`` with the transformers forward
  (ALIGNKIT_FAST_FORWARD=0), (d) alignkit's ``word_vectors`` as shipped (the faster of two
  runs per round); all 13 layers, 1000 real Turkish words (wordfreq
  ``top_n_list('tr', 6000)[5000:6000]``), the bundled model, fp32.

Also printed: the ratio computed from process CPU time instead of wall time, which is less
sensitive to other processes taking the CPU (but not to a hypervisor's steal time).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch


def physical_cores() -> int:
    """Physical cores available to this process (hyper-threads add no GEMM throughput)."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in allowed:
        topo = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        try:
            with open(topo + "physical_package_id") as a, open(topo + "core_id") as b:
                cores.add((a.read().strip(), b.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def gemm_job(h: int, ff: int, n_layers: int, tokens: int, chunk: int, lib: str) -> tuple[float, float, float]:
    """The model's projection GEMMs alone (no bias, no other op) for ``tokens`` rows in chunks.

    Per chunk and layer: Q, K, V, O ([chunk, H] x [H, H]), FF up ([chunk, H] x [H, FF]) and
    FF down ([chunk, FF] x [FF, H]), the same shapes and the same amount of work as the
    forward passes of the extraction it is compared with. Returns (FLOPs, wall s, CPU s).
    """
    g = torch.Generator().manual_seed(0)
    x_h, x_ff = torch.randn(chunk, h, generator=g), torch.randn(chunk, ff, generator=g)
    shapes = [(h, h)] * 4 + [(h, ff), (ff, h)]                       # (in, out)
    inputs = [x_h] * 5 + [x_ff]
    if lib == "oneDNN":
        weights = [torch.randn(o, i, generator=g) for i, o in shapes]  # oneDNN computes x W^T
        linear = torch.ops.mkldnn._linear_pointwise

        def layer():
            for x, w in zip(inputs, weights):
                linear(x, w, None, "none", [], "")
    else:
        weights = [torch.randn(i, o, generator=g) for i, o in shapes]

        def layer():
            for x, w in zip(inputs, weights):
                torch.matmul(x, w)

    n_chunks = max(1, round(tokens / chunk))
    with torch.inference_mode():
        layer()  # warm-up
        wall, cpu = timed(lambda: [layer() for _ in range(n_chunks * n_layers)])
    return 2.0 * n_chunks * chunk * n_layers * (4 * h * h + 2 * h * ff), wall, cpu


def gemm_libraries() -> list[str]:
    libs = ["torch.matmul"]
    if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        libs.append("oneDNN")
    return libs


def naive_loop(enc, words: list[str]) -> np.ndarray:
    """One word per forward pass: the baseline. Returns ``[layers, words, dim]``."""
    out = []
    with torch.inference_mode():
        for w in words:
            ids = torch.tensor(enc.tokenize([w])["input_ids"])
            hs = enc.model(input_ids=ids, output_hidden_states=True).hidden_states
            out.append(torch.stack(hs)[:, 0, 1:-1].mean(1))
    return torch.stack(out, 1).numpy()


def padded_batches(enc, words: list[str], batch: int = 256) -> np.ndarray:
    """Batches of 256 in input order, padded, with an attention mask (no length sorting)."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(words), batch):
            t = enc.tokenize(words[i:i + batch], padding=True, return_special_tokens_mask=True,
                             return_tensors="pt")
            hs = enc.model(input_ids=t["input_ids"], attention_mask=t["attention_mask"],
                           output_hidden_states=True).hidden_states
            keep = ((t["attention_mask"] == 1) & (t["special_tokens_mask"] == 0)).float().unsqueeze(-1)
            out.append(torch.stack([(h * keep).sum(1) / keep.sum(1) for h in hs]))
    return torch.cat(out, 1).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--naive-words", type=int, default=40, help="words per round for the one-per-forward loop")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: physical cores)")
    ap.add_argument("--no-padded", action="store_true", help="skip the padded-batches baseline")
    ap.add_argument("--batch-tokens", type=int, default=None, help="alignkit's token budget (default: its own)")
    args = ap.parse_args()

    from wordfreq import top_n_list

    from alignkit.encoders import load_encoder
    from alignkit.extract import DEFAULT_BATCH_TOKENS_CPU, word_vectors

    budget = args.batch_tokens or DEFAULT_BATCH_TOKENS_CPU

    threads = args.threads or physical_cores()
    torch.set_num_threads(threads)
    enc = load_encoder("bundled:multilingual-e5-small", device="cpu")
    cfg = enc.model.config
    h, ff, n_layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    words = top_n_list("tr", 6000)[5000:6000]
    lengths = np.array([len(ids) for ids in enc.tokenize(words)["input_ids"]])
    flops_word = float(np.mean(n_layers * lengths * (2 * (4 * h * h + 2 * h * ff) + 4 * lengths * h)))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"torch {torch.__version__}, {threads} threads, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"model: {enc.name} (L={n_layers}, H={h}, FF={ff}); {len(words)} Turkish words (wordfreq ranks "
          f"5000-6000), tokens/word incl. specials: mean {lengths.mean():.2f}, range {lengths.min()}-{lengths.max()}")
    print(f"FLOPs per word (all {n_layers} layers): {flops_word / 1e6:.1f} MFLOP")

    # warm-up (and a correctness check: alignkit equals the plain loop)
    subset = words[: args.naive_words]
    ref = naive_loop(enc, subset)
    ours = word_vectors(enc, subset, progress=False)
    print(f"check: alignkit vs one-word-per-forward loop, max |diff| = {np.abs(ours - ref).max():.2e}")

    total_tokens = int(lengths.sum())
    chunks = sorted({budget, 8192})
    rec: dict[str, list] = {k: [] for k in ("gemm_mm", "gemm_dnn", "limit", "naive", "padded", "hf", "ak",
                                            "ratio", "ratio_cpu")}
    for r in range(args.rounds):
        # GEMM reference: the same work as one extraction (all its tokens through all layers),
        # before and after it, per library and chunk size; the fastest rate sets the limit.
        gemm: dict[str, list] = {lib: [] for lib in gemm_libraries()}
        for lib in gemm:
            for chunk in chunks:
                gemm[lib].append(gemm_job(h, ff, n_layers, total_tokens, chunk, lib))
        runs = [timed(lambda: word_vectors(enc, words, batch_tokens=budget, progress=False)) for _ in range(2)]
        for lib in gemm:
            for chunk in chunks:
                gemm[lib].append(gemm_job(h, ff, n_layers, total_tokens, chunk, lib))
        rate = {lib: max(f / w for f, w, _ in jobs) for lib, jobs in gemm.items()}
        rate_cpu = max(f / c for jobs in gemm.values() for f, _, c in jobs)
        best_wall = max(rate.values())
        wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        rec["gemm_mm"].append(rate["torch.matmul"])
        rec["gemm_dnn"].append(rate.get("oneDNN", 0.0))
        limit = best_wall / flops_word
        rec["limit"].append(limit)
        rec["ak"].append(len(words) / wall)
        rec["ratio"].append(len(words) / wall / limit)
        rec["ratio_cpu"].append(len(words) / cpu / (rate_cpu / flops_word))
        os.environ["ALIGNKIT_FAST_FORWARD"] = "0"
        try:
            rec["hf"].append(len(words) / timed(lambda: word_vectors(enc, words, batch_tokens=budget,
                                                                     progress=False))[0])
        finally:
            del os.environ["ALIGNKIT_FAST_FORWARD"]
        chunk_words = [words[(r * args.naive_words + i) % len(words)] for i in range(args.naive_words)]
        rec["naive"].append(len(chunk_words) / timed(lambda: naive_loop(enc, chunk_words))[0])
        if not args.no_padded:
            rec["padded"].append(len(words) / timed(lambda: padded_batches(enc, words))[0])
        print(f"round {r + 1}: GEMM {best_wall / 1e9:.0f} GFLOP/s, limit {limit:.0f} words/s, alignkit "
              f"{rec['ak'][-1]:.0f} words/s (ratio {rec['ratio'][-1]:.2f}), transformers-forward "
              f"{rec['hf'][-1]:.0f}, loop {rec['naive'][-1]:.1f}"
              + (f", padded-256 {rec['padded'][-1]:.0f}" if rec["padded"] else ""), flush=True)

    med = {k: statistics.median(v) for k, v in rec.items() if v}
    print()
    print(f"median over {args.rounds} rounds ({threads} threads, batch budget {budget} tokens)")
    print(f"  fp32 GEMM, model shapes:     torch.matmul {med['gemm_mm'] / 1e9:7.1f} GFLOP/s, "
          f"oneDNN {med['gemm_dnn'] / 1e9:7.1f} GFLOP/s")
    print(f"  matmul-bound limit:          {med['limit']:7.0f} words/s  (faster GEMM / {flops_word / 1e6:.1f} MFLOP)")
    print(f"  (a) one word per forward:    {med['naive']:7.1f} words/s  ({med['naive'] / med['limit']:.3f} x limit)")
    if "padded" in med:
        print(f"      padded batches of 256:   {med['padded']:7.0f} words/s  ({med['padded'] / med['limit']:.2f} x limit)")
    print(f"      alignkit, HF forward:    {med['hf']:7.0f} words/s  ({med['hf'] / med['limit']:.2f} x limit)")
    print(f"  (b) alignkit:                {med['ak']:7.0f} words/s  ({med['ak'] / med['limit']:.2f} x limit)")
    print(f"  ratio alignkit / limit: median of per-round ratios {med['ratio']:.2f} "
          f"(range {min(rec['ratio']):.2f}-{max(rec['ratio']):.2f}); by process CPU time {med['ratio_cpu']:.2f}")
    print(f"  speed-up over the one-word loop: {med['ak'] / med['naive']:.0f}x; target >= 0.80 x limit: "
          f"{'PASS' if med['ratio'] >= 0.8 else 'FAIL'}")


if __name__ == "__main__":
    main()
