"""Fused CPU forwards, registered per HF ``model_type`` (the encoder layer's only look inside
``model.encoder.layer``).

A fused forward computes exactly the per-layer hidden states of transformers' forward, faster.
:meth:`alignkit.inputs.encoders.Encoder.hidden_states` asks :func:`fused_forward` for one and
falls back to transformers' ``output_hidden_states=True`` forward when it gets ``None``: for
any model_type not in :data:`FUSED_FORWARDS`, in training mode, with an attention mask, or
with ``ALIGNKIT_FAST_FORWARD=0``.

An entry of :data:`FUSED_FORWARDS` is a builder ``(model, device) -> LayerStates | None``
(``None`` where that model's weights, dtype or device do not suit it). A
:class:`LayerStates` is called as ``states(input_ids [B, n], last, keep)`` and yields
``(layer, hidden [B, n_l, dim])`` for layers ``0..last`` (see :class:`BertLayerStates`),
and says by ``is_current(model)`` whether the weights it copied still match the model's.

>>> FUSED_FORWARDS.names()                                   # doctest: +SKIP
['bert', 'roberta', 'xlm-roberta', 'camembert']
"""
from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from alignkit.registry import Registry


class LayerStates(Protocol):
    """A prepared fused forward for one model (see the module docstring)."""

    def __call__(self, input_ids: Any, last: int, keep: Any = None) -> Iterator[tuple[int, Any]]: ...

    def is_current(self, model: Any) -> bool: ...


FUSED_FORWARDS: Registry[Callable[[Any, Any], "LayerStates | None"]] = Registry("fused forward")

# One prepared forward per live model, rebuilt when its weights change (see is_current).
_PREPARED: "weakref.WeakKeyDictionary[Any, LayerStates]" = weakref.WeakKeyDictionary()
_BUILD_LOCK = threading.Lock()


def fused_forward(model: Any, device: Any) -> LayerStates | None:
    """The registered fused forward for ``model`` (prepared once per weight state), or None.

    None means "use transformers' forward": no entry for ``model.config.model_type``, the
    entry declines this model, the model is in training mode (fused forwards have no
    dropout), or ``ALIGNKIT_FAST_FORWARD=0``. Safe to call from several threads at once.
    """
    cfg = getattr(model, "config", None)
    if os.environ.get("ALIGNKIT_FAST_FORWARD", "1") == "0" or cfg is None or model.training:
        return None
    build = FUSED_FORWARDS.get(getattr(cfg, "model_type", "") or "")
    if build is None:
        return None
    prepared = _PREPARED.get(model)
    if prepared is not None and prepared.is_current(model):
        return prepared
    with _BUILD_LOCK:  # concurrent workers build the weights once, not once each
        prepared = _PREPARED.get(model)
        if prepared is None or not prepared.is_current(model):
            prepared = build(model, device)
            if prepared is None:
                _PREPARED.pop(model, None)
                return None
            _PREPARED[model] = prepared
    return prepared


# --------------------------------------------------------------------------- BERT post-LN stack


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


def _versions(tensors: list) -> tuple:
    """Storage and in-place version of each tensor: changes when a weight is converted or moved
    (``model.to``: new storage) or modified in place (optimiser steps, ``load_state_dict``,
    ``weight[i] = x``)."""
    return tuple((t.data_ptr(), t._version) for t in tensors)


def _bert_layers(model: Any, copied: list) -> list[_FusedLayer] | None:
    """The layer weights of a BERT post-LN encoder, or None where a linear is not fp32 with bias.

    The Q/K/V projections are concatenated (a copy); their source parameters are appended to
    ``copied``. Every other weight is used by reference, so it is always current.
    """
    import torch

    out = []
    for layer in model.encoder.layer:
        att, self_att = layer.attention, layer.attention.self
        lins = [self_att.query, self_att.key, self_att.value, att.output.dense,
                layer.intermediate.dense, layer.output.dense]
        if any(lin.weight.dtype != torch.float32 or lin.bias is None for lin in lins):
            return None
        # a plain copy (no autograd graph; not an inference tensor even when built inside
        # torch.inference_mode, so the copy outlives the call that made it)
        with torch.inference_mode(False), torch.no_grad():
            qkv_w = torch.cat([self_att.query.weight, self_att.key.weight, self_att.value.weight])
            qkv_b = torch.cat([self_att.query.bias, self_att.key.bias, self_att.value.bias])
        copied.extend(t for lin in lins[:3] for t in (lin.weight, lin.bias))
        out.append(_FusedLayer(
            qkv_w=qkv_w, qkv_b=qkv_b,
            out_w=att.output.dense.weight, out_b=att.output.dense.bias, ln1=att.output.LayerNorm,
            ff1_w=layer.intermediate.dense.weight, ff1_b=layer.intermediate.dense.bias,
            ff2_w=layer.output.dense.weight, ff2_b=layer.output.dense.bias, ln2=layer.output.LayerNorm))
    return out


