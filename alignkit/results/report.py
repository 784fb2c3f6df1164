"""Views of a result table: the readable summary and the plots. No measurement happens here."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from alignkit.atomic import atomic_path
from alignkit.results import measures

def _fmt(v: float) -> str:
    return "" if pd.isna(v) else f"{v:.3f}"


def best_layers(df: pd.DataFrame) -> pd.DataFrame:
    """Best layer per (model, pair, metric, method, direction): max value, min where lower is
    better (the measurement registry says which); measures with no direction are left out."""
    per_layer = df[df["layer"] >= 0]
    per_layer = per_layer[[measures.measure(m).higher_is_better is not None for m in per_layer["metric"]]]
    keys = ["model", "pair", "metric", "method", "direction"]
    out = []
    for key, g in per_layer.groupby(keys, sort=True):
        i = g["value"].idxmin() if measures.lower_is_better(key[2]) else g["value"].idxmax()
        r = g.loc[i]
        out.append({**dict(zip(keys, key)), "best_layer": int(r["layer"]), "value": r["value"],
                    "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                    "last_layer_value": g.loc[g["layer"].idxmax(), "value"]})
    return pd.DataFrame(out)


def summary_markdown(df: pd.DataFrame, title: str = "alignkit score summary") -> str:
    """A readable Markdown table: best layer per pair and metric, with its 95% CI."""
    lines = [f"# {title}", ""]
    best = best_layers(df)
    if best.empty:
        return "\n".join(lines + ["(no per-layer measurements)"]) + "\n"
    main = best[best["metric"].isin(measures.summary_metrics())]
    for model, g in main.groupby("model", sort=False):
        lines += [f"## {model}", "",
                  "| pair | metric | method | direction | best layer | value | 95% CI | last layer |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in g.itertuples(index=False):
            ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]" if not pd.isna(r.ci_low) else ""
            lines.append(f"| {r.pair} | {r.metric} | {r.method} | {r.direction} | {r.best_layer} | "
                         f"{_fmt(r.value)} | {ci} | {_fmt(r.last_layer_value)} |")
        lines.append("")
    lines.append(f"Lower is better for {', '.join(measures.lower_is_better_names())}; higher for the rest.")
    return "\n".join(lines) + "\n"


def _save(fig, path: str | os.PathLike) -> None:
    import matplotlib.pyplot as plt

    import warnings

    with atomic_path(path) as tmp, warnings.catch_warnings():
        # word labels in scripts the default font lacks are drawn as boxes; no need to warn per glyph
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def layer_panels(sel: pd.DataFrame, column: str, title: str, path: str | os.PathLike,
                 zero_line: bool = False, direction_index: int = 0) -> None:
    """Draw ``sel[column]`` against layer: one panel per pair, one line (+ CI band) per model.

    ``sel`` needs columns pair, direction, model, layer, ``column``, ci_low, ci_high; in each
    panel only the ``direction_index``-th direction of the pair is drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(dict.fromkeys(sel["pair"]))
    ncol = min(4, len(pairs))
    nrow = int(np.ceil(len(pairs) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.7 * nrow), squeeze=False, sharey=True)
    for ax, pair in zip(axes.flat, pairs):
        g = sel[sel["pair"] == pair]
        dirs = list(dict.fromkeys(g["direction"]))
        direction = dirs[min(direction_index, len(dirs) - 1)]
        g = g[g["direction"] == direction]
        for model, gm in g.groupby("model", sort=False):
            gm = gm.sort_values("layer")
            ax.plot(gm["layer"], gm[column], marker="o", ms=3, label=model)
            if gm["ci_low"].notna().any():
                ax.fill_between(gm["layer"], gm["ci_low"], gm["ci_high"], alpha=0.2)
        if zero_line:
            ax.axhline(0, color="k", lw=0.6)
        ax.set_title(f"{pair} {direction}".strip(), fontsize=9)
        ax.set_xlabel("layer", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8,
               bbox_to_anchor=(0.5, -0.02 - 0.02 * (len(labels) // 3)))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save(fig, path)


def plot_metric_by_layer(df: pd.DataFrame, metric: str, method: str, title: str,
                         path: str | os.PathLike, direction_index: int = 0) -> bool:
    """One panel per pair, one line per model (with its CI band); False when there is nothing to plot."""
    sel = df[(df["metric"] == metric) & (df["method"] == method) & (df["layer"] >= 0)]
    if sel.empty:
        return False
    layer_panels(sel, "value", title, path, direction_index=direction_index)
    return True


def plot_all_layers(df: pd.DataFrame, out_dir: str | os.PathLike) -> list[Path]:
    """Write the standard metric-by-layer plots into ``out_dir``; returns the files written."""
    out = []
    for metric, method, title in measures.layer_plots():
        name = f"{metric.replace('@', '')}{'_' + method.replace('+', '_') if method else ''}_by_layer.png"
        path = Path(out_dir) / name
        if plot_metric_by_layer(df, metric, method, title, path):
            out.append(path)
    return out


def plot_tsne(coords: np.ndarray, n_pairs: int, src_lang: str, tgt_lang: str, title: str,
              path: str | os.PathLike, labels: list[str] | None = None) -> None:
    """t-SNE map: ``coords`` [2*n_pairs, 2], first the source words then their translations.

    Points are coloured by language; a faint line joins each translation pair.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    src, tgt = coords[:n_pairs], coords[n_pairs:2 * n_pairs]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.add_collection(LineCollection(np.stack([src, tgt], axis=1), colors="grey", linewidths=0.4, alpha=0.35))
    ax.scatter(src[:, 0], src[:, 1], s=9, c="tab:blue", label=src_lang)
    ax.scatter(tgt[:, 0], tgt[:, 1], s=9, c="tab:orange", label=tgt_lang)
    if labels is not None:
        for (x, y), w in list(zip(coords, labels))[:: max(1, len(labels) // 40)]:
            ax.annotate(w, (x, y), fontsize=6, alpha=0.7)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best", fontsize=8)
    _save(fig, path)
