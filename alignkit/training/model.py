"""The model side of training: the narrow encoder interface, the classifier and the batch.

Training code talks to the encoder only through :class:`TrainableEncoder` and the helpers of
this module; nothing else in :mod:`alignkit.training` reaches into HuggingFace internals
(``model.encoder.layer``, module names, ``config`` attributes, ``save_pretrained``).

:class:`TrainableEncoder` -- what a fine-tunable encoder must offer (any BERT-family
``transformers`` model does):

* ``get_input_embeddings()`` -> the word-embedding table, an ``nn.Embedding`` [V, H];
* ``forward(inputs_embeds=[B, T, H], attention_mask=[B, T], token_type_ids=[B, T] | absent,
  output_attentions=bool, output_hidden_states=bool)`` -> an object with
  ``last_hidden_state`` [B, T, H], ``hidden_states`` (L + 1 tensors [B, T, H], when asked) and
  ``attentions`` (L tensors [B, heads, T, T], when asked); positions and token types are
  added by the encoder;
* ``config`` with ``hidden_size`` (H) and ``num_hidden_layers`` (L); optional
  ``hidden_dropout_prob`` (the head's default dropout).

The HF-specific rest lives here once: attention-probability dropout (:func:`set_attention_dropout`,
:func:`attention_dropout_of`), eager attention so maps are returned (:func:`use_eager_attention`),
and writing the encoder as a HF directory (:func:`save_encoder`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alignkit.errors import AlignkitError
from alignkit.training.losses import task_loss
from alignkit.vectors.pooling import masked_mean


@runtime_checkable
class TrainableEncoder(Protocol):
    """The encoder interface of training (see the module docstring for shapes)."""

    config: Any

    def get_input_embeddings(self) -> nn.Module: ...

    def forward(self, *, inputs_embeds: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None,
                output_attentions: bool = False, output_hidden_states: bool = False) -> Any: ...


def check_trainable(encoder: Any, name: str) -> None:
    """Raise AlignkitError unless ``encoder`` has a word-embedding table training can update."""
    emb = encoder.get_input_embeddings() if hasattr(encoder, "get_input_embeddings") else None
    if not isinstance(emb, nn.Embedding):
        raise AlignkitError(f"checkpoint {name} has no word-embedding table alignkit can train; "
                            "pass a BERT-family encoder")


def hidden_size_of(encoder: TrainableEncoder) -> int:
    """H, the width of the encoder's hidden states."""
    return int(encoder.config.hidden_size)


def layer_count_of(encoder: TrainableEncoder) -> int:
    """L, the number of transformer layers."""
    return int(encoder.config.num_hidden_layers)


def use_eager_attention(encoder: TrainableEncoder) -> None:
    """Switch to the eager attention kernel: sdpa returns no attention maps (APT reads them)."""
    encoder.set_attn_implementation("eager")


def save_encoder(encoder: TrainableEncoder, dest: str | Path, alignkit_extra: dict[str, Any]) -> None:
    """Write ``encoder`` as a HF directory (safetensors) with ``alignkit_extra`` merged into
    ``config.alignkit`` (what ``alignkit score`` reads back, e.g. the input prefix)."""
    extra = dict(getattr(encoder.config, "alignkit", None) or {})
    extra.update(alignkit_extra)
    encoder.config.alignkit = extra
    encoder.save_pretrained(str(dest), safe_serialization=True)


def _attention_dropouts(model: nn.Module) -> list[nn.Dropout]:
    """The dropout modules on attention probabilities of a BERT-family encoder
    (``*.attention.self.dropout``, DistilBERT's ``*.attention.dropout``)."""
    return [mod for name, mod in model.named_modules() if isinstance(mod, nn.Dropout)
            and (name.endswith("attention.self.dropout") or name.endswith("attention.dropout"))]


def set_attention_dropout(model: nn.Module, p: float) -> int:
    """Set the dropout on attention probabilities to ``p``; returns how many modules changed.

    One value for every variant of a study (SPEC §3 v2): APT needs 0 (it compares the
    attention maps as distributions), so the other variants must run with the same value,
    or "APT" would also mean "no attention dropout".
    """
    mods = _attention_dropouts(model)
    for mod in mods:
        mod.p = float(p)
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "attention_probs_dropout_prob"):
        cfg.attention_probs_dropout_prob = float(p)
    return len(mods)


def attention_dropout_of(model: nn.Module) -> float:
    """The largest attention-probability dropout of ``model`` (0 when it has none)."""
    return max((m.p for m in _attention_dropouts(model)), default=0.0)


def disable_attention_dropout(model: nn.Module) -> int:
    """:func:`set_attention_dropout` with 0."""
    return set_attention_dropout(model, 0.0)


