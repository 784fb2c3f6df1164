"""Benchmark: the score pipeline end to end against its floor (SPEC §4, v2; issue 12).

    python tests/bench/score.py [--pairs en-tr,en-de] [--pool-size 20000] [--resamples 1000]
                                [--sweep 5000,10000,20000,40000] [--sweep-pair en-tr]
                                [--sweep-layers 0,6,12] [--device cpu|cuda] [--reps 3] [--warm-reps 3]

Prints, in one run:

- the floor, measured before the runs and again after each (on a shared VM the GEMM rate
  was seen to move from 195 to 368 GFLOP/s within minutes, so each run is compared with
  the mean of the rates measured just before and just after it): the best fp32 GEMM rate on the model's projection
  shapes (torch.matmul/MKL and oneDNN, intra-op threads or one single-threaded stream per
  core; ``tests/bench/extract.py``'s ``gemm_job``) divided into the FLOPs of extracting every
  pool word (real token counts), plus one pool x pool GEMM per layer per retrieval space
  (plain, centred) at the best blocked fp32 GEMM rate on the pools' shapes (torch.mm into a
  reused buffer with intra-op threads or single-threaded 288-row blocks per core; numpy with
  its own threads or one BLAS thread per core, as the search runs it; oneDNN's linear in
  800-row blocks, one thread per core);
  medians of ``--reps`` timings;
- cold (fresh temporary vector cache) and warm (``--warm-reps`` runs, median ratio) end-to-end wall time of the main job
  (``alignkit score --pairs en-tr,en-de``: all layers, default pools, CIs, cluster
  metrics), each in its own process, with the ratio to the floor (cold) and to the GEMM
  part of the floor (warm), model forward passes (the warm run must do none), peak RSS,
  and the phase breakdown (exclusive wall time: extraction, GEMM/search, rest of retrieval,
  BLS, CIs, cluster metrics, t-SNE, writing, other);
- the pool-size sweep: warm time and phases of one pair at each pool size (``--sweep-layers``
  keeps it short; vectors are extracted untimed first).

Also printed: the machine, ``/proc/loadavg`` before and after, and whether a training job
(``pgrep -fa 'alignkit|train'``) was running. ``--device cuda`` measures the pool GEMMs on the
GPU (fp32, TF32 off) and the model-shape GEMMs in the forward's dtype (bf16, else fp16),
prints both against the card's data-sheet peaks (``ROOFLINES``), and runs the pipeline
with ``--device cuda``; the cold run's line gives extraction words/s and tokens/s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------- child: one timed run

class PhaseClock:
    """Exclusive wall time per phase: time goes to the innermost wrapped call running."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.stack: list[list] = []

    def wrap(self, owner, attr: str, phase: str) -> None:
        fn = getattr(owner, attr)
        clock = self

        def timed(*a, **k):
            now = time.perf_counter()
            if clock.stack:
                top = clock.stack[-1]
                clock.seconds[top[0]] = clock.seconds.get(top[0], 0.0) + now - top[1]
            clock.stack.append([phase, now])
            try:
                return fn(*a, **k)
            finally:
                end = time.perf_counter()
                name, start = clock.stack.pop()
                clock.seconds[name] = clock.seconds.get(name, 0.0) + end - start
                if clock.stack:
                    clock.stack[-1][1] = end

        setattr(owner, attr, timed)