def cpu_gemm_backend() -> str:
    """Which library runs the fused forward's fp32 GEMMs on this CPU: ``"onednn"`` (oneDNN's
    linear with bias and GELU applied inside the GEMM) or ``"blas"`` (``torch.addmm``, i.e.
    MKL, then GELU in place). ``ALIGNKIT_CPU_GEMM=onednn|blas`` chooses; by default oneDNN
    where torch reports AVX-512 (AMX included), the BLAS elsewhere: the faster one on each
    machine measured (docs/benchmarks.md, "Why the forward's GEMM library is chosen per CPU")."""
    import torch

    from alignkit.errors import AlignkitError

    chosen = os.environ.get("ALIGNKIT_CPU_GEMM", "").strip().lower()
    if chosen and chosen not in GEMM_BACKENDS:
        raise AlignkitError(f"ALIGNKIT_CPU_GEMM={chosen!r}: use one of {', '.join(GEMM_BACKENDS)} "
                            "(or unset it for this CPU's default)")
    if not chosen:
        chosen = "onednn" if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else "blas"
    if chosen == "onednn" and not (torch.backends.mkldnn.is_available()
                                   and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return "blas"
    return chosen


def _onednn_linear(x, w, b, gelu: bool = False):
    """``x wᵀ + b`` (then exact GELU) in one oneDNN call."""
    import torch

    if gelu:
        return torch.ops.mkldnn._linear_pointwise(x, w, b, "gelu", [], "none")
    return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")


def _blas_linear(x, w, b, gelu: bool = False):
    """``x wᵀ + b`` by the BLAS GEMM (``w`` read transposed, not copied), then exact GELU in place."""
    import torch

    y = torch.addmm(b, x, w.t())
    if not gelu:
        return y
    return torch.nn.functional.gelu(y) if y.requires_grad else torch.ops.aten.gelu_(y)


_LINEARS = {"onednn": _onednn_linear, "blas": _blas_linear}   # cpu_gemm_backend's choices
GEMM_BACKENDS = tuple(_LINEARS)


def build_bert_post_ln(model: Any, device: Any) -> "BertLayerStates | None":
    """Fused forward for the post-LayerNorm BERT layer stack (BERT, RoBERTa, XLM-R, E5), or None.

    It computes exactly the BERT post-LN layer (tests pin it to HF's hidden states) with the
    GEMM library that is faster on this CPU (:func:`cpu_gemm_backend`: oneDNN, which applies
    bias and GELU inside the GEMM, or the BLAS), and runs Q, K and V as one GEMM. It applies
    on CPU in fp32 with exact GELU and absolute positions, to encoders without cross-attention.
    """
    import torch

    cfg = model.config
    if torch.device(device).type != "cpu":
        return None
    if (getattr(cfg, "hidden_act", "") != "gelu"
            or getattr(cfg, "position_embedding_type", "absolute") not in (None, "absolute")
            or getattr(cfg, "is_decoder", False) or getattr(cfg, "add_cross_attention", False)):
        return None
    copied: list = []
    try:
        layers = _bert_layers(model, copied)
    except AttributeError:  # not the BERT module layout after all
        return None
    if layers is None:
        return None
    return BertLayerStates(model.embeddings, layers, int(cfg.hidden_size), int(cfg.num_attention_heads), copied,
                           cpu_gemm_backend())


for _mtype in ("bert", "roberta", "xlm-roberta", "camembert"):  # all reuse the BERT layer
    FUSED_FORWARDS.add(_mtype, build_bert_post_ln)


_BLOCK_MASKS: dict = {}


def _short_kernel_applies(qkv, n: int) -> bool:
    """Whether :mod:`alignkit.inputs.short_attention` is the faster path: a contiguous float32
    CPU tensor outside autograd, and a length where torch's kernel is slow (measured: up to 15
    tokens, except 4 and 8, which :func:`_self_attention` packs into 16-token blocks that
    torch's kernel attends about as fast in the whole forward)."""
    import torch

    return (n < 16 and n not in (4, 8) and qkv.device.type == "cpu" and qkv.dtype == torch.float32
            and not qkv.requires_grad and qkv.is_contiguous())


def _self_attention(qkv, b: int, n: int, heads: int):
    """Attention of ``b`` unpadded sequences of ``n`` tokens: ``qkv [b*n, 3*dim]`` -> ``[b*n, dim]``.

    For short sequences the per-(sequence, head) overhead of the attention kernel dominates:
    on the CPU most lengths below 16 go to :mod:`alignkit.inputs.short_attention` (numba);
    otherwise, where ``n`` divides 16, runs of ``16 // n`` sequences are attended as one 16-token
    block with a block-diagonal mask (fewer, better-shaped problems; masked scores get zero
    weight, so the result is the same).
    """
    import torch
    import torch.nn.functional as F

    if _short_kernel_applies(qkv, n):
        from alignkit.inputs.short_attention import short_attention  # numba: loaded only here

        return short_attention(qkv, b, n, heads)
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


class BertLayerStates:
    """The fused BERT post-LN forward over padding-free batches (see :func:`build_bert_post_ln`)."""

    def __init__(self, embeddings: Any, layers: list[_FusedLayer], dim: int, heads: int, copied: list,
                 gemm: str = "onednn"):
        self.embeddings, self.layers, self.dim, self.heads = embeddings, layers, dim, heads
        self._copied, self._state = copied, _versions(copied)
        self.gemm = gemm                                  # see cpu_gemm_backend

    def is_current(self, model: Any) -> bool:
        """Whether the copied Q/K/V weights still equal the model's (checked per batch: cheap).
        Replacing a module or Parameter object in the model is not seen; build a new model."""
        return _versions(self._copied) == self._state

    def __call__(self, input_ids, last: int, keep=None) -> Iterator[tuple[int, Any]]:
        """Yield ``(layer, hidden [B, n_l, dim])`` for layers 0..last of one batch ``[B, n]``.

        ``keep`` (positions, a LongTensor) computes the last layer only where it is pooled:
        keys and values still come from every token, but queries, attention output and
        feed-forward only from the kept positions, so ``n_l = len(keep)`` there and ``n``
        everywhere else.
        """
        import torch.nn.functional as F

        linear = _LINEARS[self.gemm]
        dim, heads = self.dim, self.heads
        d = dim // heads
        b, n = input_ids.shape
        x = self.embeddings(input_ids=input_ids).reshape(b * n, dim)
        yield 0, x.view(b, n, dim)
        for layer, w in enumerate(self.layers[:last], start=1):
            if layer == last and keep is not None and len(keep) < n:
                m = len(keep)
                kv = linear(x, w.qkv_w[dim:], w.qkv_b[dim:]).view(b, n, 2, heads, d)
                k, v = (t.transpose(1, 2) for t in kv.unbind(2))               # [B, heads, n, d]
                x = x.view(b, n, dim).index_select(1, keep).reshape(b * m, dim)
                q = linear(x, w.qkv_w[:dim], w.qkv_b[:dim]).view(b, m, heads, d).transpose(1, 2)
                ctx = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b * m, dim)
            else:
                m = n
                ctx = _self_attention(linear(x, w.qkv_w, w.qkv_b), b, n, heads)
            # residual adds in place: measured faster than oneDNN's binary-add post-op here
            h = linear(ctx, w.out_w, w.out_b).add_(x)                          # ctx W^T + b + x
            x = F.layer_norm(h, (dim,), w.ln1.weight, w.ln1.bias, w.ln1.eps)
            mid = linear(x, w.ff1_w, w.ff1_b, gelu=True)                       # bias + exact (erf) GELU
            h = linear(mid, w.ff2_w, w.ff2_b).add_(x)
            x = F.layer_norm(h, (dim,), w.ln2.weight, w.ln2.bias, w.ln2.eps)
            yield layer, x.view(b, m, dim)
