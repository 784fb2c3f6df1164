"""The sentence-pair pipeline shared by training and classifier evaluation: tokenise pairs,
pad a batch into a :class:`~alignkit.training.model.PairBatch`, run a classifier over them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from alignkit.inputs.taskdata import PairExample
from alignkit.training.model import PairBatch, PairClassifier


@dataclass
class EncodedPairs:
    """Tokenised sentence pairs (lists of token ids, unpadded) and their labels."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    special: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def tokenize_pairs(enc: Any, firsts: Sequence[str], seconds: Sequence[str], labels: Sequence[int],
                   max_length: int, prefix: str = "") -> EncodedPairs:
    """Tokenise (first, second) pairs with ``enc`` (an :class:`alignkit.encoders.Encoder`).

    ``prefix`` (E5's ``"query: "``) goes before the first sentence; pairs longer than
    ``max_length`` tokens are truncated longest-first.
    """
    norm = getattr(enc, "normalize", None)
    second = [norm(s) for s in seconds] if norm is not None else list(seconds)
    tok = enc.tokenize([prefix + a for a in firsts], text_pair=second, truncation=True,
                       max_length=max_length, return_special_tokens_mask=True, return_attention_mask=False)
    types = tok.get("token_type_ids")
    return EncodedPairs(list(tok["input_ids"]), list(types) if types is not None else None,
                        list(tok["special_tokens_mask"]), [int(y) for y in labels])


def tokenize_examples(enc: Any, examples: Sequence[PairExample], max_length: int, prefix: str = "") -> EncodedPairs:
    return tokenize_pairs(enc, [e.first for e in examples], [e.second for e in examples],
                          [e.label for e in examples], max_length, prefix)


def collate(data: EncodedPairs, indices: Sequence[int], pad_id: int) -> PairBatch:
    """Pad the examples ``indices`` of ``data`` to their longest -> :class:`PairBatch` (CPU)."""
    n = len(indices)
    t = max(len(data.input_ids[i]) for i in indices)
    ids = torch.full((n, t), pad_id, dtype=torch.long)
    att = torch.zeros((n, t), dtype=torch.long)
    special = torch.ones((n, t), dtype=torch.bool)
    types = torch.zeros((n, t), dtype=torch.long) if data.token_type_ids is not None else None
    for r, i in enumerate(indices):
        x = data.input_ids[i]
        ids[r, : len(x)] = torch.tensor(x)
        att[r, : len(x)] = 1
        special[r, : len(x)] = torch.tensor(data.special[i], dtype=torch.bool)
        if types is not None:
            types[r, : len(x)] = torch.tensor(data.token_type_ids[i])
    labels = torch.tensor([data.labels[i] for i in indices], dtype=torch.long)
    return PairBatch(ids, att, types, att.bool() & ~special, labels)


def pad_id_of(tokenizer: Any) -> int:
    pid = getattr(tokenizer, "pad_token_id", None)
    return int(pid) if pid is not None else 0


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA, a no-op elsewhere."""
    import contextlib

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict(classifier: PairClassifier, data: EncodedPairs, pad_id: int, batch_size: int = 64,
            device: torch.device | None = None) -> np.ndarray:
    """Predicted class per example -> int array [N]. Runs in eval mode, length-sorted batches."""
    device = device or next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    out = np.empty(len(data), dtype=np.int64)
    try:
        for s in range(0, len(order), batch_size):
            idx = order[s: s + batch_size]
            b = collate(data, idx, pad_id).to(device)
            with autocast_for(device):
                logits = classifier.run(classifier.word_embeddings(b.input_ids), b).logits
            out[idx] = logits.float().argmax(-1).cpu().numpy()
    finally:
        classifier.train(was_training)
    return out
