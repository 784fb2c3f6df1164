"""The narrow training-encoder interface (alignkit.training.model.TrainableEncoder)."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from alignkit.training import model as tm
from alignkit.training import objectives as ob
from alignkit.training.config import ObjectiveConfig


class ToyEncoder(nn.Module):
    """Not a transformers model: just the TrainableEncoder interface (2 layers, H = 8)."""

    def __init__(self, vocab: int = 20, hidden: int = 8, layers: int = 2):
        super().__init__()
        self.config = SimpleNamespace(hidden_size=hidden, num_hidden_layers=layers, hidden_dropout_prob=0.0)
        self.emb = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))

    def get_input_embeddings(self) -> nn.Module:
        return self.emb

    def forward(self, *, inputs_embeds, attention_mask, token_type_ids=None, output_attentions=False,
                output_hidden_states=False):
        h, states, maps = inputs_embeds, [inputs_embeds], []
        keys = attention_mask[:, None, None, :].bool()
        for lin in self.layers:
            scores = (h @ h.transpose(1, 2))[:, None].masked_fill(~keys, float("-inf"))
            a = scores.softmax(-1)  # [B, 1, T, T]
            h = torch.tanh(lin(a[:, 0] @ h))
            states.append(h)
            maps.append(a)
        return SimpleNamespace(last_hidden_state=h, hidden_states=tuple(states) if output_hidden_states else None,
                               attentions=tuple(maps) if output_attentions else None)


def batch():
    ids = torch.tensor([[1, 5, 6, 7, 2], [1, 9, 10, 2, 0]])
    att = (ids != 0).long()
    content = att.bool() & (ids > 2)
    return tm.PairBatch(ids, att, None, content, torch.tensor([0, 2]))


def test_a_bert_and_a_non_hf_module_both_satisfy_the_protocol():
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=16), add_pooling_layer=False)
    assert isinstance(bert, tm.TrainableEncoder) and isinstance(ToyEncoder(), tm.TrainableEncoder)
    assert not isinstance(nn.Linear(2, 2), tm.TrainableEncoder)
    assert tm.hidden_size_of(bert) == 8 and tm.layer_count_of(ToyEncoder(layers=3)) == 3


def test_every_objective_trains_any_encoder_with_the_interface():
    torch.manual_seed(0)
    clf = tm.PairClassifier(ToyEncoder(), 3)
    weights = ob.resolve_variant("ept+apt+rt+cl")
    anchors = ob.Anchors(clf.word_embeddings.weight.data)
    total, parts = ob.TrainingObjective(clf, weights, ObjectiveConfig(ept_anchor="original"), anchors)(batch())
    assert set(parts) == {"task", "ept", "apt", "rt", "cl"} and torch.isfinite(total)
    assert parts["apt"].item() == pytest.approx(0.0, abs=1e-7)  # W = W⁰: same attention maps
    total.backward()
    grad = clf.word_embeddings.weight.grad
    assert grad[[5, 6, 7, 9, 10]].abs().sum() > 0 and grad[[3, 4, 11]].abs().sum() == 0  # only batch rows


def test_an_encoder_without_a_word_embedding_table_is_refused():
    from alignkit.errors import AlignkitError

    with pytest.raises(AlignkitError, match="no word-embedding table"):
        tm.check_trainable(nn.Linear(2, 2), "some/model")


def test_only_model_py_touches_encoder_internals():
    # The interface is the only door: no other training module names HF module paths, config
    # attributes, attention kernels or the encoder's save_pretrained.
    root = Path(tm.__file__).parent
    banned = re.compile(r"encoder\.layer|named_modules|set_attn_implementation|(?:model|encoder)\.config\b"
                        r"|(?:model|encoder)\.save_pretrained|hidden_dropout_prob|num_hidden_layers"
                        r"|attention_probs_dropout")
    hits = [f"{p.name}:{i}" for p in sorted(root.glob("*.py")) if p.name != "model.py"
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if banned.search(line) and not line.lstrip().startswith(("#", "*", '"'))]
    assert hits == []
