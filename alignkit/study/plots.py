"""The study's figures: a measure by layer per variant (seed range band), alignment change vs
accuracy change."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from alignkit.results.compare import variant_of

from alignkit.study.analysis import alignment_vs_accuracy
from alignkit.study.config import BASE_LABEL, StudyConfig


def _panels(n: int, width: float, height: float, cols: int = 3):
    """A figure of ``n`` panels, at most ``cols`` per row (unused cells blank): (fig, axes)."""
    import matplotlib.pyplot as plt

    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, axes


def _plot_by_layer_variants(res: pd.DataFrame, metric: str, title: str, path: Path) -> bool:
    from alignkit.results.report import _save

    sel = res[(res["metric"] == metric) & (res["layer"] >= 0)]
    if sel.empty:
        return False
    pairs = list(dict.fromkeys(sel["pair"]))
    fig, axes = _panels(len(pairs), 4.8, 3.4)
    for ax, pair in zip(axes.flat, pairs):
        g = sel[sel["pair"] == pair]
        for variant, gv in g.groupby("variant", sort=False):
            agg = gv.groupby("layer")["value"].agg(["mean", "min", "max"])
            line, = ax.plot(agg.index, agg["mean"], marker="o", ms=3, label=variant,
                            lw=2 if variant == BASE_LABEL else 1.2)
            ax.fill_between(agg.index, agg["min"], agg["max"], alpha=0.15, color=line.get_color())
        ax.set_title(f"{title} by layer, {pair} (band: seed range)", fontsize=9)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return True


def _plot_alignment_vs_accuracy(pts: pd.DataFrame, cfg: StudyConfig, path: Path) -> bool:
    """Δ alignment vs Δ zero-shot accuracy, one point per checkpoint: colour = seed (checkpoints of
    one seed share their data order), marker = variant; one panel per (measure, language)."""
    from alignkit.results.report import _save

    if len(pts) < 3:
        return False
    panels = list(dict.fromkeys(zip(pts["measure"], pts["lang"])))
    fig, axes = _panels(len(panels), 4.2, 3.6, cols=4)
    seeds = sorted(set(pts["seed"].dropna().astype(int)))
    variants = list(dict.fromkeys(pts["variant"]))
    for ax, (label, lang) in zip(axes.flat, panels):
        g = pts[(pts["measure"] == label) & (pts["lang"] == lang)]
        for (variant, seed), gv in g.groupby(["variant", "seed"], sort=False):
            ax.scatter(gv["d_align"], gv["d_acc"] * 100, s=22, color=f"C{seeds.index(int(seed)) % 10}",
                       marker="o^sDvP*X"[variants.index(variant) % 8])
        ax.set_title(f"{label}, {lang}", fontsize=9)
        ax.set_xlabel(f"Δ {label} vs ft mean", fontsize=8)
        ax.set_ylabel("Δ zero-shot acc. (points)", fontsize=8)
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
    from matplotlib.lines import Line2D

    handles = ([Line2D([], [], ls="", marker="o", color=f"C{i % 10}", label=f"seed {s}") for i, s in enumerate(seeds)]
               + [Line2D([], [], ls="", marker="o^sDvP*X"[i % 8], color="grey", label=v)
                  for i, v in enumerate(variants)])
    fig.legend(handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=7)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _save(fig, path)
    return True


def _plot_strong_vs_weak(res: pd.DataFrame, path: Path) -> bool:
    """Weak (Tatoeba accuracy) vs strong (tatoeba_strong_p@1, both languages as candidates)
    alignment at the last layer, per variant (mean over seeds and directions), one panel per language."""
    from alignkit.results.report import _save

    last = int(res.loc[res["layer"] >= 0, "layer"].max()) if (res["layer"] >= 0).any() else -1
    at = res[(res["layer"] == last) & (res["method"].fillna("").isin(["nn", ""]))]
    weak = at[at["metric"] == "tatoeba_acc"].groupby(["pair", "variant"])["value"].mean()
    strong = at[at["metric"] == "tatoeba_strong_p@1"].groupby(["pair", "variant"])["value"].mean()
    both = pd.concat({"weak": weak, "strong": strong}, axis=1).dropna()
    if both.empty:
        return False
    pairs = list(dict.fromkeys(both.index.get_level_values(0)))
    fig, axes = _panels(len(pairs), 3.6, 3.6)
    for ax, pair in zip(axes.flat, pairs):
        g = both.loc[pair]
        x = range(len(g))
        ax.bar([i - 0.2 for i in x], g["weak"] * 100, width=0.4, label="weak: Tatoeba acc.")
        ax.bar([i + 0.2 for i in x], g["strong"] * 100, width=0.4, label="strong: P@1, both languages")
        ax.set_xticks(list(x), list(g.index), rotation=60, fontsize=7, ha="right")
        ax.set_title(f"{pair}, layer {last}", fontsize=9)
        ax.set_ylim(0, 100)
    axes.flat[0].set_ylabel("percent (mean over seeds, directions)")
    axes.flat[0].legend(fontsize=7)
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
    if _plot_strong_vs_weak(res, out / "strong_vs_weak.png"):
        files.append("strong_vs_weak.png")
    if _plot_alignment_vs_accuracy(alignment_vs_accuracy(results, cfg), cfg, out / "alignment_vs_accuracy.png"):
        files.append("alignment_vs_accuracy.png")
    return files
