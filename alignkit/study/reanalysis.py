"""Re-analyse a finished study from its files with the seed-level statistics (SPEC §2 v2).

``alignkit study --reanalyse DIR`` reads ``DIR/results.csv`` and ``DIR/study.json`` (and the item
scores under ``DIR/scores/`` where they were kept), recomputes every variant-vs-baseline
contrast paired by seed (:func:`alignkit.study.analysis.compare_variants`) and the alignment–accuracy
relation at checkpoint level, and writes ``reanalysis.csv`` and ``reanalysis.md``; it also
rewrites ``report.md`` and the study plots from the same numbers, so the report's claims rest
on the seed-level statistics. Where the previous ``comparison.csv`` exists, each row is shown
next to its earlier interval and p (``comparison.csv`` itself is left as it was).

Studies scored before ``bls_baseline`` existed get it derived from their rows,
c = bls_raw − bls (exact: that is how bls was computed), plus the spread-normalised
``bls_over_headroom`` = (bls_raw − c) / (1 − c), a rescaling by the room above c. Neither has a
CI; ``bls_auc`` and ``bls_z`` need the vectors and cannot be derived.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from alignkit.atomic import write_text
from alignkit.errors import AlignkitError
from alignkit.results.rows import MEASUREMENT_KEY, read_csv, write_csv

#: contrasts the committed study's claims are about, shown in full in reanalysis.md
MAIN_CONTRASTS = (("rt+cl", "rt"), ("ept+apt+rt+cl", "ept+apt+rt"), ("ept+apt+rt", "rt"), ("rt", "ft"),
                  ("rt+cl", "ft"))
_DERIVED = ("bls_baseline", "bls_over_headroom")


def derived_bls_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``bls_baseline`` (c = bls_raw − bls) and ``bls_over_headroom`` ((raw − c)/(1 − c))
    for every (model, layer, pair, direction) that has bls and bls_raw but no bls_baseline row."""
    key = ["model", "model_fingerprint", "layer", "pair", "direction"]
    b = results[results["metric"] == "bls"].set_index(key)
    r = results[results["metric"] == "bls_raw"].set_index(key)
    have = results[results["metric"] == "bls_baseline"].set_index(key).index
    shared = b.index.intersection(r.index).difference(have)
    if shared.empty:
        return results.iloc[0:0]
    b, r = b.loc[shared], r.loc[shared]
    c = r["value"] - b["value"]
    out = []
    for metric, value in (("bls_baseline", c), ("bls_over_headroom", b["value"] / (1.0 - c))):
        rows = b.copy()
        rows["metric"], rows["value"] = metric, value
        rows["ci_low"] = rows["ci_high"] = np.nan
        out.append(rows.reset_index())
    return pd.concat(out, ignore_index=True)[results.columns]


#: outcomes declared after a study ran, for a study whose config declared none (read by --reanalyse)
POST_HOC_OUTCOMES = "outcomes-post-hoc.toml"


def _load(study_dir: Path, outcomes: str | os.PathLike | None = None):
    from alignkit.study.config import StudyConfig, check_study
    from alignkit.training.config import load_toml

    res = read_csv(study_dir / "results.csv")
    meta = study_dir / "study.json"
    if not meta.is_file():
        raise AlignkitError(f"{meta} not found; --reanalyse needs a study folder written by `alignkit study`")
    known = set(StudyConfig.__dataclass_fields__)
    cfg = StudyConfig(**{k: v for k, v in json.loads(meta.read_text())["config"].items() if k in known})
    post_hoc = None
    if outcomes is None and (study_dir / POST_HOC_OUTCOMES).is_file():
        outcomes = study_dir / POST_HOC_OUTCOMES
    if outcomes is not None and not cfg.outcomes:
        post_hoc = Path(outcomes)
        cfg.outcomes = dict(load_toml(post_hoc).get("outcomes", {}))
    elif outcomes is not None:
        raise AlignkitError(f"{meta} already declares outcomes; a study's declared outcomes are not replaced after "
                            "the fact (drop --outcomes)")
    check_study(cfg, str(post_hoc or meta))
    return res, cfg, post_hoc


