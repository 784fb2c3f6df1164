"""The batches of a training step: which examples, padded, with their code-switched / RS-DA views.

The example order of an epoch is a function of (seed, epoch) only, and every view is seeded
per (seed, epoch, example), so a resumed run sees exactly the batches an uninterrupted one
would.
"""
from __future__ import annotations

from typing import Any, Sequence

from alignkit.training.codeswitch import CodeSwitcher, example_rng
from alignkit.training.pairs import EncodedPairs, collate, tokenize_pairs
from alignkit.training.model import PairBatch
from alignkit.training.optim import epoch_order


def step_micro_batches(n: int, seed: int, step: int, steps_per_epoch: int, batch_size: int, rank: int, ws: int,
                       grad_accum: int) -> tuple[int, list[int], list[list[int]]]:
    """Global ``step`` -> (epoch, this rank's example indices, their non-empty micro-batches)."""
    epoch, pos = divmod(step, steps_per_epoch)
    order = epoch_order(n, seed, epoch)
    shard = order[pos * batch_size: (pos + 1) * batch_size][rank::ws]
    return epoch, shard, [m for m in (shard[i::grad_accum] for i in range(grad_accum)) if m]


def pair_batch(data: EncodedPairs, examples, indices: Sequence[int], pad_id: int, enc: Any, epoch: int, seed: int,
               max_length: int, switcher: CodeSwitcher | None = None, augmenter: Any = None) -> PairBatch:
    """Examples ``indices`` as a padded :class:`PairBatch` (CPU), with ``switched`` (code-switched
    view, same labels) when a ``switcher`` is given and ``augmented`` (RS-DA copies) with an ``augmenter``."""
    b = collate(data, indices, pad_id)
    if switcher is not None:
        firsts, seconds = [], []
        for i in indices:
            rng = example_rng(seed, epoch, i)
            firsts.append(switcher.switch(examples[i].first, rng))
            seconds.append(switcher.switch(examples[i].second, rng))
        sw = tokenize_pairs(enc, firsts, seconds, [data.labels[i] for i in indices], max_length, enc.query_prefix)
        b.switched = collate(sw, range(len(indices)), pad_id)
    if augmenter is not None:
        b.augmented = augmented_batch(data, examples, indices, pad_id, augmenter, enc, epoch, seed, max_length)
    return b


def augmented_batch(data: EncodedPairs, examples, indices: Sequence[int], pad_id: int, aug: Any, enc: Any,
                    epoch: int, seed: int, max_length: int) -> PairBatch:
    """The RS-DA copies of ``indices`` as one batch [k·B, T], copy-major (row c·B + j = copy c of j)."""
    per_example = [aug.pair_copies(examples[i].first, examples[i].second, seed, epoch, i) for i in indices]
    pairs = [per_example[j][c] for c in range(aug.copies) for j in range(len(indices))]
    labels = [data.labels[i] for _c in range(aug.copies) for i in indices]
    toks = tokenize_pairs(enc, [p[0] for p in pairs], [p[1] for p in pairs], labels, max_length, enc.query_prefix)
    return collate(toks, range(len(pairs)), pad_id)


__all__ = ["step_micro_batches", "pair_batch", "augmented_batch"]
