"""The study report (report.md): the declared outcomes first, then the answer (the primary
outcome's seed-level result), each secondary family with Holm-adjusted p, the exploratory tally,
every variant at the last layer, training diagnostics, alignment vs accuracy, cost and limits."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from alignkit.errors import AlignkitError
from alignkit.results.compare import variant_of

from alignkit.study.analysis import _last_layer, alignment_vs_accuracy
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


def _p_text(p, n_seeds=None) -> str:
    if not pd.isna(p):
        return f"{p:.3g}"
    return "undefined (one seed)" if pd.notna(n_seeds) and int(n_seeds) < 2 else "undefined (no seed variance)"


def _scale(r) -> tuple[float, int, str]:
    from alignkit.results.measures import measure

    try:
        pct = measure(r["metric"]).percent
    except Exception:  # a metric the registry does not know (derived rows): plain units
        pct = False
    return (100.0, 1, " points") if pct else (1.0, 4, "")


#: a share of items whose per-seed differences are all at most one item (``max_items`` < 1.5)
ONE_ITEM = "‡"
ONE_ITEM_NOTE = (f"{ONE_ITEM} Every seed's difference is at most one item (max |d_s|·n < 1.5): below the measure's "
                 "resolution. Per-seed differences that equal one item in every seed have almost no spread, so the "
                 "t-test over seeds calls them certain; they are a count of one, not evidence of an effect.")


def within_one_item(r) -> bool:
    """True when ``r`` is a share of items and no seed's difference exceeds one item."""
    v = r.get("max_items", math.nan)
    return bool(pd.notna(v) and float(v) < 1.5)


def _tests(rows: pd.DataFrame) -> list[str]:
    """Table header, one row per test, and the one-item note when a row carries its mark."""
    lines = TEST_HEADER + [test_line(r) for _, r in rows.iterrows()]
    if any(within_one_item(r) for _, r in rows.iterrows()):
        lines += ["", ONE_ITEM_NOTE]
    return lines


def test_line(r) -> str:
    """One markdown table row of a test: contrast, measure, where, diff (marked ‡ when no seed
    moved more than one item), per-seed d_s, t-interval, p, p_adjusted."""
    k, dg, _ = _scale(r)
    seeds = ", ".join(f"{k * float(x):+.{dg}f}" for x in str(r["seed_diffs"]).split(";") if x)
    where = r["direction"] if isinstance(r["direction"], str) and r["direction"] else r["pair"]
    layer = "" if r["layer"] < 0 else int(r["layer"])
    sig = "**yes**" if r["significant"] in (True, "True") else "no"
    return (f"| {r['variant']} − {r['baseline']} | {r['metric']} {r['method'] if isinstance(r['method'], str) else ''} "
            f"| {where} | {layer} | {k * r['diff']:+.{dg}f}{ONE_ITEM if within_one_item(r) else ''} | {seeds} "
            f"| {_ci_text(r['ci_low'], r['ci_high'], k, dg)} "
            f"| {_p_text(r['p_value'], r.get('n_seeds'))} | {_p_text(r['p_adjusted'], r.get('n_seeds'))} | {sig} |")


TEST_HEADER = ["| contrast | measure | direction / pair | layer | diff | per-seed d_s | 95% t-interval (seeds) | p | "
               "p adjusted | significant |", "|---" * 10 + "|"]


def primary_lines(comparison: pd.DataFrame, cfg: StudyConfig) -> list[str]:
    """The answer: the primary outcome's seed-level result, in numbers and in words."""
    prim = comparison[comparison["family"] == "primary"]
    if not (cfg.outcomes or {}).get("primary"):
        return ["No primary outcome was declared, so this study does not answer the research question; "
                "every result below is exploratory."]
    if prim.empty:
        return ["The primary contrast has no paired seeds yet (interim report): no answer."]
    r = prim.iloc[0]
    k, dg, unit = _scale(r)
    o = cfg.outcomes["primary"]
    L = _tests(prim.iloc[:1]) + [""]
    what = f"`{r['metric']}` on {r['pair']} at layer {int(r['layer'])}, `{o['contrast']}`, {int(r['n_seeds'])} seeds"
    if pd.isna(r["p_value"]):
        L.append(f"**Answer:** undefined: {what}: the per-seed differences have no spread (or there is one seed), "
                 "so the t-test is undefined and the study cannot call the difference significant.")
    elif r["significant"] in (True, "True"):
        L.append(f"**Answer:** significant: {what}: the variant minus its baseline is "
                 f"{k * r['diff']:+.{dg}f}{unit} (95% t-interval over seeds "
                 f"{_ci_text(r['ci_low'], r['ci_high'], k, dg)}, p = {r['p_value']:.3g}); the interval excludes 0. "
                 "It holds at this study's scale (model, data, steps) and for this measure only.")
    else:
        L.append(f"**Answer:** not significant: {what}: the difference is "
                 f"{k * r['diff']:+.{dg}f}{unit} (95% t-interval over seeds {_ci_text(r['ci_low'], r['ci_high'], k, dg)}, "
                 f"p = {r['p_value']:.3g}); the interval includes 0. This does not show that CL has no effect: "
                 "it shows that any effect is within the interval.")
    return L


