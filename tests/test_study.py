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
    # baselines rt and ft: each pair of variants is one contrast, never also its mirror (SPEC §2 v3)
    contrasts = set(zip(cmp["variant"], cmp["baseline"]))
    assert contrasts == {("rt+cl", "rt"), ("rt+cl", "ft"), ("rt", "ft")}
    assert not cmp.duplicated(["variant", "baseline", "layer", "pair", "metric", "method", "direction"]).any()
    assert set(cmp["family"]) == {"exploratory"}  # no outcome declared: nothing is primary
    bls = cmp[(cmp["metric"] == "bls") & (cmp["variant"] == "rt+cl") & (cmp["baseline"] == "rt")]
    assert len(bls) == 3 and (bls["n_seeds"] == 3).all() and (bls["basis"] == "seeds+items").all()
    report = (out / "report.md").read_text()
    assert "## Answer: the primary outcome" in report and "No primary outcome was declared" in report
    assert (out / "bls_by_layer_variants.png").is_file()
    assert "## Every variant at the last layer" in report and "| rt+cl |" in report
    # seed-level statistics: the t-interval over seeds is the CI, the two-level bootstrap and the
    # items-only interval (conditional on the checkpoints) sit beside it
    last = bls[bls["layer"] == bls["layer"].max()].iloc[0]
    assert all(last[c] != "" for c in ("ci_low", "ci_high", "boot_low", "boot_high", "items_low", "items_high"))
    assert float(last["ci_low"]) <= float(last["diff"]) <= float(last["ci_high"])
    assert set(cmp["metric"]) >= {"bls_auc", "bls_z", "bls_baseline"}
    # item scores of the new rows are kept in the run folders and paired
    new_rows = cmp[cmp["metric"].isin(["bls_auc", "bls_z", "bls_baseline"]) & (cmp["variant"] == "rt+cl")
                   & (cmp["baseline"] == "rt")]
    assert len(new_rows) == 9 and (new_rows["basis"] == "seeds+items").all()
    assert (out / "bls_auc_by_layer_variants.png").is_file()
    pts = pd.read_csv(out / "alignment_vs_accuracy.csv")
    # 9 checkpoints x (BLS AUC, BLS) on en-sw: 18 rows
    assert list(pts.columns) == ["measure", "model", "variant", "seed", "lang", "d_align", "d_acc"] and len(pts) == 18
    summary = pd.read_csv(out / "alignment_vs_accuracy_summary.csv")
    assert {"r", "ci_low_seeds", "ci_high_seeds", "r_within_seed", "p"} <= set(summary.columns)
    # each run's small outputs: rows, item scores, predictions, training diagnostics, manifest, cost
    run = out / "runs" / "rt+cl" / "seed2"
    for f in ("results.csv", "manifest.json", "cost.json", "eval/predictions-sw.tsv",
              "training/training_diagnostics.json", "training/metrics.jsonl"):
        assert (run / f).is_file(), f
    assert list((run / "items").rglob("*.npz")) and not list(run.rglob("*.safetensors"))

    # --reanalyse of the finished study (from its files, with its item scores) reproduces comparison.csv
    from alignkit.results.compare import SEED_COLUMNS

    assert main(["study", "--reanalyse", str(out), "--out", str(study_dir / "re"), "--quiet"]) == 0
    again = pd.read_csv(study_dir / "re" / "reanalysis.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(again[SEED_COLUMNS + ["family", "p_adjusted"]],
                                  cmp[SEED_COLUMNS + ["family", "p_adjusted"]])

    # a re-run with the same seeds trains nothing new and reproduces results.csv exactly
    before = (out / "results.csv").read_bytes()
    stamp = {p: p.stat().st_mtime_ns for p in (out / "checkpoints").rglob("model.safetensors")}
    assert main(["study", str(study_dir / "study.toml"), "--out", str(out), "--quiet"]) == 0
    assert (out / "results.csv").read_bytes() == before
    assert {p: p.stat().st_mtime_ns for p in (out / "checkpoints").rglob("model.safetensors")} == stamp

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