def reanalyse(study_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
              n_resamples: int | None = None, outcomes: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write ``reanalysis.csv``, ``reanalysis.md``, ``report.md``, ``alignment_vs_accuracy_summary.csv``
    and the plots for the study in ``study_dir`` (into ``out``, default the same folder); returns
    their paths. A study whose config declared no outcomes can be given them post hoc
    (``outcomes``, or ``outcomes-post-hoc.toml`` in the folder): the report says so."""
    from alignkit.study.analysis import (_last_layer, alignment_accuracy_summary, alignment_vs_accuracy,
                                         compare_variants)
    from alignkit.study.plots import plot_study
    from alignkit.study.report import study_report

    d = Path(study_dir)
    res, cfg, post_hoc = _load(d, outcomes)
    if n_resamples is not None:
        cfg.compare_resamples = n_resamples
    derived = derived_bls_rows(res)
    full = pd.concat([res, derived], ignore_index=True) if len(derived) else res
    table = compare_variants(d, full, cfg)
    old = d / "comparison.csv"
    if old.is_file():
        prev = pd.read_csv(old, dtype={c: str for c in ("pair", "direction", "metric", "method")},
                           keep_default_na=False, na_values={c: ["", "nan"] for c in ("ci_low", "ci_high", "p_value")})
        prev = prev[["variant", "baseline", *MEASUREMENT_KEY, "ci_low", "ci_high", "p_value", "basis"]]
        table = table.merge(prev, on=["variant", "baseline", *MEASUREMENT_KEY], how="left", suffixes=("", "_before"))
    dest = Path(out) if out is not None else d
    dest.mkdir(parents=True, exist_ok=True)
    write_csv(table, dest / "reanalysis.csv")
    summary = alignment_accuracy_summary(alignment_vs_accuracy(full, cfg), cfg.compare_resamples)
    write_csv(summary, dest / "alignment_vs_accuracy_summary.csv")
    write_text(dest / "reanalysis.md", reanalysis_markdown(full, table, cfg, summary, _last_layer(full),
                                                           derived=len(derived) > 0, source=d, post_hoc=post_hoc))
    plots = plot_study(full, table, cfg, dest)
    note = ("> Regenerated by `alignkit study --reanalyse` from this folder's results.csv with the seed-level "
            "statistics (SPEC §2 v2); nothing was trained or scored again. Earlier versions of this file (in git "
            "history) used item-level CIs of seed-averaged scores. See [reanalysis.md](reanalysis.md)."
            + (" This study predates `bls_auc` and `bls_z` (they need the word vectors, which were not kept); "
               "`BLS c` = bls_raw − bls is derived from its rows." if len(derived) else "")
            + (" No item scores were kept, so the two-level bootstrap below resamples seeds only and the "
               "items-only column is empty." if set(table["basis"]) == {"seeds"} else "")
            + (f" **The outcomes below were declared after the study ran** ({post_hoc.name}), so the primary "
               "test's p is not protected against the choice having been made after seeing the data."
               if post_hoc else "") + "\n\n")
    write_text(dest / "report.md", note + study_report(full, table, cfg, plots, correlation_summary=summary,
                                                       post_hoc=post_hoc is not None))
    return {"csv": dest / "reanalysis.csv", "report": dest / "reanalysis.md", "study_report": dest / "report.md"}


def _seeds(r, k: float, digits: int) -> str:
    return ", ".join(f"{k * float(x):+.{digits}f}" for x in str(r["seed_diffs"]).split(";") if x)


def _ci(lo, hi, k: float, digits: int) -> str:
    return "" if pd.isna(lo) else f"[{k * lo:+.{digits}f}, {k * hi:+.{digits}f}]"


def _sig(flag) -> str:
    return "**yes**" if flag in (True, "True") else "no"


def _row_line(r) -> str:
    pct = r["metric"] in ("p@1", "tatoeba_acc") or str(r["metric"]).endswith("_acc")
    k, dg = (100, 1) if pct else (1, 4)
    before = ""
    if "p_value_before" in r.index and not pd.isna(r.get("ci_low_before")):
        old_sig = "sig." if r["p_value_before"] < 0.05 else "n.s."
        before = f"{_ci(r['ci_low_before'], r['ci_high_before'], k, dg)}, p = {r['p_value_before']:.2g} ({old_sig})"
    p = "undefined" if pd.isna(r["p_value"]) else f"{r['p_value']:.2g}"
    pa = "undefined" if pd.isna(r["p_adjusted"]) else f"{r['p_adjusted']:.2g}"
    where = r["direction"] or r["pair"]
    return (f"| {r['variant']} − {r['baseline']} | {r['metric']} {r['method']} | {where} | {k * r['diff']:+.{dg}f} "
            f"| {_seeds(r, k, dg)} | {_ci(r['ci_low'], r['ci_high'], k, dg)} | {p} | {r['family']} | {pa} "
            f"| {_sig(r['significant'])} | {_ci(r['boot_low'], r['boot_high'], k, dg)} | {before} |")


def _decomposition(full: pd.DataFrame, last: int) -> list[str]:
    """bls_raw, c, bls and bls/(1 − c) per variant at the last layer (mean over seeds, range)."""
    from alignkit.results.compare import variant_of
    from alignkit.study.report import _cell

    res = full[(full["layer"] == last) & full["metric"].isin(["bls_raw", "bls_baseline", "bls", "bls_over_headroom"])]
    res = res.assign(variant=res["model"].map(variant_of))
    metrics = [m for m in ("bls_raw", "bls_baseline", "bls", "bls_over_headroom") if (res["metric"] == m).any()]
    L = ["| variant | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for v, g in res.groupby("variant", sort=False):
        L.append(f"| {v} | " + " | ".join(_cell(g[g["metric"] == m], False) for m in metrics) + " |")
    return L


def reanalysis_markdown(full: pd.DataFrame, table: pd.DataFrame, cfg, summary: pd.DataFrame, last: int, *,
                        derived: bool, source: Path, post_hoc: Path | None = None) -> str:
    from alignkit.results.measures import report_measures
    from alignkit.study.outcomes import declared_lines
    from alignkit.study.report import summary_correlation_lines

    n_seeds = int(table["n_seeds"].max()) if len(table) else 0
    L = ["# Re-analysis with seed-level statistics", "",
         f"Source: `{source / 'results.csv'}` ({len(full)} rows incl. derived), config `study.json`; written by "
         "`alignkit study --reanalyse`. Every contrast pairs variants by seed: d_s is the per-seed difference, the "
         f"95% t-interval and t-test p are over the {n_seeds} seeds (df = {n_seeds - 1}), and a difference is "
         "tested once (variant − baseline, never also its mirror). The primary test is unadjusted; p is "
         "Holm-adjusted within each secondary family and across all exploratory tests, and \"significant\" "
         "means adjusted p < 0.05 (zero seed spread: p undefined, never significant). The two-level bootstrap "
         "resamples seeds, then "
         "items (seeds only where no item scores were kept); with 3 seeds it is narrower than the t-interval, as "
         "any bootstrap over 3 units is, and it is not used for significance. 'Before' is the committed "
         "comparison.csv: for alignment rows a bootstrap / permutation test over items of the seed-averaged item "
         "scores, i.e. conditional on these checkpoints; for task accuracy, which kept no item scores, it was "
         "already the t-interval over seeds.", ""]
    basis = sorted(set(table["basis"]))
    no_items = (" (no item scores were committed, so per-seed values come from results.csv and the items-only "
                "interval cannot be recomputed).")
    L += [f"Basis of d_s in this study: {', '.join(basis)}" + (no_items if basis == ["seeds"] else "."), ""]
    L += ["## Outcomes" + (f" (declared post hoc, in {post_hoc.name}, after the study ran)" if post_hoc else ""), ""]
    L += declared_lines(cfg.outcomes) + [""]
    if derived:
        L += ["This study predates `bls_auc` and `bls_z`: both need the word vectors, which were not kept, so "
              "they cannot be computed for it. `bls_baseline` (c = bls_raw − bls) and `bls_over_headroom` = "
              "(bls_raw − c)/(1 − c) are derived from the committed rows (no CI; the latter is not a SPEC "
              "metric, only a rescaling by the room above c that shows how much of BLS's move is the spread).", ""]
    L += [f"## BLS decomposed at layer {last} (mean over seeds, seed min–max)", ""] + _decomposition(full, last)
    L += ["", f"## The study's contrasts at layer {last} (and task accuracy)", "",
          "P@1, Tatoeba and accuracy in points.", "",
          "| contrast | measure | direction | diff | per-seed d_s | 95% t-interval (seeds) | p (seeds) | family "
          "| p adjusted | sig. | two-level bootstrap | before: items-only CI, p |", "|---" * 12 + "|"]
    keep = table["layer"] < 0
    for metric, method in report_measures() + [("bls_raw", ""), ("bls_over_headroom", "")]:
        keep |= (table["layer"] == last) & (table["metric"] == metric) & (table["method"] == method)
    main = table[keep]
    for v, b in MAIN_CONTRASTS:
        for _, r in main[(main["variant"] == v) & (main["baseline"] == b)].iterrows():
            L.append(_row_line(r))
    L += ["", _tally(table, last), "", "## Alignment vs zero-shot accuracy at checkpoint level", "",
          "One point per fine-tuned checkpoint (variant × seed), changes relative to the `ft` mean; per language "
          "and with languages averaged; bootstrap CI over checkpoints.", ""]
    L += ["Checkpoints of one seed share their data order, so the interval that resamples seeds (all checkpoints "
          "of a seed together) and the correlation within seeds are the ones to read.", ""]
    L += summary_correlation_lines(summary)
    return "\n".join(L) + "\n"


def _tally(table: pd.DataFrame, last: int) -> str:
    """Counts over the unique tests (each contrast once) at the last layer and task accuracy."""
    t = table[((table["layer"] == last) | (table["layer"] < 0)) & ~table["metric"].isin(_DERIVED)]
    now = t["p_value"] < 0.05
    adj = t["significant"].astype(str).eq("True")
    pairs = t[["variant", "baseline"]].drop_duplicates()
    out = (f"Over the {len(t)} unique tests at layer {last} and task accuracy in reanalysis.csv ({len(pairs)} "
           f"contrasts, each once): {int(now.sum())} have unadjusted seed-level p < 0.05 (≈ "
           f"{0.05 * t['p_value'].notna().sum():.0f} expected by chance if nothing differed); {int(adj.sum())} are "
           "significant after Holm within their family")
    fams = ", ".join(f"{f}: {int(adj[t['family'] == f].sum())} of {int((t['family'] == f).sum())}"
                     for f in dict.fromkeys(t["family"]))
    out += f" ({fams})."
    if "p_value_before" in t.columns:
        before = (t["ci_low_before"] > 0) | (t["ci_high_before"] < 0)
        out += (f" Before (comparison.csv: items-only for alignment, unadjusted), {int(before.sum())} of these tests "
                f"had an interval excluding 0 ({int((t['p_value_before'] < 0.05).sum())} with p < 0.05); "
                f"{int((before & ~adj).sum())} of them are not significant now, and {int((now & ~before).sum())} tests "
                "have seed-level p < 0.05 without having been called significant before.")
    return out
