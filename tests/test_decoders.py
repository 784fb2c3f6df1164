"""Decoder-only LLMs through every measure (SPEC §2 v3, issue 31), on tiny random-weight Llama,
Qwen2, Gemma2 and Mistral checkpoints saved with save_pretrained, with a BPE tokenizer trained
in the test, loaded through the real loading code.

What is pinned: every measure has rows for every layer; a text's vector equals a forward of
that text alone whatever its batch, its neighbours' lengths or the tokenizer's padding side;
``last``/``weighted`` read the text's own tokens (hand computation); template tokens are never
pooled; no batch holds every layer's token states; the batch halves on out-of-memory and the
manifest says so; fp16 and ``alignkit train`` are refused in one line; the console script works.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from alignkit.cli import main  # noqa: E402
from alignkit.errors import AlignkitError  # noqa: E402
from alignkit.inputs.encoders import load_encoder  # noqa: E402
from alignkit.vectors.extract import sentence_vectors, word_vectors  # noqa: E402
from tinymodels import DECODER_ARCHS, tiny_bert, tiny_decoder  # noqa: E402

TEST = "cat\tkedi\ndog\tköpek\nhouse\tev\nwater\tsu\nbig\tbüyük\nsmall\tküçük\nthe\tbir\nworld\tdünya\n" \
       "hello\tmerhaba\nis\tdır\non\tüstünde\n"
TRAIN = "a\tbir\nkatze\tkedi\nhund\tköpek\nhaus\tev\nwasser\tsu\n"
TUR = ["kedi", "köpek ev", "su ev", "kedi su", "köpek", "ev kedi köpek", "su", "ev"]
ENG = ["the cat", "a dog is on the house", "water house", "cat on water", "the dog", "house cat dog", "water",
       "a house"]
TASKS = "lexicon,tatoeba,procrustes,margin,tatoeba-margin,strong,tatoeba-strong,mexa"
LAYERS = {"llama": 2, "qwen2": 3, "gemma2": 2, "mistral": 2}
SEEDS = {"qwen2": 2}   # random weights whose 4-NN mean cosines are positive (the ratio margin is defined)
TEXTS = ["cat", "köpek", "a big house and a small cat", "water", "der hund trinkt wasser", "su", "hello world"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("decoders")
    (r / "en-tr.test.tsv").write_text(TEST, encoding="utf-8")
    (r / "en-tr.train.tsv").write_text(TRAIN, encoding="utf-8")
    tat = r / "tatoeba"
    tat.mkdir()
    (tat / "tatoeba.tur-eng.tur").write_text("\n".join(TUR) + "\n", encoding="utf-8")
    (tat / "tatoeba.tur-eng.eng").write_text("\n".join(ENG) + "\n", encoding="utf-8")
    for arch in DECODER_ARCHS:
        tiny_decoder(r / f"tiny{arch}", arch, layers=LAYERS[arch], seed=SEEDS.get(arch, 0))
    return r


@pytest.fixture(scope="module")
def decoders(root):
    return {arch: load_encoder(str(root / f"tiny{arch}"), device="cpu") for arch in DECODER_ARCHS}


def _reference(dec, text: str, pooling: str, template: str | None = None) -> np.ndarray:
    """Hand computation from a forward of the text alone (transformers' own hidden_states):
    ``[layers, dim]``; own tokens = the tokens after the template's head (BOS and template excluded;
    the space before the text travels with the text's first byte-level token)."""
    tok = dec.tokenizer
    head = template.split("{text}")[0] if template else ""
    full = tok(head + text)["input_ids"]
    head_ids = tok(head.rstrip())["input_ids"] if head else []
    lead = len(head_ids) if head else int(tok.bos_token_id is not None and full[0] == tok.bos_token_id)
    if head:
        assert full[:lead] == head_ids       # the head tokenises the same inside the input
    own = list(range(lead, len(full)))
    n = len(own)
    weights = {"mean": [1 / n] * n, "first": [1.0] + [0.0] * (n - 1), "last": [0.0] * (n - 1) + [1.0],
               "weighted": [(i + 1) / (n * (n + 1) / 2) for i in range(n)]}[pooling]
    with torch.inference_mode():
        hs = dec.model(input_ids=torch.tensor([full]), output_hidden_states=True).hidden_states
    w = torch.tensor(weights, dtype=torch.float32)
    return np.stack([(w[:, None] * h[0, own].float()).sum(0).numpy() for h in hs])


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("arch", DECODER_ARCHS)
def test_a_causal_checkpoint_loads_as_a_decoder_with_pad_eos_fp32_and_a_normed_last_layer(decoders, arch):
    dec = decoders[arch]
    assert dec.architecture == "decoder" and dec.default_pooling == "mean"
    assert dec.dtype == torch.float32 and next(dec.model.parameters()).dtype == torch.float32
    assert dec.tokenizer.pad_token == dec.tokenizer.eos_token            # the tokenizer had no pad token
    assert dec.model.config.use_cache is False
    assert dec.hooked and dec.last_layer_normed                           # hooks agree with hidden_states
    assert dec.num_layers == LAYERS[arch]


@pytest.mark.parametrize("arch", ["phi", "phi3", "olmo", "olmo2"])
def test_other_causal_families_load_by_capability_and_match_a_per_text_forward(tmp_path, arch):
    dec = load_encoder(str(tiny_decoder(tmp_path / arch, arch)), device="cpu")
    assert dec.architecture == "decoder" and dec.hooked and dec.last_layer_normed
    ref = np.stack([_reference(dec, t, "weighted") for t in TEXTS], axis=1)
    np.testing.assert_allclose(sentence_vectors(dec, TEXTS, pooling="weighted", batch_tokens=12, progress=False),
                               ref, atol=1e-5, rtol=0)


def test_without_hooks_the_fallback_forward_gives_the_same_vectors(decoders):
    dec = decoders["gemma2"]
    hooked = sentence_vectors(dec, TEXTS, layers="0,1", progress=False)
    dec.hooked = False                                   # as when the hooks disagree with hidden_states
    try:
        plain = sentence_vectors(dec, TEXTS, layers="0,1", progress=False)
    finally:
        dec.hooked = True
    np.testing.assert_allclose(plain, hooked, atol=1e-6, rtol=0)


def test_fp16_is_refused_in_one_line(root, capsys):
    with pytest.raises(AlignkitError, match="fp16 is refused"):
        load_encoder(str(root / "tinyqwen2"), device="cpu", dtype="fp16")
    assert main(["score", str(root / "tinyqwen2"), "--pairs", str(root / "en-tr.test.tsv"), "--dtype", "fp16",
                 "--out", str(root / "fp16"), "--quiet"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "fp16 is refused" in err[0]


def test_train_refuses_a_decoder_in_one_line(root, tmp_path, capsys):
    data = tmp_path / "train-en.tsv"
    data.write_text("a cat\tthe cat\tentailment\na dog\tno dog\tcontradiction\n", encoding="utf-8")
    assert main(["train", "--model", str(root / "tinyllama"), "--train-file", str(data), "--out",
                 str(tmp_path / "o"), "--max-steps", "1", "--quiet"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "decoder-only llama model, not an encoder" in err[0] and "Traceback" not in err[0]


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("arch", DECODER_ARCHS)
def test_vectors_equal_a_per_text_forward_whatever_batch_and_padding_side(decoders, arch):
    dec = decoders[arch]
    from alignkit.vectors.forward import plan_batches

    ref = np.stack([_reference(dec, t, "mean") for t in TEXTS], axis=1)
    lengths = np.array([len(dec.tokenizer(t)["input_ids"]) for t in TEXTS])
    assert any(len(set(lengths[b])) > 1 for b in plan_batches(lengths, 12, pad=True))   # some batch is padded
    for side in ("left", "right"):
        dec.tokenizer.padding_side = side
        for batch_tokens in (3, 12, 2048):   # one text a batch, a few mixed lengths, everything at once
            v = sentence_vectors(dec, TEXTS, batch_tokens=batch_tokens, progress=False)
            np.testing.assert_allclose(v, ref, atol=1e-5, rtol=0)
            w = word_vectors(dec, TEXTS[::-1], batch_tokens=batch_tokens, progress=False)
            np.testing.assert_allclose(w, ref[:, ::-1], atol=1e-5, rtol=0)
    dec.tokenizer.padding_side = "right"


@pytest.mark.parametrize("pooling", ["last", "weighted", "first"])
def test_last_weighted_first_read_the_texts_own_tokens_under_left_padding(decoders, pooling):
    dec = decoders["llama"]          # adds BOS: position 0 is never the text's
    dec.tokenizer.padding_side = "left"
    try:
        v = sentence_vectors(dec, TEXTS, pooling=pooling, batch_tokens=64, progress=False)
    finally:
        dec.tokenizer.padding_side = "right"
    ref = np.stack([_reference(dec, t, pooling) for t in TEXTS], axis=1)
    np.testing.assert_allclose(v, ref, atol=1e-5, rtol=0)
    assert v.info.pooling == pooling
    assert not np.allclose(v, sentence_vectors(dec, TEXTS, pooling="mean", progress=False), atol=1e-3)


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_a_templates_tokens_are_not_pooled(decoders, arch):
    dec, template = decoders[arch], "Translate: {text}"
    for pooling in ("mean", "weighted", "first"):
        v = word_vectors(dec, ["cat", "house"], pooling=pooling, template=template, progress=False)
        ref = np.stack([_reference(dec, w, pooling, template) for w in ["cat", "house"]], axis=1)
        np.testing.assert_allclose(v, ref, atol=1e-5, rtol=0)
    plain = word_vectors(dec, ["cat"], layers="1", progress=False)
    templated = word_vectors(dec, ["cat"], layers="1", template=template, progress=False)
    assert not np.allclose(plain, templated, atol=1e-4)      # the context changed the states, not the positions
    s = sentence_vectors(dec, ["a big house"], template=template, progress=False)
    np.testing.assert_allclose(s[:, 0], _reference(dec, "a big house", "mean", template), atol=1e-5, rtol=0)


def test_a_bad_template_or_pooling_is_one_line(decoders):
    with pytest.raises(AlignkitError, match="must contain"):
        word_vectors(decoders["qwen2"], ["cat"], template="Translate:", progress=False)
    with pytest.raises(AlignkitError, match="is not a pooling"):
        sentence_vectors(decoders["qwen2"], ["cat"], pooling="max", progress=False)


def test_each_layer_is_pooled_during_the_forward_and_the_forward_stops_at_the_top_layer(decoders):
    dec = decoders["qwen2"]
    events: list[str] = []
    blocks = [m for m in dec.model.modules() if isinstance(m, torch.nn.ModuleList)][0]
    handles = [b.register_forward_hook(lambda m, a, o, i=i: events.append(f"block{i}")) for i, b in enumerate(blocks)]
    try:
        ids = torch.tensor([dec.tokenizer("a big house")["input_ids"]])
        dec.pool_layers(ids, [0, 1], lambda layer, hv: events.append(f"layer{layer}:{tuple(hv.shape)}"))
    finally:
        for h in handles:
            h.remove()
    n = ids.shape[1]
    # layer 0 is pooled before block 0 runs, layer 1 before block 1; blocks 1 and 2 never run
    assert events == [f"layer0:(1, {n}, 32)", "block0", f"layer1:(1, {n}, 32)"]


def test_the_cache_keeps_only_the_requested_layers_and_keys_pooling_and_template(decoders, tmp_path):
    from alignkit.vectors.cache import VectorCache

    dec, cache = decoders["mistral"], VectorCache(tmp_path / "c")
    a = word_vectors(dec, ["cat", "dog"], layers="0,2", cache=cache, progress=False)
    entries = list((tmp_path / "c").rglob("*.npz"))
    assert len(entries) == 1 and np.load(entries[0])["vectors"].shape == (2, 2, 32)
    b = word_vectors(dec, ["cat", "dog"], layers="2,0", cache=cache, progress=False)
    assert b.info.from_cache and np.array_equal(b, a[::-1])
    word_vectors(dec, ["cat", "dog"], layers="0,2", cache=cache, pooling="last", progress=False)
    word_vectors(dec, ["cat", "dog"], layers="0,2", cache=cache, template="Word: {text}", progress=False)
    assert len(list((tmp_path / "c").rglob("*.npz"))) == 3


def test_out_of_memory_halves_the_batch_and_the_manifest_records_it(root, monkeypatch, tmp_path):
    import alignkit
    from alignkit.inputs.decoders import Decoder

    real = Decoder.pool_layers
    seen: list[int] = []

    def small_memory(self, input_ids, layers, consume):
        seen.append(int(input_ids.shape[0]))
        if input_ids.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(self, input_ids, layers, consume)

    monkeypatch.setattr(Decoder, "pool_layers", small_memory)
    out = tmp_path / "run"
    alignkit.score(str(root / "tinyqwen2"), out=out, pairs=[str(root / "en-tr.test.tsv")], pool_size=30,
                   n_resamples=0, cluster=False, cache_dir=str(tmp_path / "c"), progress=False)
    batch = json.loads((out / "manifest.json").read_text())["models"][0]["batch"]
    assert batch["oom_halvings"] >= 1 and batch["max_rows_after_oom"] <= 2
    assert max(seen) > 2 and seen.count(max(seen)) < len(seen)    # a big batch failed, smaller ones ran
    monkeypatch.setattr(Decoder, "pool_layers", real)
    dec = load_encoder(str(root / "tinyqwen2"), device="cpu")
    ref = word_vectors(dec, ["cat", "dog", "house", "water"], progress=False)
    monkeypatch.setattr(Decoder, "pool_layers", small_memory)
    np.testing.assert_allclose(word_vectors(dec, ["cat", "dog", "house", "water"], progress=False), ref, atol=1e-6)


# --------------------------------------------------------------------------- every measure


@pytest.mark.parametrize("arch", DECODER_ARCHS)
def test_every_measure_has_rows_for_every_layer(root, arch, tmp_path):
    out = tmp_path / "run"
    assert main(["score", str(root / f"tiny{arch}"), "--pairs", str(root / "en-tr.test.tsv"), "--pool-size", "30",
                 "--resamples", "20", "--tatoeba", str(root / "tatoeba"), "--tasks", TASKS,
                 "--cache-dir", str(root / "cache"), "--out", str(out), "--quiet"]
                + (["--tsne-layers", "1"] if arch == "qwen2" else [])) == 0
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    layers = list(range(LAYERS[arch] + 1))
    for metric, method in (("bls", ""), ("bls_auc", ""), ("p@1", "nn"), ("p@1", "csls"), ("p@1", "csls+center"),
                           ("gap_ratio", ""), ("langid_acc", ""), ("silhouette", ""), ("tatoeba_acc", "nn"),
                           ("procrustes_p@1", "csls"), ("p@1", "margin"), ("tatoeba_acc", "margin"),
                           ("strong_p@1", "nn"), ("tatoeba_strong_p@1", "nn"), ("mexa", "")):
        sel = df[(df.metric == metric) & (df.method == method)]
        assert sorted(set(sel.layer)) == layers, (metric, method)
        assert np.isfinite(sel.value.astype(float)).all(), (metric, method)
    per_layer = df[df.metric == "mexa"].value.astype(float)
    agg = df[df.metric == "mexa_layers"]
    assert set(agg.layer) == {-1}
    agg = agg.set_index("method").value.astype(float)
    assert agg["mean"] == pytest.approx(per_layer.mean()) and agg["max"] == pytest.approx(per_layer.max())
    model = json.loads((out / "manifest.json").read_text())["models"][0]
    assert model["architecture"] == "decoder" and model["last_layer_normed"] is True
    assert model["dtype"] == "torch.float32" and model["batch"]["oom_halvings"] == 0
    if arch == "qwen2":
        assert list(out.glob("tsne_en-tr_L1_*.png"))


def test_the_console_script_scores_a_tiny_qwen(root, tmp_path):
    exe = shutil.which("alignkit", path=str(Path(sys.executable).parent)) or shutil.which("alignkit")
    if exe is None:
        pytest.skip("the alignkit console script is not installed")
    shutil.copytree(root / "tinyqwen2", tmp_path / "tinyqwen")
    shutil.copy(root / "en-tr.test.tsv", tmp_path / "en-tr.test.tsv")
    env = {**os.environ, "ALIGNKIT_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([exe, "score", "tinyqwen", "--pairs", "en-tr.test.tsv", "--pool-size", "20",
                        "--resamples", "0", "--no-cluster", "--out", "out"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "wrote out/results.csv" in r.stdout
    assert "| en-tr | p@1 |" in r.stdout                      # the summary the user reads


def test_extract_writes_sentence_vectors_with_pooling_and_template_for_decoders_and_encoders(root, tmp_path):
    sentences = tmp_path / "s.txt"
    sentences.write_text("a big house\nthe cat\n", encoding="utf-8")
    for name, model in (("dec", root / "tinyllama"), ("enc", tiny_bert(tmp_path / "bert"))):
        out = tmp_path / f"{name}.npz"
        assert main(["extract", str(model), "--sentences", str(sentences), "--pooling", "last", "--template",
                     "Say: {text}", "--layers", "0,1", "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                     "--quiet"]) == 0
        z = np.load(out)
        assert z["vectors"].shape == (2, 2, 32) and list(z["words"]) == ["a big house", "the cat"]
    dec = load_encoder(str(root / "tinyllama"), device="cpu")
    np.testing.assert_allclose(np.load(tmp_path / "dec.npz")["vectors"][:, 1],
                               _reference(dec, "the cat", "last", "Say: {text}")[:2], atol=1e-5, rtol=0)
    assert main(["extract", str(root / "tinyllama"), "--out", str(tmp_path / "x.npz")]) == 2   # neither input


def test_compare_pairs_two_decoder_runs_and_refuses_runs_with_different_templates(root, tmp_path, capsys):
    runs = {}
    for name, model, extra in (("llama", "tinyllama", []), ("mistral", "tinymistral", []),
                               ("templated", "tinyllama", ["--template", "Word: {text}"])):
        runs[name] = tmp_path / name
        assert main(["score", str(root / model), "--pairs", str(root / "en-tr.test.tsv"), "--pool-size", "30",
                     "--resamples", "0", "--no-cluster", "--cache-dir", str(root / "cache"), "--out",
                     str(runs[name]), "--quiet"] + extra) == 0
    assert main(["compare", str(runs["llama"]), str(runs["mistral"]), "--resamples", "50",
                 "--out", str(tmp_path / "cmp"), "--quiet"]) == 0
    assert (tmp_path / "cmp" / "comparison.csv").is_file()
    capsys.readouterr()
    assert main(["compare", str(runs["mistral"]), str(runs["templated"]), "--out", str(tmp_path / "cmp2"),
                 "--quiet"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "runs differ in template" in err[0]


def test_a_warm_rescore_of_a_decoder_reads_no_weights_and_runs_no_forward(root, tmp_path, monkeypatch):
    import alignkit
    import alignkit.inputs.decoders as decoders_module
    from alignkit.inputs.decoders import LazyDecoder

    kw = dict(pairs=[str(root / "en-tr.test.tsv")], pool_size=30, n_resamples=0, cluster=False,
              cache_dir=str(tmp_path / "c"), progress=False)
    first = alignkit.score(str(root / "tinygemma2"), **kw)                # loads, extracts, memoises the facts

    def no_load(*a, **k):
        raise AssertionError("the warm run loaded the model")

    monkeypatch.setattr(decoders_module, "load_decoder", no_load)
    assert isinstance(load_encoder(str(root / "tinygemma2"), lazy=True), LazyDecoder)
    again = alignkit.score(str(root / "tinygemma2"), **kw)
    pd.testing.assert_frame_equal(first, again)
    with pytest.raises(AssertionError, match="loaded the model"):   # a cold key does need the model
        alignkit.score(str(root / "tinygemma2"), **{**kw, "pooling": "last"})


def test_contextual_last_pooling_reads_each_occurrences_last_own_token(decoders):
    dec = decoders["qwen2"]
    corpus = ["the big house", "a small house and a cat"]
    v = word_vectors(dec, ["house"], mode="contextual", corpus=corpus, pooling="last", progress=False)
    assert v.info.occurrences.tolist() == [2]
    refs = []
    for sentence in corpus:
        enc = dec.tokenizer(sentence, return_offsets_mapping=True)
        a = sentence.index("house")
        pos = [p for p, (x, y) in enumerate(enc["offset_mapping"]) if x < a + 5 and y > a][-1]
        with torch.inference_mode():
            hs = dec.model(input_ids=torch.tensor([enc["input_ids"]]), output_hidden_states=True).hidden_states
        refs.append(np.stack([h[0, pos].numpy() for h in hs]))
    np.testing.assert_allclose(v[:, 0], (refs[0] + refs[1]) / 2, atol=1e-5, rtol=0)