def test_study_from_committed_run_outputs_trains_nothing_and_gives_the_same_report(study_dir, tmp_path):
    """A study whose checkpoints were pruned continues on a fresh machine from a copy of its run
    folders (what is committed): nothing is trained or scored, the report is byte-identical."""
    import shutil

    cfg = study_dir / "study-prune.toml"
    cfg.write_text((study_dir / "study.toml").read_text().replace(
        '"rt+cl"]', '"rt+cl"]\nprune_checkpoints = true').replace("seeds = [1, 2, 3]", "seeds = [1, 2]"))
    first = tmp_path / "first"
    assert main(["study", str(cfg), "--out", str(first), "--quiet"]) == 0
    assert not list((first / "checkpoints").rglob("model.safetensors"))  # weights pruned once scored
    fresh = tmp_path / "fresh"
    shutil.copytree(first / "runs", fresh / "runs")  # only what a commit keeps
    assert main(["study", str(cfg), "--out", str(fresh), "--quiet"]) == 0
    assert not (fresh / "checkpoints").exists()  # nothing trained
    for f in ("report.md", "results.csv", "comparison.csv", "alignment_vs_accuracy_summary.csv"):
        assert (fresh / f).read_bytes() == (first / f).read_bytes(), f


def test_per_variant_seed_table_trains_exactly_the_runs_it_names(study_dir, tmp_path):
    from alignkit.study import load_study_config

    text = (study_dir / "study.toml").read_text().replace(
        "seeds = [1, 2, 3]", 'seeds = { rt = [1, 2], "rt+cl" = [1, 2], default = [1] }')
    (study_dir / "study-seeds.toml").write_text(text)
    cfg = load_study_config(study_dir / "study-seeds.toml")
    assert cfg.run_order() == [("ft", 1), ("rt", 1), ("rt+cl", 1), ("rt", 2), ("rt+cl", 2)]  # seed by seed
    cfg.run_first = ["rt", "rt+cl"]  # (default: the primary contrast's variants)
    assert cfg.run_order() == [("rt", 1), ("rt+cl", 1), ("rt", 2), ("rt+cl", 2), ("ft", 1)]
    out = tmp_path / "o"
    assert main(["study", str(study_dir / "study-seeds.toml"), "--out", str(out), "--only", "rt/seed2,ft/seed1",
                 "--quiet"]) == 0
    runs = sorted(str(p.parent.relative_to(out / "runs")) for p in (out / "runs").rglob("results.csv"))
    assert runs == ["ft/seed1", "rt/seed2"]
    assert main(["study", str(study_dir / "study-seeds.toml"), "--out", str(out), "--quiet"]) == 0
    runs = sorted(str(p.parent.relative_to(out / "runs")) for p in (out / "runs").rglob("results.csv"))
    assert runs == ["base", "base+probe", "ft/seed1", "rt+cl/seed1", "rt+cl/seed2", "rt/seed1", "rt/seed2"]
    cmp = pd.read_csv(out / "comparison.csv", keep_default_na=False)
    # ft has one seed: contrasts against it pair one seed (p undefined, never significant)
    vs_ft = cmp[cmp["baseline"] == "ft"]
    assert (vs_ft["n_seeds"] == 1).all() and vs_ft["p_value"].eq("").all() and not vs_ft["significant"].any()
    assert (cmp[(cmp["variant"] == "rt+cl") & (cmp["baseline"] == "rt")]["n_seeds"] == 2).all()
    bad = text.replace('default = [1]', 'rsda = [1]')
    (study_dir / "bad-seeds.toml").write_text(bad)
    assert main(["study", str(study_dir / "bad-seeds.toml"), "--out", str(tmp_path / "b"), "--quiet"]) == 2


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
    import alignkit.training.diagnostics as diag
    from alignkit.study.report import diagnostics_table, training_diagnostics

    assert training_diagnostics({"rt/seed1": tmp_path / "missing"}) == {}
    assert diagnostics_table({}) == []
    monkeypatch.setattr(diag, "read_training_diagnostics",
                        lambda d: {"variant": "ept+apt+rt", "steps": 60, "row_movement_median_rho": 0.61,
                                   "apt_loss_max": 0.0042, "best_dev_acc": float("nan")})
    table = diagnostics_table(training_diagnostics({"ept+apt+rt/seed1": tmp_path}))
    line = next(x for x in table if x.startswith("| ept+apt+rt/seed1 |"))
    assert "| 60 |" in line and "| 0.61 |" in line and "| 0.0042 |" in line


COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "studies" / "rq-cpu-v1"


