"""Outcomes declared before a study runs (SPEC §2 v3), and the family each test belongs to.

The ``[outcomes]`` table of a study config::

    [outcomes]
    primary = { metric = "bls_auc", pair = "en-sw", layer = "last", contrast = "rt+cl - rt" }
    [outcomes.secondary.alignment]                 # a named family of tests
    contrasts = ["rt+cl - rt"]
    measures = ["bls_auc", "tatoeba_acc", "p@1:csls"]   # metric, or metric:method
    pairs = ["en-de", "en-tr"]                     # optional (default: every pair)
    layer = "last"                                 # "last" (default), "all" or a layer index

Every row of comparison.csv is one test: the primary outcome (exactly one row: its p is not
adjusted), a test of the first secondary family that selects it (Holm-adjusted within that
family), or ``exploratory`` (Holm-adjusted within all exploratory tests; never a finding).
Task accuracies (layer −1) match any ``layer``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from alignkit.errors import AlignkitError

PRIMARY, EXPLORATORY = "primary", "exploratory"
_PRIMARY_KEYS = {"metric", "pair", "layer", "contrast", "method", "direction"}
_FAMILY_KEYS = {"contrasts", "measures", "pairs", "layer", "directions"}


def parse_contrast(text: str, where: str = "study config") -> tuple[str, str]:
    """``"rt+cl - rt"`` -> ("rt+cl", "rt") (variant, baseline); the separator is `` - `` or `` − ``."""
    for sep in (" − ", " - "):
        if sep in str(text):
            v, b = (x.strip() for x in str(text).split(sep, 1))
            if v and b and v != b:
                return v, b
    raise AlignkitError(f"{where}: contrast {text!r} is not 'variant - baseline' (spaces around the minus)")


def primary_contrast(outcomes: Mapping[str, Any]) -> tuple[str, str] | None:
    prim = (outcomes or {}).get("primary")
    return parse_contrast(prim["contrast"]) if prim else None


def outcome_contrasts(outcomes: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every contrast the outcomes name, primary first, in declaration order."""
    out = []
    if (outcomes or {}).get("primary"):
        out.append(primary_contrast(outcomes))
    for fam in ((outcomes or {}).get("secondary") or {}).values():
        out += [parse_contrast(c) for c in fam.get("contrasts", [])]
    return list(dict.fromkeys(out))


def check_outcomes(outcomes: Mapping[str, Any], variants: list[str], where: str) -> None:
    """Validate an ``[outcomes]`` table against the study's variants (one-line errors)."""
    if not outcomes:
        return
    bad = set(outcomes) - {"primary", "secondary"}
    if bad:
        raise AlignkitError(f"{where}: unknown [outcomes] key(s) {', '.join(sorted(bad))}; use primary, secondary")
    prim = outcomes.get("primary")
    if prim is not None:
        if not isinstance(prim, dict) or not {"metric", "pair", "contrast"} <= set(prim):
            raise AlignkitError(f"{where}: [outcomes] primary needs metric, pair and contrast "
                                "(and layer, method, direction where they matter)")
        if set(prim) - _PRIMARY_KEYS:
            raise AlignkitError(f"{where}: unknown key(s) {', '.join(sorted(set(prim) - _PRIMARY_KEYS))} in the "
                                f"primary outcome; known: {', '.join(sorted(_PRIMARY_KEYS))}")
        _check_layer(prim.get("layer", "last"), where)
    for name, fam in (outcomes.get("secondary") or {}).items():
        if name in (PRIMARY, EXPLORATORY) or not isinstance(fam, dict):
            raise AlignkitError(f"{where}: secondary family {name!r} must be a table and not be named "
                                f"{PRIMARY!r} or {EXPLORATORY!r}")
        if set(fam) - _FAMILY_KEYS or not fam.get("contrasts") or not fam.get("measures"):
            raise AlignkitError(f"{where}: secondary family {name!r} needs contrasts and measures (optional: pairs, "
                                f"layer, directions); got {', '.join(sorted(fam))}")
        _check_layer(fam.get("layer", "last"), where)
    for v, b in outcome_contrasts(outcomes):
        for x in (v, b):
            if x not in variants:
                raise AlignkitError(f"{where}: outcome contrast '{v} - {b}' names {x!r}, which is not among the "
                                    f"variants {variants}")


def _check_layer(layer, where: str) -> None:
    if layer in ("last", "all") or isinstance(layer, int):
        return
    raise AlignkitError(f"{where}: outcome layer {layer!r} must be 'last', 'all' or a layer index")


def _split_measure(m: str) -> tuple[str, str | None]:
    metric, _, method = str(m).partition(":")
    return metric, (method if _ else None)


def _layer_ok(layers: pd.Series, spec, last: int) -> np.ndarray:
    lay = layers.astype(int).to_numpy()
    if spec == "all":
        return np.ones(len(lay), dtype=bool)
    want = last if spec == "last" else int(spec)
    return (lay == want) | (lay < 0)  # task accuracies have no layer


