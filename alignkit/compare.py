"""Compare checkpoints measured on the same items: differences with paired CIs and p-values.

Rows of several runs are joined on (layer, pair, metric, method, direction). Where both runs
kept item-level scores (``items/`` next to ``results.csv``), the difference gets a 95%
paired-bootstrap CI and a paired permutation p-value over the shared items
(:func:`alignkit.stats.paired_difference`); statistics that are not means of items
(``gap_ratio``) get the difference only.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from alignkit.atomic import ensure_writable_dir, write_text
from alignkit.errors import AlignkitError
from alignkit.results import MEASUREMENT_KEY, read_csv

COMPARISON_COLUMNS = ["model", "baseline", *MEASUREMENT_KEY, "value", "baseline_value", "diff",
                      "ci_low", "ci_high", "p_value", "n"]
HEADLINE = [("bls", ""), ("p@1", "csls"), ("p@1", "nn"), ("tatoeba_acc", "nn"), ("xnli_acc", "")]


def _load_runs(runs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    frames = []
    for r in runs:
        p = Path(r)
        csv = p / "results.csv" if p.is_dir() else p
        df = read_csv(csv)
        df["run_dir"] = str(csv.parent)
        frames.append(df)
    if not frames:
        raise AlignkitError("compare needs at least two result files; pass results.csv paths")
    df = pd.concat(frames, ignore_index=True)
    clash = df.groupby("model")["model_fingerprint"].nunique()
    clash = clash[clash > 1]
    if len(clash):
        raise AlignkitError(f"model name {clash.index[0]!r} appears with different fingerprints in the runs; "
                            "score the checkpoints from differently named directories")
    return df


def _items(r) -> tuple[np.ndarray, np.ndarray] | None:
    from alignkit.items import load_items

    pair = f"tatoeba-{r.pair}" if r.metric == "tatoeba_acc" else r.pair
    return load_items(r.run_dir, r.model_fingerprint, pair, int(r.layer), r.metric, r.method, r.direction)


def _as_row(series: pd.Series, key: tuple):
    """A joined row (index = measurement key) back as an attribute record."""
    return pd.Series({**series.to_dict(), **dict(zip(MEASUREMENT_KEY, key))})


def compare_runs(runs: Sequence[str | os.PathLike], baseline: str | None = None, *,
                 n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (candidate model, measurement) shared with the baseline; columns COMPARISON_COLUMNS."""
    from alignkit.stats import paired_difference

    df = _load_runs(runs)
    models = list(dict.fromkeys(df["model"]))
    if len(models) < 2:
        raise AlignkitError(f"the runs hold only one model ({models[0]}); compare needs two or more checkpoints")
    baseline = baseline or models[0]
    if baseline not in models:
        raise AlignkitError(f"baseline {baseline!r} is not among the runs' models ({', '.join(models)}); "
                            "pass --baseline with one of them")
    keyed = df.set_index(MEASUREMENT_KEY)
    base = df[df["model"] == baseline].drop_duplicates(MEASUREMENT_KEY).set_index(MEASUREMENT_KEY)
    out = []
    for model in models:
        if model == baseline:
            continue
        cand = keyed[keyed["model"] == model]
        shared = cand.index.intersection(base.index)
        for key in shared:
            c = cand.loc[[key]].iloc[0]
            b = base.loc[[key]].iloc[0]
            rec = dict(zip(MEASUREMENT_KEY, key))
            rec.update(model=model, baseline=baseline, value=c["value"], baseline_value=b["value"],
                       diff=c["value"] - b["value"], ci_low=math.nan, ci_high=math.nan, p_value=math.nan,
                       n=int(c["n"]))
            ci = _items(_as_row(c, key))
            bi = _items(_as_row(b, key))
            if ci is not None and bi is not None:
                a_ids, a_sc = ci
                b_ids, b_sc = bi
                if not np.array_equal(a_ids, b_ids):
                    common, ia, ib = np.intersect1d(a_ids, b_ids, return_indices=True)
                    a_sc, b_sc = a_sc[ia], b_sc[ib]
                if len(a_sc) >= 2:
                    d = paired_difference(a_sc.astype(np.float64), b_sc.astype(np.float64),
                                          n_resamples=n_resamples, seed=seed)
                    rec.update(diff=d.diff, ci_low=d.ci_low, ci_high=d.ci_high, p_value=d.p_value, n=d.n)
            out.append(rec)
    if not out:
        raise AlignkitError(f"no measurement is shared between {baseline} and the other runs; "
                            "score them with the same pairs, layers and mode")
    return pd.DataFrame(out, columns=COMPARISON_COLUMNS)


def comparison_markdown(table: pd.DataFrame) -> str:
    """Headline differences at the last layer, and how many layers differ significantly."""
    lines = ["# alignkit comparison", "",
             f"Baseline: **{table['baseline'].iloc[0]}**. diff = candidate − baseline; 95% paired-bootstrap CI;",
             "p = two-sided paired permutation test over items. 'sig. layers' counts layers with p < 0.05.", ""]
    lines += ["| model | pair | metric | method | direction | last layer | diff | 95% CI | p | sig. layers (+/−) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for metric, method in HEADLINE:
        sel = table[(table["metric"] == metric) & (table["method"] == method)]
        for (model, pair, direction), g in sel.groupby(["model", "pair", "direction"], sort=False):
            last = g.loc[g["layer"].idxmax()]
            sig = g[g["p_value"] < 0.05]
            ci = "" if pd.isna(last["ci_low"]) else f"[{last['ci_low']:+.3f}, {last['ci_high']:+.3f}]"
            p = "" if pd.isna(last["p_value"]) else f"{last['p_value']:.3g}"
            layer = "" if last["layer"] < 0 else int(last["layer"])
            lines.append(f"| {model} | {pair} | {metric} | {method} | {direction} | {layer} | "
                         f"{last['diff']:+.4f} | {ci} | {p} | {(sig['diff'] > 0).sum()}/{(sig['diff'] < 0).sum()} "
                         f"of {len(g)} |")
    return "\n".join(lines) + "\n"


def plot_differences(table: pd.DataFrame, path: str | os.PathLike, metric: str = "bls", method: str = "") -> bool:
    """diff vs layer with CI bands, one panel per pair, one line per candidate model."""
    from alignkit.report import layer_panels

    sel = table[(table["metric"] == metric) & (table["method"] == method) & (table["layer"] >= 0)]
    if sel.empty:
        return False
    layer_panels(sel, "diff", f"{metric}{' ' + method if method else ''}: difference to {table['baseline'].iloc[0]}",
                 path, zero_line=True)
    return True


def write_comparison(table: pd.DataFrame, out: str | os.PathLike) -> Path:
    """Write comparison.csv, comparison.md and comparison_bls.png into ``out`` (atomically)."""
    from alignkit.atomic import atomic_path

    d = ensure_writable_dir(out, "output directory")
    write_text(d / "comparison.md", comparison_markdown(table))
    plot_differences(table, d / "comparison_bls.png")
    with atomic_path(d / "comparison.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.10g")
    return d