@pytest.mark.skipif(not (COMMITTED / "study.json").is_file(), reason="committed study not found")
def test_reanalysis_of_the_committed_study_reports_seed_level_intervals(tmp_path):
    assert main(["study", "--reanalyse", str(COMMITTED), "--out", str(tmp_path), "--resamples", "200", "--quiet"]) == 0
    md = (tmp_path / "reanalysis.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| rt+cl − rt | tatoeba_acc nn | ur->en |"))
    assert "+4.9, -2.2, +7.8" in line and "[-9.3, +16.3]" in line and "| 0.36 | alignment | 1 | no |" in line
    assert "p = 0.002 (sig.)" in line  # what the items-only analysis had claimed
    assert "predates `bls_auc` and `bls_z`" in md
    tab = pd.read_csv(tmp_path / "reanalysis.csv", keep_default_na=False)
    c = tab[(tab["metric"] == "bls_baseline") & (tab["variant"] == "rt+cl") & (tab["baseline"] == "rt")
            & (tab["layer"] == 12)].iloc[0]
    assert float(c["baseline_value"]) == pytest.approx(0.7933, abs=1e-4)  # rt: c = bls_raw − bls
    assert float(c["value"]) == pytest.approx(0.5336, abs=1e-4)  # rt+cl
    # each contrast once: 9 contrasts x 36 measurements at layer 12 and task accuracy = 324 unique tests
    t = tab[((tab["layer"] == 12) | (tab["layer"] < 0)) & ~tab["metric"].isin(["bls_baseline", "bls_over_headroom"])]
    assert len(t) == 324 and t[["variant", "baseline"]].drop_duplicates().shape[0] == 9
    assert not any(((a, b) in set(zip(tab["variant"], tab["baseline"]))) for b, a in zip(tab["variant"], tab["baseline"]))
    # the outcomes declared post hoc (outcomes-post-hoc.toml): bls en-sw layer 12, rt+cl - rt
    prim = tab[tab["family"] == "primary"]
    assert len(prim) == 1 and prim.iloc[0]["metric"] == "bls" and float(prim.iloc[0]["p_adjusted"]) == pytest.approx(
        float(prim.iloc[0]["p_value"]))
    assert "declared POST HOC" in (tmp_path / "report.md").read_text()
    summ = pd.read_csv(tmp_path / "alignment_vs_accuracy_summary.csv").set_index(["measure", "lang"])
    r = summ.loc[("Tatoeba acc", "sw")]
    # resampling seeds (checkpoints of a seed share its data order) is far wider than resampling checkpoints
    assert r["ci_high_seeds"] - r["ci_low_seeds"] > 2 * (r["ci_high"] - r["ci_low"])


