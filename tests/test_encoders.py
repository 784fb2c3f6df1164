"""Loading checkpoints: what an Encoder exposes, and one-line errors for bad checkpoints."""
from __future__ import annotations

import pytest

from alignkit.cli import main
from alignkit.inputs.encoders import load_encoder, query_prefix_for
from alignkit.errors import AlignkitError
from tinymodels import tiny_bert, tiny_gpt2, tiny_vit


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def test_encoder_exposes_shape_device_and_fingerprint(tiny_dir):
    enc = load_encoder(str(tiny_dir), device="cpu")
    assert (enc.num_layers, enc.hidden_size) == (2, 32)
    assert enc.device.type == "cpu" and str(enc.dtype) == "torch.float32"
    assert len(enc.fingerprint) == 16
    assert load_encoder(str(tiny_dir)).fingerprint == enc.fingerprint  # stable


def test_fingerprint_changes_when_weights_change(tmp_path):
    a = tiny_bert(tmp_path / "a", seed=0)
    b = tiny_bert(tmp_path / "b", seed=1)
    assert load_encoder(str(a)).fingerprint != load_encoder(str(b)).fingerprint


def test_e5_models_get_the_query_prefix():
    class C:
        pass
    assert query_prefix_for("intfloat/multilingual-e5-small", C()) == "query: "
    assert query_prefix_for("intfloat/e5-base-v2", C()) == "query: "
    assert query_prefix_for("bert-base-multilingual-cased", C()) == ""
    assert query_prefix_for("xlm-roberta-base", C()) == ""


def _cli_error(capsys, args):
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_nonexistent_path_is_a_one_line_error(tmp_path, capsys):
    words = tmp_path / "w.txt"
    words.write_text("cat\n")
    err = _cli_error(capsys, ["extract", str(tmp_path / "nope" / "model"), "--words", str(words),
                              "--out", str(tmp_path / "o.npz")])
    assert "does not exist" in err


def test_directory_without_config_is_rejected(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AlignkitError, match="no config.json"):
        load_encoder(str(tmp_path / "empty"))


def test_a_checkpoint_neither_encoder_nor_causal_lm_is_rejected_and_a_causal_one_loads_as_a_decoder(tmp_path):
    with pytest.raises(AlignkitError, match="not an encoder or a decoder-only"):
        load_encoder(str(tiny_vit(tmp_path / "vit")))
    dec = load_encoder(str(tiny_gpt2(tmp_path / "gpt2")))           # recognised by capability, not by name
    assert dec.architecture == "decoder" and dec.num_layers == 1


def test_corrupt_weights_are_reported(tmp_path, capsys):
    d = tiny_bert(tmp_path / "bert")
    (d / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    words = tmp_path / "w.txt"
    words.write_text("cat\n")
    err = _cli_error(capsys, ["extract", str(d), "--words", str(words), "--out", str(tmp_path / "o.npz")])
    assert "cannot load weights" in err
    assert not (tmp_path / "o.npz").exists()


def test_empty_word_list_is_rejected(tmp_path, tiny_dir, capsys):
    words = tmp_path / "w.txt"
    words.write_text("\n  \n")
    err = _cli_error(capsys, ["extract", str(tiny_dir), "--words", str(words), "--out", str(tmp_path / "o.npz")])
    assert "empty" in err


def test_layer_out_of_range_is_rejected(tmp_path, tiny_dir, capsys):
    words = tmp_path / "w.txt"
    words.write_text("cat\n")
    err = _cli_error(capsys, ["extract", str(tiny_dir), "--words", str(words), "--layers", "0,5",
                              "--out", str(tmp_path / "o.npz")])
    assert "layer" in err


def test_unknown_bundled_name(tmp_path):
    with pytest.raises(AlignkitError, match="unknown bundled model"):
        load_encoder("bundled:mbert")


def test_models_command_lists_the_bundled_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "bundled:multilingual-e5-small" in out and "alignkit" in out


def test_extract_writes_the_word_vectors_into_an_npz(tmp_path, tiny_dir, capsys):
    import numpy as np

    from alignkit.vectors.extract import word_vectors

    words = tmp_path / "w.txt"
    words.write_text("cat\nhello world\ncat\n")
    out = tmp_path / "o.npz"
    assert main(["extract", str(tiny_dir), "--words", str(words), "--layers", "2,0", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert f"wrote {out}: 2 layers x 3 words x 32" in capsys.readouterr().out
    enc = load_encoder(str(tiny_dir), device="cpu")
    with np.load(out) as z:
        assert sorted(z.files) == ["layers", "model", "model_fingerprint", "vectors", "words"]
        assert z["words"].tolist() == ["cat", "hello world", "cat"] and z["layers"].tolist() == [2, 0]
        assert str(z["model"]) == str(tiny_dir) and str(z["model_fingerprint"]) == enc.fingerprint
        expected = word_vectors(enc, ["cat", "hello world", "cat"], layers=[2, 0], progress=False)
        np.testing.assert_allclose(z["vectors"], expected, atol=1e-6)
        assert z["vectors"].shape == (2, 3, 32) and z["vectors"].dtype == np.float32


def test_a_lazy_encoder_reads_no_weights_until_first_use_and_matches_the_eager_one(tiny_dir):
    import numpy as np

    from alignkit.inputs.encoders import LazyEncoder
    from alignkit.vectors.cache import VectorCache
    from alignkit.vectors.extract import word_vectors

    eager = load_encoder(str(tiny_dir), device="cpu")
    lazy = load_encoder(str(tiny_dir), device="cpu", lazy=True)
    assert isinstance(lazy, LazyEncoder) and not lazy.loaded
    for attr in ("name", "fingerprint", "num_layers", "hidden_size", "device", "dtype", "query_prefix"):
        assert getattr(lazy, attr) == getattr(eager, attr), attr
    cache = VectorCache(tiny_dir.parent / "lazy-cache")
    ref = word_vectors(eager, ["cat", "dog"], cache=cache, progress=False)    # fills the cache
    again = word_vectors(lazy, ["cat", "dog"], cache=cache, progress=False)   # a hit: no weights needed
    assert not lazy.loaded
    np.testing.assert_array_equal(np.asarray(again), np.asarray(ref))
    fresh = word_vectors(lazy, ["cat", "house"], progress=False)               # a miss loads it, once
    assert lazy.loaded and lazy.max_length == eager.max_length
    np.testing.assert_array_equal(np.asarray(fresh)[:, 0], np.asarray(ref)[:, 0])


def test_a_lazy_encoder_reports_corrupt_weights_when_it_first_needs_them(tmp_path):
    d = tiny_bert(tmp_path / "bert")
    (d / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    lazy = load_encoder(str(d), lazy=True)                  # config and hashes only: fine
    with pytest.raises(AlignkitError, match="cannot load weights"):
        lazy.tokenize(["cat"])
    with pytest.raises(AlignkitError, match="not an encoder"):   # non-encoders fail at once, lazy or not
        load_encoder(str(tiny_vit(tmp_path / "vit")), lazy=True)
