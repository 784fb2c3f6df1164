"""The study's statistics: variants against baselines paired by seed (compare's seed-level
engine), and alignment change against zero-shot accuracy change at checkpoint level."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alignkit.results.compare import seed_of, variant_of

from alignkit.study.config import BASE_LABEL, StudyConfig


def _item_scores(out: Path, label: str, r) -> tuple[np.ndarray, np.ndarray] | None:
    from alignkit.results.items import load_items
    from alignkit.study.config import run_dir

    d = run_dir(out, label)
    if not d.is_dir():
        d = out / "scores" / label.replace("/", "-")  # studies written before runs/ existed
    return load_items(d, r["model_fingerprint"], r["pair"], int(r["layer"]), r["metric"], r["method"],
                      r["direction"])


def _with_variant(results: pd.DataFrame) -> pd.DataFrame:
    """Rows of the trained checkpoints with columns ``variant`` and ``seed`` (from ``variant/seedN``)."""
    res = results[results["model"] != BASE_LABEL].copy()
    res["variant"] = res["model"].map(variant_of)
    res["seed"] = pd.to_numeric(res["model"].map(lambda m: (seed_of(m) or (None, None))[1]), errors="coerce")
    return res.dropna(subset=["seed"])


def compare_variants(out: Path, results: pd.DataFrame, cfg: StudyConfig, progress: bool = False) -> pd.DataFrame:
    """Each contrast of :meth:`StudyConfig.contrast_list` (never also its mirror), per measurement,
    paired by seed (SPEC §2 v2, v3), with its outcome ``family`` and Holm-adjusted ``p_adjusted``.

    Columns :data:`alignkit.compare.SEED_COLUMNS`: ``diff`` = mean over seeds of d_s (the
    item-paired mean difference of seed s where item scores exist, basis ``seeds+items``;
    else the difference of the seed's values, basis ``seeds``); ``ci_low/ci_high, p_value``:
    t-interval and t-test over seeds (df = seeds − 1), the only basis of ``significant``;
    ``boot_low/boot_high``: two-level bootstrap (seeds, then items); ``items_low/items_high,
    items_p``: items-only CI and permutation p of the seed-averaged item scores, conditional
    on these checkpoints; ``seed_sd``, ``seed_diffs`` (d_s joined by ';'); ``family`` (primary, a
    secondary family's name, exploratory) and ``p_adjusted`` (:func:`alignkit.study.outcomes.assign_families`);
    ``significant`` = p_adjusted < 0.05.
    """
    from alignkit.results.compare import check_comparable, seed_level_table
    from alignkit.study.outcomes import assign_families

    check_comparable(results)  # e.g. cached scores from an earlier pool size: refuse, never mix
    table = seed_level_table(_with_variant(results), cfg.contrast_list(), lambda r: _item_scores(out, r["model"], r),
                             n_resamples=cfg.compare_resamples, seed=0, progress=progress)
    return assign_families(table, cfg.outcomes, _last_layer(results))


# ---------------------------------------------------------------------------- alignment vs accuracy

def _last_layer(df: pd.DataFrame) -> int:
    return int(df.loc[df["layer"] >= 0, "layer"].max())


def _lang_of(pair: str) -> str:
    return pair.split("-")[1] if pair.startswith("en-") else pair.split("-")[0]


def alignment_vs_accuracy(results: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """Per (alignment measure, checkpoint, language): the alignment change and the zero-shot
    accuracy change, both relative to the mean of the reference variant (``ft``) for that language.

    Alignment measures (last layer): BLS AUC and BLS for each lexicon pair ``en-xx`` and Tatoeba
    accuracy (mean of both directions) for each Tatoeba language, so languages without a lexicon
    (e.g. Urdu) still enter through Tatoeba. :func:`correlations` uses one point per checkpoint.
    """
    res = results.copy()
    last = _last_layer(res)
    ref = "ft" if "ft" in cfg.variants else cfg.variants[0]
    acc_all = res[res["metric"].str.endswith("_acc") & (res["method"] == "zero-shot")]
    from alignkit.results.measures import alignment_measures

    pts = []
    for label, metric, method in alignment_measures():
        sel = res[(res["metric"] == metric) & (res["method"] == method) & (res["layer"] == last)]
        for pair, g in sel.groupby("pair", sort=False):
            lang = _lang_of(pair)
            align = g.groupby("model")["value"].mean()
            acc = acc_all[acc_all["pair"] == lang].set_index("model")["value"]
            ref_models = [m for m in align.index if variant_of(m) == ref and m in acc.index]
            if not ref_models:
                continue
            a0, c0 = align[ref_models].mean(), acc[ref_models].mean()
            for model in align.index:
                if model.startswith(BASE_LABEL) or model not in acc.index:
                    continue
                pts.append({"measure": label, "model": model, "variant": variant_of(model),
                            "seed": (seed_of(model) or (None, None))[1], "lang": lang,
                            "d_align": align[model] - a0, "d_acc": acc[model] - c0})
    return pd.DataFrame(pts, columns=["measure", "model", "variant", "seed", "lang", "d_align", "d_acc"])


SUMMARY_COLUMNS = ["measure", "lang", "n", "n_seeds", "r", "p", "ci_low", "ci_high", "ci_low_seeds", "ci_high_seeds",
                   "r_within_seed", "p_within_seed", "r_without_low", "without_low", "r_without_high", "without_high"]


def leave_one_variant_out(pts: pd.DataFrame) -> dict[str, float]:
    """Pearson r of ``d_align`` and ``d_acc`` with each variant's checkpoints left out in turn:
    ``{left-out variant: r}``. With fewer than 3 variants, or where what is left has under 3 points or no spread, that variant
    is absent. Shows whether one variant's checkpoints carry a correlation."""
    out = {}
    variants = list(dict.fromkeys(pts["variant"]))
    if len(variants) < 3:
        return out
    for v in variants:
        rest = pts[pts["variant"] != v]
        x, y = rest["d_align"].to_numpy(float), rest["d_acc"].to_numpy(float)
        if x.size >= 3 and x.std() > 0 and y.std() > 0:
            out[v] = float(np.corrcoef(x, y)[0, 1])
    return out


def alignment_accuracy_summary(pts: pd.DataFrame, n_resamples: int = 2000) -> pd.DataFrame:
    """One row per (measure, language) of :func:`alignment_vs_accuracy`'s points: Pearson ``r``
    with its p and checkpoint-bootstrap CI, the seed-cluster bootstrap CI (all checkpoints of a
    seed resampled together), the within-seed correlation (SPEC §2 v3) and the lowest and
    highest r with one variant left out (:func:`leave_one_variant_out`), naming that variant."""
    from alignkit.replication import seed_aware_correlation

    out = []
    for (label, lang), h in pts.groupby(["measure", "lang"], sort=False):
        c = seed_aware_correlation(h["d_align"], h["d_acc"], h["seed"].astype(int), n_resamples=n_resamples)
        loo = leave_one_variant_out(h)
        low, high = (min(loo, key=loo.get), max(loo, key=loo.get)) if loo else (None, None)
        out.append({"measure": label, "lang": lang, "n": c.n, "n_seeds": c.n_seeds, "r": c.r, "p": c.p,
                    "ci_low": c.ci_low, "ci_high": c.ci_high, "ci_low_seeds": c.ci_low_seeds,
                    "ci_high_seeds": c.ci_high_seeds, "r_within_seed": c.r_within_seed,
                    "p_within_seed": c.p_within_seed, "r_without_low": loo.get(low, np.nan), "without_low": low,
                    "r_without_high": loo.get(high, np.nan), "without_high": high})
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def correlations(pts: pd.DataFrame, n_resamples: int = 2000) -> list[dict]:
    """Correlation of alignment change with accuracy change at checkpoint level (SPEC §2 v2).

    Per measure: one entry per language and, with several languages, one for the languages
    averaged per checkpoint; every entry has one point per checkpoint (never checkpoint x
    language points pooled as if independent), Pearson and Spearman with their p-values and a
    percentile bootstrap CI over checkpoints.
    """
    from alignkit.replication import checkpoint_correlation

    out = []
    for label, g in pts.groupby("measure", sort=False):
        langs = list(dict.fromkeys(g["lang"]))
        groups = [(lang, g[g["lang"] == lang]) for lang in langs]
        if len(langs) > 1:
            per = g.groupby("model", sort=False).agg(d_align=("d_align", "mean"), d_acc=("d_acc", "mean"),
                                                     k=("lang", "nunique"))
            groups.append(("mean of " + ", ".join(langs), per[per["k"] == len(langs)]))
        for lang, h in groups:
            c = checkpoint_correlation(h["d_align"], h["d_acc"], n_resamples=n_resamples)
            out.append({"measure": label, "langs": lang, "n": c.n, "pearson": c.pearson, "pearson_p": c.pearson_p,
                        "pearson_low": c.pearson_low, "pearson_high": c.pearson_high, "spearman": c.spearman,
                        "spearman_p": c.spearman_p, "spearman_low": c.spearman_low, "spearman_high": c.spearman_high})
    return out


def _summary_correlation(corr: list[dict], measure: str) -> dict | None:
    """The languages-averaged entry of a measure, or its only one."""
    entries = [c for c in corr if c["measure"] == measure]
    return next((c for c in entries if c["langs"].startswith("mean of")), entries[0] if entries else None)
