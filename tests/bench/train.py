"""Benchmark of alignkit's training loop (SPEC §4, issue 5). Not collected by pytest.

Measures, side by side in one run on the same machine, the median optimizer-step time of

1. alignkit's loop (``ft``; table updated sparsely, the CPU default, and densely) against a
   plain HuggingFace ``Trainer`` on the same model, batch size, max length and data
   (target: alignkit not slower);
2. EPT steps (``task+ept``) with sparse row updates and with a dense table in AdamW,
   against a step with the table frozen (target: sparse EPT <= 1.5x frozen).

Usage (CPU; run with nice on a shared machine)::

    OMP_NUM_THREADS=1 nice -n 10 python tests/bench/train.py --steps 6 --warmup 2 --repeat 2 [--model DIR] [--json out.json]

Step times come from alignkit's metrics.jsonl (``log_every=1``: wall ``time_s`` and process
CPU ``cpu_s``) and from a ``TrainerCallback`` (on_step_begin/on_step_end); the first
``--warmup`` steps of each run are dropped. Ratios use process CPU time with one intra-op
thread, which a shared machine's waiting does not inflate; wall medians are reported too.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "xnli" / "dev-en.tsv"


def alignkit_step_times(model: str, train_file: Path, dev_file: Path, out: Path, *, variant: str,
                        embeddings: str, steps: int, batch_size: int, max_length: int) -> list[float]:
    from alignkit.training.config import TrainConfig
    from alignkit.training.trainer import train

    cfg = TrainConfig.from_mapping(dict(
        model=model, train_file=str(train_file), dev_file=str(dev_file), out=str(out), variant=variant,
        embeddings=embeddings, max_steps=steps, batch_size=batch_size, max_length=max_length, log_every=1,
        device="cpu", seed=0))
    train(cfg, progress=False)
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    wall = [r["time_s"] for r in recs if "time_s" in r]
    cpu = [r["cpu_s"] for r in recs if "cpu_s" in r]
    return [(b - a, d - c) for a, b, c, d in zip([0.0] + wall[:-1], wall, [0.0] + cpu[:-1], cpu)]


def hf_trainer_step_times(model: str, train_file: Path, out: Path, *, steps: int, batch_size: int,
                          max_length: int) -> list[float]:
    """A plain ``transformers.Trainer`` on the same classifier module (encoder + mean-pool head)."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from alignkit.inputs.encoders import load_encoder
    from alignkit.inputs.taskdata import read_pair_file
    from alignkit.training.pairs import collate, pad_id_of, tokenize_examples
    from alignkit.training.model import PairClassifier

    enc = load_encoder(model, device="cpu", dtype="fp32")
    clf = PairClassifier(enc.model, 3).train()
    data = tokenize_examples(enc, read_pair_file(train_file, "xnli"), max_length, enc.query_prefix)
    pad = pad_id_of(enc.tokenizer)

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            return i

    def collator(idx):
        b = collate(data, idx, pad)
        out = {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "content_mask": b.content_mask,
               "labels": b.labels}
        if b.token_type_ids is not None:
            out["token_type_ids"] = b.token_type_ids
        return out

    times: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            times.append((time.perf_counter() - self.t, time.process_time() - self.c))

    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=batch_size, max_steps=steps,
                             learning_rate=2e-5, lr_scheduler_type="linear", max_grad_norm=1.0,
                             weight_decay=0.0, save_strategy="no", report_to=[], logging_strategy="no",
                             use_cpu=True, seed=0, dataloader_num_workers=0, remove_unused_columns=False,
                             disable_tqdm=True)
    Trainer(model=clf, args=args, train_dataset=Items(), data_collator=collator, callbacks=[Clock()]).train()
    return times


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bundled:multilingual-e5-small")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=2, help="run the whole list this many times")
    ap.add_argument("--only", default="", help="comma list of runs to do (default all)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    n = a.steps + a.warmup
    tmp = Path(tempfile.mkdtemp(prefix="alignkit-bench-train-"))
    lines = a.data.read_text().splitlines()
    train_file, dev_file = tmp / "train-en.tsv", tmp / "dev-en.tsv"
    train_file.write_text("\n".join(lines[: a.batch_size * n]) + "\n")
    dev_file.write_text("\n".join(lines[-32:]) + "\n")  # tiny: evaluation is not what is timed

    runs = {
        "alignkit ft (sparse table)": lambda o: alignkit_step_times(a.model, train_file, dev_file, o, variant="ft",
                                                                   embeddings="sparse", steps=n, batch_size=a.batch_size, max_length=a.max_length),
        "alignkit ft (dense table)": lambda o: alignkit_step_times(a.model, train_file, dev_file, o, variant="ft",
                                                                  embeddings="dense", steps=n, batch_size=a.batch_size, max_length=a.max_length),
        "hf Trainer ft": lambda o: hf_trainer_step_times(a.model, train_file, o, steps=n, batch_size=a.batch_size,
                                                         max_length=a.max_length),
        "alignkit ft (frozen table)": lambda o: alignkit_step_times(a.model, train_file, dev_file, o, variant="ft",
                                                                   embeddings="frozen", steps=n, batch_size=a.batch_size, max_length=a.max_length),
        "alignkit ept (sparse table)": lambda o: alignkit_step_times(a.model, train_file, dev_file, o, variant="ept",
                                                                    embeddings="sparse", steps=n, batch_size=a.batch_size, max_length=a.max_length),
        "alignkit ept (dense table)": lambda o: alignkit_step_times(a.model, train_file, dev_file, o, variant="ept",
                                                                   embeddings="dense", steps=n, batch_size=a.batch_size, max_length=a.max_length),
    }
    only = [x.strip() for x in a.only.split(",") if x.strip()]
    result: dict = {"machine": f"{torch.get_num_threads()} torch threads, torch {torch.__version__}",
                    "model": a.model, "batch_size": a.batch_size, "max_length": a.max_length,
                    "steps_timed": a.steps, "median_step_s": {}}
    # Repeats run the whole list again, so slow phases of a shared machine hit every configuration.
    # Wall time is what a user waits; process CPU time (one intra-op thread) is the work done,
    # which waiting for a busy core does not inflate: the ratios use CPU time.
    times: dict[str, list[tuple[float, float]]] = {}
    for rep in range(a.repeat):
        for k, (name, fn) in enumerate(runs.items()):
            if only and not any(o in name for o in only):
                continue
            t = fn(tmp / f"run{rep}-{k}")[a.warmup:]
            times.setdefault(name, []).extend(t)
            print(f"[{rep}] {name:32s} wall/cpu s: {', '.join(f'{w:.2f}/{c:.2f}' for w, c in t)}", flush=True)
    result["median_wall_s"] = {}
    for name, t in times.items():
        result["median_step_s"][name] = statistics.median(c for _, c in t)
        result["median_wall_s"][name] = statistics.median(w for w, _ in t)
        print(f"{name:32s} median {result['median_step_s'][name]:.3f} s CPU/step, "
              f"{result['median_wall_s'][name]:.3f} s wall/step over {len(t)} steps", flush=True)
    m = result["median_step_s"]
    ratios = {}
    if "hf Trainer ft" in m:
        for name in ("alignkit ft (sparse table)", "alignkit ft (dense table)"):
            if name in m:
                ratios[f"{name} / hf Trainer ft"] = m[name] / m["hf Trainer ft"]
    if "alignkit ft (frozen table)" in m:
        for name in ("alignkit ept (sparse table)", "alignkit ept (dense table)"):
            if name in m:
                ratios[f"{name} / frozen"] = m[name] / m["alignkit ft (frozen table)"]
    result["ratios"] = ratios
    for k, v in ratios.items():
        print(f"{k:60s} {v:.2f}x")
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
