"""Benchmark: end-to-end `alignkit score` for one pair, all layers, cold vs warm cache.

    python tests/bench/score.py [--pair en-tr] [--pool-size 20000] [--resamples 1000]

Runs the Python API twice into fresh output dirs: first with an empty vector cache (cold:
extraction + metrics), then again with the now-warm cache (metrics only), counting model
forward passes with a hook (the warm run must do none). Prints wall times, the split
between extraction and metrics, and the machine load. For CSLS against its bare GEMMs see
tests/bench/csls.py (same shapes as this pair's retrieval: 1500 queries x ~21500 pool).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pair", default="en-tr")
    ap.add_argument("--pool-size", type=int, default=20000)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()

    import torch

    import alignkit.encoders as encoders
    import alignkit.extract as extract
    from alignkit.scoring import score

    # Count extraction forward passes at alignkit's own entry point: the fused CPU forward
    # does not go through the transformers module, so a hook on the model would see nothing.
    calls = {"forward": 0}
    original = extract._pooled_forward

    def counting_forward(*a, **k):
        calls["forward"] += 1
        return original(*a, **k)

    extract._pooled_forward = counting_forward
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}")
        encoders.load_encoder("bundled:multilingual-e5-small")  # build the bundled model outside the timing
        calls["forward"] = 0
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            df = score(None, out=Path(tmp) / label, pairs=[args.pair], layers="all", pool_size=args.pool_size,
                       n_resamples=args.resamples, cache_dir=str(cache), progress=False)
            dt = time.perf_counter() - t0
            print(f"{label}: {dt:7.1f} s wall, {len(df)} rows, {calls['forward']} forward passes, "
                  f"load {os.getloadavg()[0]:.2f}")
            calls["forward"] = 0


if __name__ == "__main__":
    main()
