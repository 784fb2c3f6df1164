"""The study report (report.md): every variant at the last layer, training diagnostics, seed-level
differences, alignment vs accuracy, and the answer to the research question."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from alignkit.errors import AlignkitError
from alignkit.results.compare import variant_of

from alignkit.study.analysis import _last_layer, alignment_vs_accuracy, correlations, _summary_correlation
from alignkit.study.config import StudyConfig


def _num(v, fmt: str) -> str:
    return "" if pd.isna(v) else format(v, fmt)


def _ci_text(lo, hi, k: float = 1.0, digits: int = 4) -> str:
    return "" if pd.isna(lo) else f"[{k * lo:+.{digits}f}, {k * hi:+.{digits}f}]"


def _headline_columns(res: pd.DataFrame, last: int) -> list[tuple[str, pd.DataFrame, bool]]:
    """(column title, rows with one value per model after averaging directions, as percent?)
    for the per-variant table: every report measure of the registry at the last layer (task
    accuracies: their per-checkpoint rows), one column per pair (or per direction)."""
    from alignkit.results.measures import measure, report_measures

    cols = []
    shown = res[(res["layer"] == last) | (res["layer"] < 0)]
    for metric, method in report_measures():
        m = measure(metric)
        sel = shown[(shown["metric"] == metric) & (shown["method"] == method)]
        for pair in dict.fromkeys(sel["pair"]):
            g = sel[sel["pair"] == pair]
            if m.per_direction:
                for d in dict.fromkeys(g["direction"]):
                    cols.append((f"{m.label} {method.upper()} {d}".replace("  ", " "), g[g["direction"] == d],
                                 m.percent))
            elif not m.family:  # a per-checkpoint statistic (task accuracy): its method says which kind
                cols.append((f"{m.label} {pair} ({method})", g, m.percent))
            else:
                cols.append((f"{m.label} {pair}", g, m.percent))
    return cols


def _cell(g: pd.DataFrame, pct: bool) -> str:
    """Mean over seeds (seed min–max) of the per-model values (directions averaged)."""
    if g.empty:
        return ""
    v = g.groupby("model")["value"].mean() * (100 if pct else 1)
    f = ".1f" if pct else ".4f"
    return format(v.mean(), f) if len(v) == 1 else f"{v.mean():{f}} ({v.min():{f}}–{v.max():{f}})"


def _diff_phrase(r, pct: bool) -> str:
    """'+3.5 points (per seed +4.9, −2.2, +7.8; 95% t-interval [..], p = ..; not significant across seeds)'."""
    k, digits = (100, 1) if pct else (1, 4)
    unit = " points" if pct else ""
    seeds = ", ".join(f"{k * float(x):+.{digits}f}" for x in str(r["seed_diffs"]).split(";") if x)
    ci = _ci_text(r["ci_low"], r["ci_high"], k, digits)
    p = "" if pd.isna(r["p_value"]) else f", p = {r['p_value']:.2g}"
    sig = "significant across seeds" if r["significant"] in (True, "True") else "not significant across seeds"
    return f"{k * r['diff']:+.{digits}f}{unit} (per seed {seeds}; 95% t-interval {ci}{p}; {sig})"


def _key_rows(comparison: pd.DataFrame, last: int) -> pd.DataFrame:
    """Comparison rows of the registry's report measures at the last layer (task accuracies: all)."""
    from alignkit.results.measures import report_measures

    at_last = (comparison["layer"] == last) | (comparison["layer"] < 0)
    keep = np.zeros(len(comparison), dtype=bool)
    for metric, method in report_measures():
        keep |= (at_last & (comparison["metric"] == metric) & (comparison["method"] == method)).to_numpy()
    return comparison[keep]


