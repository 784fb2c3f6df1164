"""The linear-probe baseline: the untuned encoder + a logistic-regression head on frozen vectors.

Features are the classifier's input (mean of non-special tokens, last layer, dropout off);
scikit-learn's multinomial logistic regression on standardised features is fit on the
English train split for each C, the best on English dev is kept, and the scaler is folded
into the ``Linear`` head, so the probe is saved, loaded and evaluated exactly like a
fine-tuned checkpoint (same output directory layout, same resume rules).
"""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
import torch

from alignkit.atomic import ensure_writable_dir
from alignkit.training.checkpoint import BEST_PREFIX, atomic_dir, promote_best, save_hf_checkpoint, write_manifest
from alignkit.training.config import TrainConfig
from alignkit.training.pairs import autocast_for, collate, pad_id_of, tokenize_examples
from alignkit.training.model import PairClassifier
from alignkit.training.trainer import Trainer, TrainResult


@torch.no_grad()
def sentence_features(clf: PairClassifier, enc, examples, max_length: int, batch_size: int,
                      progress: bool = False) -> np.ndarray:
    """The head's input for ``examples`` -> float64 [N, H]: mean of the non-special tokens of the
    last layer (length-sorted batches; ``clf`` must be in eval mode)."""
    from tqdm.auto import tqdm

    data = tokenize_examples(enc, examples, max_length, enc.query_prefix)
    pad_id = pad_id_of(enc.tokenizer)
    out = np.zeros((len(data), enc.hidden_size), dtype=np.float64)
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    for s in tqdm(range(0, len(order), batch_size), disable=not progress, desc="probe features", file=sys.stderr):
        idx = order[s: s + batch_size]
        b = collate(data, idx, pad_id).to(enc.device)
        with autocast_for(enc.device):
            sent = clf.run(clf.word_embeddings(b.input_ids), b, sentence_layer=-1, with_head=False).sentence
        out[idx] = sent.float().cpu().numpy()
    return out


def fit_probe_head(xtr: np.ndarray, ytr: np.ndarray, xdv: np.ndarray, ydv: np.ndarray, cs: Sequence[float],
                   seed: int, log) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Best-on-dev logistic regression over ``cs`` -> (dev acc, C, weight [C_labels, H], bias [C_labels])
    of a ``Linear`` head on the raw features (the standard scaler folded in)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(xtr)
    best = None
    for c in cs:
        lr = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(scaler.transform(xtr), ytr)
        acc = float((lr.predict(scaler.transform(xdv)) == ydv).mean())
        log(f"probe C={c}: English dev accuracy {acc:.4f}")
        if best is None or acc > best[0]:
            best = (acc, c, lr)
    acc, c, lr = best
    w = lr.coef_ / scaler.scale_[None, :]
    b = lr.intercept_ - w @ scaler.mean_
    if w.shape[0] == 1:  # binary task: sklearn gives one row; logits (0, z) give the same argmax
        w = np.vstack([np.zeros_like(w), w])
        b = np.concatenate([[0.0], b])
    return acc, c, w, b


def train_probe(cfg: TrainConfig, progress: bool = True, cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0)) -> TrainResult:
    """Baseline: the untuned encoder + a linear probe on its frozen sentence vectors -> :class:`TrainResult`."""
    tr = Trainer(cfg, progress=progress)
    train_ex, dev_ex = tr._read_data()
    ensure_writable_dir(tr.out, "output directory")
    status, done = tr._status()
    if status in ("trained", "complete"):
        return tr._finished(status, done)
    enc = tr._load(cfg.device)
    clf = PairClassifier(enc.model, len(tr.spec.labels)).to(enc.device).eval()
    xtr = sentence_features(clf, enc, train_ex, cfg.max_length, cfg.eval_batch_size, progress)
    xdv = sentence_features(clf, enc, dev_ex, cfg.max_length, cfg.eval_batch_size, progress)
    acc, c, w, b = fit_probe_head(xtr, np.array([e.label for e in train_ex]), xdv,
                                  np.array([e.label for e in dev_ex]), cs, cfg.seed, tr.log)
    with torch.no_grad():
        clf.head.weight.copy_(torch.from_numpy(w).float())
        clf.head.bias.copy_(torch.from_numpy(b).float())
    meta = tr._meta(enc, acc, 0)
    meta.update({"variant": "probe", "probe_C": c, "best_dev_acc": acc, "best_step": 0, "steps": 0,
                 "weights": {}})
    with atomic_dir(tr.out / f"{BEST_PREFIX}{0:08d}") as tmp:
        save_hf_checkpoint(tmp, clf, enc, meta)
    promote_best(tr.out)
    write_manifest(tr.out, cfg, enc.fingerprint)
    tr._mark(True, False)
    rows = tr._zero_shot(meta)
    return TrainResult(tr.out, acc, 0, 0, rows)


__all__ = ["train_probe", "sentence_features", "fit_probe_head"]
