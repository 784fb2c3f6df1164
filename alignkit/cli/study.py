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
    reproduce: Optional[str] = typer.Option(None, "--reproduce", help="A finished run, e.g. 'rt/seed1': do it again from scratch in OUT/reproduce and compare its result files byte for byte (rows one by one: rows of measures added since are counted, not failed; OUT/reproduction.json, shown in report.md); exit 1 if any differ."),
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
        if reproduce is not None:
            from alignkit.study import load_study_config
            from alignkit.study.reproduce import reproduce as run_reproduction

            if only or report_only:
                raise AlignkitError("--reproduce takes one run and no --only/--report-only; drop those options")
            label = reproduce.strip()
            rec = run_reproduction(load_study_config(config), out, label,
                                   f"alignkit study {config} --out {out} --reproduce {label}", progress=not quiet,
                                   rerun_command=f"alignkit study {config} --out <a fresh folder> --only {label}")
            if rec["byte_identical"]:
                typer.echo(f"{rec['run']}: all {rec['compared']} result files byte-identical to the study's "
                           f"({out / 'reproduction.json'})")
                return
            if rec["reproduced"]:
                typer.echo(f"{rec['run']}: all {rec['study_rows']} rows of the study byte-identical, plus "
                           f"{rec['extra_rows']} new row(s) ({', '.join(rec['extra_metrics'])}); every other result "
                           f"file identical ({out / 'reproduction.json'})")
                return
            bad = rec["different"] + rec["only_in_study"] + rec["only_in_rerun"]
            typer.echo(f"{rec['run']}: {len(bad)} of {rec['compared']} result files differ or are missing: "
                       f"{', '.join(bad[:5])} ({out / 'reproduction.json'})", err=True)
            raise typer.Exit(1)
        runs = [x.strip() for x in only.split(",") if x.strip()] if only else None
        files = run_study(config, out, progress=not quiet, only=runs, report_only=report_only, executor=executor,
                          ray_address=ray_address)
    if files.get("report") is None:
        typer.echo(f"runs written under {files['runs']}")
    elif not quiet:
        typer.echo(files["report"].read_text())
