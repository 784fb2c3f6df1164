"""A miniature study end to end: tiny random model, a few steps, every stage and output."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alignkit.cli import main
from tinymodels import tiny_bert

LABELS = ["entailment", "neutral", "contradiction"]
EN = ["the cat is big", "the dog is small", "a house on water", "hello world", "the big dog", "a small cat"]
SW = ["paka ni mkubwa", "mbwa ni mdogo", "nyumba juu ya maji", "habari dunia", "mbwa mkubwa", "paka mdogo"]


def _tsv(path, sents, n):
    rows = [f"{sents[i % 6]}\t{sents[(i + 1) % 6]}\t{LABELS[i % 3]}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    tiny_bert(root / "tiny")
    data = root / "xnli"
    data.mkdir()
    _tsv(data / "train-en.tsv", EN, 48)
    _tsv(data / "test-en.tsv", EN, 12)
    _tsv(data / "test-sw.tsv", SW, 12)
    (root / "en-sw.test.tsv").write_text("cat\tpaka\ndog\tmbwa\nhouse\tnyumba\nwater\tmaji\nbig\tmkubwa\n"
                                         "small\tmdogo\nhello\thabari\nworld\tdunia\nthe\tya\nis\tni\non\tjuu\n")
    (root / "study.toml").write_text(f"""
[study]
base_model = "{root / 'tiny'}"
variants = ["ft", "rt", "rt+cl"]
seeds = [1, 2, 3]
pairs = ["{root / 'en-sw.test.tsv'}"]
layers = "all"
pool_size = 0
baselines = ["rt", "ft"]
score_resamples = 20
compare_resamples = 50
device = "cpu"
train_workers = 1

[train]
train_file = "xnli/train-en.tsv"
max_steps = 2
batch_size = 8
max_length = 16
dev_fraction = 0.25

