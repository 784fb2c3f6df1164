"""Compare checkpoints measured on the same items: differences with paired CIs and p-values.

Rows of several runs are joined on (layer, pair, metric, method, direction), and only when the
runs are comparable (SPEC §2): the same mode, lexicon (name and content hash), pool size and
sub-word pooling; otherwise :func:`compare_runs` refuses with a one-line error naming the
mismatch. mode, lexicon and pool size are read from the rows; the lexicon sha256 and pooling
from each run's ``manifest.json`` where it exists.

Two kinds of comparison:

- **Checkpoint level** (one model against another): where both runs kept item-level scores
  (``items/`` next to ``results.csv``), the difference gets a 95% paired-bootstrap CI and a
  paired permutation p-value over the shared items (:func:`alignkit.stats.paired_difference`);
  statistics that are not means of items (``gap_ratio``) get the difference only. These
  intervals are conditional on the two checkpoints.
- **Seed level** (variants trained with several seeds): model names ending in ``/seedN`` (what
  ``alignkit study`` writes) or ``-seedN`` (its checkpoint folders, e.g. ``.../rt-seed2``) are
  runs N of the variant named by the rest. When ``baseline`` names such a variant (or is
  omitted and every model carries a seed label), each other variant is compared with it
  paired by seed (:func:`alignkit.replication.seed_level_difference`): per-seed differences, seed SD,
  t-interval and t-test over seeds (the only basis for "significant"), a two-level bootstrap
  CI, and the items-only CI labelled conditional on these checkpoints. For shares of items
  (P@k, accuracies: measures registered with ``percent``) ``max_items`` is the largest
  per-seed difference counted in items, max_s |d_s|·n_s: below 1.5, no seed moved more than one
  item, which is below the measure's resolution whatever the t-test says.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from alignkit.atomic import ensure_writable_dir, write_text
from alignkit.errors import AlignkitError
from alignkit.results.rows import MEASUREMENT_KEY, read_csv, write_csv

COMPARISON_COLUMNS = ["model", "baseline", *MEASUREMENT_KEY, "value", "baseline_value", "diff",
                      "ci_low", "ci_high", "p_value", "n"]
#: seed-level table: ci_low/ci_high/p_value are the t-interval and t-test over seeds
SEED_COLUMNS = ["variant", "baseline", *MEASUREMENT_KEY, "value", "baseline_value", "diff", "ci_low", "ci_high",
                "p_value", "significant", "seed_sd", "n_seeds", "seed_diffs", "boot_low", "boot_high",
                "items_low", "items_high", "items_p", "n", "basis", "max_items"]
SEED_LABEL = re.compile(r"^(?P<variant>.+?)[/-]seed(?P<seed>\d+)/?$")
# Columns of the result rows that must agree between runs joined on a measurement.
_ROW_SETTINGS = (("mode", "mode"), ("lexicon", "lexicon"), ("pool_size", "pool size"))
_REFUSAL = "compare only runs scored with the same mode, lexicon, pool size and pooling"


def seed_of(model: str) -> tuple[str, int] | None:
    """(variant, seed) for a model label ``variant/seedN`` or ``variant-seedN``, else None."""
    m = SEED_LABEL.match(str(model))
    return (m["variant"], int(m["seed"])) if m else None


def variant_of(model: str) -> str:
    """The variant of a seed label (``rt/seed2`` -> ``rt``); any other label is its own variant."""
    got = seed_of(model)
    return got[0] if got else str(model)


def _read_manifest(run_dir: Path) -> dict | None:
    p = run_dir / "manifest.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        raise AlignkitError(f"{p} is not readable JSON; re-run `alignkit score` for that run or remove the file") \
            from None


def _load_runs(runs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    frames, manifests = [], {}
    for r in runs:
        p = Path(r)
        csv = p / "results.csv" if p.is_dir() else p
        df = read_csv(csv)
        df["run_dir"] = str(csv.parent)
        frames.append(df)
        manifests[str(csv.parent)] = _read_manifest(csv.parent)
    if not frames:
        raise AlignkitError("compare needs at least two result files; pass results.csv paths")
    df = pd.concat(frames, ignore_index=True)
    clash = df.groupby("model")["model_fingerprint"].nunique()
    clash = clash[clash > 1]
    if len(clash):
        raise AlignkitError(f"model name {clash.index[0]!r} appears with different fingerprints in the runs; "
                            "score the checkpoints from differently named directories")
    check_comparable(df, manifests)
    return df


def check_comparable(df: pd.DataFrame, manifests: dict[str, dict | None] | None = None) -> None:
    """Raise AlignkitError (one line) when rows of the same measurement differ in mode, lexicon
    or pool size, or the runs' manifests differ in pooling, mode, pool size or lexicon sha256."""
    for col, what in _ROW_SETTINGS:
        n = df.groupby(MEASUREMENT_KEY, dropna=False)[col].nunique(dropna=False)
        if (n > 1).any():
            key = dict(zip(MEASUREMENT_KEY, n[n > 1].index[0]))
            sel = df
            for k, v in key.items():
                sel = sel[sel[k] == v]
            vals = " vs ".join(map(str, dict.fromkeys(sel[col])))
            raise AlignkitError(f"runs differ in {what} ({vals}) for {key['metric']} {key['pair']} layer "
                                f"{key['layer']}; {_REFUSAL}")
    present = {d: m for d, m in (manifests or {}).items() if m}
    for setting, what in (("pooling", "pooling"), ("template", "template"), ("mode", "mode"),
                          ("pool_size", "pool size")):
        # an absent setting (a manifest older than it) is skipped; a template of None is "no template"
        vals = {d: m["config"][setting] if setting != "template" or m["config"][setting] else "none"
                for d, m in present.items() if setting in m.get("config", {})}
        vals = {d: v for d, v in vals.items() if v is not None}
        if len(set(map(str, vals.values()))) > 1:
            raise AlignkitError(f"runs differ in {what} ({' vs '.join(f'{v} in {d}' for d, v in vals.items())}); "
                                f"{_REFUSAL}")
    hashes: dict[str, dict[str, str]] = {}
    for d, m in present.items():
        for lx in m.get("lexicons", []):
            hashes.setdefault(lx.get("name", ""), {})[d] = lx.get("sha256", "")
    for name, by_run in hashes.items():
        if len(set(by_run.values())) > 1:
            raise AlignkitError(f"lexicon {name} has different contents (sha256) in {' and '.join(by_run)}; "
                                f"{_REFUSAL}")


