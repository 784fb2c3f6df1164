"""``alignkit lexicon build|stats``: build lexicons from offline dictionaries, inspect them."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from alignkit.cli import app

lexicon_app = typer.Typer(
    help="Build bilingual lexicons from offline dictionaries and inspect them.",
    no_args_is_help=True,
)
app.add_typer(lexicon_app, name="lexicon")


@lexicon_app.command("build")
def build(
    pair: str = typer.Option(..., "--pair", help="English-source pair, e.g. en-tr."),
    source: Optional[str] = typer.Option(
        None, "--source", help="freedict | mueller (en-ru) | cedict (en-zh); default: the pair's usual one."),
    out: Path = typer.Option(Path("lexicons"), "--out", help="Directory for {pair}.train.tsv and {pair}.test.tsv."),
    dictd_dir: Path = typer.Option(Path("/usr/share/dictd"), "--dictd-dir",
                                   help="Where the Debian dict-* packages put their dictd files."),
    keep_identical: bool = typer.Option(False, "--keep-identical",
                                        help="Keep pairs whose target equals the source word."),
    test_size: int = typer.Option(1500, "--test-size", help="Unique source words in the test split."),
) -> None:
    """Build train/test lexicons for PAIR from a real dictionary and write them."""
    from alignkit.inputs.lexicon_build import build_and_write

    for line in build_and_write(pair, source, out, dictd_dir=dictd_dir, keep_identical=keep_identical,
                                test_size=test_size):
        typer.echo(line)


@lexicon_app.command("stats")
def stats(
    lexicon: str = typer.Argument(..., help="A shipped pair (en-tr) or a lexicon file."),
    split: str = typer.Option("test", "--split", help="train or test (for a shipped pair)."),
    sample: int = typer.Option(20, "--sample", help="How many random pairs to print."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random sample."),
) -> None:
    """Print counts, the share of multi-translation entries and a random sample."""
    from alignkit.inputs.lexicon_build import stats_report

    for line in stats_report(lexicon, split=split, sample=sample, seed=seed):
        typer.echo(line)