def differences_table(comparison: pd.DataFrame, cfg: StudyConfig, last: int) -> list[str]:
    """Markdown lines: the seed-level differences of the key measures at the last layer."""
    L = ["| variant | baseline | pair | metric | method | direction | diff | per-seed d_s | 95% t-interval (seeds) "
         "| p (seeds) | sig. | two-level CI | items-only CI (conditional) |", "|---" * 13 + "|"]
    for _, r in _key_rows(comparison, last).iterrows():
        if r["variant"] in cfg.baselines and r["baseline"] in cfg.baselines and \
                cfg.variants.index(r["variant"]) < cfg.variants.index(r["baseline"]):
            continue  # the mirror of a row shown the other way round (comparison.csv keeps both)
        seeds = ", ".join(f"{float(x):+.4f}" for x in str(r["seed_diffs"]).split(";") if x)
        L.append(f"| {r['variant']} | {r['baseline']} | {r['pair']} | {r['metric']} | {r['method']} | {r['direction']} "
                 f"| {r['diff']:+.4f} | {seeds} | {_ci_text(r['ci_low'], r['ci_high'])} | {_num(r['p_value'], '.3g')} "
                 f"| {'yes' if r['significant'] in (True, 'True') else 'no'} "
                 f"| {_ci_text(r['boot_low'], r['boot_high'])} "
                 f"| {_ci_text(r['items_low'], r['items_high'])} |")
    return L


def correlation_lines(corr: list[dict]) -> list[str]:
    L = []
    for c in corr:
        if pd.isna(c["pearson"]):
            L.append(f"- {c['measure']} ({c['langs']}): too few checkpoints or no variation to correlate.")
        else:
            L.append(f"- {c['measure']} ({c['langs']}, {c['n']} checkpoints): Pearson r = {c['pearson']:.3f} "
                     f"(95% bootstrap CI over checkpoints [{c['pearson_low']:.2f}, {c['pearson_high']:.2f}], "
                     f"p = {c['pearson_p']:.3g}), Spearman ρ = {c['spearman']:.3f} "
                     f"([{c['spearman_low']:.2f}, {c['spearman_high']:.2f}], p = {c['spearman_p']:.3g}).")
    return L or ["No zero-shot language has an alignment measure, so there is nothing to correlate."]


DIAGNOSTIC_COLUMNS = ("steps", "embedding_lr", "ept_anchor", "attention_dropout", "row_movement_median_rho",
                      "share_at_margin", "ept_loss_first", "ept_loss_last", "apt_loss_first", "apt_loss_last",
                      "apt_loss_max", "best_dev_acc", "best_step")


def training_diagnostics(ckpts: dict[str, Path]) -> dict[str, dict]:
    """label -> :func:`alignkit.train.diagnostics.read_training_diagnostics` of its checkpoint;
    empty when that function is unavailable, runs whose diagnostics cannot be read left out."""
    try:
        from alignkit.train.diagnostics import read_training_diagnostics
    except ImportError:
        return {}
    out = {}
    for label, d in ckpts.items():
        try:
            out[label] = read_training_diagnostics(d)
        except (AlignkitError, OSError, ValueError):
            continue
    return out


