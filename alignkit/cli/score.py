"""`alignkit score` and `alignkit compare`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from alignkit.cli import app
from alignkit.errors import AlignkitError


def _corpora(specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        if "=" not in spec:
            raise AlignkitError(f"--corpus {spec!r} must look like LANG=FILE, e.g. --corpus tr=tr.txt")
        lang, path = spec.split("=", 1)
        out[lang.strip()] = path.strip()
    return out


@app.command()
def score(
    checkpoints: Optional[List[str]] = typer.Argument(None, help="Model dirs / hub ids (default: bundled:multilingual-e5-small)."),
    pairs: Optional[str] = typer.Option(None, "--pairs", help="Comma-separated pairs (en-tr,en-de) or lexicon files; default: all shipped."),
    layers: str = typer.Option("all", "--layers", help="'all' or comma-separated indices, e.g. 0,4,8,12."),
    mode: str = typer.Option("isolated", "--mode", help="isolated | contextual"),
    pooling: str = typer.Option("mean", "--pooling", help="mean | first (sub-word pooling)"),
    out: Path = typer.Option(Path("alignkit-results"), "--out", help="Output directory."),
    pool_size: int = typer.Option(20000, "--pool-size", help="Most frequent target-language words added to the retrieval pool."),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="Comma-separated tasks (see `alignkit tasks`); default: lexicon, and tatoeba with --tatoeba."),
    tatoeba: Optional[Path] = typer.Option(None, "--tatoeba", help="Tatoeba dir (XTREME layout) for sentence retrieval rows."),
    tatoeba_langs: Optional[str] = typer.Option(None, "--tatoeba-langs", help="Languages for --tatoeba (tr,de or tur,deu); default: those of --pairs."),
    corpus: Optional[List[str]] = typer.Option(None, "--corpus", help="LANG=FILE sentences for contextual mode (repeatable)."),
    tsne_layers: Optional[str] = typer.Option(None, "--tsne-layers", help="Layers to draw t-SNE maps for, e.g. 0,6,12."),
    no_cluster: bool = typer.Option(False, "--no-cluster", help="Skip cluster-gap metrics (faster)."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples for CIs (0 = no CIs)."),
    seed: int = typer.Option(0, "--seed", help="Seed for bootstrap, CV folds and t-SNE."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N (default: cuda if present). On a GPU, extraction runs in bf16/fp16 and the retrieval GEMMs and top-k in fp32 (TF32 off)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Vector cache (default $ALIGNKIT_CACHE)."),
    eval_data: Optional[Path] = typer.Option(None, "--eval-data", help="Task data folder for --tasks xnli/pawsx (default $ALIGNKIT_DATA/<task>)."),
    eval_langs: str = typer.Option("en,sw,ur", "--eval-langs", help="Languages of --tasks xnli/pawsx."),
    eval_split: Optional[str] = typer.Option(None, "--eval-split", help="Split of --tasks xnli/pawsx (default: the one the checkpoint was not trained on)."),
    eval_max_rows: Optional[int] = typer.Option(None, "--eval-max-rows", help="Seeded subset of rows per language for --tasks xnli/pawsx."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars (extraction, measurement phase) or summary; the measurement bar is also off when stderr is not a terminal."),
) -> None:
    """Score checkpoints layer by layer with the selected tasks: BLS, retrieval P@k (NN/CSLS, +center),
    cluster gap (lexicon); Tatoeba; zero-shot accuracy (xnli, pawsx)."""
    from alignkit.inputs.text import comma_list
    from alignkit.scoring import ScoreConfig
    from alignkit.scoring import score as run_score

    try:
        tl = [int(x) for x in comma_list(tsne_layers)]
    except ValueError:
        raise AlignkitError(f"--tsne-layers {tsne_layers!r} must be comma-separated integers") from None
    cfg = ScoreConfig(pairs=comma_list(pairs), layers=layers, mode=mode, pooling=pooling, pool_size=pool_size,
                      tasks=comma_list(tasks), tatoeba_dir=str(tatoeba) if tatoeba else None,
                      tatoeba_langs=comma_list(tatoeba_langs), corpora=_corpora(corpus or []),
                      tsne_layers=tl, cluster=not no_cluster, n_resamples=resamples, seed=seed,
                      device=device, cache_dir=str(cache_dir) if cache_dir else None,
                      eval_data=str(eval_data) if eval_data else None, eval_langs=comma_list(eval_langs),
                      eval_split=eval_split, eval_max_rows=eval_max_rows)
    df = run_score(checkpoints, out=out, config=cfg, progress=not quiet, command=["alignkit"] + sys.argv[1:])
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
