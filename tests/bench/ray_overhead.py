"""Ray's overhead per unit: score N checkpoints locally and on a local Ray cluster, and say
where the time goes.

    python tests/bench/ray_overhead.py [--checkpoints 4] [--pairs en-tr,en-de] [--pool-size 2000]
                                       [--layers all] [--model DIR | --tiny] [--cpus N]
                                       [--device cpu|cuda] [--gpu-share 0.25] [--out FILE.json]

Checkpoints: random-weight copies (seeds 0..N-1) of ``--model``'s shape (default: the rebuilt
bundled multilingual-e5-small), or ``--tiny`` 2-layer models (tests/tinymodels.py) to check
the script in seconds. Both runs start from an empty vector cache, so both extract.

Reported (one JSON object, and a table on stderr):

* ``local``: wall time of ``score`` with the local executor, and each unit's time;
* ``ray``: the cluster's start (``ray.init`` of a new local cluster on ``--cpus`` cores), the
  wall time of ``score`` on it, and per unit: ``dispatch`` (from being submitted, or from its
  worker's previous unit ending, to starting in a worker: scheduling, argument transfer, and
  for a worker's first unit its process start and imports), ``compute`` (in the worker),
  ``return`` (from ending in the worker to the driver holding its result) and ``journal``
  (the driver writing its rows and item files);
* ``overhead_per_unit_s``: ``(ray wall - ideal) / units`` with ideal = the units' worker
  compute summed and spread over the cluster's parallel slots (the part Ray adds over a
  perfect scheduler of the same units), and ``first_unit_s`` per worker (start and imports).

Parallelism differs on purpose: a local run gives each unit every core; Ray gives each unit
one core (one GPU, or ``--gpu-share`` of one) and runs units side by side.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


def _timed(fn, payload):
    """A unit in a worker, with its start and end times and its process (for the table)."""
    t0 = time.time()
    result = fn(payload)
    return result, t0, time.time(), os.getpid()


def _instrumented(base):
    """``base`` (an executor class) recording each unit's submit, start, end, receive and journal times."""

    class Timed(base):
        def run(self, fn, units, on_result):
            self.records, submitted = [], time.time()

            def received(unit, out):
                result, t0, t1, pid = out
                got = time.time()
                on_result(unit, result)
                self.records.append({"unit": unit.label, "submitted": submitted, "start": t0, "end": t1,
                                     "received": got, "journal_s": time.time() - got, "pid": pid})

            return super().run(functools.partial(_timed, fn), units, received)

    return Timed


def make_checkpoints(args, root: Path) -> list[str]:
    import torch
    from transformers import AutoConfig, AutoModel

    if args.tiny:
        from tinymodels import tiny_bert

        return [str(tiny_bert(root / f"ckpt{i}", seed=i)) for i in range(args.checkpoints)]
    src = Path(args.model) if args.model else None
    if src is None:
        from alignkit.inputs.bundled import ensure_bundled_model

        src = Path(ensure_bundled_model())
    out = []
    for i in range(args.checkpoints):
        d = root / f"ckpt{i}"
        torch.manual_seed(i)
        AutoModel.from_config(AutoConfig.from_pretrained(src)).save_pretrained(d)
        for f in src.iterdir():
            if f.is_file() and f.suffix not in (".safetensors", ".bin"):
                (d / f.name).write_bytes(f.read_bytes())  # tokenizer files and alignkit's own config keys
        out.append(str(d))
    return out


def run(args) -> dict:
    root = Path(tempfile.mkdtemp(prefix="alignkit-ray-bench-"))
    try:
        return _measure(args, root)
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)  # checkpoints, caches and both runs' outputs


