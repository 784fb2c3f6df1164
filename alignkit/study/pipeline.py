"""``alignkit study``: the research question end to end (SPEC §1).

Does a cross-lingual contrastive loss during robust training improve alignment (BLS), and
does alignment track zero-shot accuracy? One TOML config names the base model, task data,
variants, seeds, pairs and layers. The study trains every variant x seed (finished runs are
skipped, interrupted ones resume), scores every checkpoint and the untrained base, evaluates
zero-shot task accuracy, and writes ``results.csv``, ``comparison.csv``, ``report.md`` and
plots. Every stage's outputs are written atomically and reused on a re-run.

Config layout::

    [study]
    base_model = "bundled:multilingual-e5-small"
    variants = ["ft", "rt", "rt+cl", "ept+apt+rt", "ept+apt+rt+cl"]
    seeds = [1, 2, 3]
    pairs = ["en-sw", "en-tr"]           # lexicon pairs scored (BLS, retrieval, cluster gap)
    layers = "all"
    pool_size = 2000
    tatoeba = "../shared/data/tatoeba"   # optional
    tatoeba_langs = ["sw", "ur"]         # optional; default: the non-English side of each pair
    baselines = ["rt", "ft"]
    train_workers = 2                    # CPU: parallel single-thread training runs (default: cores, <= 4)
    [train]                              # any `alignkit train` setting (TrainConfig)
    train_file = "../shared/data/xnli/dev-en.tsv"
    max_steps = 60
    [eval]
    data = "../shared/data/xnli"
    langs = ["en", "sw", "ur"]
    max_rows = 1000

Relative paths in the config are resolved against the config file's directory.
"""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alignkit.atomic import atomic_path, ensure_writable_dir, write_text
from alignkit.results.compare import seed_of, variant_of
from alignkit.errors import AlignkitError
from alignkit.results.rows import read_csv, to_frame, write_csv

DEFAULT_VARIANTS = ["ft", "rt", "rt+cl", "ept+apt+rt", "ept+apt+rt+cl"]
BASE_LABEL = "base"


@dataclass
class StudyConfig:
    base_model: str = "bundled:multilingual-e5-small"
    variants: list[str] = field(default_factory=lambda: list(DEFAULT_VARIANTS))
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    pairs: list[str] = field(default_factory=lambda: ["en-sw"])
    layers: str = "all"
    pool_size: int = 2000
    tatoeba: str | None = None
    tatoeba_langs: list[str] = field(default_factory=list)  # default: the non-English side of each pair
    baselines: list[str] = field(default_factory=lambda: ["rt", "ft"])
    score_resamples: int = 200
    compare_resamples: int = 2000
    device: str | None = None
    # CPU training: runs in this many parallel worker processes, one thread each (0 = one per
    # CPU core). One thread per run makes CPU training bit-exact across processes (multi-threaded
    # backward passes are not), and parallel single-thread runs use the cores better than one
    # multi-threaded run. On CUDA, runs go one after another.
    train_workers: int = 0
    train: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)


