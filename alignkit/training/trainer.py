"""The training loop behind ``alignkit train``: English-only fine-tuning with the SPEC §3 objectives.

* AdamW with a linear schedule (optional warm-up) and global-norm gradient clipping,
  gradient accumulation, bf16 autocast on CUDA, DDP when launched by ``torchrun``; sparse
  row updates of the embedding table on CPU (:mod:`alignkit.training.optim`).
* Model selection on English dev; the best model is written as a HuggingFace checkpoint
  (:mod:`alignkit.training.checkpoint`).
* Resume: a complete training state is saved (atomically, as ``state-{step}/``) at every
  evaluation / ``save_every`` steps; re-running the same command continues from the last one
  and, on CPU, ends with the same weights as an uninterrupted run.
* Seeded; bit-exact on CPU with one thread (multi-threaded backward passes are not bit-exact
  across processes, so ``alignkit study`` trains each run on one thread). A tqdm bar shows the
  loss components; ``metrics.jsonl`` logs them per run.

:meth:`Trainer.run` is the loop, in named steps: :meth:`Trainer._setup` (model, data,
objective, optimisers), :meth:`Trainer._resume`, :meth:`Trainer._train_step` (one optimiser
step over the micro-batches), :meth:`Trainer._log_step`, :meth:`Trainer._evaluate_and_save`
and :meth:`Trainer._finalize`. :func:`alignkit.training.run.run_training` dispatches a config to :func:`train` or the
linear probe (:func:`alignkit.training.probe.train_probe`).
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from alignkit import __version__
from alignkit.atomic import ensure_writable_dir, write_text
from alignkit.inputs.taskdata import get_task, grouped_holdout_split, read_pair_file, subsample
from alignkit.errors import AlignkitError
from alignkit.training.batches import pair_batch, step_micro_batches
from alignkit.training.checkpoint import (BEST_PREFIX, METRICS_FILE, STATE_PREFIX, TMP_PREFIX, load_state, mark_run,
                                       numbered, promote_best, prune_numbered, run_status, save_best, save_state,
                                       trim_jsonl, write_manifest)
from alignkit.training.codeswitch import CodeSwitcher
from alignkit.training.config import TrainConfig
from alignkit.training.diagnostics import TableTracker
from alignkit.training.distributed import barrier, process_group
from alignkit.inputs.finetuned import META_FILE
from alignkit.tasks.classification import evaluate_task
from alignkit.training.pairs import EncodedPairs, autocast_for, pad_id_of, predict, tokenize_examples
from alignkit.training.model import (PairBatch, PairClassifier, TableView, attention_dropout_of, check_trainable,
                                  set_attention_dropout, use_eager_attention)
from alignkit.training.objectives import Anchors, TrainingObjective, needs_of, table_at_reach_rate
from alignkit.training.optim import (RowAdam, content_token_ids, frequent_token_ids, lr_factor, make_adamw, param_groups,
                                  table_learning_rate)


@dataclass
class TrainResult:
    """What a run produced: the checkpoint dir, its best English-dev accuracy and step, zero-shot rows."""

    out: Path
    best_dev_acc: float
    best_step: int
    steps: int
    rows: list[dict] = field(default_factory=list)
    resumed_from: int = 0
    already_complete: bool = False
    is_main: bool = True  # False on DDP ranks other than 0 (which neither evaluate nor write)


@dataclass
class _Setup:
    """Everything the loop works on (built once by :meth:`Trainer._setup`)."""

    enc: Any
    device: torch.device
    clf: PairClassifier
    step_model: nn.Module           # the TrainingObjective, DDP-wrapped when ws > 1
    table: torch.Tensor             # the word-embedding parameter W [V, H]
    mode: str                       # sparse | dense | frozen
    train: EncodedPairs
    train_ex: list
    dev: EncodedPairs
    pad_id: int
    switcher: CodeSwitcher | None
    total: int                      # optimiser steps of the run
    warmup: int
    steps_per_epoch: int
    eval_every: int
    emb_lr: float
    row_scale: torch.Tensor | None  # per-row multiplier of the table lr [V], or None
    opt: torch.optim.Optimizer
    row_opt: RowAdam | None
    tracker: TableTracker
    ws: int
    rank: int


class Trainer:
    """One training run. ``Trainer(cfg).run()``; the CLI and the benchmarks use it alike."""

    def __init__(self, cfg: TrainConfig, progress: bool = True, log: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.weights = cfg.check()
        self.needs = needs_of(self.weights, cfg.objective)  # what the objectives declared (objectives.NEEDS)
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.spec = get_task(cfg.task)
        self.out = Path(cfg.out)
        self.run_info: dict[str, Any] = {"attention_dropout": cfg.attention_dropout}  # filled in by run()
        self.augmenter = None

    # -- data and output directory ----------------------------------------------------------
    def _read_data(self):
        cfg = self.cfg
        train = read_pair_file(cfg.train_file, self.spec)
        if cfg.dev_file:
            dev = read_pair_file(cfg.dev_file, self.spec)
        else:
            train, dev = grouped_holdout_split(train, cfg.dev_fraction, cfg.dev_seed)
        train = subsample(train, cfg.max_train_rows, cfg.seed)
        return train, dev

    def _status(self) -> tuple[str, dict | None]:
        """:func:`~alignkit.training.checkpoint.run_status` of ``out`` for this run's settings."""
        return run_status(self.out, self.cfg.identity())

    def _mark(self, trained: bool, complete: bool) -> None:
        mark_run(self.out, self.cfg.identity(), trained, complete)

    def _zero_shot(self, meta: dict) -> list[dict]:
        """The end-of-training evaluation (``eval_data`` x ``eval_langs``); marks the run complete."""
        cfg = self.cfg
        rows: list[dict] = []
        if cfg.eval_data:
            from alignkit.results.rows import to_frame, write_csv

            rows = evaluate_task(self.out, cfg.task, cfg.eval_data, cfg.eval_langs, cfg.resolved_eval_split,
                                 cfg.eval_max_rows, cfg.eval_batch_size, cfg.max_length, seed=cfg.seed,
                                 predictions_dir=self.out)
            write_csv(to_frame(rows), self.out / "results.csv")
            meta["zero_shot"] = {r["pair"]: r["value"] for r in rows}
            write_text(self.out / META_FILE, json.dumps(meta, indent=1))
        self._mark(True, True)
        return rows

    def _finished(self, status: str, meta: dict, is_main: bool = True) -> TrainResult:
        """Result for a run found trained (finish its evaluation) or complete (nothing to do)."""
        rows: list[dict] = []
        if status == "trained" and is_main:
            self.log(f"alignkit: {self.out} is trained; running its zero-shot evaluation")
            rows = self._zero_shot(meta)
        elif status == "complete":
            self.log(f"alignkit: {self.out} already holds the finished run (best English dev accuracy "
                     f"{meta['best_dev_acc']:.4f} at step {meta['best_step']}); nothing to do")
        return TrainResult(self.out, meta["best_dev_acc"], meta["best_step"], meta.get("steps", 0), rows,
                           already_complete=status == "complete", is_main=is_main)

    def _load(self, device: str | None):
        from alignkit.inputs.encoders import load_encoder

        enc = load_encoder(self.cfg.model, device=device, dtype="fp32", decoders=False)
        check_trainable(enc.model, self.cfg.model)
        return enc

    # -- the loop -----------------------------------------------------------------------------
    def run(self, stop_after: int | None = None) -> TrainResult:
        """Train (or resume, or report a finished run). ``stop_after``: raise KeyboardInterrupt
        after that global step (used by the tests to simulate a killed run)."""
        train_ex, dev_ex = self._read_data()
        ws, rank, local_rank = process_group()
        if rank == 0:
            ensure_writable_dir(self.out, "output directory")
        barrier(ws)
        status, meta = self._status()
        if status in ("trained", "complete"):
            res = self._finished(status, meta, is_main=rank == 0)
            barrier(ws)
            return res
        if rank == 0:
            for p in self.out.glob(TMP_PREFIX + "*"):  # left by an interrupted save
                shutil.rmtree(p, ignore_errors=True)
        s = self._setup(train_ex, dev_ex, ws, rank, local_rank)
        state = self._resume(s)
        resumed_from = state["step"]
        self._loop(s, state, stop_after)
        rows: list[dict] = []
        if rank == 0:
            meta = self._finalize(state, s.total)
            rows = self._zero_shot(meta)
        barrier(ws)
        return TrainResult(self.out, state["best_dev_acc"], state["best_step"], s.total, rows, resumed_from,
                           is_main=rank == 0)

    def _setup(self, train_ex, dev_ex, ws: int, rank: int, local_rank: int) -> _Setup:
        """Load the encoder, tokenise, build classifier, objective and optimisers (seeded, in a fixed order)."""
        cfg = self.cfg
        device = cfg.device
        if device is None and ws > 1 and torch.cuda.is_available():
            device = f"cuda:{local_rank}"
        enc = self._load(device)
        dev = enc.device
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        torch.manual_seed(cfg.seed + rank)

        switcher = None
        if "codeswitch" in self.needs:
            switcher = CodeSwitcher.from_lexicons(cfg.objective.codeswitch_lexicons, cfg.objective.codeswitch_prob)
        if "synonym_copies" in self.needs:  # RS-DA: WordNet synonyms, no lexicon
            from alignkit.training.rsda import SynonymAugmenter

            self.augmenter = SynonymAugmenter.from_wordnet(cfg.objective.rsda_copies, cfg.objective.wordnet_dir)
        train = tokenize_examples(enc, train_ex, cfg.max_length, enc.query_prefix)
        dev_data = tokenize_examples(enc, dev_ex, cfg.max_length, enc.query_prefix)

        clf, table, anchors, mode, step_model = self._build_objective(enc, train, ws)
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        total = cfg.max_steps if cfg.max_steps else cfg.epochs * steps_per_epoch
        warmup = int(cfg.warmup_ratio * total)
        train_ids = content_token_ids(train)
        emb_lr, row_scale, info = table_learning_rate(cfg, table_at_reach_rate(self.weights), mode, train, total,
                                                      warmup, anchors.rho, int(table.shape[1]), int(table.shape[0]),
                                                      self.log)
        self.run_info.update(info)
        opt = make_adamw(param_groups(clf, table, mode, cfg.lr, emb_lr, cfg.weight_decay), cfg.lr)
        row_opt = RowAdam(table.data, weight_decay=cfg.weight_decay) if mode == "sparse" else None
        tracker = TableTracker(table.data, train_ids, anchors.rho,
                               (anchors, cfg.objective.ept_anchor, cfg.objective.ept_margin)
                               if "push_diagnostics" in self.needs else None)
        return _Setup(enc, dev, clf, step_model, table, mode, train, train_ex, dev_data, pad_id_of(enc.tokenizer),
                      switcher, total, warmup, steps_per_epoch, cfg.eval_every or steps_per_epoch, emb_lr,
                      None if row_scale is None else row_scale.to(dev), opt, row_opt, tracker, ws, rank)

    def _build_objective(self, enc, train: EncodedPairs, ws: int):
        """Classifier, table W, anchors (W⁰, ρ), embedding mode and the (DDP-wrapped) objective module."""
        cfg = self.cfg
        dev = enc.device
        clf = PairClassifier(enc.model, len(self.spec.labels), cfg.dropout)
        self._configure_attention(enc.model)
        table = clf.word_embeddings.weight
        centroid_ids = frequent_token_ids(train, cfg.objective.ept_centroid_tokens) \
            if cfg.objective.ept_anchor == "centroid" else None
        # W⁰ and θ⁰ are copied only when an objective needs them; VME needs just ρ.
        anchors = Anchors(table.data, centroid_ids, keep_copy="table0" in self.needs,
                          offset_seed=cfg.seed, offset_scale=cfg.objective.ept_offset,
                          parameters=dict(clf.named_parameters()) if "params0" in self.needs else None)
        mode = cfg.embeddings
        if mode == "auto":
            mode = "sparse" if dev.type == "cpu" and ws == 1 else "dense"
        if mode == "sparse" and ws > 1:
            raise AlignkitError("sparse embedding updates run in one process only; "
                                "use --embeddings dense with torchrun")
        table.requires_grad_(mode == "dense")
        for p in clf.parameters():
            if p is not table:
                p.requires_grad_(True)
        objective = TrainingObjective(clf, self.weights, cfg.objective, anchors).to(dev)
        objective.train()
        step_model: nn.Module = objective
        if ws > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            step_model = DDP(objective, device_ids=[dev.index] if dev.type == "cuda" else None)
        return clf, table, anchors, mode, step_model

    def _configure_attention(self, model) -> None:
        """One attention dropout for every variant (SPEC §3 v2); eager attention maps when an
        objective needs attentions (APT)."""
        cfg = self.cfg
        if cfg.attention_dropout is not None:
            set_attention_dropout(model, cfg.attention_dropout)
        if "attentions" in self.needs:
            use_eager_attention(model)
            if attention_dropout_of(model) > 0:
                raise AlignkitError(f"APT compares attention maps as distributions, but {cfg.model} has attention "
                                    f"dropout {attention_dropout_of(model)}; set attention_dropout = 0 "
                                    "(for every variant of the study)")

    def _resume(self, s: _Setup) -> dict:
        """The loop state {step, best_dev_acc, best_step}: from the last resume state, or fresh."""
        state = {"step": 0, "best_dev_acc": -1.0, "best_step": 0}
        states = numbered(self.out, STATE_PREFIX)
        if states:
            state = load_state(states[-1][1], s.clf, s.opt, s.row_opt, s.device, s.tracker)
            self.log(f"alignkit: resuming {self.out} from step {state['step']}")
        if s.rank == 0:
            prune_numbered(self.out, BEST_PREFIX, above=state["step"])
            trim_jsonl(self.out / METRICS_FILE, state["step"])
            self._mark(False, False)
        return state

    def _loop(self, s: _Setup, state: dict, stop_after: int | None) -> None:
        """Optimiser steps from ``state['step']`` to ``s.total``, logging, evaluating and saving."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        bar = tqdm(total=s.total, initial=state["step"], disable=not self.progress or s.rank != 0,
                   desc=f"train {cfg.variant}", dynamic_ncols=True, file=sys.stderr)
        metrics_fh = open(self.out / METRICS_FILE, "a") if s.rank == 0 else None
        log = {"sums": {}, "n": 0, "t0": time.perf_counter(), "c0": time.process_time()}
        step = state["step"]
        try:
            while step < s.total:
                factor = lr_factor(step, s.total, s.warmup)
                loss_sum, parts_sum = self._train_step(s, step, factor)
                step += 1
                self._log_step(s, step, factor, loss_sum, parts_sum, log, bar, metrics_fh)
                self._evaluate_and_save(s, step, state, bar, metrics_fh)
                if stop_after is not None and step >= stop_after:
                    raise KeyboardInterrupt
        finally:
            bar.close()
            if metrics_fh is not None:
                metrics_fh.close()

    def _step_batches(self, s: _Setup, step: int) -> tuple[list[int], list[PairBatch], TableView]:
        """This rank's examples of global ``step``, its micro-batches on the device, and the table view."""
        cfg = self.cfg
        epoch, shard, micro = step_micro_batches(len(s.train), cfg.seed, step, s.steps_per_epoch, cfg.batch_size,
                                                 s.rank, s.ws, cfg.grad_accum)
        batches = [self._make_batch(s.train, s.train_ex, m, s.pad_id, s.switcher, s.enc, epoch).to(s.device)
                   for m in micro]
        table = TableView(s.table)
        if s.mode == "sparse":
            ids = [b.input_ids for b in batches] + [b.switched.input_ids for b in batches if b.switched is not None]
            ids += [b.augmented.input_ids for b in batches if b.augmented is not None]
            table = TableView.sparse(s.table, ids)
        return shard, batches, table

    def _train_step(self, s: _Setup, step: int, factor: float) -> tuple[float, dict[str, float]]:
        """One optimiser step (accumulated over micro-batches) -> (loss, {objective: loss}) of the step."""
        cfg = self.cfg
        shard, batches, table = self._step_batches(s, step)
        for g in s.opt.param_groups:
            g["lr"] = g["base_lr"] * factor
        parts_sum: dict[str, float] = {}
        loss_sum = 0.0
        for k, b in enumerate(batches):
            share = len(b) / len(shard)
            last = s.ws == 1 or k == len(batches) - 1
            with contextlib.nullcontext() if last else s.step_model.no_sync():
                with autocast_for(s.device):
                    loss, parts = s.step_model(b, table)
                (loss * share).backward()
            loss_sum += float(loss.detach()) * share
            for name, v in parts.items():
                parts_sum[name] = parts_sum.get(name, 0.0) + float(v) * share
        params = [p for g in s.opt.param_groups for p in g["params"]]
        if table.rows is not None:
            params = params + [table.rows]
        if cfg.clip and cfg.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        prev = s.table.detach().clone() if s.mode == "dense" and s.row_scale is not None else None
        s.opt.step()
        if prev is not None:  # dense path: the same per-row budget as RowAdam's
            with torch.no_grad():
                s.table.copy_(prev + s.row_scale[:, None] * (s.table - prev))
            del prev
        s.opt.zero_grad(set_to_none=True)
        if s.row_opt is not None and table.rows is not None and table.rows.grad is not None:
            s.row_opt.step(table.row_ids, table.rows.grad, s.emb_lr * factor,
                           None if s.row_scale is None else s.row_scale[table.row_ids])
        for b in batches:
            s.tracker.touch(b.input_ids[b.content_mask])
        return loss_sum, parts_sum

    def _log_step(self, s: _Setup, step: int, factor: float, loss_sum: float, parts_sum: dict[str, float],
                  log: dict, bar, metrics_fh) -> None:
        """Running means on the bar; a ``metrics.jsonl`` record every ``log_every`` steps (and first, last)."""
        sums = log["sums"]
        sums["loss"] = sums.get("loss", 0.0) + loss_sum
        for name, v in parts_sum.items():
            sums[name] = sums.get(name, 0.0) + v
        log["n"] += 1
        n = log["n"]
        bar.update(1)
        bar.set_postfix({k: f"{v / n:.3f}" for k, v in sums.items()}, refresh=False)
        if metrics_fh is not None and (step % self.cfg.log_every == 0 or step == s.total or step == 1):
            rec = {"step": step, "epoch": round(step / s.steps_per_epoch, 4), "lr": self.cfg.lr * factor,
                   "embedding_lr": s.emb_lr * factor, **{k: v / n for k, v in sums.items()},
                   **s.tracker.snapshot(s.table.data), "time_s": round(time.perf_counter() - log["t0"], 3),
                   "cpu_s": round(time.process_time() - log["c0"], 3)}
            metrics_fh.write(json.dumps(rec) + "\n")
            metrics_fh.flush()
            log["sums"], log["n"] = {}, 0

    def _evaluate_and_save(self, s: _Setup, step: int, state: dict, bar, metrics_fh) -> None:
        """At evaluation steps: English dev accuracy, best checkpoint; at save steps: the resume state."""
        is_eval = step % s.eval_every == 0 or step % s.steps_per_epoch == 0 or step == s.total
        is_save = is_eval or (self.cfg.save_every and step % self.cfg.save_every == 0)
        if is_eval:
            if s.rank == 0:
                acc = self._dev_accuracy(s.clf, s.dev, s.pad_id, s.device)
                best = acc > state["best_dev_acc"]
                if best:
                    state["best_dev_acc"], state["best_step"] = acc, step
                    save_best(self.out, step, s.clf, s.enc, self._meta(s.enc, acc, step))
                if metrics_fh is not None:
                    metrics_fh.write(json.dumps({"step": step, "event": "dev", "dev_acc": acc, "best": best,
                                                 **s.tracker.snapshot(s.table.data)}) + "\n")
                    metrics_fh.flush()
                bar.write(f"step {step}: English dev accuracy {acc:.4f}{' (best)' if best else ''}")
            barrier(s.ws)
        if is_save:
            state["step"] = step
            if s.rank == 0:
                save_state(self.out, step, state, s.clf, s.opt, s.row_opt, s.tracker)
            barrier(s.ws)

    # -- pieces ---------------------------------------------------------------------------
    def _make_batch(self, data: EncodedPairs, examples, indices: Sequence[int], pad_id: int,
                    switcher: CodeSwitcher | None, enc, epoch: int) -> PairBatch:
        """:func:`~alignkit.training.batches.pair_batch` with this run's seed, length and RS-DA augmenter."""
        return pair_batch(data, examples, indices, pad_id, enc, epoch, self.cfg.seed, self.cfg.max_length,
                          switcher, self.augmenter)

    def _dev_accuracy(self, clf: PairClassifier, dev_data: EncodedPairs, pad_id: int, device) -> float:
        # Evaluation must not disturb the training RNG stream (resume = uninterrupted run).
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            pred = predict(clf, dev_data, pad_id, self.cfg.eval_batch_size, device)
        return float((pred == np.array(dev_data.labels)).mean())

    def _meta(self, enc, acc: float, step: int) -> dict:
        return {"alignkit_version": __version__, "task": self.spec.name, "labels": list(self.spec.labels),
                "train_lang": "en", "variant": self.cfg.variant, "weights": self.weights,
                "pooling": "mean of non-special tokens, last layer", "input_prefix": enc.query_prefix,
                "max_length": self.cfg.max_length, "base_model": self.cfg.model, **self.run_info,
                "base_fingerprint": enc.fingerprint, "dev_acc": acc, "step": step,
                "config": self.cfg.to_dict()}

    def _finalize(self, state: dict, total: int) -> dict:
        """Move the best checkpoint's files to the top of ``out``; write manifest and diagnostics;
        drop resume states."""
        from alignkit.training.diagnostics import summarize_metrics, write_training_diagnostics

        promote_best(self.out)
        meta = json.loads((self.out / META_FILE).read_text())
        meta.update({"best_dev_acc": state["best_dev_acc"], "best_step": state["best_step"], "steps": total})
        write_text(self.out / META_FILE, json.dumps(meta, indent=1))
        write_manifest(self.out, self.cfg, meta.get("base_fingerprint", ""))
        recs = [json.loads(x) for x in (self.out / METRICS_FILE).read_text().splitlines() if x.strip()] \
            if (self.out / METRICS_FILE).is_file() else []
        write_training_diagnostics(self.out, summarize_metrics(recs, meta))
        self._mark(True, False)  # from here on, a re-run only finishes the evaluation
        if not self.cfg.keep_state:
            prune_numbered(self.out, STATE_PREFIX, above=-1)
        return meta


def train(cfg: TrainConfig, progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Run (or resume) the training run ``cfg`` -> :class:`TrainResult`."""
    return Trainer(cfg, progress=progress).run(stop_after=stop_after)


__all__ = ["TrainResult", "Trainer", "train"]