def instrument() -> tuple[PhaseClock, dict]:
    import alignkit.inputs.encoders as encoders
    import alignkit.vectors.extract as extract
    import alignkit.results.items as items
    import alignkit.metrics.blocked as blocked
    import alignkit.metrics.clusters as clusters
    import alignkit.metrics.retrieval as retrieval
    import alignkit.metrics.similarity as similarity
    import alignkit.metrics.spaces as spaces
    import alignkit.metrics.tsne as tsne
    import alignkit.scoring as scoring
    import alignkit.stats as stats

    clock, calls = PhaseClock(), {"forward": 0}
    original = extract._pooled_forward

    def counting_forward(*a, **k):
        calls["forward"] += 1
        return original(*a, **k)

    extract._pooled_forward = counting_forward
    for owner, attr, phase in (
            (encoders, "load_encoder", "model load"), (extract, "word_vectors", "extraction"),
            (blocked, "product_search", "GEMM/search"), (spaces, "space_search", "GEMM/search"),
            (retrieval, "retrieve_both", "retrieval (rest)"), (retrieval, "retrieve_spaces", "retrieval (rest)"),
            (similarity, "bls", "BLS"), (stats, "bootstrap_ci", "CIs"), (clusters, "bootstrap_interval", "CIs"),
            (clusters, "gap_ratio", "cluster metrics"), (clusters, "langid_acc", "cluster metrics"),
            (clusters, "silhouette", "cluster metrics"), (tsne, "tsne_pairs", "t-SNE"),
            (scoring, "_write_outputs", "writing"), (scoring, "write_csv", "writing"),
            (items.ItemWriter, "write", "writing")):
        clock.wrap(owner, attr, phase)
    return clock, calls


def use_pools(path: str | None) -> None:
    """Serve wordfreq's frequent-word lists from a JSON file written by ``--dump-pools`` (for a
    machine without wordfreq, e.g. a lent GPU machine): {lang: [words, most frequent first]}."""
    if not path:
        return
    import alignkit.inputs.frequencies as frequencies

    lists = json.loads(Path(path).read_text(encoding="utf-8"))
    frequencies._frequent_words = lambda lang, n: tuple(lists.get(lang, [])[:n])
    frequencies.has_frequency_list = lambda lang: lang in lists