def _method(series: pd.Series) -> pd.Series:
    return series.fillna("").astype(str)


def primary_mask(table: pd.DataFrame, outcomes: Mapping[str, Any], last: int) -> np.ndarray:
    prim = outcomes.get("primary") if outcomes else None
    if not prim or table.empty:
        return np.zeros(len(table), dtype=bool)
    v, b = parse_contrast(prim["contrast"])
    m = ((table["variant"] == v) & (table["baseline"] == b) & (table["metric"] == prim["metric"])
         & (table["pair"] == prim["pair"])).to_numpy().copy()
    m &= _layer_ok(table["layer"], prim.get("layer", "last"), last)
    if "method" in prim:
        m &= (_method(table["method"]) == str(prim["method"])).to_numpy()
    if "direction" in prim:
        m &= (table["direction"].fillna("").astype(str) == str(prim["direction"])).to_numpy()
    if m.sum() > 1:
        opts = sorted(set(zip(_method(table.loc[m, "method"]), table.loc[m, "direction"].fillna("").astype(str))))
        raise AlignkitError(f"the primary outcome matches {int(m.sum())} tests, not one; give its method and "
                            f"direction in [outcomes] primary (one of {opts})")
    return m


def family_mask(table: pd.DataFrame, fam: Mapping[str, Any], last: int) -> np.ndarray:
    contrasts = {parse_contrast(c) for c in fam["contrasts"]}
    m = np.array([(v, b) in contrasts for v, b in zip(table["variant"], table["baseline"])], dtype=bool).reshape(-1)
    sel = np.zeros(len(table), dtype=bool)
    method = _method(table["method"])
    for meas in fam["measures"]:
        metric, meth = _split_measure(meas)
        hit = (table["metric"] == metric).to_numpy().copy()
        if meth is not None:
            hit &= (method == meth).to_numpy()
        sel |= hit
    m &= sel
    if fam.get("pairs"):
        m &= table["pair"].isin(list(fam["pairs"])).to_numpy()
    if fam.get("directions"):
        m &= table["direction"].isin(list(fam["directions"])).to_numpy()
    return m & _layer_ok(table["layer"], fam.get("layer", "last"), last)


def assign_families(table: pd.DataFrame, outcomes: Mapping[str, Any], last: int) -> pd.DataFrame:
    """``table`` (seed-level comparison rows) with ``family`` and ``p_adjusted`` (Holm within each
    family; the primary unadjusted) and ``significant`` = p_adjusted < 0.05 (never with p NaN)."""
    from alignkit.replication import holm

    t = table.copy()
    fam = np.full(len(t), EXPLORATORY, dtype=object)
    free = np.ones(len(t), dtype=bool)
    pm = primary_mask(t, outcomes or {}, last)
    fam[pm] = PRIMARY
    free &= ~pm
    for name, spec in ((outcomes or {}).get("secondary") or {}).items():
        m = family_mask(t, spec, last) & free
        fam[m] = name
        free &= ~m
    t["family"] = fam
    p = pd.to_numeric(t["p_value"], errors="coerce").to_numpy(dtype=float)
    adj = np.full(len(t), np.nan)
    for name in dict.fromkeys(fam):
        idx = np.flatnonzero(fam == name)
        adj[idx] = p[idx] if name == PRIMARY else holm(p[idx])
    t["p_adjusted"] = adj
    t["significant"] = np.nan_to_num(adj, nan=1.0) < 0.05
    return t


def declared_lines(outcomes: Mapping[str, Any]) -> list[str]:
    """Markdown: the outcomes as declared (the report opens with them, before any result)."""
    if not outcomes or not outcomes.get("primary"):
        return ["No outcome was declared in the config: every test below is exploratory (Holm-adjusted across all "
                "of them) and none answers the research question."]
    p = outcomes["primary"]
    extra = "".join(f", {k} {p[k]}" for k in ("method", "direction") if p.get(k))
    L = [f"- **Primary** (one test, unadjusted): `{p['metric']}`, {p['pair']}, layer {p.get('layer', 'last')}"
         f"{extra}, contrast `{p['contrast']}`, seed-level (t-test over seeds)."]
    for name, f in (outcomes.get("secondary") or {}).items():
        pairs = ", ".join(f["pairs"]) if f.get("pairs") else "every pair/language"
        L.append(f"- **Secondary family \"{name}\"** (Holm within the family): measures "
                 f"{', '.join(f'`{m}`' for m in f['measures'])}; contrasts {', '.join(f'`{c}`' for c in f['contrasts'])}; "
                 f"{pairs}; layer {f.get('layer', 'last')}.")
    L.append("- **Exploratory**: every other test (Holm-adjusted across all exploratory tests; "
             "hypotheses for later studies, not findings).")
    return L
