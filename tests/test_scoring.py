"""`alignkit score` / `alignkit compare` end to end on a tiny model: outputs, identities, failures."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alignkit.cli import main
from alignkit.results.rows import COLUMNS
from tinymodels import tiny_bert

LEX = "cat\tkedi\ndog\tköpek\nhouse\tev\nwater\tsu\nbig\tbüyük\nsmall\tküçük\nthe\tbir\nworld\tdünya\nhello\tmerhaba\n" \
      "water\tsular\nis\tdır\non\tüstünde\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    model = tiny_bert(root / "tiny")
    lex = root / "en-tr.test.tsv"
    lex.write_text(LEX)
    cache = root / "cache"
    return root, model, lex, cache


def _score(setup, out, *extra):
    root, model, lex, cache = setup
    return main(["score", str(model), "--pairs", str(lex), "--pool-size", "30", "--resamples", "50",
                 "--cache-dir", str(cache), "--out", str(out), "--quiet", *extra])


def test_score_writes_tidy_rows_for_every_layer(setup):
    root = setup[0]
    assert _score(setup, root / "run") == 0
    df = pd.read_csv(root / "run" / "results.csv")
    assert list(df.columns) == COLUMNS
    assert sorted(df["layer"].unique()) == [0, 1, 2]
    # bls = bls_raw - correction: the corrected value is below the raw one in an anisotropic space
    b = df[df.metric == "bls"].set_index("layer")["value"]
    r = df[df.metric == "bls_raw"].set_index("layer")["value"]
    assert (b < r).all()
    p1 = df[(df.metric == "p@1") & (df.method == "csls")]
    assert set(p1["direction"]) == {"en->tr", "tr->en"}
    assert (p1["pool_size"] >= 11).all() and (p1["coverage"] == 1.0).all()
    m = json.loads((root / "run" / "manifest.json").read_text())
    assert m["models"][0]["fingerprint"] == df["model_fingerprint"].iloc[0]
    assert m["lexicons"][0]["sha256"] and m["seeds"]["bootstrap"] == 0
    assert (root / "run" / "summary.md").read_text().startswith("# alignkit score summary")
    assert (root / "run" / "bls_by_layer.png").stat().st_size > 1000


def test_warm_rerun_gives_identical_results(setup):
    root = setup[0]
    assert _score(setup, root / "run_a") == 0
    assert _score(setup, root / "run_b") == 0
    a = pd.read_csv(root / "run_a" / "results.csv")
    b = pd.read_csv(root / "run_b" / "results.csv")
    pd.testing.assert_frame_equal(a, b)


def test_compare_of_a_run_with_itself_finds_no_difference(setup, tmp_path):
    root = setup[0]
    assert _score(setup, root / "self") == 0
    other = tmp_path / "copy"
    other.mkdir()
    df = pd.read_csv(root / "self" / "results.csv")
    df["model"] = "copy-of-tiny"
    df.to_csv(other / "results.csv", index=False)
    import shutil

    shutil.copytree(root / "self" / "items", other / "items")
    assert main(["compare", str(root / "self" / "results.csv"), str(other / "results.csv"),
                 "--out", str(tmp_path / "cmp"), "--resamples", "200", "--quiet"]) == 0
    cmp = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert np.allclose(cmp["diff"], 0)
    with_items = cmp.dropna(subset=["p_value"])
    assert len(with_items) > 0 and (with_items["p_value"] == 1.0).all()


def _err(capsys, rc):
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1
    return err


def test_unknown_pair_is_a_one_line_error(setup, capsys):
    root, model, _, cache = setup
    rc = main(["score", str(model), "--pairs", "en-xx", "--out", str(root / "bad"), "--quiet"])
    assert "en-xx" in _err(capsys, rc)
    assert not (root / "bad" / "results.csv").exists()


def test_pool_smaller_than_k_is_rejected_before_any_work(setup, tmp_path, capsys):
    root, model, _, cache = setup
    lex = tmp_path / "en-tr.test.tsv"
    lex.write_text("cat\tkedi\ndog\tköpek\n")
    rc = main(["score", str(model), "--pairs", str(lex), "--pool-size", "0", "--out", str(tmp_path / "o"), "--quiet"])
    assert "fewer than k=10" in _err(capsys, rc)


def test_unwritable_output_is_rejected(setup, tmp_path, capsys):
    root, model, lex, cache = setup
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["score", str(model), "--pairs", str(lex), "--out", str(blocker / "sub"), "--quiet"])
    assert "output directory" in _err(capsys, rc)


def test_tatoeba_dir_missing_a_language(setup, tmp_path, capsys):
    root, model, lex, cache = setup
    (tmp_path / "tat").mkdir()
    (tmp_path / "tat" / "tatoeba.deu-eng.deu").write_text("Hallo\n")
    (tmp_path / "tat" / "tatoeba.deu-eng.eng").write_text("Hello\n")
    rc = main(["score", str(model), "--pairs", str(lex), "--tatoeba", str(tmp_path / "tat"),
               "--out", str(tmp_path / "o"), "--quiet"])
    assert "tatoeba.tur-eng.tur" in _err(capsys, rc)


def test_interrupted_run_leaves_no_partial_results(setup, tmp_path, monkeypatch):
    import alignkit.scoring as scoring

    root, model, lex, cache = setup
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.csv").write_text("previous results\n")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(scoring, "_write_outputs", boom)
    rc = main(["score", str(model), "--pairs", str(lex), "--pool-size", "30", "--resamples", "0",
               "--cache-dir", str(cache), "--out", str(out), "--quiet"])
    assert rc == 130
    assert (out / "results.csv").read_text() == "previous results\n"  # untouched, not half-written


def test_manifest_versions_read_without_import_equal_the_modules_own():
    """software_versions reads an unimported library's version from its installed
    distribution; that must be the version the module itself reports."""
    import faiss
    import numpy
    import pandas
    import sklearn
    import torch
    import transformers

    from alignkit.results.manifest import software_versions

    v = software_versions()
    assert v == {"python": v["python"], "torch": torch.__version__, "transformers": transformers.__version__,
                 "faiss": faiss.__version__, "numpy": numpy.__version__, "pandas": pandas.__version__,
                 "scikit-learn": sklearn.__version__}
    import alignkit.results.manifest as manifest
    # a module name not imported: the distribution's metadata answers (the first one found)
    assert manifest._version("not_an_imported_module", ("no-such-distribution", "transformers")) == \
        transformers.__version__
