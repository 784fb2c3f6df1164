"""`alignkit score` and `alignkit compare`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from alignkit.cli import app
from alignkit.cli.options import given_options, with_dataclass_options
from alignkit.scoring import ScoreConfig


@app.command()
@with_dataclass_options(ScoreConfig)
def score(
    checkpoints: Optional[List[str]] = typer.Argument(None, help="Model dirs / hub ids (default: bundled:multilingual-e5-small)."),
    out: Path = typer.Option(Path("alignkit-results"), "--out", help="Output directory."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars (extraction, measurement phase) or summary; the measurement bar is also off when stderr is not a terminal."),
    executor: str = typer.Option("local", "--executor", help="local (this process) or ray (a Ray cluster: --ray-address, else RAY_ADDRESS, else a local one; needs the ray extra). Same rows either way."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="HOST:PORT of a Ray cluster's head node (with --executor ray)."),
    **options,
) -> None:
    """Score checkpoints layer by layer with the selected tasks (`alignkit tasks`): BLS, retrieval P@k
    (NN/CSLS, +center), cluster gap (lexicon); Tatoeba; zero-shot accuracy (xnli, pawsx)."""
    from alignkit.scoring import score as run_score

    cfg = ScoreConfig(**given_options(options, ScoreConfig))
    df = run_score(checkpoints, out=out, config=cfg, progress=not quiet, command=["alignkit"] + sys.argv[1:],
                   executor=executor, ray_address=ray_address)
    if not quiet:
        typer.echo((out / "summary.md").read_text())
        typer.echo(f"wrote {out}/results.csv ({len(df)} rows), summary.md, manifest.json and plots")


@app.command()
def compare(
    runs: List[Path] = typer.Argument(..., help="results.csv files (or their run directories)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Model name of the baseline, or a variant whose models are labelled VARIANT/seedN or VARIANT-seedN (seed-level comparison). Default: the first model, or the first seeded variant."),
    out: Path = typer.Option(Path("alignkit-comparison"), "--out", help="Output directory."),
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap and permutation resamples."),
    seed: int = typer.Option(0, "--seed"),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Differences to a baseline: per checkpoint (paired-bootstrap CIs, permutation p over items) or,
    for runs of several seeds, per variant paired by seed (t-interval over seeds, two-level bootstrap).
    Refuses runs whose mode, lexicon, pool size or pooling differ."""
    from alignkit.results.compare import compare_runs, write_comparison

    table = compare_runs(runs, baseline=baseline, n_resamples=resamples, seed=seed)
    write_comparison(table, out)
    if not quiet:
        typer.echo((out / "comparison.md").read_text())


@app.command("tasks")
def tasks_cmd() -> None:
    """List the registered tasks (--tasks names) and the measurements each writes."""
    from alignkit.results.measures import measure
    from alignkit.tasks import TASKS, task_names

    for name in task_names():
        md = TASKS[name].metadata
        typer.echo(f"{name}\t{md.type}\t{md.description}")
        for metric in md.measures:
            m = measure(metric)
            better = {True: "higher is better", False: "lower is better", None: "reference"}[m.higher_is_better]
            typer.echo(f"    {metric}\t{m.unit or '-'}\t{better}\t{m.title}")
