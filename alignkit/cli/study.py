"""`alignkit study`."""
from __future__ import annotations

from pathlib import Path

import typer

from alignkit.cli import app


@app.command()
def study(
    config: Path = typer.Argument(..., help="Study TOML (see docs/studies/rq-cpu.toml)."),
    out: Path = typer.Option(..., "--out", help="Study directory; re-running resumes and skips finished work."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Train every variant x seed, score all checkpoints and the base, compare, and write report.md."""
    from alignkit.study import run_study

    files = run_study(config, out, progress=not quiet)
    if not quiet:
        typer.echo(files["report"].read_text())