def _measure(args, root: Path) -> dict:
    import ray

    from alignkit.executors.local import LocalExecutor
    from alignkit.executors.ray_cluster import RayExecutor
    from alignkit.scoring import score

    ckpts = make_checkpoints(args, root)
    pairs = args.pairs.split(",")
    if args.tiny:
        from test_ray import EN_DE, EN_TR

        (root / "en-tr.tsv").write_text(EN_TR)
        (root / "en-de.tsv").write_text(EN_DE)
        pairs = [str(root / "en-tr.tsv"), str(root / "en-de.tsv")]
    opts = dict(pairs=pairs, layers=args.layers, pool_size=args.pool_size, device=args.device,
                n_resamples=args.resamples)
    report: dict = {"checkpoints": len(ckpts), "pairs": args.pairs, "pool_size": args.pool_size, "tiny": args.tiny}

    local = _instrumented(LocalExecutor)()
    t = time.time()
    score(ckpts, out=root / "local", progress=False, cache_dir=str(root / "cache-local"), executor=local, **opts)
    report["local"] = {"wall_s": time.time() - t,
                       "units": [{"unit": r["unit"], "compute_s": r["end"] - r["start"]} for r in local.records]}

    t = time.time()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}})
    report["ray_init_s"] = time.time() - t
    remote = _instrumented(RayExecutor)(gpu_share=args.gpu_share)
    t = time.time()
    score(ckpts, out=root / "ray", progress=False, cache_dir=str(root / "cache-ray"), executor=remote, **opts)
    wall = time.time() - t
    slots = args.cpus if args.device != "cuda" else int(round(ray.cluster_resources().get("GPU", 1) / args.gpu_share))
    ray.shutdown()

    recs = sorted(remote.records, key=lambda r: r["start"])
    last_end: dict[int, float] = {}
    units = []
    for r in recs:
        ready = max(r["submitted"], last_end.get(r["pid"], 0.0))
        units.append({"unit": r["unit"], "pid": r["pid"], "first_on_worker": r["pid"] not in last_end,
                      "dispatch_s": r["start"] - ready, "compute_s": r["end"] - r["start"],
                      "return_s": r["received"] - r["end"], "journal_s": r["journal_s"]})
        last_end[r["pid"]] = r["end"]
    ideal = sum(u["compute_s"] for u in units) / max(1, min(slots, len(units)))
    report["ray"] = {"wall_s": wall, "slots": slots, "ideal_s": ideal, "units": units,
                     "overhead_per_unit_s": (wall - ideal) / max(1, len(units)),
                     "dispatch_first_s": [u["dispatch_s"] for u in units if u["first_on_worker"]],
                     "dispatch_later_mean_s": _mean([u["dispatch_s"] for u in units if not u["first_on_worker"]]),
                     "return_mean_s": _mean([u["return_s"] for u in units]),
                     "journal_mean_s": _mean([u["journal_s"] for u in units])}
    import pandas as pd

    same = pd.read_csv(root / "local" / "results.csv").equals(pd.read_csv(root / "ray" / "results.csv"))
    report["results_identical"] = bool(same)
    return report


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", type=int, default=4)
    ap.add_argument("--pairs", default="en-tr,en-de")
    ap.add_argument("--pool-size", type=int, default=2000)
    ap.add_argument("--layers", default="all")
    ap.add_argument("--resamples", type=int, default=200)
    ap.add_argument("--model", default=None, help="model dir whose shape the checkpoints copy (default: bundled)")
    ap.add_argument("--tiny", action="store_true", help="2-layer toy checkpoints: checks the script in seconds")
    ap.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--gpu-share", type=float, default=1.0, help="part of a GPU per unit (0.25: 4 units per GPU)")
    ap.add_argument("--out", default=None, help="also write the JSON report here")
    args = ap.parse_args()
    report = run(args)
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    r = report["ray"]
    print(f"local {report['local']['wall_s']:.1f} s; ray {r['wall_s']:.1f} s on {r['slots']} slots "
          f"(+ cluster start {report['ray_init_s']:.1f} s); ideal {r['ideal_s']:.1f} s; overhead per unit "
          f"{r['overhead_per_unit_s']:.2f} s; first unit on a worker waits "
          f"{', '.join(f'{x:.1f}' for x in r['dispatch_first_s'])} s; later dispatch "
          f"{(r['dispatch_later_mean_s'] or 0):.3f} s, return {r['return_mean_s']:.3f} s, "
          f"journal {r['journal_mean_s']:.3f} s; identical results: {report['results_identical']}", file=sys.stderr)


if __name__ == "__main__":
    main()