def load_study_config(path: str | os.PathLike) -> StudyConfig:
    """Read and validate a study TOML (unknown keys are errors, not silently ignored)."""
    from alignkit.train.trainer import TrainConfig, load_toml
    from alignkit.train.objectives import VARIANTS

    p = Path(path)
    raw = load_toml(p)
    base = p.resolve().parent

    def resolve(v):
        """Paths relative to the config file's folder (lists element-wise); other values unchanged."""
        if isinstance(v, list):
            return [resolve(x) for x in v]
        if isinstance(v, str) and v and not v.startswith("bundled:"):
            q = Path(v).expanduser()
            if not q.is_absolute() and (base / q).exists():
                return str((base / q).resolve())
        return v

    study = dict(raw.get("study", {}))
    unknown = set(raw) - {"study", "train", "eval"}
    if unknown:
        raise AlignkitError(f"{p}: unknown section(s) {', '.join(sorted(unknown))}; use [study], [train], [eval]")
    names = set(StudyConfig.__dataclass_fields__) - {"train", "eval"}
    bad = set(study) - names
    if bad:
        raise AlignkitError(f"{p}: unknown [study] key(s) {', '.join(sorted(bad))}; known: {', '.join(sorted(names))}")
    cfg = StudyConfig(**{k: resolve(v) for k, v in study.items()})
    cfg.train = {k: resolve(v) for k, v in raw.get("train", {}).items()}
    cfg.eval = {k: resolve(v) for k, v in raw.get("eval", {}).items()}
    bad_eval = set(cfg.eval) - {"data", "langs", "max_rows", "split", "batch_size"}
    if bad_eval:
        raise AlignkitError(f"{p}: unknown [eval] key(s) {', '.join(sorted(bad_eval))}")
    for v in cfg.variants:
        if v not in VARIANTS:
            raise AlignkitError(f"{p}: unknown variant {v!r}; use {', '.join(VARIANTS)}")
    for b in cfg.baselines:
        if b not in cfg.variants:
            raise AlignkitError(f"{p}: baseline {b!r} is not among the variants {cfg.variants}")
    if len(cfg.seeds) < 1 or len(set(cfg.seeds)) != len(cfg.seeds):
        raise AlignkitError(f"{p}: seeds {cfg.seeds} must be distinct integers (the study asks for >= 3)")
    if cfg.tatoeba_langs and not cfg.tatoeba:
        raise AlignkitError(f"{p}: tatoeba_langs is set but tatoeba (the Tatoeba folder) is not; set both")
    if cfg.tatoeba:
        from alignkit.inputs.tatoeba import read_tatoeba

        for lang in cfg.tatoeba_langs:
            read_tatoeba(cfg.tatoeba, lang)  # a missing language fails now, not after hours of training
    # validate the training settings now (file existence is checked before training starts)
    TrainConfig.from_mapping({**cfg.train, "out": "x", "variant": cfg.variants[0]}, source=f"{p} [train]").check()
    from alignkit.inputs.taskdata import check_zero_shot_protocol  # v2: never evaluate on the training split

    check_zero_shot_protocol(cfg.train.get("train_file", ""), cfg.eval.get("split", "test"), str(p))
    if not cfg.eval.get("data") or not Path(cfg.eval["data"]).is_dir():
        raise AlignkitError(f"{p}: [eval] data = {cfg.eval.get('data')!r} is not a folder; point it at the folder "
                            "with test-{lang}.tsv files")
    return cfg


def _label(variant: str, seed: int) -> str:
    return f"{variant}/seed{seed}"