def child(spec: dict) -> None:
    import resource

    use_pools(spec.get("pools"))

    if spec.get("prepare"):
        from alignkit.vectors.cache import VectorCache
        from alignkit.inputs.encoders import load_encoder
        from alignkit.vectors.extract import parse_layers, word_vectors
        from alignkit.inputs.lexicons import load_lexicon
        from alignkit.tasks.lexicon import candidate_pool as _pool

        enc = load_encoder(spec.get("model") or "bundled:multilingual-e5-small", device=spec.get("device"))
        cache = VectorCache(spec["cache"])
        for p in spec["pairs"]:
            lex = load_lexicon(p, split="test")
            for words, lang in ((lex.sources(), lex.src_lang), (lex.targets(), lex.tgt_lang)):
                word_vectors(enc, _pool(words, lang, spec["pool_size"])[0], layers=parse_layers("all", enc.num_layers),
                             cache=cache, progress=False)
        return
    clock, calls = instrument()
    from alignkit.scoring import score

    t0 = time.perf_counter()
    df = score(spec.get("model"), out=spec["out"], pairs=spec["pairs"], layers=spec["layers"], pool_size=spec["pool_size"],
               n_resamples=spec["resamples"], cache_dir=spec["cache"], progress=False, device=spec.get("device"),
               tsne_layers=spec.get("tsne_layers", []))
    wall = time.perf_counter() - t0
    phases = dict(clock.seconds)
    phases["other"] = wall - sum(phases.values())
    print("RESULT " + json.dumps({"wall": wall, "rows": len(df), "forward": calls["forward"], "phases": phases,
                                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"child run failed:\n{out.stderr[-3000:]}")
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(lines[-1][7:]) if lines else {}


# ---------------------------------------------------------------- the floor

def pool_shapes(pairs: list[str], pool_size: int) -> list[tuple[str, int, int, list[list[str]]]]:
    """(pair, |source pool|, |target pool|, [source pool, target pool]) of each pair."""
    from alignkit.inputs.lexicons import load_lexicon
    from alignkit.tasks.lexicon import candidate_pool as _pool

    out = []
    for p in pairs:
        lex = load_lexicon(p, split="test")
        sp = _pool(lex.sources(), lex.src_lang, pool_size)[0]
        tp = _pool(lex.targets(), lex.tgt_lang, pool_size)[0]
        out.append((p, len(sp), len(tp), [sp, tp]))
    return out


def pool_gemm_rates(n_src: int, n_tgt: int, dim: int, reps: int, device: str) -> dict[str, float]:
    """Median FLOP/s of the blocked product [n_src, dim] x [dim, n_tgt] per configuration."""
    import numpy as np
    import torch

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n_src, dim, generator=g), torch.randn(n_tgt, dim, generator=g)
    flops = 2.0 * n_src * n_tgt * dim

    def blocked(xx, yy, rows):
        buf = torch.empty((rows, yy.shape[0]), device=xx.device)
        for s in range(0, xx.shape[0], rows):
            e = min(xx.shape[0], s + rows)
            torch.mm(xx[s:e], yy.t(), out=buf[:e - s])

    configs = {}
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        xd, yd = x.to(device), y.to(device)

        def cuda_run():
            blocked(xd, yd, 16384)
            torch.cuda.synchronize()

        configs["torch.mm fp32 on " + torch.cuda.get_device_name()] = cuda_run
    else:
        from concurrent.futures import ThreadPoolExecutor

        xn, yn = x.numpy(), y.numpy()
        outn = np.empty((2048, n_tgt), np.float32)

        def numpy_run():
            for s in range(0, n_src, 2048):
                e = min(n_src, s + 2048)
                np.matmul(xn[s:e], yn.T, out=outn[:e - s])

        def torch_streams(rows_of):  # rows_of(start, stop): one core's share, one torch thread
            cores = torch.get_num_threads()
            parts = [(i * n_src // cores, (i + 1) * n_src // cores) for i in range(cores)]

            def one(se):
                torch.set_num_threads(1)
                with torch.inference_mode():
                    rows_of(*se)

            saved = torch.get_num_threads()
            try:
                with ThreadPoolExecutor(cores) as pool:
                    list(pool.map(one, parts))
            finally:
                torch.set_num_threads(saved)

        def streams():
            torch_streams(lambda a, b: blocked(x[a:b], y, 288))

        def numpy_streams():
            from threadpoolctl import threadpool_limits

            cores = torch.get_num_threads()
            parts = [(i * n_src // cores, (i + 1) * n_src // cores) for i in range(cores)]

            def one(se):
                buf = np.empty((800, n_tgt), np.float32)
                for s in range(se[0], se[1], 800):
                    e = min(se[1], s + 800)
                    np.matmul(xn[s:e], yn.T, out=buf[:e - s])

            with threadpool_limits(1), ThreadPoolExecutor(cores) as pool:
                list(pool.map(one, parts))

        def onednn_streams():  # oneDNN's x Wᵀ with W = the target rows: one block = x[s:e] yᵀ
            lin = torch.ops.mkldnn._linear_pointwise

            def rows_of(a, b):
                for s in range(a, b, 800):
                    lin(x[s:min(b, s + 800)], y, None, "none", [], "")

            torch_streams(rows_of)

        configs = {"torch.mm 2048-row blocks, intra-op threads": lambda: blocked(x, y, 2048),
                   "numpy matmul 2048-row blocks": numpy_run,
                   "torch.mm 288-row blocks, one thread per core": streams,
                   "numpy matmul 800-row blocks, one BLAS thread per core (the search's)": numpy_streams}
        if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
            configs["oneDNN linear 800-row blocks, one thread per core (new block each)"] = onednn_streams
    rates = {}
    for name, fn in configs.items():
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        rates[name] = flops / statistics.median(times)
    return rates


# Dense peak FLOP/s (no sparsity) from the vendors' data sheets, by a substring of
# torch.cuda.get_device_name(): fp32 on the CUDA cores (TF32 off, as the search runs) and
# bf16 on the tensor cores (the forward's dtype). Boost clocks: a card rarely sustains them.
ROOFLINES = (("H200", 67e12, 989e12), ("H100 PCIe", 51e12, 756e12), ("H100 NVL", 60e12, 835e12),
             ("H100", 67e12, 989e12), ("A100", 19.5e12, 312e12), ("L40S", 91.6e12, 362e12),
             ("L4", 30.3e12, 121e12), ("A10", 31.2e12, 125e12))


def roofline(device_name: str) -> tuple[float, float] | None:
    """(fp32 peak, bf16 tensor peak) FLOP/s of a known GPU, else None."""
    for key, fp32, bf16 in ROOFLINES:
        if key in device_name:
            return fp32, bf16
    return None


def device_model_gemm_rate(device: str, reps: int) -> tuple[float, str]:
    """Median FLOP/s of the model's projection GEMMs on a GPU in the forward's dtype (bf16
    where supported, else fp16), 16384-token chunks, all 12 layers' shapes."""
    import torch

    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    h, ff, chunk = 384, 1536, 16384
    g = torch.Generator(device=device).manual_seed(1)
    xs = [torch.randn(chunk, h, generator=g, device=device, dtype=dtype),
          torch.randn(chunk, ff, generator=g, device=device, dtype=dtype)]
    shapes = [(0, h, h)] * 4 + [(0, h, ff), (1, ff, h)]
    ws = [[torch.randn(i, o, generator=g, device=device, dtype=dtype) for _, i, o in shapes] for _ in range(12)]
    flops = 2.0 * chunk * 12 * (4 * h * h + 2 * h * ff)

    def run():
        for layer in ws:
            for (xi, _, _), w in zip(shapes, layer):
                torch.matmul(xs[xi], w)
        torch.cuda.synchronize()

    run()
    times = []
    for _ in range(max(reps, 5)):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return flops / statistics.median(times), f"torch.matmul {str(dtype).split('.')[-1]} on {torch.cuda.get_device_name()}"


def model_gemm_rate(reps: int) -> tuple[float, str]:
    """Best median fp32 FLOP/s on the model's projection shapes (extract bench's gemm_job)."""
    import torch

    sys.path.insert(0, str(HERE))
    from extract import gemm_job, gemm_libraries  # tests/bench/extract.py

    best, name = 0.0, ""
    for lib in gemm_libraries():
        for streams in sorted({1, torch.get_num_threads()}):
            rates = []
            for _ in range(reps):
                flops, wall, _ = gemm_job(384, 1536, 12, 40000, 2048, lib, streams)
                rates.append(flops / wall)
            rate = statistics.median(rates)
            if rate > best:
                best, name = rate, f"{lib}, {streams} stream(s)"
    return best, name


def extraction_flops(pools: list, model: str | None = None) -> tuple[float, int, int]:
    """FLOPs, words and tokens (incl. specials) of extracting every pool word (12 layers)."""
    import numpy as np

    from alignkit.inputs.encoders import load_encoder

    enc = load_encoder(model or "bundled:multilingual-e5-small")
    h, ff, layers = 384, 1536, 12
    total, words, tokens = 0.0, 0, 0
    for _, _, _, sides in pools:
        for side in sides:
            lengths = np.array([len(ids) for ids in enc.tokenize(side)["input_ids"]], dtype=np.float64)
            total += float(np.sum(layers * lengths * (2 * (4 * h * h + 2 * h * ff) + 4 * lengths * h)))
            words += len(side)
            tokens += int(lengths.sum())
    return total, words, tokens


# ---------------------------------------------------------------- report

def machine() -> str:
    sys.path.insert(0, str(HERE))
    from extract import cpu_description

    import numpy
    import torch
    from threadpoolctl import threadpool_info

    blas = ", ".join(f"{i.get('internal_api')} {i.get('version')} core {i.get('architecture')}"
                     for i in threadpool_info() if i.get("user_api") == "blas")
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("OPENBLAS_")) or "none"
    return (f"{cpu_description()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; numpy {numpy.__version__} BLAS: {blas}; OPENBLAS_* env: {env}")


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def training_running() -> str:
    out = subprocess.run(["pgrep", "-fa", "alignkit|train"], capture_output=True, text=True).stdout
    mine = str(os.getpid())
    lines = [ln for ln in out.splitlines() if "bench/score.py" not in ln and not ln.startswith(mine)]
    return "yes: " + lines[0][:120] if lines else "no"


def print_run(label: str, r: dict, reference: float, ref_name: str) -> None:
    total = r["wall"]
    print(f"{label}: {total:7.1f} s wall, {r['rows']} rows, {r['forward']} forward passes, "
          f"peak RSS {r['peak_rss_mb']:.0f} MB, {total / reference:.2f}x {ref_name}")
    stats = sum(r["phases"].get(k, 0.0) for k in ("CIs", "cluster metrics", "t-SNE"))
    for k, v in sorted(r["phases"].items(), key=lambda kv: -kv[1]):
        print(f"    {k:18s} {v:7.1f} s  {100 * v / total:5.1f}%")
    print(f"    CIs + cluster metrics + t-SNE: {100 * stats / total:.1f}% of the total (target <= 20%)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--pairs", default="en-tr,en-de")
    ap.add_argument("--pool-size", type=int, default=20000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--sweep", default="5000,10000,20000,40000")
    ap.add_argument("--sweep-pair", default="en-tr")
    ap.add_argument("--sweep-layers", default="0,6,12")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warm-reps", type=int, default=3, help="warm runs, each followed by a floor measurement")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold run (reuse --cache-dir)")
    ap.add_argument("--cache-dir")
    ap.add_argument("--model", help="checkpoint directory instead of the bundled model (same shape: "
                                    "tests/bench/gpu_check.sh makes a random-weight one)")
    ap.add_argument("--pools", help="frequent-word lists from --dump-pools instead of wordfreq")
    ap.add_argument("--dump-pools", metavar="PATH", help="write the pairs' frequent-word lists (largest "
                                                         "pool and sweep size) as JSON and exit")
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    pairs = args.pairs.split(",")
    if args.dump_pools:
        from alignkit.inputs.frequencies import frequent_words
        from alignkit.inputs.lexicons import load_lexicon

        n = max([args.pool_size] + [int(v) for v in args.sweep.split(",") if v])
        langs = sorted({lang for p in pairs + [args.sweep_pair] for lang in
                        (load_lexicon(p, split="test").src_lang, load_lexicon(p, split="test").tgt_lang)})
        Path(args.dump_pools).write_text(json.dumps({lang: frequent_words(lang, n) for lang in langs},
                                                    ensure_ascii=False), encoding="utf-8")
        print(f"wrote {args.dump_pools}: {n} words each of {', '.join(langs)}")
        return
    use_pools(args.pools)
    device = None if args.device == "cpu" else args.device
    print(f"machine: {machine()}\nload before: {loadavg()}\ntraining running: {training_running()}")

    pools = pool_shapes(pairs, args.pool_size)
    gemm_flops = sum(13 * 2 * (2.0 * ns * nt * 384) for _, ns, nt, _ in pools)  # 13 layers x 2 spaces
    ext_flops, n_words, n_tokens = extraction_flops(pools, args.model)

    def measure_floor(when: str) -> dict:
        """The floor's two rates, measured now (the machine's speed drifts: see the module doc)."""
        rates = pool_gemm_rates(pools[0][1], pools[0][2], 384, args.reps, args.device)
        if args.device.startswith("cuda"):
            model_rate, model_cfg = device_model_gemm_rate(args.device, args.reps)
        else:
            model_rate, model_cfg = model_gemm_rate(args.reps)
        pool_rate = max(rates.values())
        print(f"floor measured {when} (load {loadavg()}):")
        for name, rate in rates.items():
            print(f"    pool GEMM {pools[0][1]} x {pools[0][2]} x 384, {name}: {rate / 1e9:.0f} GFLOP/s")
        print(f"    model-shape GEMM: {model_rate / 1e9:.0f} GFLOP/s ({model_cfg}) -> extraction limit "
              f"{model_rate / (ext_flops / n_words):.0f} words/s; floor: extraction {ext_flops / model_rate:.1f} s + "
              f"GEMMs {gemm_flops / pool_rate:.1f} s = {ext_flops / model_rate + gemm_flops / pool_rate:.1f} s")
        if args.device.startswith("cuda"):
            import torch

            peaks = roofline(torch.cuda.get_device_name())
            if peaks:
                print(f"    roofline ({torch.cuda.get_device_name()}, data-sheet dense peaks): pool GEMM fp32 "
                      f"{pool_rate / 1e12:.1f} of {peaks[0] / 1e12:.1f} TFLOP/s ({100 * pool_rate / peaks[0]:.0f}%), "
                      f"model-shape GEMM {model_rate / 1e12:.1f} of {peaks[1] / 1e12:.0f} TFLOP/s "
                      f"({100 * model_rate / peaks[1]:.0f}%)")
            else:
                print(f"    roofline: no data-sheet peak for {torch.cuda.get_device_name()} (add it to ROOFLINES)")
        return {"pool": pool_rate, "model": model_rate}

    def around(a: dict, b: dict) -> tuple[float, float]:
        """(extraction floor, GEMM floor) in s at the mean of two measurements' rates."""
        return ext_flops / ((a["model"] + b["model"]) / 2), gemm_flops / ((a["pool"] + b["pool"]) / 2)

    print(f"{n_words} pool words, {n_tokens} tokens, {ext_flops / n_words / 1e6:.1f} MFLOP/word; "
          f"{len(pools)} pairs x 13 layers x 2 spaces = {gemm_flops / 1e12:.2f} TFLOP of pool GEMMs")
    floors = [measure_floor("before the runs")]
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or str(Path(tmp) / "cache")
        spec = dict(pairs=pairs, layers="all", pool_size=args.pool_size, resamples=args.resamples,
                    cache=cache, device=device, model=args.model, pools=args.pools)
        if not args.no_cold:
            cold = run_child({**spec, "out": str(Path(tmp) / "cold")})
            floors.append(measure_floor("after the cold run"))
            ext_floor, gemm_floor = around(floors[-2], floors[-1])
            print_run("cold", cold, ext_floor + gemm_floor,
                      f"the floor measured around it, {ext_floor + gemm_floor:.1f} s (target <= 1.5x)")
            ext = cold["phases"].get("extraction", 0.0)
            if ext > 0:
                print(f"    extraction: {n_words / ext:.0f} words/s, {n_tokens / ext:.0f} tokens/s "
                      f"= {ext_floor / ext:.2f} of the extraction limit measured around it (target >= 0.8)")
        ratios = []
        for rep in range(args.warm_reps):
            warm = run_child({**spec, "out": str(Path(tmp) / f"warm{rep}")})
            floors.append(measure_floor(f"after warm run {rep + 1}"))
            _, gemm_floor = around(floors[-2], floors[-1])
            ratios.append(warm["wall"] / gemm_floor)
            print_run(f"warm {rep + 1}", warm, gemm_floor,
                      f"the GEMM floor measured around it, {gemm_floor:.1f} s (target <= 1.3x)")
        strict = gemm_flops / max(f["pool"] for f in floors)
        print(f"warm: median {statistics.median(ratios):.2f}x the GEMM floor measured around each run "
              f"({', '.join(f'{r:.2f}' for r in ratios)}); the last run against the fastest pool GEMM rate "
              f"of all {len(floors)} measurements ({strict:.1f} s): {warm['wall'] / strict:.2f}x")
        print(f"load after main job: {loadavg()}")
        for n in [int(v) for v in args.sweep.split(",") if v]:
            sp = {**spec, "pairs": [args.sweep_pair], "pool_size": n, "layers": args.sweep_layers,
                  "out": str(Path(tmp) / f"sweep{n}")}
            run_child({**sp, "prepare": True})
            r = run_child(sp)
            shape = pool_shapes([args.sweep_pair], n)[0]
            ph = r["phases"]
            print(f"sweep {args.sweep_pair} pool {n:6d} ({shape[1]} x {shape[2]}), layers {args.sweep_layers}: "
                  f"{r['wall']:6.1f} s; GEMM/search {ph.get('GEMM/search', 0):6.1f} s, CIs {ph.get('CIs', 0):5.1f} s, "
                  f"clusters {ph.get('cluster metrics', 0):5.1f} s, BLS {ph.get('BLS', 0):5.1f} s, "
                  f"rest {r['wall'] - ph.get('GEMM/search', 0) - ph.get('CIs', 0) - ph.get('cluster metrics', 0) - ph.get('BLS', 0):5.1f} s; "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"load after: {loadavg()}\ntraining running: {training_running()}")


if __name__ == "__main__":
    main()