def family_lines(comparison: pd.DataFrame, name: str) -> list[str]:
    """A secondary family: its tests (Holm within the family) and how many are significant."""
    f = comparison[comparison["family"] == name]
    if f.empty:
        return ["No test of this family has paired seeds yet."]
    defined = f["p_value"].notna()
    raw = int((f["p_value"] < 0.05).sum())
    adj = int(f["significant"].astype(str).eq("True").sum())
    L = [f"{len(f)} tests ({int((~defined).sum())} with one seed or no seed variance: p undefined); {raw} with "
         f"unadjusted p < 0.05; **{adj} significant after Holm within the family**.", ""]
    return L + _tests(f)


def exploratory_lines(comparison: pd.DataFrame) -> list[str]:
    e = comparison[comparison["family"] == "exploratory"]
    if e.empty:
        return ["None."]
    raw = int((e["p_value"] < 0.05).sum())
    adj = e[e["significant"].astype(str).eq("True")]
    L = [f"{len(e)} tests (every other contrast, layer and measure in comparison.csv); {raw} with unadjusted "
         f"p < 0.05 (≈ {0.05 * e['p_value'].notna().sum():.0f} expected by chance alone if nothing differed); "
         f"{len(adj)} with Holm-adjusted p < 0.05 across all exploratory tests"
         + (f" ({one} of them no more than one item in any seed, {ONE_ITEM})" if (one := sum(
             within_one_item(r) for _, r in adj.iterrows())) else "")
         + ". They are hypotheses for a later study, not findings."]
    if len(adj):
        L += ["", "Exploratory tests with adjusted p < 0.05 (layer shown):", ""] + _tests(adj)
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
    """label -> :func:`alignkit.training.diagnostics.read_training_diagnostics` of its checkpoint;
    empty when that function is unavailable, runs whose diagnostics cannot be read left out."""
    try:
        from alignkit.training.diagnostics import read_training_diagnostics
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


def summary_correlation_lines(summary: pd.DataFrame) -> list[str]:
    L = []
    for _, c in summary.iterrows():
        if pd.isna(c["r"]):
            L.append(f"- {c['measure']} ({c['lang']}): too few checkpoints or no variation to correlate.")
            continue
        within = ("" if pd.isna(c["r_within_seed"]) else
                  f"; within seeds r = {c['r_within_seed']:.2f} (p = {c['p_within_seed']:.2g})")
        seeds = ("" if pd.isna(c["ci_low_seeds"]) else
                 f", resampling seeds [{c['ci_low_seeds']:.2f}, {c['ci_high_seeds']:.2f}]")
        loo = ("" if pd.isna(c.get("r_without_low")) else
               f"; one variant left out, r from {c['r_without_low']:.2f} (without {c['without_low']}) to "
               f"{c['r_without_high']:.2f} (without {c['without_high']})")
        L.append(f"- {c['measure']} ({c['lang']}, {int(c['n'])} checkpoints from {int(c['n_seeds'])} seeds): "
                 f"r = {c['r']:.2f} (p = {c['p']:.2g}; 95% CI resampling checkpoints [{c['ci_low']:.2f}, "
                 f"{c['ci_high']:.2f}]{seeds}){within}{loo}.")
    return L or ["No zero-shot language has an alignment measure, so there is nothing to correlate."]


