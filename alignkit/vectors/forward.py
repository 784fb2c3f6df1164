"""The extraction engine: token plans, padding-free batches, pooled forward passes, CPU workers.

Extraction describes its work as token id sequences plus a :class:`Picks` table (which
positions of which sequence feed which output row, with what weight); :func:`pooled_forward`
runs the encoder over the sequences and returns the pooled ``[layers, rows, dim]`` tensor.
Only :class:`alignkit.inputs.encoders.EncoderProtocol` is used: ``tokenize``,
``hidden_states``, ``max_length``, ``hidden_size``, ``device``.

How it is fast (SPEC §4): all layers come from one forward pass under
``torch.inference_mode``; sequences are grouped by exact token length, so no batch has
padding and no attention mask is needed; batches are filled up to a token budget; pooling
happens on the device, per batch, as one small batched matmul with a ``[groups, tokens]``
weight matrix; on CPU, batches run concurrently, one per intra-op thread, each
single-threaded.

Decoder-only models (``pads_freely``) differ in two ways, both declared on the model object:
neighbouring lengths share a batch, right-padded (a causal model's tokens never see later
positions, so the pads change nothing a pick reads), and each layer is pooled inside the
forward through the model's ``pool_layers`` instead of a generator over ``hidden_states``.
On CUDA out-of-memory a batch is retried in halves (:class:`BatchAdaptation`).
"""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from alignkit.errors import AlignkitError

# Tokens per forward pass. On CPU ~2k tokens is as fast per token as bigger batches (while
# activations stay in cache) and splits work evenly over the per-core workers; GPUs want
# far more rows to fill the device.
DEFAULT_BATCH_TOKENS_CPU = 2048
DEFAULT_BATCH_TOKENS_GPU = 65536


def tokenise(encoder: Any, texts: list[str], offsets: bool = False) -> dict:
    """Token ids (specials included, truncated to the model's limit) and the special mask."""
    return encoder.tokenize(list(texts), add_special_tokens=True, truncation=True,
                            max_length=encoder.max_length, return_special_tokens_mask=True,
                            return_offsets_mapping=offsets, return_attention_mask=False,
                            return_token_type_ids=False)


def default_batch_tokens(encoder: Any) -> int:
    dev = getattr(encoder, "device", None)
    return DEFAULT_BATCH_TOKENS_GPU if getattr(dev, "type", str(dev)) == "cuda" else DEFAULT_BATCH_TOKENS_CPU


@dataclass
class Picks:
    """Which token positions of which sequence feed which output row, with what weight.

    A group is one (sequence, row) pair with its positions: row ``row`` accumulates
    ``weight * sum(hidden[seq, p] for p in positions)``. Stored flat, one entry per position.
    """

    group: list[int] = field(default_factory=list)
    seq: list[int] = field(default_factory=list)
    pos: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    n_groups: int = 0

    def add(self, seq: int, positions: Sequence[int], row: int, weight: float | Sequence[float]) -> None:
        """One group; ``weight`` is one weight for every position or one per position."""
        k = len(positions)
        self.group.extend([self.n_groups] * k)
        self.seq.extend([seq] * k)
        self.pos.extend(positions)
        self.rows.extend([row] * k)
        self.weights.extend([weight] * k if isinstance(weight, (int, float)) else list(weight))
        self.n_groups += 1

    def one_group_per_row(self, n_rows: int) -> bool:
        """Whether every row is fed by exactly one group (isolated words, sentences)."""
        group_rows = np.zeros(self.n_groups, dtype=np.int64)
        group_rows[np.asarray(self.group, dtype=np.int64)] = np.asarray(self.rows, dtype=np.int64)
        return self.n_groups == n_rows and np.array_equal(np.bincount(group_rows, minlength=n_rows),
                                                          np.ones(n_rows, dtype=np.int64))


@dataclass
class _SortedPicks:
    """Picks sorted by sequence, so each batch's entries are contiguous per sequence."""

    group: np.ndarray
    pos: np.ndarray
    row: np.ndarray
    weight: np.ndarray
    starts: np.ndarray   # [sequences]: first entry of each sequence
    ends: np.ndarray

    @classmethod
    def of(cls, picks: Picks, n_seqs: int) -> "_SortedPicks":
        seq_arr = np.asarray(picks.seq, dtype=np.int64)
        order = np.argsort(seq_arr, kind="stable")
        seq_sorted = seq_arr[order]
        return cls(group=np.asarray(picks.group, dtype=np.int64)[order],
                   pos=np.asarray(picks.pos, dtype=np.int64)[order],
                   row=np.asarray(picks.rows, dtype=np.int64)[order],
                   weight=np.asarray(picks.weights, dtype=np.float32)[order],
                   starts=np.searchsorted(seq_sorted, np.arange(n_seqs), side="left"),
                   ends=np.searchsorted(seq_sorted, np.arange(n_seqs), side="right"))


