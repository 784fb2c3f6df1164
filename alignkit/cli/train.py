"""`alignkit train` and `alignkit eval-task`: parse -> one library call -> print.

The `train` options are the fields of :class:`~alignkit.training.config.TrainConfig` and
:class:`~alignkit.training.config.ObjectiveConfig` (help and defaults declared there, turned
into typer options by :mod:`alignkit.cli.options`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from alignkit.cli import app
from alignkit.cli.options import given_options, with_dataclass_options
from alignkit.inputs.text import comma_list
from alignkit.training.config import ObjectiveConfig, TrainConfig


@app.command("train", context_settings={"help_option_names": ["-h", "--help"]})
@with_dataclass_options(TrainConfig, ObjectiveConfig)
def train_cmd(
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file with any of these settings "
                                          "(same names, '-' or '_'); options given here override it."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar.", rich_help_panel="Run"),
    **options,
) -> None:
    """Fine-tune an encoder on English task data with the SPEC §3 objectives (resumable)."""
    from alignkit.training.config import load_train_config
    from alignkit.training.run import run_training

    cfg = load_train_config(config, given_options(options, TrainConfig, ObjectiveConfig))
    res = run_training(cfg, progress=not quiet)
    if not res.is_main:
        return
    zs = "".join(f", {r['pair']} {r['value']:.4f}" for r in res.rows)
    typer.echo(f"{res.out}\tbest English dev accuracy {res.best_dev_acc:.4f} at step {res.best_step}{zs}")


@app.command("eval-task")
def eval_task_cmd(
    ckpt: str = typer.Argument(..., help="Checkpoint written by `alignkit train`."),
    task: str = typer.Option("xnli", "--task", help="xnli | pawsx"),
    data: Optional[str] = typer.Option(None, "--data", help="Folder with {split}-{lang}.tsv (default $ALIGNKIT_DATA/<task>)."),
    langs: str = typer.Option("en,sw,ur", "--langs", help="Comma-separated languages."),
    out: Path = typer.Option(..., "--out", help="Output folder: results.csv, predictions-{lang}.tsv, manifest.json."),
    split: Optional[str] = typer.Option(None, "--split", help="test | dev (default: the split the "
                                         "checkpoint was not trained on: test-en -> dev)"),
    max_rows: Optional[int] = typer.Option(None, "--max-rows", help="Seeded subset of rows per language (same rows in each)."),
    batch_size: int = typer.Option(64, "--batch-size"),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Default: the training max length."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --max-rows subset."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N."),
) -> None:
    """Zero-shot accuracy of a fine-tuned checkpoint per language -> tidy results.csv (metric xnli_acc)."""
    from alignkit.tasks.classification import eval_task_to_dir

    rows = eval_task_to_dir(ckpt, task, data, comma_list(langs), out, split=split, max_rows=max_rows,
                            batch_size=batch_size, max_length=max_length, seed=seed, device=device)
    for r in rows:
        typer.echo(f"{r['pair']}\t{r['metric']}\t{r['value']:.4f}\t[{r['ci_low']:.4f}, {r['ci_high']:.4f}]\tn={r['n']}")