def _cost_lines(cost: dict | None) -> list[str]:
    if not cost or not cost.get("runs"):
        return []
    resumed = cost.get("resumed") or []
    more = (f" {len(resumed)} run(s) were resumed after an interruption ({', '.join(resumed)}): their cost.json "
            "counts only the process that finished them, and their training logs show at least "
            f"{cost.get('earlier_cpu_s', 0.0) / 3600:.2f} CPU-hours more in the earlier processes, so the study cost "
            f"at least {(cost['cpu_s'] + cost.get('earlier_cpu_s', 0.0)) / 3600:.2f} CPU-hours." if resumed else "")
    return ["## What the study cost", "",
            f"{cost['runs']} runs (references included): {cost['wall_s'] / 3600:.2f} h of run wall time summed over "
            f"runs (two ran at a time on 2 cores), {cost['cpu_s'] / 3600:.2f} CPU-hours; machine(s): "
            f"{'; '.join(cost['machines'])}. Per run: runs/<variant>/seed<k>/cost.json.{more}", ""]


def reproduction_lines(record: dict | None) -> list[str]:
    """The report's section on a from-scratch re-run (empty without one)."""
    if not record:
        return []
    cost = record.get("cost") or {}
    took = f", {cost['cpu_s']:.0f} CPU-s" if cost.get("cpu_s") is not None else ""
    code = f"code `{record['code']}`" if record.get("code") else "its code commit not recorded in its cost.json"
    run = record["run"]
    rerun = ["", f"    {record['rerun_command']}", ""] if record.get("rerun_command") else [""]
    L = ["## Reproduction", "",
         f"Run `{run}` was done again from scratch (train, score, evaluate in a fresh folder; "
         f"{code}{took}){':' if len(rerun) > 1 else ''}", *rerun,
         f"and compared with the study's run on {record['when']} ({record['machine']}):", "",
         f"    {record['command']}", ""]
    if record["byte_identical"]:
        L.append(f"All {record['compared']} result files (rows, item scores, predictions) are byte-identical to "
                 f"the study's: `cmp reproduce/runs/{run}/results.csv runs/{run}/results.csv` finds no difference "
                 f"(sha256 {record['results_sha256'][:16]}…).")
    elif record.get("reproduced"):
        L.append(f"Every one of the study's {record['study_rows']} rows comes back byte for byte, in order, and "
                 f"every other result file (item scores, predictions) is byte-identical; the re-run's code adds "
                 f"{record['extra_rows']} row(s) of measures the study's code did not have "
                 f"({', '.join(record['extra_metrics'])}), so results.csv itself differs by those rows only.")
    else:
        bad = record["different"] + record["only_in_study"] + record["only_in_rerun"]
        L.append(f"**Not reproduced**: {len(bad)} of {record['compared']} result files differ or are missing "
                 f"({', '.join(bad[:5])}{', …' if len(bad) > 5 else ''}).")
    return L + [""]