def plan_batches(lengths: np.ndarray, batch_tokens: int, pad: bool = False) -> list[np.ndarray]:
    """Group sequence indices into batches of equal token length, each under the budget.

    Equal lengths mean no padding (and no attention mask); the number of forward passes is
    at most (distinct lengths + total tokens / budget). ``pad`` (causal models, where right
    padding cannot change a text's own tokens): consecutive lengths share a batch, padded on
    the right to its longest, while the padded batch stays under the budget and wastes at most
    a quarter of its tokens on padding.
    """
    order = np.argsort(lengths, kind="stable")
    batches: list[np.ndarray] = []
    if len(order) == 0:
        return batches
    if pad:
        start, real = 0, 0
        for i, s in enumerate(order):
            n, count = int(lengths[s]), i - start + 1
            real += n
            if count > 1 and (count * n > batch_tokens or real < 0.75 * count * n):
                batches.append(order[start:i])
                start, real = i, n
        batches.append(order[start:])
        return batches
    sorted_len = lengths[order]
    cuts = np.flatnonzero(np.diff(sorted_len)) + 1
    for group in np.split(order, cuts):
        n = int(lengths[group[0]])
        per = max(1, batch_tokens // max(n, 1))
        for i in range(0, len(group), per):
            batches.append(group[i:i + per])
    return batches


def cpu_workers(encoder: Any, n_batches: int) -> int:
    """How many batches run at once: one per intra-op thread on CPU, one on a GPU."""
    import torch

    if torch.device(encoder.device).type != "cpu" or n_batches < 2:
        return 1
    return max(1, min(torch.get_num_threads(), n_batches))


def run_in_workers(fn, batches: list[np.ndarray], workers: int, cost: list[int]) -> list:
    """``[fn(b) for b in batches]`` by ``workers`` single-threaded threads, largest first
    (:func:`alignkit.workers.single_threaded_map`): small models on few CPU cores run faster as
    independent single-threaded forward passes than as one pass split across cores."""
    from alignkit.workers import single_threaded_map

    return single_threaded_map(fn, batches, workers, cost=cost, inference=False)


def _pool_batch(encoder: Any, ids: list[list[int]], sp: _SortedPicks, batch: np.ndarray, n: int,
                layers: list[int]) -> tuple[np.ndarray, Any]:
    """One padding-free batch of ``n``-token sequences: its output rows ``[groups]`` and pooled
    vectors ``[layers, groups, dim]`` (float32, on the encoder's device)."""
    import torch

    device, dim, b = encoder.device, int(encoder.hidden_size), len(batch)
    slot = {layer: i for i, layer in enumerate(layers)}
    # Pooling as a [groups, n] weight matrix applied per sequence: one small batched matmul
    # per layer (scatter-style index_add over tokens is far slower on CPU).
    sel = np.concatenate([np.arange(sp.starts[s], sp.ends[s]) for s in batch])
    local_seq = np.repeat(np.arange(b), sp.ends[batch] - sp.starts[batch])
    groups, first, local_group = np.unique(sp.group[sel], return_index=True, return_inverse=True)
    weights = np.zeros((len(groups), 1, n), dtype=np.float32)
    weights[local_group, 0, sp.pos[sel]] = sp.weight[sel]
    group_seq = local_seq[first]
    with torch.inference_mode():  # thread-local: entered in the worker itself
        if all(len(ids[i]) == n for i in batch):
            input_ids = torch.from_numpy(np.array([ids[i] for i in batch], dtype=np.int64)).to(device)
        else:  # right padding (pads_freely models only): never read by any pick
            rows_ids = np.full((b, n), int(getattr(encoder, "pad_token_id", 0) or 0), dtype=np.int64)
            for j, i in enumerate(batch):
                rows_ids[j, :len(ids[i])] = ids[i]
            input_ids = torch.from_numpy(rows_ids).to(device)
        weights_t = torch.from_numpy(weights).to(device)
        gather = None if np.array_equal(group_seq, np.arange(b)) else torch.from_numpy(group_seq).to(device)
        out = torch.empty((len(layers), len(groups), 1, dim), dtype=torch.float32, device=device)
        used = np.flatnonzero(weights.any(axis=(0, 1)))                   # pooled positions
        keep = torch.from_numpy(used).to(device) if len(used) < n else None
        weights_kept = weights_t[:, :, keep] if keep is not None else weights_t

        def pool(layer: int, hv) -> None:  # pooled in fp32 whatever the model's dtype
            hv = hv.float()
            if gather is not None:
                hv = hv.index_select(0, gather)
            wt = weights_t if hv.shape[1] == n else weights_kept
            torch.bmm(wt, hv, out=out[slot[layer]])                     # [groups, 1, dim]

        if hasattr(encoder, "pool_layers"):  # pooled inside the forward, one layer at a time
            encoder.pool_layers(input_ids, list(layers), pool)
        else:
            for layer, hv in encoder.hidden_states(input_ids, last_layer=max(layers), keep=keep):
                if layer in slot:
                    pool(layer, hv)
    return sp.row[sel][first], out.squeeze(2)


@dataclass
class BatchAdaptation:
    """Batches that shrink on out-of-memory (lm-eval's behaviour), kept per model for the manifest.

    A batch that raises CUDA out-of-memory is retried in halves; every later batch is cut to
    at most ``max_rows`` texts (the size that last fitted, halved at each OOM). ``halvings``:
    how many times that happened in this run.
    """

    max_rows: int | None = None
    halvings: int = 0
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict:
        return {"oom_halvings": self.halvings, "max_rows_after_oom": self.max_rows}

    def run(self, fn, batch: np.ndarray) -> list:
        """``[fn(part) for part in parts of batch]``, halving on out-of-memory."""
        out, pending = [], [batch]
        while pending:
            part = pending.pop(0)
            cap = self.max_rows
            if cap is not None and len(part) > cap:
                pending[:0] = [part[i:i + cap] for i in range(0, len(part), cap)]
                continue
            try:
                out.append(fn(part))
            except Exception as e:  # noqa: BLE001 - re-raised unless it is an out-of-memory error
                if not _is_oom(e):
                    raise
                if len(part) == 1:
                    raise AlignkitError("out of GPU memory with a single text in the batch; use a smaller model, "
                                        "a GPU with more memory, or --device cpu") from None
                with self._lock:
                    self.max_rows = max(1, min(self.max_rows or len(part), len(part)) // 2)
                    self.halvings += 1
                _free_device_memory()
                pending.insert(0, part)
        return out


def _is_oom(e: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(e, oom) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


def _free_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def adaptive_batches(encoder: Any) -> BatchAdaptation:
    """The model's :class:`BatchAdaptation` (created on first use, kept on the model object)."""
    state = getattr(encoder, "batch_adaptation", None)
    if not isinstance(state, BatchAdaptation):
        state = BatchAdaptation()
        try:
            encoder.batch_adaptation = state
        except AttributeError:  # a model object that takes no attributes: adapt within this call only
            pass
    return state


def pooled_forward(encoder: Any, ids: list[list[int]], picks: Picks, n_rows: int,
                   layers: list[int], batch_tokens: int, progress: bool, desc: str):
    """Run the encoder over ``ids`` and accumulate picked hidden states into rows.

    Returns a float32 torch tensor ``[len(layers), n_rows, dim]`` on the encoder's device.
    """
    import torch

    device = encoder.device
    dim = int(encoder.hidden_size)
    lengths = np.fromiter((len(s) for s in ids), dtype=np.int64, count=len(ids))
    sp = _SortedPicks.of(picks, len(ids))
    # When every row is fed by exactly one group (isolated words, sentences), batches write
    # their rows straight into the result; otherwise (contextual words) rows are summed at the end.
    final = torch.empty((len(layers), n_rows, dim), dtype=torch.float32, device=device) \
        if picks.one_group_per_row(n_rows) else None

    adapt = adaptive_batches(encoder)

    def run_one(batch: np.ndarray):
        rows, vecs = _pool_batch(encoder, ids, sp, batch, int(lengths[batch].max()), layers)
        if bar is not None:
            bar.update(len(batch))
        if final is not None:  # rows are disjoint across batches: workers can write them directly
            final[:, torch.from_numpy(rows).to(device)] = vecs
            return None
        return rows, vecs

    def run(batch: np.ndarray):
        parts = adapt.run(run_one, batch)
        if final is not None or len(parts) == 1:
            return parts[0] if final is None else None
        return np.concatenate([r for r, _ in parts]), torch.cat([v for _, v in parts], dim=1)

    batches = plan_batches(lengths, batch_tokens, pad=bool(getattr(encoder, "pads_freely", False)))
    workers = cpu_workers(encoder, len(batches))
    bar = None
    if progress and sys.stderr.isatty():   # no bar in logs and pipes (as the measurement bar)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ids), desc=desc, unit="seq", leave=False, dynamic_ncols=True)
    try:
        if workers == 1:
            results = [run(batch) for batch in batches]
        else:
            results = run_in_workers(run, batches, workers, cost=[len(bt) * lengths[bt].max() for bt in batches])
    finally:
        if bar is not None:
            bar.close()
    if final is not None:
        return final
    rows = np.concatenate([r for r, _ in results])
    acc = torch.zeros((len(layers), n_rows, dim), dtype=torch.float32, device=device)
    return acc.index_add_(1, torch.from_numpy(rows).to(device), torch.cat([v for _, v in results], dim=1))


def to_numpy_checked(acc, what: str, labels: Sequence[str], layers: Sequence[int], encoder: Any) -> np.ndarray:
    """Move the result to CPU as float32; raise AlignkitError if any value is NaN or inf."""
    import torch

    if bool(torch.isfinite(acc.sum())):  # one cheap pass; the full check only when it fails
        return acc.cpu().numpy().astype(np.float32, copy=False)
    finite = torch.isfinite(acc).all(dim=2)  # [layers, rows]
    if not bool(finite.all()):
        bad = (~finite).nonzero().tolist()
        li, row = bad[0]
        n_bad = int((~finite).any(dim=0).sum())
        raise AlignkitError(f"model {getattr(encoder, 'name', '?')} produced NaN/inf vectors for {n_bad} "
                            f"{what} (first: {labels[row]!r} at layer {layers[li]}); the checkpoint's weights "
                            "may be corrupt (re-save it), or, in half precision, load it in float32")
    return acc.cpu().numpy().astype(np.float32, copy=False)
