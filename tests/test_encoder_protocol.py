"""The encoder protocol and the fused forwards registered per model_type.

Extraction talks to encoders only through ``EncoderProtocol``; ``Encoder.hidden_states`` runs
the fused forward registered for the model's ``model_type`` and falls back to transformers'
``output_hidden_states=True`` forward for any other type. A tiny random BERT (2 layers,
hidden 32) stands in for real models; the last test uses the bundled model.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from alignkit.errors import AlignkitError
from alignkit.inputs.encoders import Encoder, EncoderProtocol, load_encoder
from alignkit.inputs.fused import FUSED_FORWARDS, BertLayerStates, fused_forward
from alignkit.vectors.extract import sentence_vectors, word_vectors
from tinymodels import WORDS, tiny_bert

WORDS_USED = ["cat", "dog", "house", "köpek", "wasser", "hello", "smallish", "hund"]


@pytest.fixture()
def tiny(tmp_path) -> Encoder:
    return load_encoder(str(tiny_bert(tmp_path / "tiny", layers=2, hidden=32, seed=4)), device="cpu")


def retyped(enc: Encoder, model_type: str) -> Encoder:
    """The same weights under another (unregistered) model_type."""
    enc.model.config.model_type = model_type
    return enc


def hf_states(enc: Encoder, text: str) -> np.ndarray:
    ids = enc.tokenizer(text)["input_ids"]
    with torch.inference_mode():
        out = enc.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return torch.stack(out.hidden_states)[:, 0].numpy()


def test_the_encoder_class_satisfies_the_protocol(tiny):
    assert isinstance(tiny, EncoderProtocol)
    assert tiny.max_length == 64  # BERT: all max_position_embeddings are usable
    assert not isinstance(object(), EncoderProtocol)


def test_an_object_that_is_not_an_encoder_is_a_one_line_error():
    with pytest.raises(AlignkitError, match="lacks .*hidden_states.*load_encoder") as e:
        word_vectors(object(), ["cat"], progress=False)
    assert "\n" not in str(e.value)


def test_bert_family_model_types_are_registered():
    assert {"bert", "roberta", "xlm-roberta", "camembert"} <= set(FUSED_FORWARDS.names())


def test_a_registered_fake_fused_forward_is_the_one_used(tiny):
    """Register a forward for a new model_type that shifts every state by +1: the word
    vectors (means of states) are then HF's plus exactly 1, and the fake saw every batch."""
    enc = retyped(tiny, "alignkit-test-type")
    calls = []

    class Shifted:
        def __init__(self, model):
            self.model = model

        def is_current(self, model):
            return True

        def __call__(self, input_ids, last, keep=None):
            calls.append(tuple(input_ids.shape))
            hidden = self.model(input_ids=input_ids, output_hidden_states=True).hidden_states
            for layer in range(last + 1):
                yield layer, hidden[layer] + 1.0

    FUSED_FORWARDS.add("alignkit-test-type", lambda model, device: Shifted(model))
    try:
        assert isinstance(fused_forward(enc.model, enc.device), Shifted)
        got = word_vectors(enc, WORDS_USED, progress=False)
    finally:
        FUSED_FORWARDS.remove("alignkit-test-type")
    assert calls and sum(b for b, _ in calls) == len(WORDS_USED)  # one sequence per word
    for j, w in enumerate(WORDS_USED):
        np.testing.assert_allclose(got[:, j], hf_states(enc, w)[:, 1:-1].mean(axis=1) + 1.0, atol=1e-5)


def test_an_unregistered_model_type_falls_back_to_the_same_vectors(tiny, tmp_path):
    assert isinstance(fused_forward(tiny.model, tiny.device), BertLayerStates)
    words = WORDS_USED + WORDS
    fused = word_vectors(tiny, words, progress=False)
    sents = sentence_vectors(tiny, ["the cat is on the house", "a big dog"], progress=False)
    other = retyped(load_encoder(str(tmp_path / "tiny"), device="cpu"), "alignkit-unregistered")
    assert fused_forward(other.model, other.device) is None
    np.testing.assert_allclose(word_vectors(other, words, progress=False), fused, atol=1e-5)
    np.testing.assert_allclose(sentence_vectors(other, ["the cat is on the house", "a big dog"],
                                                progress=False), sents, atol=1e-5)


def test_the_fused_forward_follows_weight_changes(tiny, monkeypatch):
    """The fused forward copies Q/K/V into one matrix; an in-place weight change must rebuild it."""
    before = word_vectors(tiny, WORDS_USED, progress=False)
    with torch.no_grad():
        tiny.model.encoder.layer[0].attention.self.value.weight.mul_(3.0)
    after = word_vectors(tiny, WORDS_USED, progress=False)
    monkeypatch.setenv("ALIGNKIT_FAST_FORWARD", "0")
    reference = word_vectors(tiny, WORDS_USED, progress=False)
    assert np.abs(after[1] - before[1]).max() > 1e-2  # hidden state 1 is layer[0]'s output
    np.testing.assert_allclose(after, reference, atol=1e-5)


def test_masked_padded_batches_give_the_unpadded_states(tiny):
    texts = ["the cat", "hello world is big"]
    enc = tiny.tokenize(texts, padding=True, return_tensors="pt")
    lengths = enc["attention_mask"].sum(1).tolist()
    with torch.inference_mode():
        states = dict(tiny.hidden_states(enc["input_ids"], enc["attention_mask"], last_layer=2))
    assert sorted(states) == [0, 1, 2] and states[2].shape == (2, max(lengths), 32)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(torch.stack([states[k][i, :lengths[i]] for k in range(3)]).numpy(),
                                   hf_states(tiny, text), atol=1e-5)


def test_the_bundled_model_takes_the_fused_path(bundled_encoder):
    assert isinstance(bundled_encoder, EncoderProtocol)
    assert bundled_encoder.model.config.model_type in FUSED_FORWARDS
    assert isinstance(fused_forward(bundled_encoder.model, bundled_encoder.device), BertLayerStates)
    assert bundled_encoder.max_length == 512