[eval]
data = "xnli"
langs = ["en", "sw"]
""")
    return root


def test_miniature_study_runs_end_to_end_and_resumes(study_dir):
    out = study_dir / "out"
    assert main(["study", str(study_dir / "study.toml"), "--out", str(out), "--quiet"]) == 0
    res = pd.read_csv(out / "results.csv", keep_default_na=False)
    models = set(res["model"])
    assert {"base", "base+probe", "ft/seed1", "rt+cl/seed3"} <= models
    assert len([m for m in models if "/seed" in m]) == 9
    acc = res[res["metric"] == "xnli_acc"]
    assert set(acc["pair"]) == {"en", "sw"} and ((acc["value"] >= 0) & (acc["value"] <= 1)).all()
    cmp = pd.read_csv(out / "comparison.csv", keep_default_na=False)
    assert {("rt+cl", "rt"), ("rt+cl", "ft"), ("rt", "ft"), ("ft", "rt")} <= set(zip(cmp["variant"], cmp["baseline"]))
    bls = cmp[(cmp["metric"] == "bls") & (cmp["variant"] == "rt+cl") & (cmp["baseline"] == "rt")]
    assert len(bls) == 3 and (bls["n_seeds"] == 3).all() and (bls["basis"] == "seeds+items").all()
    report = (out / "report.md").read_text()
    assert "## Answer" in report and "rt+cl vs rt" in report
    assert (out / "bls_by_layer_variants.png").is_file()
    assert "## Every variant at the last layer" in report and "| rt+cl |" in report
    # seed-level statistics: the t-interval over seeds is the CI, the two-level bootstrap and the
    # items-only interval (conditional on the checkpoints) sit beside it
    assert bls[["ci_low", "ci_high", "boot_low", "boot_high", "items_low", "items_high"]].notna().all().all()
    assert ((bls["ci_low"] <= bls["diff"]) & (bls["diff"] <= bls["ci_high"])).all()
    assert set(cmp["metric"]) >= {"bls_auc", "bls_z", "bls_baseline"}
    # item scores of the new rows are kept and paired (bls_baseline's items are source words)
    new_rows = cmp[cmp["metric"].isin(["bls_auc", "bls_z", "bls_baseline"]) & (cmp["variant"] == "rt+cl")
                   & (cmp["baseline"] == "rt")]
    assert len(new_rows) == 9 and (new_rows["basis"] == "seeds+items").all()
    assert "across training runs" in report and "conditional on these checkpoints" in report
    assert (out / "bls_auc_by_layer_variants.png").is_file()
    pts = pd.read_csv(out / "alignment_vs_accuracy.csv")
    # 9 checkpoints x (BLS AUC, BLS) on en-sw: 18 rows (was 9 before bls_auc was added)
    assert list(pts.columns) == ["measure", "model", "variant", "lang", "d_align", "d_acc"] and len(pts) == 18

    # --reanalyse of the finished study (from its files, with its item scores) reproduces comparison.csv
    from alignkit.results.compare import SEED_COLUMNS

    assert main(["study", "--reanalyse", str(out), "--out", str(study_dir / "re"), "--quiet"]) == 0
    again = pd.read_csv(study_dir / "re" / "reanalysis.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(again[SEED_COLUMNS], cmp[SEED_COLUMNS])

    # a re-run with the same seeds trains nothing new and reproduces results.csv exactly
    before = (out / "results.csv").read_bytes()
    stamp = {p: p.stat().st_mtime_ns for p in (out / "checkpoints").rglob("model.safetensors")}
    assert main(["study", str(study_dir / "study.toml"), "--out", str(out), "--quiet"]) == 0
    assert (out / "results.csv").read_bytes() == before
    assert {p: p.stat().st_mtime_ns for p in (out / "checkpoints").rglob("model.safetensors")} == stamp

    # cached measurements of a checkpoint that changed since (other fingerprint) are not reused
    cached = out / "scores" / "rt-seed2" / "results.csv"
    stale = pd.read_csv(cached, keep_default_na=False, dtype=str)
    stale["model_fingerprint"] = "0" * 16
    stale["value"] = "0.123456"
    stale.to_csv(cached, index=False)
    assert main(["study", str(study_dir / "study.toml"), "--out", str(out), "--quiet"]) == 0
    assert (out / "results.csv").read_bytes() == before

    # a from-scratch re-run (new --out: trains, scores and evaluates everything again) with
    # the same seeds reproduces results.csv byte for byte on CPU
    out2 = study_dir / "out2"
    assert main(["study", str(study_dir / "study.toml"), "--out", str(out2), "--quiet"]) == 0
    assert (out2 / "results.csv").read_bytes() == before
    assert (out2 / "comparison.csv").read_bytes() == (out / "comparison.csv").read_bytes()

    # training in 2 parallel single-thread worker processes gives the same bytes as one by one
    cfg3 = study_dir / "study-2workers.toml"
    cfg3.write_text((study_dir / "study.toml").read_text().replace("train_workers = 1", "train_workers = 2"))
    out3 = study_dir / "out3"
    assert main(["study", str(cfg3), "--out", str(out3), "--quiet"]) == 0
    assert (out3 / "results.csv").read_bytes() == before


def test_unknown_variant_in_study_config_is_a_one_line_error(study_dir, tmp_path, capsys):
    cfg = (study_dir / "study.toml").read_text().replace('"rt+cl"]', '"rt+xx"]')
    (study_dir / "bad.toml").write_text(cfg)
    assert main(["study", str(study_dir / "bad.toml"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "rt+xx" in err and err.count("\n") == 1


def _row(model, metric, pair, value, layer=12, method="", direction=""):
    return {"model": model, "metric": metric, "pair": pair, "value": value, "layer": layer, "method": method,
            "direction": direction}


def test_alignment_vs_accuracy_uses_bls_and_tatoeba_relative_to_ft_mean():
    """Known values: changes are taken against the ft mean of each language; Urdu, which has no
    lexicon, enters through Tatoeba (mean of both directions); a linear relation gives r = 1."""
    from alignkit.study import StudyConfig
    from alignkit.study.analysis import alignment_vs_accuracy, correlations

    rows = [_row("base", "bls", "en-sw", 0.5)]
    for model, bls, tat, acc_sw, acc_ur in [("ft/seed1", 0.10, 0.40, 0.40, 0.50), ("ft/seed2", 0.20, 0.60, 0.50, 0.60),
                                            ("rt+cl/seed1", 0.30, 0.70, 0.60, 0.70)]:
        rows += [_row(model, "bls", "en-sw", bls), _row(model, "bls", "en-sw", 9.0, layer=0),
                 _row(model, "tatoeba_acc", "en-ur", tat - 0.1, method="nn", direction="ur->en"),
                 _row(model, "tatoeba_acc", "en-ur", tat + 0.1, method="nn", direction="en->ur"),
                 _row(model, "xnli_acc", "sw", acc_sw, layer=-1, method="zero-shot"),
                 _row(model, "xnli_acc", "ur", acc_ur, layer=-1, method="zero-shot")]
    pts = alignment_vs_accuracy(pd.DataFrame(rows), StudyConfig(variants=["ft", "rt+cl"]))
    bls = pts[pts["measure"] == "BLS"].set_index("model")
    assert set(bls["lang"]) == {"sw"} and "base" not in bls.index
    assert bls.loc["rt+cl/seed1", "d_align"] == pytest.approx(0.15)
    assert bls.loc["rt+cl/seed1", "d_acc"] == pytest.approx(0.15)
    tat = pts[pts["measure"] == "Tatoeba acc"].set_index("model")
    assert set(tat["lang"]) == {"ur"}
    assert tat.loc["ft/seed1", "d_align"] == pytest.approx(-0.10) and tat.loc["ft/seed1", "d_acc"] == pytest.approx(-0.05)
    corr = {c["measure"]: c for c in correlations(pts)}
    assert corr["BLS"]["pearson"] == pytest.approx(1.0) and corr["BLS"]["n"] == 3


def test_correlations_use_one_point_per_checkpoint_per_language_and_averaged():
    from alignkit.study.analysis import correlations

    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        for lang in ("sw", "ur"):
            d = rng.standard_normal()
            rows.append({"measure": "Tatoeba acc", "model": f"v{i % 2}/seed{i}", "variant": f"v{i % 2}",
                         "lang": lang, "d_align": d, "d_acc": 0.5 * d})
    corr = correlations(pd.DataFrame(rows), n_resamples=200)
    assert [c["langs"] for c in corr] == ["sw", "ur", "mean of sw, ur"]
    assert all(c["n"] == 6 for c in corr)  # 6 checkpoints, never 12 checkpoint x language points
    assert corr[0]["pearson"] == pytest.approx(1.0) and corr[0]["pearson_low"] == pytest.approx(1.0)


def test_training_diagnostics_table_is_omitted_without_diagnostics_and_shown_with_them(tmp_path, monkeypatch):
    import alignkit.train.diagnostics as diag
    from alignkit.study.report import diagnostics_table, training_diagnostics

    assert training_diagnostics({"rt/seed1": tmp_path / "missing"}) == {}
    assert diagnostics_table({}) == []
    monkeypatch.setattr(diag, "read_training_diagnostics",
                        lambda d: {"variant": "ept+apt+rt", "steps": 60, "row_movement_median_rho": 0.61,
                                   "apt_loss_max": 0.0042, "best_dev_acc": float("nan")})
    table = diagnostics_table(training_diagnostics({"ept+apt+rt/seed1": tmp_path}))
    line = next(x for x in table if x.startswith("| ept+apt+rt/seed1 |"))
    assert "| 60 |" in line and "| 0.61 |" in line and "| 0.0042 |" in line


COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "studies" / "rq-cpu"


@pytest.mark.skipif(not (COMMITTED / "study.json").is_file(), reason="committed study not found")
def test_reanalysis_of_the_committed_study_reports_seed_level_intervals(tmp_path):
    assert main(["study", "--reanalyse", str(COMMITTED), "--out", str(tmp_path), "--resamples", "200", "--quiet"]) == 0
    md = (tmp_path / "reanalysis.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| rt+cl − rt | tatoeba_acc nn | ur->en |"))
    assert "+4.9, -2.2, +7.8" in line and "[-9.3, +16.3]" in line and "| 0.36 | no |" in line
    assert "p = 0.002 (sig.)" in line  # what the items-only analysis had claimed
    assert "predates `bls_auc` and `bls_z`" in md
    tab = pd.read_csv(tmp_path / "reanalysis.csv", keep_default_na=False)
    c = tab[(tab["metric"] == "bls_baseline") & (tab["variant"] == "rt+cl") & (tab["baseline"] == "rt")
            & (tab["layer"] == 12)].iloc[0]
    assert float(c["baseline_value"]) == pytest.approx(0.7933, abs=1e-4)  # rt: c = bls_raw − bls
    assert float(c["value"]) == pytest.approx(0.5336, abs=1e-4)  # rt+cl


def test_reanalyse_with_a_config_is_a_one_line_error(tmp_path, capsys):
    assert main(["study", "x.toml", "--reanalyse", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