def _items(r) -> tuple[np.ndarray, np.ndarray] | None:
    from alignkit.results.items import load_items

    return load_items(r.run_dir, r.model_fingerprint, r.pair, int(r.layer), r.metric, r.method, r.direction)


def _as_row(series: pd.Series, key: tuple):
    """A joined row (index = measurement key) back as an attribute record."""
    return pd.Series({**series.to_dict(), **dict(zip(MEASUREMENT_KEY, key))})


def _shared_items(ia, ib, with_ids: bool = False):
    """Scores of candidate and baseline on the items both have, in one order (None if absent);
    ``with_ids``: also the ids of those items."""
    if ia is None or ib is None:
        return None
    (a_ids, a_sc), (b_ids, b_sc) = ia, ib
    ids = a_ids
    if not np.array_equal(a_ids, b_ids):
        ids, i, j = np.intersect1d(a_ids, b_ids, return_indices=True)
        a_sc, b_sc = a_sc[i], b_sc[j]
    out = (a_sc.astype(np.float64), b_sc.astype(np.float64))
    return out + (ids,) if with_ids else out


def compare_runs(runs: Sequence[str | os.PathLike], baseline: str | None = None, *,
                 n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Differences to ``baseline``: a model name (checkpoint level; columns COMPARISON_COLUMNS)
    or a seeded variant (seed level; columns SEED_COLUMNS, see the module docstring)."""
    df = _load_runs(runs)
    models = list(dict.fromkeys(df["model"]))
    if len(models) < 2:
        raise AlignkitError(f"the runs hold only one model ({models[0]}); compare needs two or more checkpoints")
    variants = _seeded_variants(models)
    if baseline in models or (baseline is None and variants is None):
        return _compare_models(df, models, baseline or models[0], n_resamples, seed)
    base = variants[0] if baseline is None else _variant_named(baseline, variants or [])
    if base is None:
        raise AlignkitError(f"baseline {baseline!r} is not among the runs' models ({', '.join(models)}); "
                            "pass --baseline with one of them, or a variant whose models end in /seedN")
    res = df.copy()
    res["variant"] = [seed_of(m)[0] if seed_of(m) else "" for m in res["model"]]
    res["seed"] = [seed_of(m)[1] if seed_of(m) else -1 for m in res["model"]]
    res = res[res["variant"] != ""]
    pairs = [(v, base) for v in variants if v != base]
    return seed_level_table(res, pairs, _items, n_resamples=n_resamples, seed=seed)


def _seeded_variants(models: list[str]) -> list[str] | None:
    """Variants (in order of appearance) when models of at least two variants carry seed labels, else None."""
    labels = [seed_of(m) for m in models]
    variants = list(dict.fromkeys(lab[0] for lab in labels if lab))
    return variants if len(variants) >= 2 else None


def _variant_named(name: str | None, variants: list[str]) -> str | None:
    """The variant ``name`` refers to: exactly, or by its last path component (``rt`` for ``.../rt``)."""
    if name is None:
        return None
    for v in variants:
        if name == v or name == v.replace("\\", "/").rsplit("/", 1)[-1]:
            return v
    return None


def _compare_models(df: pd.DataFrame, models: list[str], baseline: str, n_resamples: int, seed: int) -> pd.DataFrame:
    from alignkit.stats import paired_difference

    keyed = df.set_index(MEASUREMENT_KEY)
    base = df[df["model"] == baseline].drop_duplicates(MEASUREMENT_KEY).set_index(MEASUREMENT_KEY)
    out = []
    for model in models:
        if model == baseline:
            continue
        cand = keyed[keyed["model"] == model]
        for key in cand.index.intersection(base.index):
            c, b = cand.loc[[key]].iloc[0], base.loc[[key]].iloc[0]
            rec = dict(zip(MEASUREMENT_KEY, key))
            rec.update(model=model, baseline=baseline, value=c["value"], baseline_value=b["value"],
                       diff=c["value"] - b["value"], ci_low=math.nan, ci_high=math.nan, p_value=math.nan,
                       n=int(c["n"]))
            shared = _shared_items(_items(_as_row(c, key)), _items(_as_row(b, key)))
            if shared is not None and len(shared[0]) >= 2:
                d = paired_difference(*shared, n_resamples=n_resamples, seed=seed)
                rec.update(diff=d.diff, ci_low=d.ci_low, ci_high=d.ci_high, p_value=d.p_value, n=d.n)
            out.append(rec)
    if not out:
        raise AlignkitError(f"no measurement is shared between {baseline} and the other runs; "
                            "score them with the same pairs, layers and mode")
    return pd.DataFrame(out, columns=COMPARISON_COLUMNS)


def seed_level_table(res: pd.DataFrame, contrasts: Sequence[tuple[str, str]], item_scores: Callable,
                     *, n_resamples: int = 2000, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Each (variant, baseline) in ``contrasts`` per shared measurement, paired by seed.

    ``res``: result rows with extra columns ``variant``, ``seed`` (and ``run_dir`` if
    ``item_scores`` needs it). ``item_scores(row)`` returns (ids, scores) of one row or None.
    Where every seed of both variants has item scores, d_s is the item-paired mean difference
    (basis ``seeds+items``); otherwise the difference of the seed's values (basis ``seeds``).
    """
    from alignkit.replication import seed_level_difference
    from alignkit.results.measures import measure

    from tqdm.auto import tqdm

    out, pairs = [], []
    for variant, baseline in contrasts:
        a, b = res[res["variant"] == variant], res[res["variant"] == baseline]
        merged = a.merge(b, on=MEASUREMENT_KEY + ["seed"], suffixes=("", "_b")).sort_values("seed", kind="stable")
        pairs.append((variant, baseline, merged.groupby(MEASUREMENT_KEY, sort=False)))
    bar = tqdm(total=sum(grouped.ngroups for *_, grouped in pairs), unit="test", desc="seed-level tests",
               disable=not progress, mininterval=2.0)
    for variant, baseline, grouped in pairs:
        for key, g in grouped:
            bar.update(1)
            cand, base, ids = _seed_entries(g, item_scores)
            basis = "seeds+items" if cand is not None else "seeds"
            if cand is None:
                cand, base = list(g["value"]), list(g["value_b"])
            try:
                r = seed_level_difference(cand, base, n_resamples=n_resamples, seed=seed, item_ids=ids)
            except AlignkitError as e:
                runs = ", ".join(f"{m} vs {mb}" for m, mb in zip(g["model"], g["model_b"]))
                raise AlignkitError(f"{dict(zip(MEASUREMENT_KEY, key))['metric']} of {runs}: {e}") from None
            rec = dict(zip(MEASUREMENT_KEY, key))
            rec.update(variant=variant, baseline=baseline, value=g["value"].mean(), baseline_value=g["value_b"].mean(),
                       diff=r.diff, ci_low=r.t_low, ci_high=r.t_high, p_value=r.t_p, significant=r.significant,
                       seed_sd=r.seed_sd, n_seeds=r.n_seeds, seed_diffs=";".join(f"{d:.6g}" for d in r.seed_diffs),
                       boot_low=r.boot_low, boot_high=r.boot_high, items_low=r.items_low, items_high=r.items_high,
                       items_p=r.items_p, n=r.n_items or int(g["n"].iloc[0]), basis=basis, max_items=math.nan)
            if measure(rec["metric"]).percent:  # a share of n_s items: d_s·n_s items moved in seed s
                n_s = np.full(r.n_seeds, r.n_items) if r.n_items else g["n"].to_numpy(dtype=np.float64)
                rec["max_items"] = float(np.max(np.abs(r.seed_diffs) * n_s))
            out.append(rec)
    bar.close()
    return pd.DataFrame(out, columns=SEED_COLUMNS)


def _seed_entries(g: pd.DataFrame, item_scores: Callable) -> tuple[list, list, list] | tuple[None, None, None]:
    """Per-seed item scores of candidate and baseline on shared items and those items' ids,
    or (None, None, None)."""
    cand, base, ids = [], [], []
    for _, r in g.iterrows():
        rb = {**r.to_dict(), **{c: r[f"{c}_b"] for c in ("model", "model_fingerprint", "run_dir") if f"{c}_b" in r}}
        shared = _shared_items(item_scores(pd.Series(r.to_dict())), item_scores(pd.Series(rb)), with_ids=True)
        if shared is None or len(shared[0]) < 2:
            return None, None, None
        cand.append(shared[0])
        base.append(shared[1])
        ids.append(shared[2])
    return cand, base, ids


def _headline(table: pd.DataFrame) -> list[pd.DataFrame]:
    """Rows of the headline measures of the registry (:func:`alignkit.results.measures.headline_measures`:
    the alignment measures, then zero-shot and supervised task accuracy), in its order."""
    from alignkit.results.measures import headline_measures

    sels = [table[(table["metric"] == m) & (table["method"] == k)] for m, k in headline_measures()]
    return [s for s in sels if not s.empty]


def comparison_markdown(table: pd.DataFrame) -> str:
    """Headline differences at the last layer, and how many layers differ significantly."""
    if "variant" in table.columns:
        return seed_comparison_markdown(table)
    lines = ["# alignkit comparison", "",
             f"Baseline: **{table['baseline'].iloc[0]}**. diff = candidate − baseline; 95% paired-bootstrap CI;",
             "p = two-sided paired permutation test over items. 'sig. layers' counts layers with p < 0.05.",
             "These intervals are conditional on the two checkpoints (training-run variance is not in them).", ""]
    lines += ["| model | pair | metric | method | direction | last layer | diff | 95% CI | p | sig. layers (+/−) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for sel in _headline(table):
        for (model, pair, direction, metric, method), g in sel.groupby(
                ["model", "pair", "direction", "metric", "method"], sort=False):
            last = g.loc[g["layer"].idxmax()]
            sig = g[g["p_value"] < 0.05]
            ci = "" if pd.isna(last["ci_low"]) else f"[{last['ci_low']:+.3f}, {last['ci_high']:+.3f}]"
            p = "" if pd.isna(last["p_value"]) else f"{last['p_value']:.3g}"
            layer = "" if last["layer"] < 0 else int(last["layer"])
            lines.append(f"| {model} | {pair} | {metric} | {method} | {direction} | {layer} | "
                         f"{last['diff']:+.4f} | {ci} | {p} | {(sig['diff'] > 0).sum()}/{(sig['diff'] < 0).sum()} "
                         f"of {len(g)} |")
    return "\n".join(lines) + "\n"


def _ci(lo, hi, fmt: str = "+.4f") -> str:
    return "" if pd.isna(lo) else f"[{lo:{fmt}}, {hi:{fmt}}]"


def _p(v) -> str:
    return "" if pd.isna(v) else format(v, ".3g")


def _seed_list(text) -> str:
    return ", ".join(f"{float(x):+.4f}" for x in str(text).split(";") if x)


def seed_comparison_markdown(table: pd.DataFrame) -> str:
    """The seed-level table at the last layer (and task accuracy)."""
    lines = ["# alignkit comparison across training runs", "",
             f"Baseline variant: **{table['baseline'].iloc[0]}**; variants paired by seed. d_s = per-seed "
             "difference; 95% t-interval and t-test p over seeds (df = seeds − 1); two-level bootstrap "
             "(seeds, then items); **sig.** only when the t-interval over seeds excludes 0. The items-only "
             "CI is conditional on these checkpoints.", "",
             "| variant | pair | metric | method | direction | layer | diff | per-seed d_s | t-interval | p (seeds) "
             "| sig. | two-level CI | items-only CI (conditional) |", "|---" * 13 + "|"]
    for sel in _headline(table):
        for _, g in sel.groupby(["variant", "pair", "direction", "metric", "method"], sort=False):
            r = g.loc[g["layer"].idxmax()]
            layer = "" if r["layer"] < 0 else int(r["layer"])
            lines.append(f"| {r['variant']} | {r['pair']} | {r['metric']} | {r['method']} | {r['direction']} | "
                         f"{layer} | {r['diff']:+.4f} | {_seed_list(r['seed_diffs'])} | "
                         f"{_ci(r['ci_low'], r['ci_high'])} | {_p(r['p_value'])} | "
                         f"{'yes' if r['significant'] else 'no'} | {_ci(r['boot_low'], r['boot_high'])} | "
                         f"{_ci(r['items_low'], r['items_high'])} |")
    return "\n".join(lines) + "\n"


def plot_differences(table: pd.DataFrame, path: str | os.PathLike, metric: str = "bls", method: str = "") -> bool:
    """diff vs layer with CI bands, one panel per pair, one line per candidate model (or variant)."""
    from alignkit.results.report import layer_panels

    sel = table[(table["metric"] == metric) & (table["method"] == method) & (table["layer"] >= 0)]
    if sel.empty:
        return False
    if "variant" in sel.columns:
        sel = sel.rename(columns={"variant": "model"})
    layer_panels(sel, "diff", f"{metric}{' ' + method if method else ''}: difference to {table['baseline'].iloc[0]}",
                 path, zero_line=True)
    return True


def write_comparison(table: pd.DataFrame, out: str | os.PathLike) -> Path:
    """Write comparison.csv, comparison.md and comparison_{bls,bls_auc}.png into ``out`` (atomically)."""

    d = ensure_writable_dir(out, "output directory")
    write_text(d / "comparison.md", comparison_markdown(table))
    plot_differences(table, d / "comparison_bls.png")
    plot_differences(table, d / "comparison_bls_auc.png", metric="bls_auc")
    write_csv(table, d / "comparison.csv")
    return d
