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
from alignkit.errors import AlignkitError
from alignkit.results import MEASUREMENT_KEY, read_csv, to_frame, write_csv

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
        from alignkit.tatoeba import read_tatoeba

        for lang in cfg.tatoeba_langs:
            read_tatoeba(cfg.tatoeba, lang)  # a missing language fails now, not after hours of training
    # validate the training settings now (file existence is checked before training starts)
    TrainConfig.from_mapping({**cfg.train, "out": "x", "variant": cfg.variants[0]}, source=f"{p} [train]").check()
    from alignkit.taskdata import check_zero_shot_protocol  # v2: never evaluate on the training split

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
        from alignkit.encoders import model_fingerprint

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
            if self._current(df, label, ckpt):
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
        write_text(self.out / "report.md", study_report(results, comparison, self.cfg, plots))
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
    from alignkit.items import load_items

    run_dir = out / "scores" / label.replace("/", "-")
    pair = f"tatoeba-{r['pair']}" if r["metric"] == "tatoeba_acc" else r["pair"]
    return load_items(run_dir, r["model_fingerprint"], pair, int(r["layer"]), r["metric"], r["method"],
                      r["direction"])


def compare_variants(out: Path, results: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """Each variant vs each baseline variant, per measurement.

    ``diff``: mean over seeds of (variant − baseline) with seeds paired by seed number.
    ``ci_low/ci_high``, ``p_value``: where item scores exist, a paired bootstrap CI and a
    paired permutation p-value over items of the seed-averaged item scores (the items are the
    same words / pairs / sentences for every checkpoint); else a t-interval over seeds and a
    one-sample t-test p-value of the per-seed differences. ``seed_sd``: SD of per-seed diffs.
    """
    from scipy import stats as sst

    from alignkit.stats import paired_difference

    res = results[results["model"] != BASE_LABEL].copy()
    res["variant"] = res["model"].str.rsplit("/seed", n=1).str[0]
    res["seed"] = pd.to_numeric(res["model"].str.rsplit("/seed", n=1).str[1], errors="coerce")
    res = res.dropna(subset=["seed"])
    out_rows = []
    for baseline in cfg.baselines:
        for variant in cfg.variants:
            if variant == baseline:
                continue
            a = res[res["variant"] == variant]
            b = res[res["variant"] == baseline]
            merged = a.merge(b, on=MEASUREMENT_KEY + ["seed"], suffixes=("", "_b"))
            for key, g in merged.groupby(MEASUREMENT_KEY, sort=False):
                diffs = (g["value"] - g["value_b"]).to_numpy()
                rec = dict(zip(MEASUREMENT_KEY, key))
                rec.update(variant=variant, baseline=baseline, value=g["value"].mean(), baseline_value=g["value_b"].mean(),
                           diff=diffs.mean(), seed_sd=diffs.std(ddof=1) if len(diffs) > 1 else math.nan,
                           n_seeds=len(diffs), ci_low=math.nan, ci_high=math.nan, p_value=math.nan, n=int(g["n"].iloc[0]),
                           basis="seeds")
                if len(diffs) > 1:
                    t = sst.t.ppf(0.975, len(diffs) - 1) * rec["seed_sd"] / math.sqrt(len(diffs))
                    rec.update(ci_low=rec["diff"] - t, ci_high=rec["diff"] + t)
                    if rec["seed_sd"] > 0:
                        rec["p_value"] = float(sst.ttest_1samp(diffs, 0.0).pvalue)
                if int(key[0]) >= 0:
                    A, B = [], []
                    for _, r in g.iterrows():
                        ia = _item_scores(out, r["model"], r)
                        ib = _item_scores(out, r["model_b"], {**r.to_dict(), "model_fingerprint": r["model_fingerprint_b"]})
                        if ia is None or ib is None or not np.array_equal(ia[0], ib[0]):
                            A = []
                            break
                        A.append(ia[1])
                        B.append(ib[1])
                    if A and len(A[0]) >= 2:
                        d = paired_difference(np.mean(A, 0).astype(np.float64), np.mean(B, 0).astype(np.float64),
                                              n_resamples=cfg.compare_resamples, seed=0)
                        rec.update(ci_low=d.ci_low, ci_high=d.ci_high, p_value=d.p_value, basis="seeds+items")
                out_rows.append(rec)
    cols = ["variant", "baseline", *MEASUREMENT_KEY, "value", "baseline_value", "diff", "ci_low", "ci_high",
            "p_value", "seed_sd", "n_seeds", "n", "basis"]
    return pd.DataFrame(out_rows, columns=cols)


# ---------------------------------------------------------------------------- report & plots

def _last_layer(df: pd.DataFrame) -> int:
    return int(df.loc[df["layer"] >= 0, "layer"].max())


#: alignment measures related to zero-shot accuracy: (label, metric, method); Tatoeba averages both directions
ALIGNMENT_MEASURES = (("BLS", "bls", ""), ("Tatoeba acc", "tatoeba_acc", "nn"))


def _lang_of(pair: str) -> str:
    return pair.split("-")[1] if pair.startswith("en-") else pair.split("-")[0]


def alignment_vs_accuracy(results: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """Per (alignment measure, checkpoint, language): the alignment change and the zero-shot
    accuracy change, both relative to the mean of the reference variant (``ft``) for that language.

    Alignment measures (last layer): BLS for each lexicon pair ``en-xx`` and Tatoeba accuracy
    (mean of both directions) for each Tatoeba language, so languages without a lexicon
    (e.g. Urdu) still enter through Tatoeba.
    """
    res = results.copy()
    res["variant"] = res["model"].str.rsplit("/seed", n=1).str[0]
    last = _last_layer(res)
    ref = "ft" if "ft" in cfg.variants else cfg.variants[0]
    acc_all = res[res["metric"].str.endswith("_acc") & (res["method"] == "zero-shot")]
    pts = []
    for label, metric, method in ALIGNMENT_MEASURES:
        sel = res[(res["metric"] == metric) & (res["method"] == method) & (res["layer"] == last)]
        for pair, g in sel.groupby("pair", sort=False):
            lang = _lang_of(pair)
            align = g.groupby("model")["value"].mean()
            acc = acc_all[acc_all["pair"] == lang].set_index("model")["value"]
            ref_models = [m for m in align.index if m.rsplit("/seed", 1)[0] == ref and m in acc.index]
            if not ref_models:
                continue
            a0, c0 = align[ref_models].mean(), acc[ref_models].mean()
            for model in align.index:
                if model.startswith(BASE_LABEL) or model not in acc.index:
                    continue
                pts.append({"measure": label, "model": model, "variant": model.rsplit("/seed", 1)[0], "lang": lang,
                            "d_align": align[model] - a0, "d_acc": acc[model] - c0})
    return pd.DataFrame(pts, columns=["measure", "model", "variant", "lang", "d_align", "d_acc"])


def correlations(pts: pd.DataFrame) -> list[dict]:
    """Pearson and Spearman correlation of alignment change with accuracy change, per measure."""
    from scipy import stats as sst

    out = []
    for label, g in pts.groupby("measure", sort=False):
        rec = {"measure": label, "n": len(g), "langs": ", ".join(dict.fromkeys(g["lang"])), "pearson": math.nan,
               "pearson_p": math.nan, "spearman": math.nan, "spearman_p": math.nan}
        if len(g) >= 3 and g["d_align"].std() > 0 and g["d_acc"].std() > 0:
            pr, sr = sst.pearsonr(g["d_align"], g["d_acc"]), sst.spearmanr(g["d_align"], g["d_acc"])
            rec.update(pearson=float(pr.statistic), pearson_p=float(pr.pvalue), spearman=float(sr.statistic),
                       spearman_p=float(sr.pvalue))
        out.append(rec)
    return out


def plot_study(results: pd.DataFrame, comparison: pd.DataFrame, cfg: StudyConfig, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alignkit.report import _save

    files = []
    res = results.copy()
    res["variant"] = res["model"].str.rsplit("/seed", n=1).str[0]
    bls = res[(res["metric"] == "bls") & (res["layer"] >= 0)]
    if not bls.empty:
        pairs = list(dict.fromkeys(bls["pair"]))
        fig, axes = plt.subplots(1, len(pairs), figsize=(4.5 * len(pairs), 3.4), squeeze=False)
        for ax, pair in zip(axes.flat, pairs):
            g = bls[bls["pair"] == pair]
            for variant, gv in g.groupby("variant", sort=False):
                agg = gv.groupby("layer")["value"].agg(["mean", "min", "max"])
                ax.plot(agg.index, agg["mean"], marker="o", ms=3, label=variant, lw=2 if variant == BASE_LABEL else 1.2)
                ax.fill_between(agg.index, agg["min"], agg["max"], alpha=0.15)
            ax.set_title(f"BLS by layer, {pair} (band: seed range)", fontsize=9)
            ax.set_xlabel("layer")
            ax.grid(alpha=0.3)
        axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        _save(fig, out / "bls_by_layer_variants.png")
        files.append("bls_by_layer_variants.png")
    pts = alignment_vs_accuracy(results, cfg)
    if len(pts) >= 3:
        corr = {c["measure"]: c for c in correlations(pts)}
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
            r = corr[label]["pearson"]
            ax.set_xlabel(f"Δ{label} vs ft mean (last layer)")
            ax.set_ylabel("Δ zero-shot accuracy vs ft mean (points)")
            ax.set_title(f"{label}: alignment vs accuracy change (Pearson r = {r:.2f}, n = {len(g)})", fontsize=9)
            ax.axhline(0, color="k", lw=0.5)
            ax.axvline(0, color="k", lw=0.5)
            ax.legend(fontsize=6)
        fig.tight_layout()
        _save(fig, out / "alignment_vs_accuracy.png")
        files.append("alignment_vs_accuracy.png")
    return files


def _num(v, fmt: str) -> str:
    return "" if pd.isna(v) else format(v, fmt)


def _fmt_ci(r) -> str:
    if pd.isna(r["ci_low"]):
        return ""
    return f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"


def _headline_columns(res: pd.DataFrame, last: int) -> list[tuple[str, pd.DataFrame, bool]]:
    """(column title, rows with one value per model after averaging directions, as percent?)
    for the per-variant table: BLS and P@1 (CSLS) per pair, Tatoeba per language, accuracy per language."""
    cols = []
    at_last = res[res["layer"] == last]
    for pair in dict.fromkeys(at_last.loc[at_last["metric"] == "bls", "pair"]):
        cols.append((f"BLS {pair}", at_last[(at_last["metric"] == "bls") & (at_last["pair"] == pair)], False))
        p1 = at_last[(at_last["metric"] == "p@1") & (at_last["method"] == "csls") & (at_last["pair"] == pair)]
        for d in dict.fromkeys(p1["direction"]):
            cols.append((f"P@1 CSLS {d}", p1[p1["direction"] == d], True))
    tat = at_last[at_last["metric"] == "tatoeba_acc"]
    for pair in dict.fromkeys(tat["pair"]):
        cols.append((f"Tatoeba {_lang_of(pair)}", tat[tat["pair"] == pair], True))
    acc = res[res["metric"].str.endswith("_acc") & (res["layer"] < 0)]
    for lang in dict.fromkeys(acc["pair"]):
        g = acc[acc["pair"] == lang]
        kind = "zero-shot" if (g["method"] == "zero-shot").any() else "supervised"
        cols.append((f"acc {lang} ({kind})", g, True))
    return cols


def _cell(g: pd.DataFrame, pct: bool) -> str:
    """Mean over seeds (seed min–max) of the per-model values (directions averaged)."""
    if g.empty:
        return ""
    v = g.groupby("model")["value"].mean() * (100 if pct else 1)
    f = ".1f" if pct else ".4f"
    return format(v.mean(), f) if len(v) == 1 else f"{v.mean():{f}} ({v.min():{f}}–{v.max():{f}})"


def _diff_phrase(r, pct: bool) -> str:
    k = 100 if pct else 1
    unit = " points" if pct else ""
    ci = "" if pd.isna(r["ci_low"]) else f", 95% CI [{k * r['ci_low']:+.{1 if pct else 4}f}, {k * r['ci_high']:+.{1 if pct else 4}f}]"
    p = "" if pd.isna(r["p_value"]) else f", p = {r['p_value']:.2g}"
    return f"{k * r['diff']:+.{1 if pct else 4}f}{unit}{ci}{p}"


def study_report(results: pd.DataFrame, comparison: pd.DataFrame, cfg: StudyConfig, plots: list[str]) -> str:
    last = _last_layer(results)
    L = ["# alignkit study report", "",
         "Research question: to what extent does a cross-lingual contrastive loss (CL) during robust training "
         "improve alignment, measured by bilingual lexical similarity (BLS), for zero-shot transfer?", "",
         f"Base model: `{cfg.base_model}`; variants: {', '.join(cfg.variants)}; seeds: {cfg.seeds}; "
         f"pairs: {', '.join(cfg.pairs)}; layers: {cfg.layers}; Tatoeba: "
         f"{', '.join(cfg.tatoeba_langs) or ('from the pairs' if cfg.tatoeba else 'no')}; training: "
         + ", ".join(f"{k}={v}" for k, v in cfg.train.items()) + "; zero-shot evaluation: "
         + ", ".join(f"{k}={v}" for k, v in cfg.eval.items() if k != "data") + ".", ""]
    res = results.copy()
    res["variant"] = res["model"].str.rsplit("/seed", n=1).str[0]
    cols = _headline_columns(res, last)
    L += [f"## Every variant at the last layer (layer {last}): mean over seeds (seed min–max)", "",
          "P@1, Tatoeba and accuracy in percent; Tatoeba averages both directions; chance accuracy is "
          "33.3% on XNLI; `base+probe` is a linear probe on the untuned encoder.", "",
          "| model | " + " | ".join(c[0] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for variant in dict.fromkeys(res["variant"]):
        cells = [_cell(g[g["variant"] == variant], pct) for _, g, pct in cols]
        if any(cells):
            L.append(f"| {variant} | " + " | ".join(cells) + " |")
    L += ["", "## Differences (variant − baseline), last layer", "",
          "Mean over seeds of the per-seed differences (seeds paired by number). CI and p from a paired "
          "bootstrap / permutation test over items of the seed-averaged item scores where item scores exist "
          "(basis seeds+items), otherwise a t-interval and t-test over seeds.", "",
          "| variant | baseline | pair | metric | method | direction | diff | 95% CI | p | seed SD |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    key = comparison[((comparison["layer"] == last) & comparison["metric"].isin(["bls", "p@1", "tatoeba_acc"])
                      & comparison["method"].isin(["", "csls", "nn"])
                      & ~((comparison["metric"] == "p@1") & (comparison["method"] == "nn")))
                     | (comparison["layer"] < 0)]
    for _, r in key.iterrows():
        if r["variant"] in cfg.baselines and r["baseline"] in cfg.baselines and \
                cfg.variants.index(r["variant"]) < cfg.variants.index(r["baseline"]):
            continue  # the mirror of a row shown the other way round (comparison.csv keeps both)
        L.append(f"| {r['variant']} | {r['baseline']} | {r['pair']} | {r['metric']} | {r['method']} | {r['direction']} | "
                 f"{r['diff']:+.4f} | {_fmt_ci(r)} | {_num(r['p_value'], '.3g')} | {_num(r['seed_sd'], '.4f')} |")
    pts = alignment_vs_accuracy(results, cfg)
    corr = correlations(pts) if len(pts) else []
    L += ["", "## Alignment vs zero-shot accuracy", "",
          "Each point is one fine-tuned checkpoint and one zero-shot language: its change in alignment (last "
          "layer) and in zero-shot accuracy, both relative to the `ft` mean for that language.", ""]
    for c in corr:
        if pd.isna(c["pearson"]):
            L.append(f"- {c['measure']} ({c['langs']}): too few points or no variation to correlate.")
        else:
            L.append(f"- {c['measure']} ({c['langs']}, {c['n']} points): Pearson r = {c['pearson']:.3f} "
                     f"(p = {c['pearson_p']:.3g}), Spearman ρ = {c['spearman']:.3f} (p = {c['spearman_p']:.3g}).")
    if not corr:
        L.append("No zero-shot language has an alignment measure, so there is nothing to correlate.")
    L += ["", "## Answer", ""]
    for cl, base in (("rt+cl", "rt"), ("ept+apt+rt+cl", "ept+apt+rt")):
        if cl not in cfg.variants:
            continue
        bases = [base] if base in cfg.baselines else [b for b in cfg.baselines if b != cl][:1]
        for b in bases:
            g = comparison[(comparison["variant"] == cl) & (comparison["baseline"] == b)]
            if g.empty:
                continue
            parts = []
            for _, r in g[(g["metric"] == "bls") & (g["layer"] == last)].iterrows():
                sig = "significant" if (not pd.isna(r["p_value"]) and r["p_value"] < 0.05) else "not significant"
                parts.append(f"BLS {r['pair']} {_diff_phrase(r, False)} ({sig} at 0.05; seed SD {r['seed_sd']:.4f})")
            for _, r in g[(g["metric"] == "p@1") & (g["method"] == "csls") & (g["layer"] == last)].iterrows():
                parts.append(f"P@1 CSLS {r['direction']} {_diff_phrase(r, True)}")
            for _, r in g[(g["metric"] == "tatoeba_acc") & (g["layer"] == last)].iterrows():
                parts.append(f"Tatoeba {r['direction']} {_diff_phrase(r, True)}")
            for _, r in g[(g["layer"] < 0) & (g["method"] == "zero-shot")].iterrows():
                parts.append(f"zero-shot accuracy {r['pair']} {_diff_phrase(r, True)}")
            L.append(f"- **{cl} vs {b}** (layer {last}): " + "; ".join(parts) + ".")
    for c in corr:
        if not pd.isna(c["pearson"]):
            L.append(f"- Alignment change ({c['measure']}) vs zero-shot accuracy change: r = {c['pearson']:.2f} "
                     f"over {c['n']} points (p = {c['pearson_p']:.2g}).")
    L += ["", "Limits: the configuration above fixes the model size, training data size and languages; a small "
          "study measures the direction and size of effects at that scale only.", ""]
    L += [f"![{p}]({p})" for p in plots]
    return "\n".join(L) + "\n"
