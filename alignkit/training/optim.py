"""Optimisation: AdamW param groups, the row-wise Adam of the embedding table, the lr schedule,
and the table learning rate of EPT runs (the reach rule and its per-row budget).

On CPU (single process) the word-embedding table stays out of AdamW: each step copies the
rows its batch touches into a small leaf tensor and :class:`RowAdam` updates only those rows
(lazy Adam), so steps that train the table (EPT) cost about what a frozen-table step costs
instead of a 96M-parameter dense update. :func:`table_learning_rate` picks the table's
learning rate (docs/method.md): ``embedding_lr`` if set; with EPT the reach rule of
:func:`~alignkit.training.diagnostics.embedding_lr_rule` for the median touched row, with
:func:`row_budget_scale` capping the budget of more frequent rows; else ``lr``.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from alignkit.training.diagnostics import embedding_lr_rule
from alignkit.training.pairs import EncodedPairs


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


def make_adamw(groups: list[dict], lr: float) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel over all tensors) where torch supports it: on CPU it is ~10x
    faster than the per-tensor loop for a large table, and it is what HF's Trainer uses."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.AdamW(groups, lr=lr)



def table_learning_rate(cfg: Any, reach_rule: bool, mode: str, train: EncodedPairs, total: int,
                        warmup: int, rho: float, hidden: int, vocab: int,
                        log: Callable[[str], None]) -> tuple[float, Tensor | None, dict[str, Any]]:
    """The table's learning rate for a run of ``total`` steps -> (lr, per-row scale [vocab] or None,
    facts for the checkpoint meta: embedding mode, attention dropout, lr, rule, median touch steps).

    ``cfg`` is the :class:`~alignkit.training.config.TrainConfig`; ``rho`` the RMS row norm of W⁰;
    ``reach_rule``: whether an objective of the run asks for the reach rule's rate (EPT, and the
    ``tablelr`` control that trains the table at exactly that rate without EPT's loss).
    """
    info: dict[str, Any] = {"embedding_mode": mode, "attention_dropout": cfg.attention_dropout}
    if mode == "frozen":
        info["embedding_lr"] = 0.0
        return 0.0, None, info
    if not reach_rule:
        lr = cfg.embedding_lr or cfg.lr
        info["embedding_lr"] = lr
        return lr, None, info
    per_row = touch_steps(train, cfg.seed, total, warmup, cfg.batch_size)
    vals = [v for v in per_row.values() if v > 0]
    touch = float(np.median(vals)) if vals else 0.0
    rule = embedding_lr_rule(cfg.objective.ept_margin, rho, touch, hidden) if touch > 0 else cfg.lr
    lr = cfg.embedding_lr or rule
    scale = None
    if not cfg.embedding_lr:  # the rule's per-row budget (frequent rows: lr · S_median / S_t)
        scale = row_budget_scale(per_row, vocab)
    if cfg.embedding_lr and cfg.embedding_lr < 0.5 * rule:
        log(f"alignkit: warning: embedding_lr {cfg.embedding_lr:g} lets EPT move the median touched row only "
            f"~{cfg.embedding_lr / rule:.2f} of its margin in this run; the reach rule gives {rule:.3g} "
            "(unset embedding_lr to use it)")
    info.update({"embedding_lr": lr, "embedding_lr_rule": rule, "median_touch_steps": touch})
    return lr, scale, info


__all__ = ["RowAdam", "lr_factor", "epoch_order", "frequent_token_ids", "content_token_ids", "touch_steps",
           "median_touch_steps", "row_budget_scale", "param_groups", "make_adamw", "table_learning_rate"]