def study_report(results: pd.DataFrame, comparison: pd.DataFrame, cfg: StudyConfig, plots: list[str],
                 diagnostics: dict[str, dict] | None = None, missing: list[str] | None = None,
                 cost: dict | None = None, correlation_summary: pd.DataFrame | None = None,
                 post_hoc: bool = False, reproduction: dict | None = None) -> str:
    from alignkit.study.outcomes import declared_lines

    last = _last_layer(results)
    L = ["# alignkit study report", ""]
    if missing:
        L += [f"> **Interim report**: {len(missing)} run(s) not finished yet ({', '.join(missing)}). Every number "
              "below is from the finished runs only and will change.", ""]
    L += ["Research question: to what extent does a cross-lingual contrastive loss (CL) during robust training "
          "improve alignment, measured by bilingual lexical similarity (BLS), for zero-shot transfer?", "",
          "## Outcomes, " + ("declared POST HOC (after the study ran; not protected against that choice)" if post_hoc
                             else "as declared in the config before the run"), ""]
    L += declared_lines(cfg.outcomes)
    seeds = ({v: cfg.seeds_for(v) for v in cfg.variants} if isinstance(cfg.seeds, dict) else cfg.seeds)
    L += ["", "## Design", "",
          f"Base model: `{cfg.base_model}`; variants: {', '.join(cfg.variants)}; seeds: {seeds}; "
          f"pairs: {', '.join(cfg.pairs)}; layers: {cfg.layers}; Tatoeba: "
          f"{', '.join(cfg.tatoeba_langs) or ('from the pairs' if cfg.tatoeba else 'no')}; tasks: "
          f"{', '.join(cfg.tasks) or 'default'}; training: " + ", ".join(f"{k}={v}" for k, v in cfg.train.items()
                                                                          if k != "train_file")
          + "; zero-shot evaluation: " + ", ".join(f"{k}={v}" for k, v in cfg.eval.items() if k != "data") + ".",
          "", "Statistics (SPEC §2): variants are paired by seed; d_s is the per-seed difference (item-paired where "
          "item scores exist); the 95% t-interval and the t-test are over seeds (df = seeds − 1). Each contrast is "
          "tested once (variant − baseline as declared). The primary test is not adjusted; within each secondary "
          "family, and across all exploratory tests, p is Holm-adjusted; \"significant\" means adjusted p < 0.05. "
          "Zero seed spread leaves p undefined and never significant.", "",
          "## Answer: the primary outcome", ""]
    L += primary_lines(comparison, cfg)
    for name in ((cfg.outcomes or {}).get("secondary") or {}):
        L += ["", f"## Secondary family \"{name}\"", ""] + family_lines(comparison, name)
    L += ["", "## Exploratory", ""] + exploratory_lines(comparison)
    res = results.copy()
    res["variant"] = res["model"].map(variant_of)
    cols = _headline_columns(res, last)
    L += ["", f"## Every variant at the last layer (layer {last}): mean over seeds (seed min–max)", "",
          "P@1, Tatoeba and accuracy in percent; Tatoeba averages both directions; BLS c is the mean cosine "
          "over all source × target combinations (BLS = raw − c); chance accuracy is 33.3% on XNLI; "
          "`base+probe` is a linear probe on the untuned encoder. Descriptive only (no test).", "",
          "| model | " + " | ".join(c[0] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for variant in dict.fromkeys(res["variant"]):
        cells = [_cell(g[g["variant"] == variant], pct) for _, g, pct in cols]
        if any(cells):
            L.append(f"| {variant} | " + " | ".join(cells) + " |")
    L += [""] + diagnostics_table(diagnostics or {})
    if correlation_summary is None:
        from alignkit.study.analysis import alignment_accuracy_summary

        correlation_summary = alignment_accuracy_summary(alignment_vs_accuracy(results, cfg), cfg.compare_resamples)
    L += ["## Alignment change vs zero-shot accuracy change (exploratory)", "",
          "One point per fine-tuned checkpoint (variant × seed): its change in alignment (last layer) and in "
          "zero-shot accuracy, both relative to the `ft` mean for that language. Checkpoints of one seed share "
          "their data order, so besides the bootstrap over checkpoints the CI that resamples seeds (all "
          "checkpoints of a seed together) and the correlation within seeds are given; the seed-resampling "
          "interval is the one to read. Variants differ in recipe, so r mixes differences between recipes "
          "with variation within them; the range of r with one variant's checkpoints left out shows whether "
          "a single recipe carries it.", ""]
    L += summary_correlation_lines(correlation_summary)
    L += [""] + _cost_lines(cost) + reproduction_lines(reproduction)
    t = cfg.train
    data = Path(str(t.get("train_file", ""))).name or "the task's default data"
    zs = [x for x in cfg.eval.get("langs", []) if x != "en"]
    counts = sorted({len(cfg.seeds_for(v)) for v in cfg.variants}) or [0]
    seed_count = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    L += ["## Limits", "", f"The configuration above fixes the model (`{cfg.base_model}`), the training data "
          f"({t.get('task', 'xnli')} `{data}`, {t.get('max_steps', '?')} steps of batch {t.get('batch_size', '?')}, "
          f"lr {t.get('lr', '?')}) and the languages; the study measures the direction and size of effects at that "
          "scale only, and says nothing of larger models, longer training or other data. Alignment is measured by "
          f"lexicons and Tatoeba sentences; transfer by zero-shot accuracy in {len(zs)} language(s) "
          f"({', '.join(zs)}). A seed fixes a run's randomness (data order, classifier initialisation, the variant's "
          "own draws) and nothing else: the dev split, the model and the data are the same in every run; "
          f"with {seed_count} seeds per variant, small effects are within the intervals.", ""]
    L += [f"![{p}]({p})" for p in plots]
    return "\n".join(L) + "\n"
