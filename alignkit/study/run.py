"""Running a study: every run (variant x seed) trained, scored and evaluated in one single-thread
worker, its small outputs kept under ``<out>/runs/<variant>/seed<k>/``; then compare, plot and
report from every finished run.

A run is finished when its ``results.csv`` is in its run folder (written last, atomically),
whether or not its checkpoint still exists. So a study committed run by run (the run folders,
no weights) continues on a fresh machine from a copy of ``runs/``: finished runs are reused,
interrupted ones resume from their last training checkpoint where it is still there.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from alignkit.atomic import ensure_writable_dir, write_text
from alignkit.errors import AlignkitError
from alignkit.results.rows import read_csv, to_frame, write_csv

from alignkit.study.config import BASE_LABEL, StudyConfig, _label, load_study_config, run_dir
from alignkit.study.analysis import alignment_accuracy_summary, alignment_vs_accuracy, compare_variants
from alignkit.study.plots import plot_study
from alignkit.study.report import study_report, training_diagnostics

PROBE_LABEL = BASE_LABEL + "+probe"
RESULTS = "results.csv"
#: written by :func:`alignkit.study.reproduce.reproduce`, shown in report.md
REPRODUCTION = "reproduction.json"
#: files of a training run kept in its run folder (small: meta, per-step metrics, diagnostics)
TRAINING_FILES = ("alignkit_train.json", "metrics.jsonl", "training_diagnostics.json")


def earlier_training_cpu(metrics: Path, finished_cpu_s: float) -> float | None:
    """CPU seconds a run's training spent in processes before the one that finished it, from
    its ``metrics.jsonl``, or None when it trained in one go (or has no log).

    Each training process logs ``time_s``/``cpu_s`` from its own start, so the log splits into
    one segment per process where ``time_s`` goes back. The last segment belongs to the
    finishing process unless that process used less CPU than the segment shows (it only scored
    a run whose training had finished before). Steps after a segment's last record are not
    counted: a lower bound."""
    if not metrics.is_file():
        return None
    recs = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    ends, last_t = [], None
    for r in recs:
        if "time_s" not in r or "cpu_s" not in r:
            continue
        if last_t is not None and r["time_s"] < last_t:
            ends.append(prev)
        prev, last_t = float(r["cpu_s"]), float(r["time_s"])
    if last_t is None:
        return None
    ends.append(prev)
    if finished_cpu_s >= ends[-1]:
        ends = ends[:-1]
    return float(sum(ends)) if ends else None


def is_finished(out: str | os.PathLike, label: str) -> bool:
    return (run_dir(out, label) / RESULTS).is_file()


class Study:
    def __init__(self, cfg: StudyConfig, out: str | os.PathLike, progress: bool = True):
        self.cfg, self.progress = cfg, progress
        self.out = ensure_writable_dir(out, "study output directory")

    def log(self, msg: str) -> None:
        if self.progress:
            print(f"[study] {msg}", file=sys.stderr, flush=True)

    def labels(self) -> list[str]:
        """Every run of the design in training order, references first."""
        return [BASE_LABEL, PROBE_LABEL] + [_label(v, s) for v, s in self.cfg.run_order()]

    def _on_cpu(self) -> bool:
        import torch

        dev = self.cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return str(dev).startswith("cpu")

    def run_all(self, only: list[str] | None = None, executor: Any = "local", ray_address: str | None = None) -> None:
        """Train, score and evaluate every unfinished run (or those in ``only``).

        On CPU each run uses one thread (bit-exact across processes and re-runs) and up to
        ``train_workers`` runs go in parallel processes; on CUDA they run one after another.
        Another ``executor`` (``"ray"``) runs each as one of its units (:meth:`run_units`).
        """
        labels = self.labels()
        if only:
            bad = [x for x in only if x not in labels]
            if bad:
                raise AlignkitError(f"--only {bad[0]!r} is not a run of this study; runs: {', '.join(labels)}")
            labels = [x for x in labels if x in only]
        todo = [x for x in labels if not is_finished(self.out, x)]
        done = len(labels) - len(todo)
        if done:
            self.log(f"{done} of {len(labels)} runs already finished (their outputs are in {self.out / 'runs'})")
        if not todo:
            return
        if executor != "local":
            return self.run_units(todo, executor, ray_address)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = max(1, min(self.cfg.train_workers or min(cores, 4), len(todo)))
        if not self._on_cpu() or workers == 1:
            for label in todo:
                self.log(f"run {label}")
                _run_one(self.cfg, str(self.out), label, self.progress, single_thread=self._on_cpu())
            return
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        self.log(f"{len(todo)} runs in {workers} parallel processes, one thread each")
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_run_one, self.cfg, str(self.out), label, False, True): label for label in todo}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    info = fut.result()  # re-raises a worker's error (AlignkitError -> one-line message)
                    self.log(f"finished {futures[fut]} in {info['wall_s']:.0f} s "
                             f"({len(self.labels()) - sum(not is_finished(self.out, x) for x in self.labels())} "
                             f"of {len(self.labels())} runs done)")

    def run_units(self, todo: list[str], executor: Any, ray_address: str | None = None) -> None:
        """Each run as one unit of ``executor`` (Ray: one GPU each on CUDA; one CPU each on a
        CPU, single-threaded, so bit-exact as a local run). The run folder comes back to the
        driver, which writes it (``results.csv`` last); a run that fails does not stop the others."""
        from alignkit.executors import Unit, get_executor

        owned = isinstance(executor, str)
        ex = get_executor(executor, ray_address)
        try:
            on_gpu = str(self.cfg.device).startswith("cuda") if self.cfg.device else ex.has_gpus()
            if on_gpu and not ex.has_gpus():  # Ray would wait forever for a GPU that never comes
                raise AlignkitError(f"device {self.cfg.device} needs a GPU but the {ex.name} cluster has none; "
                                    "set device = \"cpu\" in [study] or add GPU nodes to the cluster")
            units = [Unit(label, f"run {label}", (self.cfg, str(self.out), label, not on_gpu), gpus=float(on_gpu))
                     for label in todo]
            self.log(f"{len(todo)} runs as {ex.name} units, one {'GPU' if on_gpu else 'single-threaded CPU'} each")
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), unit="run", desc="runs", disable=not self.progress)

            def finished(unit: Unit, files: dict[str, bytes]) -> None:
                from alignkit.atomic import write_bytes

                dest = run_dir(self.out, unit.key)
                for rel in sorted(files, key=lambda r: r == RESULTS):  # results.csv last: the run is finished
                    write_bytes(dest / rel, files[rel])
                bar.update(1)

            failures = ex.run(run_unit, units, finished)
            bar.close()
            # where these runs went (the study's own manifest, study.json, is rewritten by every report)
            write_text(self.out / "executor.json", json.dumps({**ex.describe(), "runs": todo}, indent=1))
        finally:
            if owned:
                ex.close()
        if failures:
            f = failures[0]
            raise AlignkitError(f"{len(failures)} of {len(units)} runs failed: {f.unit.label}: {f.reason}; the "
                                f"finished runs are kept in {self.out / 'runs'} and a re-run does only the rest")

    def finished_results(self) -> pd.DataFrame:
        frames = [read_csv(run_dir(self.out, x) / RESULTS) for x in self.labels() if is_finished(self.out, x)]
        if not frames:
            raise AlignkitError(f"no finished run in {self.out / 'runs'}; run the study first")
        return pd.concat(frames, ignore_index=True)

    def report(self) -> dict[str, Path]:
        """Compare, plot and report from every finished run (an interim report while runs are missing)."""
        missing = [x for x in self.labels() if not is_finished(self.out, x)]
        write_csv(self.finished_results(), self.out / "results.csv")
        # compare what was written, so comparison.csv does not depend on which runs were fresh
        results = read_csv(self.out / "results.csv")
        comparison = compare_variants(self.out, results, self.cfg, progress=self.progress)
        write_csv(comparison, self.out / "comparison.csv")
        pts = alignment_vs_accuracy(results, self.cfg)
        write_csv(pts, self.out / "alignment_vs_accuracy.csv")
        summary = alignment_accuracy_summary(pts, self.cfg.compare_resamples)
        write_csv(summary, self.out / "alignment_vs_accuracy_summary.csv")
        plots = plot_study(results, comparison, self.cfg, self.out)
        diag = training_diagnostics({x: run_dir(self.out, x) / "training" for x in self.labels()
                                     if (run_dir(self.out, x) / "training").is_dir()})
        repro = self.out / REPRODUCTION
        write_text(self.out / "report.md", study_report(
            results, comparison, self.cfg, plots, diag, missing=missing, cost=self.cost(), correlation_summary=summary,
            reproduction=json.loads(repro.read_text()) if repro.is_file() else None))
        write_text(self.out / "study.json", json.dumps({"config": self.cfg.__dict__}, indent=2, default=str))
        return {"results": self.out / "results.csv", "comparison": self.out / "comparison.csv",
                "report": self.out / "report.md"}

    def cost(self) -> dict[str, Any]:
        """Wall and CPU seconds of the finished runs (from their cost.json files), summed.

        A cost.json counts the process that finished its run. A run resumed after an interruption
        also trained in earlier processes: ``resumed`` lists those runs and ``earlier_cpu_s`` sums
        the CPU seconds their training logs recorded there (:func:`earlier_training_cpu`)."""
        tot: dict[str, Any] = {"runs": 0, "wall_s": 0.0, "cpu_s": 0.0, "machines": [], "resumed": [],
                               "earlier_cpu_s": 0.0}
        for x in self.labels():
            f = run_dir(self.out, x) / "cost.json"
            if f.is_file():
                c = json.loads(f.read_text())
                tot["runs"] += 1
                tot["wall_s"] += c.get("wall_s", 0.0)
                tot["cpu_s"] += c.get("cpu_s", 0.0)
                if c.get("machine") and c["machine"] not in tot["machines"]:
                    tot["machines"].append(c["machine"])
                earlier = earlier_training_cpu(run_dir(self.out, x) / "training" / "metrics.jsonl",
                                               c.get("cpu_s", 0.0))
                if earlier is not None:
                    tot["resumed"].append(x)
                    tot["earlier_cpu_s"] += earlier
        return tot

    def run(self, only: list[str] | None = None, report_only: bool = False, executor: Any = "local",
            ray_address: str | None = None) -> dict[str, Path]:
        if not report_only:
            self.run_all(only, executor, ray_address)
        if only:
            return {"runs": self.out / "runs", "report": None}
        return self.report()


# ------------------------------------------------------------------------------------- one run

def code_commit() -> str | None:
    """The git commit of the alignkit source this process runs (``+dirty`` if alignkit/ has
    uncommitted changes), or None outside a git checkout."""
    pkg = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(pkg), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(pkg), "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def machine_name() -> str:
    import platform

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def _score_config(cfg: StudyConfig, cache_dir: Path):
    from alignkit.scoring import ScoreConfig

    return ScoreConfig(pairs=list(cfg.pairs), layers=cfg.layers, pool_size=cfg.pool_size, tasks=list(cfg.tasks),
                       tatoeba_dir=cfg.tatoeba, tatoeba_langs=list(cfg.tatoeba_langs),
                       n_resamples=cfg.score_resamples, device=cfg.device, cache_dir=str(cache_dir))


def _score_into(cfg: StudyConfig, ckpt: str, label: str, work: Path, dest: Path, progress: bool) -> pd.DataFrame:
    """Score ``ckpt`` in ``work`` (its vector cache too) and keep its item scores and manifest in ``dest``."""
    from alignkit.scoring import score

    df = score([ckpt], out=work / "score", config=_score_config(cfg, work / "cache"), progress=progress)
    df["model"] = label
    if (work / "score" / "items").is_dir():
        shutil.copytree(work / "score" / "items", dest / "items", dirs_exist_ok=True)
    shutil.copy2(work / "score" / "manifest.json", dest / "manifest.json")
    return df


def _eval_rows(cfg: StudyConfig, ckpt: Path, label: str, dest: Path) -> pd.DataFrame:
    from alignkit.tasks.classification import evaluate_task

    e = cfg.eval
    rows = evaluate_task(ckpt, cfg.train.get("task", "xnli"), e["data"], e.get("langs", ["en", "sw", "ur"]),
                         split=e.get("split", "test"), max_rows=e.get("max_rows"), batch_size=e.get("batch_size", 64),
                         device=cfg.device, predictions_dir=dest / "eval")
    df = to_frame(rows)
    df["model"] = label
    return df


def _keep_training_files(ckpt: Path, dest: Path) -> None:
    from alignkit.training.diagnostics import read_training_diagnostics

    (dest / "training").mkdir(parents=True, exist_ok=True)
    for name in TRAINING_FILES:
        if (ckpt / name).is_file():
            shutil.copy2(ckpt / name, dest / "training" / name)
    diag = read_training_diagnostics(ckpt)  # the summary the report reads, even where training wrote none
    write_text(dest / "training" / "training_diagnostics.json",
               json.dumps({k: (None if isinstance(v, float) and v != v else v) for k, v in diag.items()},
                          indent=1, sort_keys=True, default=str))


def _run_one(cfg: StudyConfig, out: str, label: str, progress: bool, single_thread: bool) -> dict[str, Any]:
    """Train (or resume), score and evaluate one run and write its run folder; ``results.csv`` last."""
    import torch
    from threadpoolctl import threadpool_limits

    from alignkit.training.config import TrainConfig

    t0, c0 = time.perf_counter(), time.process_time()
    out_p = Path(out)
    dest = run_dir(out_p, label)
    slug = label.replace("/", "-")
    ckpt = out_p / "checkpoints" / slug
    work = out_p / "work" / slug
    saved = torch.get_num_threads()
    limits = threadpool_limits(1) if single_thread else None
    if single_thread:
        torch.set_num_threads(1)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        if label == BASE_LABEL:
            frames = [_score_into(cfg, cfg.base_model, label, work, dest, progress)]
        elif label == PROBE_LABEL:
            from alignkit.training.probe import train_probe

            res = train_probe(TrainConfig.from_mapping({**cfg.train, "model": cfg.base_model, "variant": "probe",
                                                        "out": str(ckpt), "device": cfg.device}), progress=progress)
            frames = [_eval_rows(cfg, res.out, label, dest)]
            _keep_training_files(res.out, dest)
        else:
            from alignkit.training.trainer import train

            variant, seed = label.rsplit("/seed", 1)
            tc = TrainConfig.from_mapping({**cfg.train, "model": cfg.base_model, "variant": variant,
                                           "seed": int(seed), "out": str(ckpt), "device": cfg.device})
            res = train(tc, progress=progress)
            frames = [_score_into(cfg, str(res.out), label, work, dest, progress),
                      _eval_rows(cfg, res.out, label, dest)]
            _keep_training_files(res.out, dest)
        cost = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
                "machine": machine_name(), "threads": 1 if single_thread else torch.get_num_threads(),
                "code": code_commit()}
        write_text(dest / "cost.json", json.dumps(cost, indent=1))
        write_csv(pd.concat(frames, ignore_index=True), dest / RESULTS)  # last: the run is finished
    finally:
        if limits is not None:
            limits.restore_original_limits()
        torch.set_num_threads(saved)
    shutil.rmtree(work, ignore_errors=True)  # the run's vector cache: hundreds of MB, never reused
    if cfg.prune_checkpoints and label != BASE_LABEL:
        shutil.rmtree(ckpt, ignore_errors=True)
    return cost


def run_unit(payload: tuple[StudyConfig, str, str, bool]) -> dict[str, bytes]:
    """One run as an executor's unit (on any node): train, score, evaluate; return its run
    folder's files (small: rows, item scores, training logs; no weights) for the driver."""
    cfg, out, label, single_thread = payload
    _run_one(cfg, out, label, False, single_thread)
    dest = run_dir(out, label)
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file()}


def run_study(config: str | os.PathLike | StudyConfig, out: str | os.PathLike, progress: bool = True,
              only: list[str] | None = None, report_only: bool = False, executor: Any = "local",
              ray_address: str | None = None) -> dict[str, Path]:
    """Python API of ``alignkit study``: run every unfinished run (or ``only`` those labels, e.g.
    ``["rt+cl/seed1"]``, without a report), then compare and report from every finished run
    (``report_only``: train nothing; an interim report while runs are missing). ``executor``:
    ``"local"`` or ``"ray"`` (each run a Ray task; ``ray_address`` as for ``score``)."""
    if isinstance(executor, str):
        from alignkit.executors import executor_class

        executor_class(executor, ray_address)  # a missing package fails before any work
    cfg = config if isinstance(config, StudyConfig) else load_study_config(config)
    return Study(cfg, out, progress).run(only=only, report_only=report_only, executor=executor,
                                         ray_address=ray_address)
