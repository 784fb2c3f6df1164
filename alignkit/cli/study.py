"""`alignkit study`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from alignkit.cli import app
from alignkit.errors import AlignkitError


@app.command()
def study(
    config: Optional[Path] = typer.Argument(None, help="Study TOML (see docs/studies/rq-cpu.toml)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Study directory; re-running resumes and skips finished work."),
    reanalyse: Optional[Path] = typer.Option(None, "--reanalyse", help="A finished study folder: recompute its contrasts with the seed-level statistics into reanalysis.md/.csv (there, or in --out); trains nothing."),
    resamples: Optional[int] = typer.Option(None, "--resamples", help="With --reanalyse: bootstrap resamples (default: the study's compare_resamples)."),
    outcomes: Optional[Path] = typer.Option(None, "--outcomes", help="With --reanalyse: a TOML with an [outcomes] table, declared post hoc for a study whose config declared none (the report says so)."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated runs to do now, e.g. 'rt+cl/seed1,base' (no report); finished ones are kept."),
    report_only: bool = typer.Option(False, "--report-only", help="Train nothing: compare and report from the finished runs (an interim report while runs are missing)."),
    executor: str = typer.Option("local", "--executor", help="local (parallel single-thread processes on CPU) or ray (each run a Ray task: one GPU each on CUDA, one CPU each on CPU; needs the ray extra)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="HOST:PORT of a Ray cluster's head node (with --executor ray; default RAY_ADDRESS, else a local cluster)."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Train every variant x seed, score all checkpoints and the base, compare, and write report.md."""
    if reanalyse is not None:
        from alignkit.study.reanalysis import reanalyse as run_reanalysis

        if config is not None:
            raise AlignkitError("--reanalyse takes a study folder and no config; drop the CONFIG argument")
        files = run_reanalysis(reanalyse, out, n_resamples=resamples, outcomes=outcomes)
    else:
        from alignkit.study import run_study

        if config is None or out is None:
            raise AlignkitError("alignkit study needs CONFIG and --out DIR (or --reanalyse DIR for a finished study)")
        runs = [x.strip() for x in only.split(",") if x.strip()] if only else None
        files = run_study(config, out, progress=not quiet, only=runs, report_only=report_only, executor=executor,
                          ray_address=ray_address)
    if files.get("report") is None:
        typer.echo(f"runs written under {files['runs']}")
    elif not quiet:
        typer.echo(files["report"].read_text())
