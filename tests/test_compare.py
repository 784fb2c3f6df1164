"""`alignkit compare`: refuses runs that are not comparable, reports task accuracy, and compares
variants trained with several seeds at the seed level (SPEC §2 "Comparisons")."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alignkit.cli import main
from alignkit.results.items import ItemWriter
from alignkit.results.rows import row, to_frame, write_csv

STUDY = Path(__file__).resolve().parents[1] / "docs" / "studies" / "rq-cpu-v1" / "results.csv"
PAIRS = [f"w{i}\tv{i}" for i in range(40)]


def _run(root: Path, model: str, *, shift: float = 0.0, mode: str = "isolated", lexicon: str = "en-sw.test",
         pool_size: int = 1200, pooling: str | None = "mean", sha: str = "abc", acc: float = 0.45,
         rng_seed: int = 0) -> Path:
    """A scored run of one model: BLS rows at layers 0 and 12 with item scores, a P@1 row,
    zero-shot and supervised accuracy rows, and (unless pooling is None) a manifest."""
    d = root / model.replace("/", "-")
    fp = f"{abs(hash(model)) % 16**12:012x}"
    scores = np.random.default_rng(rng_seed).normal(0.6, 0.1, len(PAIRS)) + shift
    items = ItemWriter(d, fp, "lexicon", "en-sw")
    rows = []
    for layer in (0, 12):
        rows.append(row(model=model, model_fingerprint=fp, layer=layer, pair="en-sw", direction="en->sw",
                        metric="bls_auc", value=float(scores.mean()), n=len(PAIRS), lexicon=lexicon, mode=mode))
        items.add(layer, "bls_auc", "", "en->sw", PAIRS, scores)
    rows.append(row(model=model, model_fingerprint=fp, layer=12, pair="en-sw", direction="en->sw", metric="p@1",
                    method="csls", value=0.14, n=40, pool_size=pool_size, lexicon=lexicon, mode=mode))
    rows += [row(model=model, model_fingerprint=fp, metric="xnli_acc", method="zero-shot", pair="sw", value=acc, n=500),
             row(model=model, model_fingerprint=fp, metric="xnli_acc", method="supervised", pair="en", value=acc + 0.1,
                 n=500)]
    d.mkdir(parents=True, exist_ok=True)
    items.write()
    write_csv(to_frame(rows), d / "results.csv")
    if pooling is not None:
        (d / "manifest.json").write_text(json.dumps({
            "config": {"mode": mode, "pooling": pooling, "pool_size": pool_size},
            "lexicons": [{"name": lexicon, "sha256": sha}]}))
    return d


def _read(path):
    text = ["pair", "direction", "metric", "method", "seed_diffs", "basis"]
    return pd.read_csv(path, dtype={c: str for c in text}).fillna({c: "" for c in text})


def _compare(capsys, *runs, extra=()):
    rc = main(["compare", *map(str, runs), "--out", str(runs[0].parent / "cmp"), "--resamples", "200", "--quiet",
               *extra])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("change, word", [
    (dict(mode="contextual"), "mode"),
    (dict(lexicon="en-sw.other"), "lexicon"),
    (dict(pool_size=30), "pool size"),
    (dict(pooling="first"), "pooling"),
    (dict(sha="def"), "sha256"),
])
def test_compare_refuses_runs_that_differ_in_mode_lexicon_pool_size_or_pooling(tmp_path, capsys, change, word):
    a = _run(tmp_path, "a")
    b = _run(tmp_path, "b", **change)
    rc, err = _compare(capsys, a, b)
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert word in err and "compare only runs scored with the same" in err


def test_compare_accepts_matching_runs_with_or_without_a_manifest_and_reports_zero_shot_accuracy(tmp_path, capsys):
    a = _run(tmp_path, "a")
    b = _run(tmp_path, "b", shift=0.05, pooling=None, acc=0.47)  # no manifest.json: rows are checked only
    rc, err = _compare(capsys, a, b)
    assert rc == 0, err
    cmp = _read(tmp_path / "cmp" / "comparison.csv")
    auc = cmp[(cmp["metric"] == "bls_auc") & (cmp["layer"] == 12)].iloc[0]
    assert auc["diff"] == pytest.approx(0.05, abs=1e-6) and auc["p_value"] < 0.01
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    zs = [line for line in md.splitlines() if "| xnli_acc | zero-shot |" in line]
    assert len(zs) == 1 and "+0.0200" in zs[0]
    assert any("| xnli_acc | supervised |" in line for line in md.splitlines())
    assert "conditional on the two checkpoints" in md


def test_seeded_runs_are_compared_paired_by_seed(tmp_path, capsys):
    shifts = {1: 0.04, 2: -0.03, 3: 0.05}  # the candidate wins on items in 2 of 3 seeds
    runs = []
    for s, d in shifts.items():
        runs.append(_run(tmp_path, f"rt/seed{s}", rng_seed=s))
        runs.append(_run(tmp_path, f"rt+cl/seed{s}", shift=d, rng_seed=s))
    rc, err = _compare(capsys, *runs, extra=["--baseline", "rt"])
    assert rc == 0, err
    cmp = _read(tmp_path / "cmp" / "comparison.csv")
    r = cmp[(cmp["metric"] == "bls_auc") & (cmp["layer"] == 12)].iloc[0]
    assert (r["variant"], r["baseline"], r["n_seeds"], r["basis"]) == ("rt+cl", "rt", 3, "seeds+items")
    np.testing.assert_allclose([float(x) for x in r["seed_diffs"].split(";")], [0.04, -0.03, 0.05], atol=1e-5)
    assert r["diff"] == pytest.approx(0.02, abs=1e-5)
    # items alone would call it significant; the seeds do not
    assert r["items_low"] > 0 and r["ci_low"] < 0 < r["ci_high"] and not r["significant"]
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "across training runs" in md and "conditional on these checkpoints" in md


def test_seed_labels_are_recognised_from_study_labels_and_checkpoint_folders():
    from alignkit.results.compare import seed_of

    assert seed_of("rt+cl/seed3") == ("rt+cl", 3)
    assert seed_of("/runs/s/checkpoints/ept+apt+rt-seed12") == ("/runs/s/checkpoints/ept+apt+rt", 12)
    assert seed_of("bundled:multilingual-e5-small") is None and seed_of("base") is None


@pytest.mark.skipif(not STUDY.is_file(), reason="committed study results not found")
def test_committed_study_tatoeba_ur_gain_is_not_significant_across_seeds():
    """The review's example, from the committed results.csv: rt+cl − rt, Tatoeba ur→en at layer 12
    is +4.9, −2.2, +7.8 points per seed; t-interval [−9.3, +16.3], p = 0.36."""
    from alignkit.results.compare import compare_runs

    cmp = compare_runs([STUDY], baseline="rt", n_resamples=200)
    r = cmp[(cmp["variant"] == "rt+cl") & (cmp["metric"] == "tatoeba_acc") & (cmp["direction"] == "ur->en")
            & (cmp["layer"] == 12)].iloc[0]
    assert [round(100 * float(x), 1) for x in r["seed_diffs"].split(";")] == [4.9, -2.2, 7.8]
    assert (round(100 * r["ci_low"], 1), round(100 * r["ci_high"], 1), round(r["p_value"], 2)) == (-9.3, 16.3, 0.36)
    assert not r["significant"] and r["basis"] == "seeds"


def test_shares_that_move_one_item_per_seed_are_marked_below_resolution():
    """tatoeba_acc is a share of n sentences: a difference of exactly one sentence in every seed
    (denominators 932–936, so the d_s differ only in their 6th digit) is "certain" to the t-test
    but is marked max_items ≈ 1 and ‡ in the report; four items per seed are not marked; a
    measure that is not a share gets no count."""
    import pandas as pd

    from alignkit.results.compare import seed_level_table
    from alignkit.study.report import ONE_ITEM, test_line, within_one_item

    rows = []
    for s, n in zip(range(1, 6), (932, 933, 934, 935, 936)):
        for variant, k1, k4, v in (("rt", 100, 100, 0.70), ("rt+cl", 101, 104, 0.70 + 0.01 * s)):
            for metric, method, k in (("tatoeba_acc", "nn", k1), ("tatoeba_acc", "nn+center", k4),
                                      ("bls_auc", "", None)):
                rows.append(dict(layer=12, pair="en-sw", metric=metric, method=method, direction="sw->en",
                                 value=k / n if k else v, n=n, variant=variant, seed=s, model=f"{variant}/seed{s}"))
    t = seed_level_table(pd.DataFrame(rows), [("rt+cl", "rt")], lambda r: None)
    one = t[t["method"] == "nn"].iloc[0]
    assert one["p_value"] < 1e-6 and one["max_items"] == pytest.approx(1.0)   # the t-test is fooled
    assert t[t["method"] == "nn+center"].iloc[0]["max_items"] == pytest.approx(4.0)
    assert np.isnan(t[t["metric"] == "bls_auc"].iloc[0]["max_items"])
    marked = [within_one_item(r) for _, r in t.iterrows()]
    assert marked == [m == "nn" for m in t["method"]]
    one = one.copy()
    one["p_adjusted"] = one["p_value"]
    assert f"+0.1{ONE_ITEM} |" in test_line(one)


def test_report_says_why_a_p_value_is_undefined():
    """One seed and zero spread both leave p undefined, for different reasons: the report says which."""
    import pandas as pd

    from alignkit.study.report import test_line

    base = dict(variant="ept+apt+rt", baseline="rt+tablelr", layer=12, pair="en-sw", metric="bls_auc", method="",
                direction="en->sw", diff=0.0278, seed_diffs="0.0278", ci_low=np.nan, ci_high=np.nan,
                p_value=np.nan, p_adjusted=np.nan, significant=False, n_seeds=1)
    assert "undefined (one seed)" in test_line(pd.Series(base))
    assert "undefined (no seed variance)" in test_line(pd.Series({**base, "n_seeds": 3,
                                                                  "seed_diffs": "0.0278;0.0278;0.0278"}))
