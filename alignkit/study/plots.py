"""The study's figures: a measure by layer per variant (seed range band), alignment change vs
accuracy change."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from alignkit.results.compare import variant_of

from alignkit.study.analysis import alignment_vs_accuracy, correlations, _summary_correlation
from alignkit.study.config import BASE_LABEL, StudyConfig


def _plot_by_layer_variants(res: pd.DataFrame, metric: str, title: str, path: Path) -> bool:
    import matplotlib.pyplot as plt

    from alignkit.results.report import _save

    sel = res[(res["metric"] == metric) & (res["layer"] >= 0)]
    if sel.empty:
        return False
    pairs = list(dict.fromkeys(sel["pair"]))
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.5 * len(pairs), 3.4), squeeze=False)
    for ax, pair in zip(axes.flat, pairs):
        g = sel[sel["pair"] == pair]
        for variant, gv in g.groupby("variant", sort=False):
            agg = gv.groupby("layer")["value"].agg(["mean", "min", "max"])
            ax.plot(agg.index, agg["mean"], marker="o", ms=3, label=variant, lw=2 if variant == BASE_LABEL else 1.2)
            ax.fill_between(agg.index, agg["min"], agg["max"], alpha=0.15)
        ax.set_title(f"{title} by layer, {pair} (band: seed range)", fontsize=9)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return True


def _plot_alignment_vs_accuracy(pts: pd.DataFrame, cfg: StudyConfig, path: Path) -> bool:
    import matplotlib.pyplot as plt

    from alignkit.results.report import _save

    if len(pts) < 3:
        return False
    corr = correlations(pts, n_resamples=0)
    measures = list(dict.fromkeys(pts["measure"]))
    fig, axes = plt.subplots(1, len(measures), figsize=(5 * len(measures), 4), squeeze=False)
    for ax, label in zip(axes.flat, measures):
        g = pts[pts["measure"] == label]
        langs = list(dict.fromkeys(g["lang"]))
        for (variant, lang), gv in g.groupby(["variant", "lang"], sort=False):
            # one colour per variant, one marker per language, the same in every panel
            ax.scatter(gv["d_align"], gv["d_acc"] * 100, label=f"{variant} ({lang})", s=18,
                       color=f"C{cfg.variants.index(variant) % 10}" if variant in cfg.variants else "k",
                       marker="o^sDvP"[langs.index(lang) % 6])
        c = _summary_correlation(corr, label)
        ax.set_xlabel(f"Δ{label} vs ft mean (last layer)")
        ax.set_ylabel("Δ zero-shot accuracy vs ft mean (points)")
        ax.set_title(f"{label}: r = {c['pearson']:.2f} over {c['n']} checkpoints ({c['langs']})", fontsize=9)
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.legend(fontsize=6)
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_study(results: pd.DataFrame, comparison: pd.DataFrame, cfg: StudyConfig, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    res = results.copy()
    res["variant"] = res["model"].map(variant_of)
    files = []
    for metric, title, name in (("bls_auc", "BLS AUC", "bls_auc_by_layer_variants.png"),
                                ("bls", "BLS", "bls_by_layer_variants.png")):
        if _plot_by_layer_variants(res, metric, title, out / name):
            files.append(name)
    if _plot_alignment_vs_accuracy(alignment_vs_accuracy(results, cfg), cfg, out / "alignment_vs_accuracy.png"):
        files.append("alignment_vs_accuracy.png")
    return files