def test_reanalyse_with_a_config_is_a_one_line_error(tmp_path, capsys):
    assert main(["study", "x.toml", "--reanalyse", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_reproduce_reruns_one_run_from_scratch_and_compares_its_files_byte_for_byte(study_dir, tmp_path, capsys):
    import json
    import shutil

    from alignkit.study.reproduce import result_files

    cfg = study_dir / "study-repro.toml"
    cfg.write_text((study_dir / "study.toml").read_text().replace("seeds = [1, 2, 3]", "seeds = [1]"))
    out = tmp_path / "out"
    assert main(["study", str(cfg), "--out", str(out), "--only", "rt/seed1", "--quiet"]) == 0
    # a run that has not finished cannot be reproduced: one line, exit 2
    assert main(["study", str(cfg), "--out", str(out), "--reproduce", "ft/seed1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run ft/seed1 has not finished") and err.count("\n") == 1
    assert main(["study", str(cfg), "--out", str(out), "--reproduce", "rt/seed1", "--quiet"]) == 0
    assert "byte-identical" in capsys.readouterr().out
    rec = json.loads((out / "reproduction.json").read_text())
    assert rec["byte_identical"] and rec["compared"] == rec["identical"] > 3
    assert rec["results_sha256"] == rec["rerun_results_sha256"]
    assert (out / "reproduce" / "runs" / "rt" / "seed1" / "results.csv").read_bytes() == \
        (out / "runs" / "rt" / "seed1" / "results.csv").read_bytes()
    files = result_files(out / "runs" / "rt" / "seed1")
    assert "results.csv" in files and not any(x.startswith("training/") or x == "cost.json" for x in files)
    # the report shows it
    assert main(["study", str(cfg), "--out", str(out), "--report-only", "--quiet"]) == 0
    report = (out / "report.md").read_text()
    assert "## Reproduction" in report and "byte-identical" in report and "--reproduce rt/seed1" in report
    # a study whose committed row differs (one byte) is caught: exit 1, the file named; the re-run is reused
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    f = bad / "runs" / "rt" / "seed1" / "results.csv"
    text = f.read_text()
    f.write_text(text.replace("0.", "1.", 1))
    stamp = (bad / "reproduce" / "runs" / "rt" / "seed1" / "results.csv").stat().st_mtime_ns
    assert main(["study", str(cfg), "--out", str(bad), "--reproduce", "rt/seed1", "--quiet"]) == 1
    assert "results.csv" in capsys.readouterr().err
    assert (bad / "reproduce" / "runs" / "rt" / "seed1" / "results.csv").stat().st_mtime_ns == stamp
    assert not json.loads((bad / "reproduction.json").read_text())["byte_identical"]
    # a newer code that adds rows (here: the study's copy lacks the mexa rows) reproduces every
    # row the study has: exit 0, the added rows counted and their metric named
    older = tmp_path / "older"
    shutil.copytree(out, older)
    f = older / "runs" / "rt" / "seed1" / "results.csv"
    lines = f.read_text().splitlines(keepends=True)
    kept = [x for x in lines if ",bls_z," not in x]
    f.write_text("".join(kept))
    assert main(["study", str(cfg), "--out", str(older), "--reproduce", "rt/seed1", "--quiet"]) == 0
    assert "new row(s) (bls_z)" in capsys.readouterr().out
    rec = json.loads((older / "reproduction.json").read_text())
    assert rec["reproduced"] and not rec["byte_identical"] and rec["extra_rows"] == len(lines) - len(kept) > 0
    assert rec["study_rows"] == len(kept) - 1 and rec["extra_metrics"] == ["bls_z"]


def test_resumed_runs_cost_counts_the_earlier_processes_from_the_training_log(tmp_path):
    """A run's log restarts its clock in each training process: the segments before the one that
    finished the run are the cost its cost.json misses; a run trained in one go has none."""
    import json

    from alignkit.study.report import _cost_lines
    from alignkit.study.run import earlier_training_cpu

    def log(*segments):
        f = tmp_path / f"m{len(list(tmp_path.iterdir()))}.jsonl"
        recs = [{"step": i, "time_s": 2.0 * c, "cpu_s": c} for seg in segments for i, c in enumerate(seg, 1)]
        f.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
        return f

    assert earlier_training_cpu(log([10, 20, 30]), finished_cpu_s=40.0) is None       # one process
    assert earlier_training_cpu(log([10, 20], [5, 15]), finished_cpu_s=25.0) == 20.0  # resumed once
    assert earlier_training_cpu(log([10, 20], [5, 15]), finished_cpu_s=8.0) == 35.0   # only scored at the end
    assert earlier_training_cpu(tmp_path / "absent.jsonl", 1.0) is None
    text = "\n".join(_cost_lines({"runs": 2, "wall_s": 7200.0, "cpu_s": 3600.0, "machines": ["m"],
                                  "resumed": ["rt/seed2"], "earlier_cpu_s": 1800.0}))
    assert "1.00 CPU-hours" in text and "(rt/seed2)" in text and "at least 1.50 CPU-hours" in text


def test_leave_one_variant_out_shows_a_correlation_carried_by_one_recipe():
    from alignkit.study.analysis import alignment_accuracy_summary, leave_one_variant_out
    from alignkit.study.report import summary_correlation_lines

    rng = np.random.default_rng(0)
    rows = []
    for variant, shift in (("a", 0.0), ("b", 0.0), ("c", 0.0), ("outlier", 1.0)):
        for seed in (1, 2, 3):
            x, y = rng.normal(), rng.normal()
            # the outlier recipe keeps alignment high and accuracy low: it alone makes r negative
            rows.append({"measure": "BLS", "model": f"{variant}/seed{seed}", "variant": variant, "seed": seed,
                         "lang": "sw", "d_align": x + 5 * shift, "d_acc": y - 5 * shift})
    pts = pd.DataFrame(rows)
    loo = leave_one_variant_out(pts)
    assert set(loo) == {"a", "b", "c", "outlier"}
    for v, r in loo.items():  # identity: the Pearson r of the points that remain
        rest = pts[pts["variant"] != v]
        assert r == pytest.approx(np.corrcoef(rest["d_align"], rest["d_acc"])[0, 1], abs=1e-12)
    s = alignment_accuracy_summary(pts, n_resamples=200).iloc[0]
    assert s["r"] < -0.8 and s["without_high"] == "outlier" and s["r_without_high"] == pytest.approx(loo["outlier"])
    assert abs(s["r_without_high"]) < 0.8 and s["r_without_low"] == min(loo.values())
    line = summary_correlation_lines(pd.DataFrame([s]))[0]
    assert f"to {loo['outlier']:.2f} (without outlier)" in line
    # two variants: leaving one out leaves a single recipe, so nothing is reported
    assert leave_one_variant_out(pts[pts["variant"].isin(["a", "b"])]) == {}