def diagnostics_table(diag: dict[str, dict]) -> list[str]:
    if not diag:
        return []

    def cell(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return "" if v is None else str(v)

    L = ["## Training diagnostics per run", "",
         "Row movement of the touched embedding rows in units of ρ (median) and the share at the EPT margin; "
         "EPT/APT losses at the first and last logged step (APT also its maximum); English dev accuracy.", "",
         "| run | " + " | ".join(DIAGNOSTIC_COLUMNS) + " |", "|---" * (len(DIAGNOSTIC_COLUMNS) + 1) + "|"]
    for label, d in diag.items():
        L.append(f"| {label} | " + " | ".join(cell(d.get(k)) for k in DIAGNOSTIC_COLUMNS) + " |")
    return L + [""]


def _answer_parts(g: pd.DataFrame, last: int) -> list[str]:
    """One phrase per report measure (registry order) of a variant-vs-baseline comparison."""
    from alignkit.results.measures import measure, report_measures

    parts = []
    at = g[(g["layer"] == last) | (g["layer"] < 0)]
    for metric, method in report_measures():
        m = measure(metric)
        for _, r in at[(at["metric"] == metric) & (at["method"] == method)].iterrows():
            where = r["direction"] if m.per_direction or not r["pair"] else r["pair"]
            what = (f"{m.label} {method.upper()}" if m.per_direction else f"{method} {m.label}" if not m.family
                    else f"{m.label} {method}".strip())
            parts.append(f"{what} {where} {_diff_phrase(r, m.percent)}")
    return parts


def _answer_lines(comparison: pd.DataFrame, cfg: StudyConfig, last: int) -> list[str]:
    L = []
    for cl, base in (("rt+cl", "rt"), ("ept+apt+rt+cl", "ept+apt+rt")):
        if cl not in cfg.variants:
            continue
        bases = [base] if base in cfg.baselines else [b for b in cfg.baselines if b != cl][:1]
        for b in bases:
            g = comparison[(comparison["variant"] == cl) & (comparison["baseline"] == b)]
            if not g.empty:
                L.append(f"- **{cl} vs {b}** (layer {last}): " + "; ".join(_answer_parts(g, last)) + ".")
    return L


def study_report(results: pd.DataFrame, comparison: pd.DataFrame, cfg: StudyConfig, plots: list[str],
                 diagnostics: dict[str, dict] | None = None, missing: list[str] | None = None,
                 cost: dict | None = None) -> str:
    last = _last_layer(results)
    L = ["# alignkit study report", "",
         "Research question: to what extent does a cross-lingual contrastive loss (CL) during robust training "
         "improve alignment, measured by bilingual lexical similarity (BLS), for zero-shot transfer? The primary "
         "alignment outcome is `bls_auc` (the chance that a translation beats a non-translation of the same "
         "source; 0.5 = none), which, unlike BLS in cosine units, does not move when every cosine is rescaled.", "",
         f"Base model: `{cfg.base_model}`; variants: {', '.join(cfg.variants)}; seeds: {cfg.seeds}; "
         f"pairs: {', '.join(cfg.pairs)}; layers: {cfg.layers}; Tatoeba: "
         f"{', '.join(cfg.tatoeba_langs) or ('from the pairs' if cfg.tatoeba else 'no')}; training: "
         + ", ".join(f"{k}={v}" for k, v in cfg.train.items()) + "; zero-shot evaluation: "
         + ", ".join(f"{k}={v}" for k, v in cfg.eval.items() if k != "data") + ".", ""]
    res = results.copy()
    res["variant"] = res["model"].map(variant_of)
    cols = _headline_columns(res, last)
    L += [f"## Every variant at the last layer (layer {last}): mean over seeds (seed min–max)", "",
          "P@1, Tatoeba and accuracy in percent; Tatoeba averages both directions; BLS c is the mean cosine "
          "over all source × target combinations (BLS = raw − c); chance accuracy is 33.3% on XNLI; "
          "`base+probe` is a linear probe on the untuned encoder.", "",
          "| model | " + " | ".join(c[0] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for variant in dict.fromkeys(res["variant"]):
        cells = [_cell(g[g["variant"] == variant], pct) for _, g, pct in cols]
        if any(cells):
            L.append(f"| {variant} | " + " | ".join(cells) + " |")
    L += [""] + diagnostics_table(diagnostics or {})
    L += ["## Differences (variant − baseline), last layer, across training runs", "",
          "Variants are paired by seed; d_s is the per-seed difference (item-paired where item scores exist). "
          "The 95% t-interval and t-test p are over seeds (df = seeds − 1); a difference is called significant "
          "only when that interval excludes 0. The two-level bootstrap resamples seeds, then items. The "
          "items-only CI is conditional on these checkpoints (it ignores training-run variance).", ""]
    L += differences_table(comparison, cfg, last)
    corr = correlations(alignment_vs_accuracy(results, cfg))
    L += ["", "## Alignment vs zero-shot accuracy (checkpoint level)", "",
          "One point per fine-tuned checkpoint (variant × seed): its change in alignment (last layer) and in "
          "zero-shot accuracy, both relative to the `ft` mean for that language; per language and with "
          "languages averaged, never checkpoint × language points pooled.", ""]
    L += correlation_lines(corr)
    L += ["", "## Answer", ""] + _answer_lines(comparison, cfg, last)
    for c in corr:
        if not pd.isna(c["pearson"]) and _summary_correlation(corr, c["measure"]) is c:
            L.append(f"- Alignment change ({c['measure']}, {c['langs']}) vs zero-shot accuracy change: r = "
                     f"{c['pearson']:.2f} over {c['n']} checkpoints, 95% CI [{c['pearson_low']:.2f}, "
                     f"{c['pearson_high']:.2f}].")
    L += ["", "Limits: the configuration above fixes the model size, training data size and languages; a small "
          "study measures the direction and size of effects at that scale only.", ""]
    L += [f"![{p}]({p})" for p in plots]
    return "\n".join(L) + "\n"
