"""Behaviour pinned across refactors: a small `alignkit score` run (tiny model, lexicon,
Tatoeba) must reproduce the results.csv written by the code before the registry/layout
refactor (tests/data/golden_score_small.csv, written by the pre-refactor code at 49d3f8d)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alignkit.cli import main
from alignkit.results.rows import TEXT_COLUMNS, read_csv
from tinymodels import tiny_bert

GOLDEN = Path(__file__).parent / "data" / "golden_score_small.csv"
LEX = "cat\tkedi\ndog\tköpek\nhouse\tev\nwater\tsu\nbig\tbüyük\nsmall\tküçük\nthe\tbir\nworld\tdünya\nhello\tmerhaba\n" \
      "water\tsular\nis\tdır\non\tüstünde\n"
# tiny_bert's vocabulary (tests/tinymodels.py) covers these words
TUR = ["kedi", "köpek ev", "su ev", "kedi su", "köpek", "ev kedi köpek", "su", "ev"]
ENG = ["the cat", "a dog is on the house", "water house", "cat on water", "the dog", "house cat dog", "water",
       "a house"]


def score_small(root: Path, out: Path) -> int:
    """The pinned run: returns the CLI exit code; results in ``out``."""
    model = tiny_bert(root / "tiny")
    (root / "en-tr.test.tsv").write_text(LEX, encoding="utf-8")
    tat = root / "tatoeba"
    tat.mkdir(exist_ok=True)
    (tat / "tatoeba.tur-eng.tur").write_text("\n".join(TUR) + "\n", encoding="utf-8")
    (tat / "tatoeba.tur-eng.eng").write_text("\n".join(ENG) + "\n", encoding="utf-8")
    return main(["score", str(model), "--pairs", str(root / "en-tr.test.tsv"), "--pool-size", "30",
                 "--resamples", "50", "--tatoeba", str(tat), "--cache-dir", str(root / "cache"),
                 "--out", str(out), "--quiet"])


def test_small_score_run_reproduces_the_pre_refactor_results(tmp_path):
    assert score_small(tmp_path, tmp_path / "run") == 0
    got, want = read_csv(tmp_path / "run" / "results.csv"), read_csv(GOLDEN)
    assert list(got.columns) == list(want.columns)
    # model = a tmp path; model_fingerprint hashes config.json, which records the transformers
    # version that wrote the tiny model (CI installs the newest), so it cannot be pinned here
    text = [c for c in want.columns if c in TEXT_COLUMNS and c not in ("model", "model_fingerprint")]
    assert got["model_fingerprint"].nunique() == 1 and got["model_fingerprint"].str.fullmatch("[0-9a-f]{16}").all()
    pd.testing.assert_frame_equal(got[text], want[text])
    for c in ("layer", "n", "pool_size"):
        assert (got[c] == want[c]).all(), c
    # float columns: identical on the machine that wrote them; 1e-6 relative leaves room for
    # another CPU's BLAS summation order. Retrieval rows are counts of hits: the tiny model maps
    # many pool words to [UNK], whose identical vectors tie exactly, and BLAS kernels whose rounding
    # depends on a column's position in the GEMM (OpenBLAS's AVX2 ones) break such ties their
    # own way. There one hit may move to another item (P@k within 1/n) and the bootstrap CI
    # moves with it (within 2/n); everything else stays to 1e-6.
    hits = got["metric"].str.startswith("p@").to_numpy()
    n = got["n"].astype(float).to_numpy()
    for c in ("value", "ci_low", "ci_high", "coverage"):
        g, w = got[c].astype(float).to_numpy(), want[c].astype(float).to_numpy()
        exact = ~hits if c != "coverage" else np.ones_like(hits)
        np.testing.assert_allclose(g[exact], w[exact], rtol=1e-6, atol=1e-9, err_msg=c)
        if c != "coverage":
            slack = (1.0 if c == "value" else 2.0) / n[hits] + 1e-9
            bad = ~(np.abs(g[hits] - w[hits]) <= slack)
            assert not bad.any(), f"{c}: {got.loc[hits].loc[bad]}"