class Study:
    def __init__(self, cfg: StudyConfig, out: str | os.PathLike, progress: bool = True):
        self.cfg, self.progress = cfg, progress
        self.out = ensure_writable_dir(out, "study output directory")

    def log(self, msg: str) -> None:
        if self.progress:
            print(f"[study] {msg}", file=sys.stderr, flush=True)

    # -- stages --------------------------------------------------------------------------
    def _train_configs(self) -> dict[str, Any]:
        from alignkit.train.trainer import TrainConfig

        cfgs = {}
        for variant in self.cfg.variants:
            for seed in self.cfg.seeds:
                d = self.out / "checkpoints" / f"{variant}-seed{seed}"
                cfgs[_label(variant, seed)] = TrainConfig.from_mapping(
                    {**self.cfg.train, "model": self.cfg.base_model, "variant": variant, "seed": seed, "out": str(d),
                     "device": self.cfg.device})
        return cfgs

    def _on_cpu(self) -> bool:
        import torch

        dev = self.cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return str(dev).startswith("cpu")

    def train_all(self) -> dict[str, Path]:
        """Train every variant x seed; finished runs are skipped, interrupted ones resume.

        On CPU each run uses one thread (bit-exact across processes and re-runs) and up to
        ``train_workers`` runs go in parallel processes; on CUDA they run one after another.
        """
        from alignkit.train.trainer import train

        cfgs = self._train_configs()
        if not self._on_cpu():
            for label, tc in cfgs.items():
                self.log(f"train {label}")
                train(tc, progress=self.progress)
            return {label: Path(tc.out) for label, tc in cfgs.items()}
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        # default: one worker per core, at most 4 (each holds a model and its optimiser state)
        workers = self.cfg.train_workers or min(cores, 4)
        workers = max(1, min(workers, len(cfgs)))
        if workers == 1:
            for label, tc in cfgs.items():
                self.log(f"train {label} (1 thread)")
                _train_one_thread(tc, self.progress)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self.log(f"training {len(cfgs)} runs in {workers} parallel processes, one thread each")
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                futures = {label: pool.submit(_train_one_thread, tc, False) for label, tc in cfgs.items()}
                for label, fut in futures.items():
                    res = fut.result()  # re-raises a worker's error (AlignkitError -> one-line message)
                    self.log(f"trained {label}: best English dev accuracy {res[0]:.4f} at step {res[1]}")
        return {label: Path(tc.out) for label, tc in cfgs.items()}

    def _current(self, cached: pd.DataFrame, label: str, ckpt: str | Path) -> bool:
        """Whether cached rows were measured on the checkpoint now at ``ckpt`` (same fingerprint);
        a checkpoint retrained since (new weights) is measured again rather than reported stale."""
        from alignkit.inputs.encoders import model_fingerprint

        p = Path(ckpt)
        if not (p / "config.json").is_file():
            return True  # bundled / hub names: nothing on disk that could have changed under the study
        if set(cached["model_fingerprint"]) == {model_fingerprint(p)}:
            return True
        self.log(f"{label}: checkpoint changed since it was measured; measuring again")
        return False

    def _eval_rows(self, label: str, ckpt: Path, probe: bool = False) -> pd.DataFrame:
        from alignkit.train.evaluate import evaluate_task

        cache = self.out / "eval" / f"{label.replace('/', '-')}.csv"
        if cache.is_file():
            df = read_csv(cache)
            if self._current(df, label, ckpt):
                return df
        e = self.cfg.eval
        langs = e.get("langs", ["en", "sw", "ur"])
        rows = evaluate_task(ckpt, self.cfg.train.get("task", "xnli"), e["data"], langs, split=e.get("split", "test"),
                             max_rows=e.get("max_rows"), batch_size=e.get("batch_size", 64), device=self.cfg.device)
        df = to_frame(rows)
        df["model"] = label
        write_csv(df, cache)
        return df

    def _score_rows(self, label: str, ckpt: str | Path) -> pd.DataFrame:
        from alignkit.scoring import ScoreConfig, score

        d = self.out / "scores" / label.replace("/", "-")
        if (d / "results.csv").is_file():
            df = read_csv(d / "results.csv")
            # scores from before bls_auc existed are measured again, so every checkpoint has the primary outcome
            stale = (df["metric"] == "bls").any() and not (df["metric"] == "bls_auc").any()
            if stale:
                self.log(f"{label}: cached scores predate bls_auc; measuring again")
            elif self._current(df, label, ckpt):
                return df
        self.log(f"score {label}")
        cfg = ScoreConfig(pairs=list(self.cfg.pairs), layers=self.cfg.layers, pool_size=self.cfg.pool_size,
                          tatoeba_dir=self.cfg.tatoeba, tatoeba_langs=list(self.cfg.tatoeba_langs),
                          n_resamples=self.cfg.score_resamples, device=self.cfg.device)
        df = score([str(ckpt)], out=d, config=cfg, progress=self.progress)
        df["model"] = label
        write_csv(df, d / "results.csv")
        return df

    def run(self) -> dict[str, Path]:
        from alignkit.train.trainer import TrainConfig, train_probe

        ckpts = self.train_all()
        frames = [self._score_rows(BASE_LABEL, self.cfg.base_model)]
        probe_dir = self.out / "checkpoints" / "base-probe"
        probe = train_probe(TrainConfig.from_mapping({**self.cfg.train, "model": self.cfg.base_model,
                                                      "variant": "probe", "out": str(probe_dir),
                                                      "device": self.cfg.device}), progress=self.progress)
        frames.append(self._eval_rows(BASE_LABEL + "+probe", probe.out))
        for label, ckpt in ckpts.items():
            frames.append(self._score_rows(label, ckpt))
            frames.append(self._eval_rows(label, ckpt))
        write_csv(pd.concat(frames, ignore_index=True), self.out / "results.csv")
        # compare what was written (fresh rows carry more digits than cached ones read back),
        # so comparison.csv does not depend on which stages were reused
        results = read_csv(self.out / "results.csv")
        comparison = compare_variants(self.out, results, self.cfg)
        with atomic_path(self.out / "comparison.csv") as tmp:
            comparison.to_csv(tmp, index=False, float_format="%.10g")
        pts = alignment_vs_accuracy(results, self.cfg)
        with atomic_path(self.out / "alignment_vs_accuracy.csv") as tmp:
            pts.to_csv(tmp, index=False, float_format="%.10g")
        plots = plot_study(results, comparison, self.cfg, self.out)
        write_text(self.out / "report.md", study_report(results, comparison, self.cfg, plots,
                                                        training_diagnostics(ckpts)))
        write_text(self.out / "study.json", json.dumps({"config": self.cfg.__dict__, "command": sys.argv}, indent=2,
                                                       default=str))
        return {"results": self.out / "results.csv", "comparison": self.out / "comparison.csv",
                "report": self.out / "report.md"}


