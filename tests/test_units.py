"""The unit journal of `score` with the local executor: a run stopped by a failing unit keeps
the units it finished, and the re-run does only the rest (no Ray needed)."""
from __future__ import annotations

import json
import shutil

import pandas as pd

from alignkit.cli import main
from tinymodels import tiny_bert

EN_TR = "cat\tkedi\ndog\tköpek\nhouse\tev\nwater\tsu\nbig\tbüyük\nsmall\tküçük\nthe\tbir\nworld\tdünya\n" \
        "hello\tmerhaba\nwater\tsular\nis\tdır\non\tüstünde\n"
EN_DE = "cat\tkatze\ndog\thund\nhouse\thaus\nwater\twasser\nbig\tgroß\nsmall\tklein\nthe\tdie\nworld\twelt\n" \
        "hello\thallo\nis\tist\non\tauf\n"


def test_a_local_run_stopped_by_a_unit_resumes_with_only_the_missing_units(tmp_path, capsys):
    a, b = tiny_bert(tmp_path / "a", seed=0), tiny_bert(tmp_path / "b", seed=1)
    (tmp_path / "en-tr.tsv").write_text(EN_TR)
    (tmp_path / "en-de.tsv").write_text(EN_DE)
    good_b = tmp_path / "b-good"
    shutil.copytree(b, good_b)
    (b / "model.safetensors").write_bytes(b"truncated")  # read when b's first unit runs

    def run(out):
        return main(["score", str(a), str(b), "--pairs", f"{tmp_path}/en-tr.tsv,{tmp_path}/en-de.tsv",
                     "--pool-size", "30", "--resamples", "50", "--cache-dir", str(tmp_path / "cache"),
                     "--out", str(out), "--quiet"])

    capsys.readouterr()  # the checkpoints' save messages
    assert run(tmp_path / "run") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot load weights or tokenizer of checkpoint {b}")
    assert len(list((tmp_path / "run" / "units").glob("*/unit.json"))) == 2  # a's two lexicons
    assert not (tmp_path / "run" / "results.csv").exists()

    shutil.copy2(good_b / "model.safetensors", b / "model.safetensors")
    assert run(tmp_path / "run") == 0
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["units"] == {"total": 4, "run": 2, "reused": 2} and m["executor"]["name"] == "local"
    assert not (tmp_path / "run" / "units").exists()
    assert run(tmp_path / "fresh") == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "results.csv"),
                                  pd.read_csv(tmp_path / "fresh" / "results.csv"))
    assert sorted(p.relative_to(tmp_path / "run") for p in (tmp_path / "run" / "items").rglob("*.npz")) == \
        sorted(p.relative_to(tmp_path / "fresh") for p in (tmp_path / "fresh" / "items").rglob("*.npz"))
