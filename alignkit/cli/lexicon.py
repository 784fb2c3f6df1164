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
    from alignkit.inputs.lexicon_build import (
        DICTD_DIR,
        build_lexicon,
        debian_package_version,
        lexicon_stats,
        source_inputs,
        write_build,
    )
    from alignkit.inputs.lexicons import parse_pair

    pair = "-".join(parse_pair(pair))
    result = build_lexicon(pair, source, dictd_dir=dictd_dir, keep_identical=keep_identical,
                           test_size=test_size)
    train_path, test_path = write_build(result, out)
    for name, lex, path in (("train", result.train, train_path), ("test", result.test, test_path)):
        st = lexicon_stats(lex, sample=0)
        typer.echo(f"{path}: {st.pairs} pairs, {st.sources} source words ({name})")
    versions = [f"{i.package} {debian_package_version(i.package) or '(version unknown)'}"
                for i in source_inputs(pair, result.source) if i.name != "cedict"]
    if versions and dictd_dir == DICTD_DIR:  # the Debian packages are what lives there
        typer.echo("inputs: " + ", ".join(versions))
    typer.echo(f"dropped: {result.dropped_identical} identical pairs, {result.dropped_english} English-looking "
               f"targets, {result.dropped_rank_mismatch} rank-mismatch pairs")


@lexicon_app.command("stats")
def stats(
    lexicon: str = typer.Argument(..., help="A shipped pair (en-tr) or a lexicon file."),
    split: str = typer.Option("test", "--split", help="train or test (for a shipped pair)."),
    sample: int = typer.Option(20, "--sample", help="How many random pairs to print."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random sample."),
) -> None:
    """Print counts, the share of multi-translation entries and a random sample."""
    from alignkit.errors import AlignkitError
    from alignkit.inputs.lexicon_build import lexicon_stats
    from alignkit.inputs.lexicons import load_lexicon, shipped_pairs

    if sample < 0:
        raise AlignkitError(f"--sample must be >= 0, got {sample}")
    lex = load_lexicon(lexicon, split=split)
    st = lexicon_stats(lex, sample=sample, seed=seed)
    typer.echo(f"lexicon: {lex.name} ({lex.src_lang}->{lex.tgt_lang})  sha256 {lex.sha256[:16]}")
    typer.echo(f"pairs: {st.pairs}")
    typer.echo(f"unique source words: {st.sources}")
    typer.echo(f"unique target words: {st.targets}")
    typer.echo(f"translations per source word: {st.mean_translations:.2f}")
    typer.echo(f"multi-translation entries: {st.multi_translation_share:.1%}")
    if lexicon in shipped_pairs():
        other = load_lexicon(lexicon, split="train" if split == "test" else "test")
        overlap = set(lex.sources()) & set(other.sources())
        typer.echo(f"{other.name}: {len(other.pairs)} pairs, {len(other.sources())} source words; "
                   f"source words shared with {lex.name}: {len(overlap)}")
    if st.sample:
        typer.echo(f"random sample ({len(st.sample)} pairs, seed {seed}):")
        for s, t in st.sample:
            typer.echo(f"  {s}\t{t}")