def _train_one_thread(tc, progress: bool) -> tuple[float, int]:
    """One training run on one CPU thread (a worker process of ``Study.train_all``, or inline)."""
    import torch

    from alignkit.train.trainer import train

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = train(tc, progress=progress)
    finally:
        torch.set_num_threads(saved)
    return res.best_dev_acc, res.best_step


def run_study(config: str | os.PathLike | StudyConfig, out: str | os.PathLike, progress: bool = True) -> dict[str, Path]:
    """Python API of ``alignkit study``."""
    cfg = config if isinstance(config, StudyConfig) else load_study_config(config)
    return Study(cfg, out, progress).run()


# ---------------------------------------------------------------------------- comparison

def _item_scores(out: Path, label: str, r) -> tuple[np.ndarray, np.ndarray] | None:
    from alignkit.results.items import load_items

    run_dir = out / "scores" / label.replace("/", "-")
    return load_items(run_dir, r["model_fingerprint"], r["pair"], int(r["layer"]), r["metric"], r["method"],
                      r["direction"], dataset=r["lexicon"])


def _with_variant(results: pd.DataFrame) -> pd.DataFrame:
    """Rows of the trained checkpoints with columns ``variant`` and ``seed`` (from ``variant/seedN``)."""
    res = results[results["model"] != BASE_LABEL].copy()
    res["variant"] = res["model"].map(variant_of)
    res["seed"] = pd.to_numeric(res["model"].map(lambda m: (seed_of(m) or (None, None))[1]), errors="coerce")
    return res.dropna(subset=["seed"])


def compare_variants(out: Path, results: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """Each variant vs each baseline variant, per measurement, paired by seed (SPEC §2 v2).

    Columns :data:`alignkit.compare.SEED_COLUMNS`: ``diff`` = mean over seeds of d_s (the
    item-paired mean difference of seed s where item scores exist, basis ``seeds+items``;
    else the difference of the seed's values, basis ``seeds``); ``ci_low/ci_high, p_value``:
    t-interval and t-test over seeds (df = seeds − 1), the only basis of ``significant``;
    ``boot_low/boot_high``: two-level bootstrap (seeds, then items); ``items_low/items_high,
    items_p``: items-only CI and permutation p of the seed-averaged item scores, conditional
    on these checkpoints; ``seed_sd``, ``seed_diffs`` (d_s joined by ';').
    """
    from alignkit.results.compare import check_comparable, seed_level_table

    check_comparable(results)  # e.g. cached scores from an earlier pool size: refuse, never mix
    contrasts = [(v, b) for b in cfg.baselines for v in cfg.variants if v != b]
    return seed_level_table(_with_variant(results), contrasts, lambda r: _item_scores(out, r["model"], r),
                            n_resamples=cfg.compare_resamples, seed=0)


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
                pts.append({"measure": label, "model": model, "variant": variant_of(model), "lang": lang,
                            "d_align": align[model] - a0, "d_acc": acc[model] - c0})
    return pd.DataFrame(pts, columns=["measure", "model", "variant", "lang", "d_align", "d_acc"])


def correlations(pts: pd.DataFrame, n_resamples: int = 2000) -> list[dict]:
    """Correlation of alignment change with accuracy change at checkpoint level (SPEC §2 v2).

    Per measure: one entry per language and, with several languages, one for the languages
    averaged per checkpoint; every entry has one point per checkpoint (never checkpoint x
    language points pooled as if independent), Pearson and Spearman with their p-values and a
    percentile bootstrap CI over checkpoints.
    """
    from alignkit.stats import checkpoint_correlation

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


# ---------------------------------------------------------------------------- plots

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


# ---------------------------------------------------------------------------- report

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
                 diagnostics: dict[str, dict] | None = None) -> str:
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
