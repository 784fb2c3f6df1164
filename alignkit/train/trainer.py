"""The training loop behind ``alignkit train``: English-only fine-tuning with the SPEC §3 objectives.

* AdamW with a linear schedule (optional warm-up) and global-norm gradient clipping,
  gradient accumulation, bf16 autocast on CUDA, DDP when launched by ``torchrun``.
* On CPU (single process) the word-embedding table stays out of AdamW: each step copies the
  rows its batch touches into a small leaf tensor and :class:`RowAdam` updates only those
  rows (lazy Adam), so steps that train the table (EPT) cost about what a frozen-table step
  costs instead of a 96M-parameter dense update.
* Model selection on English dev; the best model is written as a HuggingFace checkpoint
  (encoder ``save_pretrained`` + ``classifier_head.safetensors`` + ``alignkit_train.json``).
* Resume: a complete training state is saved (atomically, as ``state-{step}/``) at every
  evaluation / ``save_every`` steps; re-running the same command continues from the last one
  and, on CPU, ends with the same weights as an uninterrupted run.
* Seeded; bit-exact on CPU with one thread (multi-threaded backward passes are not bit-exact
  across processes, so ``alignkit study`` trains each run on one thread). A tqdm bar shows the loss components; ``metrics.jsonl``
  logs them per run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from alignkit import __version__
from alignkit.atomic import ensure_writable_dir, write_text
from alignkit.errors import AlignkitError
from alignkit.inputs.taskdata import check_zero_shot_protocol, get_task, grouped_holdout_split, read_pair_file, subsample, zero_shot_split
from alignkit.train.diagnostics import TableTracker, embedding_lr_rule
from alignkit.train.evaluate import (HEAD_FILE, META_FILE, EncodedPairs, autocast_for, collate, evaluate_task,
                                     pad_id_of, predict, tokenize_examples, tokenize_pairs)
from alignkit.train.objectives import (Anchors, CodeSwitcher, ObjectiveConfig, PairBatch, PairClassifier,
                                       TableView, TrainingObjective, attention_dropout_of, example_rng,
                                       set_attention_dropout,
                                       resolve_variant)

RUN_FILE = "run_config.json"
METRICS_FILE = "metrics.jsonl"
STATE_PREFIX = "state-"
BEST_PREFIX = "best-"
TMP_PREFIX = ".tmp-alignkit-"
EMBEDDING_MODES = ("auto", "sparse", "dense", "frozen")
# Config fields that do not change the trained weights (a resumed run may change them).
NON_IDENTITY = {"out", "eval_data", "eval_langs", "eval_split", "eval_max_rows", "log_every",
                "keep_state", "save_every", "device", "eval_batch_size"}


# ----------------------------------------------------------------------------- configuration


@dataclass
class TrainConfig:
    """Everything that defines a training run (CLI options / TOML keys of the same names)."""

    train_file: str = ""
    out: str = ""
    model: str = "bundled:multilingual-e5-small"
    task: str = "xnli"
    dev_file: str | None = None
    dev_fraction: float = 0.1
    dev_seed: int = 0
    max_train_rows: int | None = None
    variant: str = "ft"
    weights: dict[str, float] = field(default_factory=dict)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    epochs: int = 1
    max_steps: int | None = None
    lr: float = 2e-5
    embedding_lr: float | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    batch_size: int = 32
    grad_accum: int = 1
    max_length: int = 128
    clip: float = 1.0
    dropout: float | None = None
    attention_dropout: float | None = 0.0
    seed: int = 42
    eval_every: int | None = None
    save_every: int | None = None
    embeddings: str = "auto"
    device: str | None = None
    eval_data: str | None = None
    eval_langs: tuple[str, ...] = ()
    eval_split: str | None = None
    eval_max_rows: int | None = None
    eval_batch_size: int = 64
    log_every: int = 10
    keep_state: bool = False

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        """Build from flat keys (``-`` or ``_``); objective keys may sit flat or under ``objective``."""
        top = {f.name for f in dataclasses.fields(cls)} - {"objective"}
        obj_names = {f.name for f in dataclasses.fields(ObjectiveConfig)}
        kw: dict[str, Any] = {}
        obj: dict[str, Any] = {}
        flat = dict(values)
        nested = flat.pop("objective", {}) or {}
        if not isinstance(nested, Mapping):
            raise AlignkitError(f"{source}: 'objective' must be a table of objective settings")
        for k, v in list(flat.items()) + [(k, v) for k, v in nested.items()]:
            key = str(k).replace("-", "_")
            if key in top:
                kw[key] = v
            elif key in obj_names:
                obj[key] = v
            else:
                raise AlignkitError(f"{source}: unknown setting {k!r}; known: {', '.join(sorted(top | obj_names))}")
        for key in ("eval_langs",):
            if isinstance(kw.get(key), str):
                kw[key] = tuple(x.strip() for x in kw[key].split(",") if x.strip())
            elif kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        if isinstance(kw.get("weights"), str):
            kw["weights"] = parse_weights(kw["weights"])
        for key in ("codeswitch_lexicons", "apt_layers"):
            if isinstance(obj.get(key), str):
                parts = [x.strip() for x in obj[key].split(",") if x.strip()]
                obj[key] = tuple(int(x) for x in parts) if key == "apt_layers" else tuple(parts)
            elif obj.get(key) is not None:
                obj[key] = tuple(obj[key])
        try:
            return cls(objective=ObjectiveConfig(**obj), **kw)
        except TypeError as e:
            raise AlignkitError(f"{source}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def resolved_eval_split(self) -> str:
        """The split of the end-of-training evaluation: ``eval_split``, or else the split the
        training file is NOT from (v2 protocol: train on test-en -> evaluate on dev-xx)."""
        return zero_shot_split(self.train_file, self.eval_split)

    def identity(self) -> dict[str, Any]:
        """The settings that determine the trained weights (compared on resume)."""
        d = self.to_dict()
        for k in NON_IDENTITY:
            d.pop(k, None)
        return json.loads(json.dumps(d))

    def check(self) -> dict[str, float]:
        """Validate; return the resolved objective weights."""
        if not self.train_file:
            raise AlignkitError("no training file; pass --train-file (e.g. .../xnli/dev-en.tsv)")
        if not self.out:
            raise AlignkitError("no output directory; pass --out DIR")
        get_task(self.task)
        self.objective.check()
        if self.embeddings not in EMBEDDING_MODES:
            raise AlignkitError(f"unknown embeddings mode {self.embeddings!r}; use {', '.join(EMBEDDING_MODES)}")
        for name, v in (("batch size", self.batch_size), ("grad accum", self.grad_accum),
                        ("max length", self.max_length), ("epochs", self.epochs)):
            if int(v) < 1:
                raise AlignkitError(f"{name} {v} must be >= 1")
        if self.batch_size % self.grad_accum:
            raise AlignkitError(f"batch size {self.batch_size} is not a multiple of grad accum {self.grad_accum}")
        if self.max_steps is not None and self.max_steps < 1:
            raise AlignkitError(f"max steps {self.max_steps} must be >= 1")
        if not self.lr > 0:
            raise AlignkitError(f"learning rate {self.lr} must be > 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise AlignkitError(f"warmup ratio {self.warmup_ratio} must be in [0, 1)")
        if self.eval_data and not self.eval_langs:
            raise AlignkitError("--eval-data needs --eval-langs (e.g. --eval-langs sw,ur)")
        if self.eval_data:
            check_zero_shot_protocol(self.train_file, self.resolved_eval_split, "training config")
        if self.attention_dropout is not None and not 0.0 <= self.attention_dropout < 1.0:
            raise AlignkitError(f"attention dropout {self.attention_dropout} must be in [0, 1); pass e.g. 0")
        if self.embedding_lr is not None and not self.embedding_lr > 0:
            raise AlignkitError(f"embedding learning rate {self.embedding_lr} must be > 0 (or unset for the EPT rule)")
        if self.variant == "probe":  # linear probe on the frozen encoder: no objective weights
            return {}
        weights = resolve_variant(self.variant, self.weights)
        if self.embeddings == "frozen" and "ept" in weights:
            raise AlignkitError("EPT trains the embedding table; it cannot run with --embeddings frozen")
        return weights


def parse_weights(text: str) -> dict[str, float]:
    """``"rt=1,cl=0.5"`` -> {"rt": 1.0, "cl": 0.5}."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, eq, val = part.partition("=")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            raise AlignkitError(f"bad objective weight {part!r}; write name=value, e.g. cl=0.5") from None
        if not eq:
            raise AlignkitError(f"bad objective weight {part!r}; write name=value, e.g. cl=0.5")
    return out


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML config file (AlignkitError on a missing or malformed file)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib  # type: ignore
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise AlignkitError(f"config file {p} does not exist; pass an existing TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise AlignkitError(f"config file {p} is not valid TOML ({e}); fix it") from None


# ----------------------------------------------------------------------------- row-wise Adam


class RowAdam:
    """Lazy AdamW on the rows of an embedding table that a step touched.

    Moments live only for rows ever touched (a slot per row, grown on demand), each row
    with its own step count for bias correction, so a row first seen late starts like a
    fresh Adam parameter. Rows not in the batch are not moved (no stale-momentum drift,
    no weight decay): the lazy rule of ``torch.optim.SparseAdam``, with AdamW's decoupled
    decay on the touched rows.
    """

    def __init__(self, table: Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        self.table = table
        self.b1, self.b2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        v, h = table.shape
        self.slot = torch.full((v,), -1, dtype=torch.long, device=table.device)
        self.m = table.new_zeros((0, h), dtype=torch.float32)
        self.v = table.new_zeros((0, h), dtype=torch.float32)
        self.t = torch.zeros(0, dtype=torch.long, device=table.device)

    def _slots(self, ids: Tensor) -> Tensor:
        slots = self.slot[ids]
        new = slots < 0
        if bool(new.any()):
            n_new = int(new.sum())
            start = self.m.shape[0]
            self.slot[ids[new]] = torch.arange(start, start + n_new, device=ids.device)
            h = self.m.shape[1]
            self.m = torch.cat([self.m, self.m.new_zeros((n_new, h))])
            self.v = torch.cat([self.v, self.v.new_zeros((n_new, h))])
            self.t = torch.cat([self.t, self.t.new_zeros(n_new)])
            slots = self.slot[ids]
        return slots

    @torch.no_grad()
    def step(self, ids: Tensor, grad: Tensor, lr: float, scale: Tensor | None = None) -> None:
        """Update rows ``ids`` [n] (unique) of the table with their gradient ``grad`` [n, H];
        ``scale`` [n] multiplies ``lr`` per row (weight decay included), default 1."""
        if ids.numel() == 0:
            return
        s = self._slots(ids)
        g = grad.float()
        m = self.m[s].mul_(self.b1).add_(g, alpha=1 - self.b1)
        v = self.v[s].mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        t = self.t[s] + 1
        self.m[s], self.v[s], self.t[s] = m, v, t
        bc1 = 1 - self.b1 ** t.float()
        bc2 = 1 - self.b2 ** t.float()
        upd = (m / bc1[:, None]) / ((v / bc2[:, None]).sqrt() + self.eps)
        rows = self.table[ids].float()
        row_lr = torch.full((len(ids), 1), float(lr), device=rows.device) if scale is None else \
            float(lr) * scale.float().reshape(-1, 1)
        if self.weight_decay:
            rows = rows * (1 - row_lr * self.weight_decay)
        self.table[ids] = (rows - row_lr * upd).to(self.table.dtype)

    def state_dict(self) -> dict[str, Tensor]:
        return {"slot": self.slot, "m": self.m, "v": self.v, "t": self.t}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        self.slot = state["slot"].to(self.slot.device)
        self.m, self.v, self.t = (state[k].to(self.slot.device) for k in ("m", "v", "t"))


# ----------------------------------------------------------------------------- helpers


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total`` (step is 0-based)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled example order of ``epoch`` (a function of seed and epoch only: resumable)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def frequent_token_ids(data: EncodedPairs, n: int) -> Tensor:
    """The ``n`` most frequent non-special token ids of ``data`` (ties by id) -> [<= n]."""
    c: Counter = Counter()
    for ids, sp in zip(data.input_ids, data.special):
        c.update(i for i, s in zip(ids, sp) if not s)
    top = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return torch.tensor(sorted(i for i, _ in top), dtype=torch.long)


def content_token_ids(data: EncodedPairs) -> Tensor:
    """Sorted unique non-special token ids of ``data`` -> [n] (the rows EPT can push)."""
    ids = {i for row, sp in zip(data.input_ids, data.special) for i, s in zip(row, sp) if not s}
    return torch.tensor(sorted(ids), dtype=torch.long)


def touch_steps(data: EncodedPairs, seed: int, total: int, warmup: int, batch_size: int) -> dict[int, float]:
    """{row id: Σ lr_factor(step) over the steps whose batch holds the row} for the planned batch
    order of :func:`epoch_order` (rows never in a batch are absent)."""
    n = len(data)
    spe = math.ceil(n / batch_size)
    per_example = [np.unique([i for i, s in zip(row, sp) if not s]) for row, sp in zip(data.input_ids, data.special)]
    weight: dict[int, float] = {}
    order: list[int] = []
    for step in range(total):
        epoch, pos = divmod(step, spe)
        if pos == 0 or not order:
            order = epoch_order(n, seed, epoch)
        idx = order[pos * batch_size: (pos + 1) * batch_size]
        ids = np.unique(np.concatenate([per_example[i] for i in idx])) if idx else np.zeros(0, dtype=int)
        f = lr_factor(step, total, warmup)
        for t in ids.tolist():
            weight[t] = weight.get(t, 0.0) + f
    return weight


def median_touch_steps(data: EncodedPairs, seed: int, total: int, warmup: int, batch_size: int) -> float:
    """Median over the touched rows of :func:`touch_steps` -> float (0 when nothing is touched)."""
    vals = [v for v in touch_steps(data, seed, total, warmup, batch_size).values() if v > 0]
    return float(np.median(vals)) if vals else 0.0


def row_budget_scale(touch: Mapping[int, float], vocab: int) -> Tensor:
    """Per-row multiplier of the table lr -> [vocab]: min(1, S_median / S_t).

    With the reach rule the median touched row gets just enough step budget to be pushed past
    the margin; a row in many more batches would get many times that budget and, once the
    hinge stops pushing it, drift with the task gradient at the (large) table lr. Scaling
    its lr by S_median / S_t gives every row at least as frequent as the median the same
    total budget (docs/method.md).
    """
    scale = torch.ones(vocab, dtype=torch.float32)
    vals = [v for v in touch.values() if v > 0]
    if vals:
        med = float(np.median(vals))
        for t, v in touch.items():
            if v > med:
                scale[t] = med / v
    return scale


def param_groups(clf: nn.Module, table: Tensor, mode: str, lr: float, emb_lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups: decayed matrices, undecayed biases/norms (both at ``lr``) and, on the dense
    path, the word-embedding table as its own group at ``emb_lr`` (sparse: :class:`RowAdam`)."""
    decay, no_decay = [], []
    for name, p in clf.named_parameters():
        if not p.requires_grad or p is table:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay, "lr": lr, "base_lr": lr},
              {"params": no_decay, "weight_decay": 0.0, "lr": lr, "base_lr": lr}]
    if mode == "dense" and table.requires_grad:
        groups.append({"params": [table], "weight_decay": weight_decay, "lr": emb_lr, "base_lr": emb_lr})
    return [g for g in groups if g["params"]]


def _adamw(groups: list[dict], lr: float) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel over all tensors) where torch supports it: on CPU it is ~10x
    faster than the per-tensor loop for a large table, and it is what HF's Trainer uses."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.AdamW(groups, lr=lr)


def _dist():
    """(world_size, rank, local_rank), initialising torch.distributed when torchrun launched us."""
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    if ws <= 1:
        return 1, 0, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_world_size(), dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))


def _barrier(ws: int) -> None:
    if ws > 1:
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def _atomic_dir(dest: Path):
    """Yield a temp dir next to ``dest``; on success it is renamed to ``dest`` (which must not exist)."""
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=dest.parent))
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _numbered(out: Path, prefix: str) -> list[tuple[int, Path]]:
    found = []
    for p in out.glob(prefix + "*"):
        tail = p.name[len(prefix):]
        if p.is_dir() and tail.isdigit():
            found.append((int(tail), p))
    return sorted(found)


def _trim_jsonl(path: Path, max_step: int) -> None:
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= max_step:
                keep.append(line)
        except ValueError:
            continue  # a line cut short by the interruption
    write_text(path, "".join(k + "\n" for k in keep))


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


# ----------------------------------------------------------------------------- the trainer


class Trainer:
    """One training run. ``Trainer(cfg).run()``; the CLI and the benchmarks use it alike."""

    def __init__(self, cfg: TrainConfig, progress: bool = True, log: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.weights = cfg.check()
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.spec = get_task(cfg.task)
        self.out = Path(cfg.out)
        self.run_info: dict[str, Any] = {"attention_dropout": cfg.attention_dropout}  # filled in by run()

    # -- data -----------------------------------------------------------------------------
    def _read_data(self):
        cfg = self.cfg
        train = read_pair_file(cfg.train_file, self.spec)
        if cfg.dev_file:
            dev = read_pair_file(cfg.dev_file, self.spec)
        else:
            train, dev = grouped_holdout_split(train, cfg.dev_fraction, cfg.dev_seed)
        train = subsample(train, cfg.max_train_rows, cfg.seed)
        return train, dev

    # -- output directory -------------------------------------------------------------------
    def _status(self) -> tuple[str, dict | None]:
        """State of ``out`` (read only): ``new``, ``resume``, ``trained`` (checkpoint written,
        zero-shot evaluation pending) or ``complete``, with the saved meta for the last two.

        Raises AlignkitError when ``out`` holds a run with other settings or a model this run
        did not write.
        """
        out = self.out
        run_file = out / RUN_FILE
        if not run_file.is_file():
            if (out / "config.json").exists() or (out / META_FILE).exists():
                raise AlignkitError(f"output directory {out} already holds a model not written by this run; "
                                    "pass a new or empty --out")
            return "new", None
        try:
            saved = json.loads(run_file.read_text())
        except ValueError:
            raise AlignkitError(f"{run_file} is corrupt; delete {out} or pass a new --out") from None
        mine = self.cfg.identity()
        theirs = saved.get("identity", {})
        if theirs != mine:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise AlignkitError(f"output directory {out} holds a run with different settings "
                                f"({', '.join(diff[:4])}); pass a new --out to start another run")
        if saved.get("trained") and (out / META_FILE).is_file():
            return ("complete" if saved.get("complete") else "trained"), json.loads((out / META_FILE).read_text())
        return "resume", None

    def _mark(self, trained: bool, complete: bool) -> None:
        write_text(self.out / RUN_FILE, json.dumps({"identity": self.cfg.identity(), "trained": trained,
                                                    "complete": complete}, indent=1))

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

    # -- model ----------------------------------------------------------------------------
    def _load(self, device: str | None):
        from alignkit.inputs.encoders import load_encoder

        enc = load_encoder(self.cfg.model, device=device, dtype="fp32")
        emb = enc.model.get_input_embeddings() if hasattr(enc.model, "get_input_embeddings") else None
        if not isinstance(emb, nn.Embedding):
            raise AlignkitError(f"checkpoint {self.cfg.model} has no word-embedding table alignkit can train; "
                                "pass a BERT-family encoder")
        return enc

    def run(self, stop_after: int | None = None) -> TrainResult:
        """Train (or resume, or report a finished run). ``stop_after``: raise KeyboardInterrupt
        after that global step (used by the tests to simulate a killed run)."""
        cfg = self.cfg
        train_ex, dev_ex = self._read_data()
        ws, rank, local_rank = _dist()
        if rank == 0:
            ensure_writable_dir(self.out, "output directory")
        _barrier(ws)
        status, meta = self._status()
        if status in ("trained", "complete"):
            res = self._finished(status, meta, is_main=rank == 0)
            _barrier(ws)
            return res
        if rank == 0:
            for p in self.out.glob(TMP_PREFIX + "*"):  # left by an interrupted save
                shutil.rmtree(p, ignore_errors=True)

        device = cfg.device
        if device is None and ws > 1 and torch.cuda.is_available():
            device = f"cuda:{local_rank}"
        enc = self._load(device)
        dev = enc.device
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        torch.manual_seed(cfg.seed + rank)

        switcher = None
        if "cl" in self.weights and cfg.objective.cl_view == "codeswitch":
            switcher = CodeSwitcher.from_lexicons(cfg.objective.codeswitch_lexicons, cfg.objective.codeswitch_prob)
        self.augmenter = None
        if "rsda" in self.weights or "cl_rsda" in self.weights:  # RS-DA: WordNet synonyms, no lexicon
            from alignkit.train.rsda import SynonymAugmenter

            self.augmenter = SynonymAugmenter.from_wordnet(cfg.objective.rsda_copies, cfg.objective.wordnet_dir)

        prefix = enc.query_prefix
        train = tokenize_examples(enc, train_ex, cfg.max_length, prefix)
        dev_data = tokenize_examples(enc, dev_ex, cfg.max_length, prefix)
        pad_id = pad_id_of(enc.tokenizer)

        clf = PairClassifier(enc.model, len(self.spec.labels), cfg.dropout)
        needs_attn = "apt" in self.weights
        if cfg.attention_dropout is not None:  # one value for every variant (SPEC §3 v2)
            set_attention_dropout(enc.model, cfg.attention_dropout)
        if needs_attn:
            enc.model.set_attn_implementation("eager")  # sdpa returns no attention maps
            if attention_dropout_of(enc.model) > 0:
                raise AlignkitError(f"APT compares attention maps as distributions, but {cfg.model} has attention "
                                    f"dropout {attention_dropout_of(enc.model)}; set attention_dropout = 0 "
                                    "(for every variant of the study)")
        table_param = clf.word_embeddings.weight
        centroid_ids = frequent_token_ids(train, cfg.objective.ept_centroid_tokens) \
            if cfg.objective.ept_anchor == "centroid" else None
        # W⁰ is copied only when an objective reads it (EPT, APT); VME needs just ρ.
        anchors = Anchors(table_param.data, centroid_ids, keep_copy=bool({"ept", "apt"} & set(self.weights)),
                          offset_seed=cfg.seed, offset_scale=cfg.objective.ept_offset)

        mode = cfg.embeddings
        if mode == "auto":
            mode = "sparse" if dev.type == "cpu" and ws == 1 else "dense"
        if mode == "sparse" and ws > 1:
            raise AlignkitError("sparse embedding updates run in one process only; use --embeddings dense with torchrun")
        table_param.requires_grad_(mode == "dense")
        for p in clf.parameters():
            if p is not table_param:
                p.requires_grad_(True)
        objective = TrainingObjective(clf, self.weights, cfg.objective, anchors).to(dev)
        objective.train()
        model_for_step: nn.Module = objective
        if ws > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model_for_step = DDP(objective, device_ids=[dev.index] if dev.type == "cuda" else None)

        n_train = len(train)
        step_size = cfg.batch_size
        steps_per_epoch = math.ceil(n_train / step_size)
        total = cfg.max_steps if cfg.max_steps else cfg.epochs * steps_per_epoch
        warmup = int(cfg.warmup_ratio * total)
        eval_every = cfg.eval_every or steps_per_epoch

        train_ids = content_token_ids(train)
        self.row_scale = None
        emb_lr = self._embedding_lr(mode, train, total, warmup, anchors.rho, int(table_param.shape[1]),
                                    int(table_param.shape[0]))
        row_scale = None if self.row_scale is None else self.row_scale.to(dev)
        opt = _adamw(param_groups(clf, table_param, mode, cfg.lr, emb_lr, cfg.weight_decay), cfg.lr)
        row_opt = RowAdam(table_param.data, weight_decay=cfg.weight_decay) if mode == "sparse" else None
        tracker = TableTracker(table_param.data, train_ids, anchors.rho,
                               (anchors, cfg.objective.ept_anchor, cfg.objective.ept_margin)
                               if "ept" in self.weights else None)

        # ---- resume
        state = {"step": 0, "best_dev_acc": -1.0, "best_step": 0}
        states = _numbered(self.out, STATE_PREFIX)
        if states:
            state = self._load_state(states[-1][1], clf, opt, row_opt, dev, tracker)
            self.log(f"alignkit: resuming {self.out} from step {state['step']}")
        if rank == 0:
            for s, p in _numbered(self.out, BEST_PREFIX):
                if s > state["step"]:
                    shutil.rmtree(p, ignore_errors=True)
            _trim_jsonl(self.out / METRICS_FILE, state["step"])
            self._mark(False, False)
        resumed_from = state["step"]

        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=state["step"], disable=not self.progress or rank != 0,
                   desc=f"train {cfg.variant}", dynamic_ncols=True, file=sys.stderr)
        metrics_fh = open(self.out / METRICS_FILE, "a") if rank == 0 else None
        sums: dict[str, float] = {}
        n_logged = 0
        t0, c0 = time.perf_counter(), time.process_time()
        step = state["step"]
        try:
            while step < total:
                epoch, pos = divmod(step, steps_per_epoch)
                order = epoch_order(n_train, cfg.seed, epoch)
                idx = order[pos * step_size: (pos + 1) * step_size]
                shard = idx[rank::ws]
                micro = [shard[i::cfg.grad_accum] for i in range(cfg.grad_accum)]
                micro = [m for m in micro if m]
                batches = [self._make_batch(train, train_ex, m, pad_id, switcher, enc, epoch).to(dev) for m in micro]
                table = TableView(table_param)
                if mode == "sparse":
                    ids = [b.input_ids for b in batches] + [b.switched.input_ids for b in batches if b.switched is not None]
                    ids += [b.augmented.input_ids for b in batches if b.augmented is not None]
                    table = TableView.sparse(table_param, ids)
                factor = lr_factor(step, total, warmup)
                for g in opt.param_groups:
                    g["lr"] = g["base_lr"] * factor
                parts_sum: dict[str, float] = {}
                loss_sum = 0.0
                for k, b in enumerate(batches):
                    share = len(b) / len(shard)
                    sync = contextlib.nullcontext() if (ws == 1 or k == len(batches) - 1) else model_for_step.no_sync()
                    with sync:
                        with autocast_for(dev):
                            loss, parts = model_for_step(b, table)
                        (loss * share).backward()
                    loss_sum += float(loss.detach()) * share
                    for name, v in parts.items():
                        parts_sum[name] = parts_sum.get(name, 0.0) + float(v) * share
                params = [p for g in opt.param_groups for p in g["params"]]
                if table.rows is not None:
                    params = params + [table.rows]
                if cfg.clip and cfg.clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip)
                prev = table_param.detach().clone() if mode == "dense" and row_scale is not None else None
                opt.step()
                if prev is not None:  # dense path: the same per-row budget as RowAdam's
                    with torch.no_grad():
                        table_param.copy_(prev + row_scale[:, None] * (table_param - prev))
                    del prev
                opt.zero_grad(set_to_none=True)
                if row_opt is not None and table.rows is not None and table.rows.grad is not None:
                    row_opt.step(table.row_ids, table.rows.grad, emb_lr * factor,
                                 None if row_scale is None else row_scale[table.row_ids])
                for b in batches:
                    tracker.touch(b.input_ids[b.content_mask])
                step += 1
                sums["loss"] = sums.get("loss", 0.0) + loss_sum
                for name, v in parts_sum.items():
                    sums[name] = sums.get(name, 0.0) + v
                n_logged += 1
                bar.update(1)
                bar.set_postfix({k: f"{v / n_logged:.3f}" for k, v in sums.items()}, refresh=False)
                if metrics_fh is not None and (step % cfg.log_every == 0 or step == total or step == 1):
                    rec = {"step": step, "epoch": round(step / steps_per_epoch, 4), "lr": cfg.lr * factor,
                           "embedding_lr": emb_lr * factor, **{k: v / n_logged for k, v in sums.items()},
                           **tracker.snapshot(table_param.data), "time_s": round(time.perf_counter() - t0, 3),
                           "cpu_s": round(time.process_time() - c0, 3)}
                    metrics_fh.write(json.dumps(rec) + "\n")
                    metrics_fh.flush()
                    sums, n_logged = {}, 0
                is_eval = step % eval_every == 0 or step % steps_per_epoch == 0 or step == total
                is_save = is_eval or (cfg.save_every and step % cfg.save_every == 0)
                if is_eval:
                    if rank == 0:
                        acc = self._dev_accuracy(clf, dev_data, pad_id, dev)
                        best = acc > state["best_dev_acc"]
                        if best:
                            state["best_dev_acc"], state["best_step"] = acc, step
                            self._save_best(step, clf, enc, acc)
                        if metrics_fh is not None:
                            metrics_fh.write(json.dumps({"step": step, "event": "dev", "dev_acc": acc, "best": best,
                                                         **tracker.snapshot(table_param.data)}) + "\n")
                            metrics_fh.flush()
                        bar.write(f"step {step}: English dev accuracy {acc:.4f}{' (best)' if best else ''}")
                    _barrier(ws)
                if is_save:
                    state["step"] = step
                    if rank == 0:
                        self._save_state(step, state, clf, opt, row_opt, tracker)
                    _barrier(ws)
                if stop_after is not None and step >= stop_after:
                    raise KeyboardInterrupt
        finally:
            bar.close()
            if metrics_fh is not None:
                metrics_fh.close()

        rows: list[dict] = []
        if rank == 0:
            meta = self._finalize(state, total)
            rows = self._zero_shot(meta)
        _barrier(ws)
        return TrainResult(self.out, state["best_dev_acc"], state["best_step"], total, rows, resumed_from,
                           is_main=rank == 0)

    # -- pieces ---------------------------------------------------------------------------
    def _embedding_lr(self, mode: str, train: EncodedPairs, total: int, warmup: int, rho: float, hidden: int,
                      vocab: int) -> float:
        """The table's learning rate: ``embedding_lr`` if set; with EPT and none set, the reach rule
        of :func:`~alignkit.train.diagnostics.embedding_lr_rule` for the median touched row; else ``lr``."""
        cfg = self.cfg
        self.run_info.update({"embedding_mode": mode, "attention_dropout": cfg.attention_dropout})
        if mode == "frozen":
            self.run_info["embedding_lr"] = 0.0
            return 0.0
        if "ept" not in self.weights:
            lr = cfg.embedding_lr or cfg.lr
            self.run_info["embedding_lr"] = lr
            return lr
        per_row = touch_steps(train, cfg.seed, total, warmup, cfg.batch_size)
        vals = [v for v in per_row.values() if v > 0]
        touch = float(np.median(vals)) if vals else 0.0
        rule = embedding_lr_rule(cfg.objective.ept_margin, rho, touch, hidden) if touch > 0 else cfg.lr
        lr = cfg.embedding_lr or rule
        if not cfg.embedding_lr:  # the rule's per-row budget (frequent rows: lr · S_median / S_t)
            self.row_scale = row_budget_scale(per_row, vocab)
        if cfg.embedding_lr and cfg.embedding_lr < 0.5 * rule:
            self.log(f"alignkit: warning: embedding_lr {cfg.embedding_lr:g} lets EPT move the median touched row only "
                     f"~{cfg.embedding_lr / rule:.2f} of its margin in this run; the reach rule gives {rule:.3g} "
                     "(unset embedding_lr to use it)")
        self.run_info.update({"embedding_lr": lr, "embedding_lr_rule": rule, "median_touch_steps": touch})
        return lr

    def _make_batch(self, data: EncodedPairs, examples, indices: Sequence[int], pad_id: int,
                    switcher: CodeSwitcher | None, enc, epoch: int) -> PairBatch:
        b = collate(data, indices, pad_id)
        if switcher is not None:
            firsts, seconds = [], []
            for i in indices:
                rng = example_rng(self.cfg.seed, epoch, i)
                firsts.append(switcher.switch(examples[i].first, rng))
                seconds.append(switcher.switch(examples[i].second, rng))
            sw = tokenize_pairs(enc, firsts, seconds, [data.labels[i] for i in indices], self.cfg.max_length,
                                enc.query_prefix)
            b.switched = collate(sw, range(len(indices)), pad_id)
        aug = getattr(self, "augmenter", None)
        if aug is not None:
            b.augmented = self._augmented_batch(data, examples, indices, pad_id, aug, enc, epoch)
        return b

    def _augmented_batch(self, data: EncodedPairs, examples, indices: Sequence[int], pad_id: int, aug, enc,
                         epoch: int) -> PairBatch:
        """The RS-DA copies of ``indices`` as one batch [k·B, T], copy-major (row c·B + j = copy c of j)."""
        per_example = [aug.pair_copies(examples[i].first, examples[i].second, self.cfg.seed, epoch, i)
                       for i in indices]
        pairs = [per_example[j][c] for c in range(aug.copies) for j in range(len(indices))]
        labels = [data.labels[i] for _c in range(aug.copies) for i in indices]
        toks = tokenize_pairs(enc, [p[0] for p in pairs], [p[1] for p in pairs], labels, self.cfg.max_length,
                              enc.query_prefix)
        return collate(toks, range(len(pairs)), pad_id)

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

    def _save_best(self, step: int, clf: PairClassifier, enc, acc: float) -> None:
        dest = self.out / f"{BEST_PREFIX}{step:08d}"
        with _atomic_dir(dest) as tmp:
            save_hf_checkpoint(tmp, clf, enc, self._meta(enc, acc, step))
        for s, p in _numbered(self.out, BEST_PREFIX):
            if s != step:
                shutil.rmtree(p, ignore_errors=True)

    def _save_state(self, step: int, state: dict, clf: PairClassifier, opt, row_opt: RowAdam | None,
                    tracker: TableTracker) -> None:
        from safetensors.torch import save_file

        dest = self.out / f"{STATE_PREFIX}{step:08d}"
        if dest.exists():
            return
        with _atomic_dir(dest) as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in clf.state_dict().items()}, str(tmp / "model.safetensors"))
            extra = {"optimizer": opt.state_dict(), "rng_cpu": torch.get_rng_state(), "touched": tracker.state()}
            if torch.cuda.is_available():
                extra["rng_cuda"] = torch.cuda.get_rng_state_all()
            if row_opt is not None:
                extra["rows"] = row_opt.state_dict()
            torch.save(extra, tmp / "optimizer.pt")
            (tmp / "trainer.json").write_text(json.dumps(state))
        for s, p in _numbered(self.out, STATE_PREFIX):
            if s != step:
                shutil.rmtree(p, ignore_errors=True)

    def _load_state(self, path: Path, clf: PairClassifier, opt, row_opt: RowAdam | None, device,
                    tracker: TableTracker) -> dict:
        from safetensors.torch import load_file

        try:
            weights = load_file(str(path / "model.safetensors"), device=str(device))
            extra = torch.load(path / "optimizer.pt", map_location=device, weights_only=True)
            state = json.loads((path / "trainer.json").read_text())
        except Exception as e:  # noqa: BLE001 - any unreadable piece means the state is unusable
            raise AlignkitError(f"cannot resume from {path} ({type(e).__name__}); delete that folder to "
                                "resume from scratch") from None
        with torch.no_grad():
            missing, unexpected = clf.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise AlignkitError(f"training state {path} does not match the model; delete it or pass a new --out")
        base = [g["base_lr"] for g in opt.param_groups]
        opt.load_state_dict(extra["optimizer"])
        for g, lr in zip(opt.param_groups, base):  # the learning rates are this run's, not the saved ones
            g["base_lr"] = lr
        if "touched" in extra:
            tracker.load_state(extra["touched"])
        if row_opt is not None and "rows" in extra:
            row_opt.load_state_dict(extra["rows"])
        torch.set_rng_state(extra["rng_cpu"].cpu())
        if "rng_cuda" in extra and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in extra["rng_cuda"]])
        return state

    def _finalize(self, state: dict, total: int) -> dict:
        """Move the best checkpoint's files to the top of ``out``; drop resume states."""
        bests = _numbered(self.out, BEST_PREFIX)
        if not bests:
            raise AlignkitError(f"run in {self.out} has no best checkpoint; delete the folder and re-run")
        best_dir = bests[-1][1]
        for f in best_dir.iterdir():
            os.replace(f, self.out / f.name)
        shutil.rmtree(best_dir, ignore_errors=True)
        meta = json.loads((self.out / META_FILE).read_text())
        meta.update({"best_dev_acc": state["best_dev_acc"], "best_step": state["best_step"], "steps": total})
        write_text(self.out / META_FILE, json.dumps(meta, indent=1))
        write_manifest(self.out, self.cfg, meta.get("base_fingerprint", ""))
        from alignkit.train.diagnostics import summarize_metrics, write_training_diagnostics

        recs = [json.loads(x) for x in (self.out / METRICS_FILE).read_text().splitlines() if x.strip()] \
            if (self.out / METRICS_FILE).is_file() else []
        write_training_diagnostics(self.out, summarize_metrics(recs, meta))
        self._mark(True, False)  # from here on, a re-run only finishes the evaluation
        if not self.cfg.keep_state:
            for _, p in _numbered(self.out, STATE_PREFIX):
                shutil.rmtree(p, ignore_errors=True)
        return meta


def save_hf_checkpoint(dest: Path, clf: PairClassifier, enc, meta: dict) -> None:
    """Write ``clf`` as a HuggingFace encoder dir + ``classifier_head.safetensors`` + meta JSON."""
    from safetensors.torch import save_file

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a one-shard "Writing model shards" bar is noise
    model = clf.encoder
    extra = dict(getattr(model.config, "alignkit", None) or {})
    extra["query_prefix"] = enc.query_prefix
    extra["finetuned_from"] = str(meta.get("base_model", ""))
    model.config.alignkit = extra
    model.save_pretrained(str(dest), safe_serialization=True)
    enc.tokenizer.save_pretrained(str(dest))
    from alignkit.inputs.bundled import NORMALIZER_FILE

    norm = Path(enc.path) / NORMALIZER_FILE
    if norm.is_file():
        shutil.copyfile(norm, dest / NORMALIZER_FILE)
    save_file({k: v.detach().contiguous().cpu() for k, v in clf.head.state_dict().items()}, str(dest / HEAD_FILE))
    (dest / META_FILE).write_text(json.dumps(meta, indent=1))
    umask = os.umask(0)
    os.umask(umask)
    for f in dest.iterdir():  # safetensors writes 0600; a checkpoint is meant to be shared
        os.chmod(f, 0o666 & ~umask)


def _rsda_source(cfg: TrainConfig) -> dict | None:
    """Where RS-DA's synonyms came from (WordNet dir, word count), or None when the run has no RS-DA."""
    if cfg.variant == "probe" or not {"rsda", "cl_rsda"} & set(resolve_variant(cfg.variant, cfg.weights)):
        return None
    from alignkit.train.synonyms import find_wordnet_dir, load_synonyms

    d = find_wordnet_dir(cfg.objective.wordnet_dir)
    return {"source": "WordNet 3.0", "dir": str(d), "words": len(load_synonyms(d))}


def write_manifest(out: Path, cfg: TrainConfig, base_fingerprint: str) -> None:
    """``manifest.json``: versions, base-model fingerprint, seeds, lexicon hashes, command line."""
    import platform

    import transformers

    lex = {}
    if cfg.objective.cl_view == "codeswitch":
        try:
            from alignkit.inputs.lexicons import load_lexicon

            lex = {p: load_lexicon(p, split="train").sha256 for p in cfg.objective.codeswitch_lexicons}
        except AlignkitError:
            lex = {}
    man = {"alignkit_version": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
           "python": platform.python_version(), "command": sys.argv, "base_model": cfg.model,
           "base_fingerprint": base_fingerprint, "seed": cfg.seed, "codeswitch_lexicons_sha256": lex,
           "rsda_synonyms": _rsda_source(cfg), "config": cfg.to_dict()}
    write_text(out / "manifest.json", json.dumps(man, indent=1, default=str))


def train(cfg: TrainConfig, progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Run (or resume) the training run ``cfg`` -> :class:`TrainResult`."""
    return Trainer(cfg, progress=progress).run(stop_after=stop_after)


# ----------------------------------------------------------------------------- linear probe


def train_probe(cfg: TrainConfig, progress: bool = True, cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0)) -> TrainResult:
    """Baseline: the untuned encoder + a linear probe on its frozen sentence vectors.

    Features are the classifier's input (mean of non-special tokens, last layer, dropout
    off); scikit-learn's multinomial logistic regression on standardised features is fit
    on the English train split for each C in ``cs``, the best on English dev is kept, and
    the scaler is folded into a ``Linear`` head, so the probe is saved, loaded and evaluated
    exactly like a fine-tuned checkpoint.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    tr = Trainer(cfg, progress=progress)
    train_ex, dev_ex = tr._read_data()
    ensure_writable_dir(tr.out, "output directory")
    status, done = tr._status()
    if status in ("trained", "complete"):
        return tr._finished(status, done)
    enc = tr._load(cfg.device)
    clf = PairClassifier(enc.model, len(tr.spec.labels)).to(enc.device).eval()
    pad_id = pad_id_of(enc.tokenizer)

    @torch.no_grad()
    def features(examples) -> np.ndarray:
        data = tokenize_examples(enc, examples, cfg.max_length, enc.query_prefix)
        out = np.zeros((len(data), enc.hidden_size), dtype=np.float64)
        order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
        from tqdm.auto import tqdm

        for s in tqdm(range(0, len(order), cfg.eval_batch_size), disable=not progress, desc="probe features",
                      file=sys.stderr):
            idx = order[s: s + cfg.eval_batch_size]
            b = collate(data, idx, pad_id).to(enc.device)
            with autocast_for(enc.device):
                h = enc.model(input_ids=b.input_ids, attention_mask=b.attention_mask,
                              **({"token_type_ids": b.token_type_ids} if b.token_type_ids is not None else {}))
            from alignkit.train.objectives import mean_pool

            out[idx] = mean_pool(h.last_hidden_state.float(), b.content_mask).cpu().numpy()
        return out

    xtr, xdv = features(train_ex), features(dev_ex)
    ytr = np.array([e.label for e in train_ex])
    ydv = np.array([e.label for e in dev_ex])
    scaler = StandardScaler().fit(xtr)
    best = None
    for c in cs:
        lr = LogisticRegression(C=c, max_iter=2000, random_state=cfg.seed).fit(scaler.transform(xtr), ytr)
        acc = float((lr.predict(scaler.transform(xdv)) == ydv).mean())
        tr.log(f"probe C={c}: English dev accuracy {acc:.4f}")
        if best is None or acc > best[0]:
            best = (acc, c, lr)
    acc, c, lr = best
    w = lr.coef_ / scaler.scale_[None, :]
    b = lr.intercept_ - w @ scaler.mean_
    if w.shape[0] == 1:  # binary task: sklearn gives one row; logits (0, z) give the same argmax
        w = np.vstack([np.zeros_like(w), w])
        b = np.concatenate([[0.0], b])
    with torch.no_grad():
        clf.head.weight.copy_(torch.from_numpy(w).float())
        clf.head.bias.copy_(torch.from_numpy(b).float())
    meta = tr._meta(enc, acc, 0)
    meta.update({"variant": "probe", "probe_C": c, "best_dev_acc": acc, "best_step": 0, "steps": 0,
                 "weights": {}})
    with _atomic_dir(tr.out / f"{BEST_PREFIX}{0:08d}") as tmp:
        save_hf_checkpoint(tmp, clf, enc, meta)
    best_dir = tr.out / f"{BEST_PREFIX}{0:08d}"
    for f in best_dir.iterdir():
        os.replace(f, tr.out / f.name)
    shutil.rmtree(best_dir, ignore_errors=True)
    write_manifest(tr.out, cfg, enc.fingerprint)
    tr._mark(True, False)
    rows = tr._zero_shot(meta)
    return TrainResult(tr.out, acc, 0, 0, rows)