@dataclass
class PairBatch:
    """A padded batch of sentence pairs.

    ``input_ids``, ``attention_mask``, ``token_type_ids`` (or None) and ``content_mask``
    (true on real, non-special tokens) are [B, T]; ``labels`` [B]. ``switched`` is the
    code-switched view of the same examples (same labels) when CL uses it.
    """

    input_ids: Tensor
    attention_mask: Tensor
    token_type_ids: Tensor | None
    content_mask: Tensor
    labels: Tensor
    switched: "PairBatch | None" = None
    augmented: "PairBatch | None" = None  # RS-DA: k copies stacked copy-major, [k·B, T]

    def to(self, device) -> "PairBatch":
        return PairBatch(
            self.input_ids.to(device), self.attention_mask.to(device),
            None if self.token_type_ids is None else self.token_type_ids.to(device),
            self.content_mask.to(device), self.labels.to(device),
            None if self.switched is None else self.switched.to(device),
            None if self.augmented is None else self.augmented.to(device))

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass
class PassOutput:
    """One forward pass: ``logits`` [B, C], ``sentence`` [B, H] (mean-pooled at the CL layer,
    or None), ``attentions`` (one [B, heads, T, T] per encoder layer, or None)."""

    logits: Tensor | None
    sentence: Tensor | None
    attentions: tuple[Tensor, ...] | None


class PairClassifier(nn.Module):
    """Encoder f + head g: logits = Linear(dropout(mean over non-special tokens of the last layer)).

    The head reads the same mean-pooled sentence vector alignkit scores (SPEC §2), so the
    fine-tuned encoder alone stays a sentence encoder; the checkpoint is the encoder's
    ``save_pretrained`` directory plus ``classifier_head.safetensors``.
    """

    def __init__(self, encoder: TrainableEncoder, num_labels: int, dropout: float | None = None):
        super().__init__()
        self.encoder = encoder
        hidden = hidden_size_of(encoder)
        p = dropout if dropout is not None else float(getattr(encoder.config, "hidden_dropout_prob", 0.1))
        self.dropout = nn.Dropout(p)
        self.head = nn.Linear(hidden, num_labels)

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.encoder.get_input_embeddings()

    def run(self, embeds: Tensor, batch: PairBatch, *, attentions: bool = False,
            sentence_layer: int | None = None, with_head: bool = True) -> PassOutput:
        """Encode word embeddings ``embeds`` [B, T, H] of ``batch`` (positions/types added by the model)."""
        kwargs = {}
        if batch.token_type_ids is not None:
            kwargs["token_type_ids"] = batch.token_type_ids
        need_hidden = sentence_layer is not None and sentence_layer != -1
        out = self.encoder(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                           output_attentions=attentions, output_hidden_states=need_hidden, **kwargs)
        last = out.last_hidden_state
        pooled = masked_mean(last, batch.content_mask)
        sentence = None
        if sentence_layer is not None:
            sentence = pooled if not need_hidden else masked_mean(out.hidden_states[sentence_layer], batch.content_mask)
        logits = self.head(self.dropout(pooled)) if with_head else None
        return PassOutput(logits, sentence, tuple(out.attentions) if attentions else None)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None,
                content_mask: Tensor | None = None, labels: Tensor | None = None):
        """HF-style call (used for inference and by the HF ``Trainer`` benchmark): -> dict(logits[, loss])."""
        cm = attention_mask.bool() if content_mask is None else content_mask
        batch = PairBatch(input_ids, attention_mask, token_type_ids, cm,
                          labels if labels is not None else input_ids.new_zeros(input_ids.shape[0]))
        logits = self.run(self.word_embeddings(input_ids), batch).logits
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = task_loss(logits, labels)
        return out


class TableView:
    """How one optimisation step reads the word-embedding table W.

    * dense: ``TableView(weight)`` -- lookups go through ``weight`` (gradient, if any, is a
      dense [V, H] tensor on the parameter).
    * sparse: ``TableView.sparse(weight, ids)`` -- the rows of the step's unique ids are
      copied into a small leaf tensor ``rows`` [n, H]; lookups index it, so backward fills
      only ``rows.grad`` and the optimiser updates only those rows (CPU path, SPEC §4).
    """

    def __init__(self, weight: Tensor, rows: Tensor | None = None, row_ids: Tensor | None = None):
        self.weight = weight
        self.rows = rows
        self.row_ids = row_ids

    @classmethod
    def sparse(cls, weight: Tensor, ids: Iterable[Tensor]) -> "TableView":
        row_ids = torch.unique(torch.cat([t.reshape(-1) for t in ids]))  # sorted
        rows = weight.detach()[row_ids].clone().requires_grad_(True)
        return cls(weight, rows, row_ids)

    def __call__(self, ids: Tensor) -> Tensor:
        """W[ids] -> [*ids.shape, H]."""
        if self.rows is None:
            return F.embedding(ids, self.weight)
        pos = torch.searchsorted(self.row_ids, ids.reshape(-1)).reshape(ids.shape)
        return self.rows[pos]



__all__ = ["TrainableEncoder", "check_trainable", "hidden_size_of", "layer_count_of", "use_eager_attention",
           "save_encoder", "set_attention_dropout", "attention_dropout_of", "disable_attention_dropout",
           "PairBatch", "PassOutput", "PairClassifier", "TableView"]
