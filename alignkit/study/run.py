"""Running a study: train every variant x seed (parallel single-thread CPU workers), score every
checkpoint and the base, evaluate zero-shot accuracy, then compare, plot and report (each stage's
outputs written atomically and reused on a re-run)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from alignkit.atomic import ensure_writable_dir, write_text
from alignkit.results.rows import read_csv, to_frame, write_csv

from alignkit.study.config import BASE_LABEL, StudyConfig, _label, load_study_config
from alignkit.study.analysis import alignment_vs_accuracy, compare_variants
from alignkit.study.plots import plot_study
from alignkit.study.report import study_report, training_diagnostics


class Study:
    def __init__(self, cfg: StudyConfig, out: str | os.PathLike, progress: bool = True):
        self.cfg, self.progress = cfg, progress
        self.out = ensure_writable_dir(out, "study output directory")

    def log(self, msg: str) -> None:
        if self.progress:
            print(f"[study] {msg}", file=sys.stderr, flush=True)

    # -- stages --------------------------------------------------------------------------
    def _train_configs(self) -> dict[str, Any]:
        from alignkit.train.config import TrainConfig

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
        from alignkit.train.config import TrainConfig
        from alignkit.train.probe import train_probe

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
        write_csv(comparison, self.out / "comparison.csv")
        write_csv(alignment_vs_accuracy(results, self.cfg), self.out / "alignment_vs_accuracy.csv")
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
