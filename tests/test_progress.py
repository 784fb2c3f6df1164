"""The measurement-phase progress bar of `alignkit score` (issue 12): a tqdm bar over each
pair's layers whose description names the pair, the layer and the metric being measured;
shown only when progress is on and stderr is a terminal, silent under --quiet and when
stderr is a file or pipe."""
from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from alignkit.cli import main
from tinymodels import tiny_bert

LEX = "cat\tkedi\ndog\tköpek\nhouse\tev\nwater\tsu\nbig\tbüyük\nsmall\tküçük\nthe\tbir\nworld\tdünya\nhello\tmerhaba\n"
LAYERS = 3  # tiny_bert(layers=2): the embedding output and two hidden layers


class _Stream(io.StringIO):
    """A stand-in for stderr that says whether it is a terminal."""

    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("progress")
    (root / "en-tr.test.tsv").write_text(LEX, encoding="utf-8")
    return tiny_bert(root / "tiny"), root / "en-tr.test.tsv"


def _score_stderr(monkeypatch, tmp_path, inputs, *, tty: bool, quiet: bool) -> str:
    """Run a small `alignkit score` with stderr replaced; return what was written to it."""
    model, lex = inputs
    err = _Stream(tty)
    monkeypatch.setattr(sys, "stderr", err)
    args = ["score", str(model), "--pairs", str(lex), "--pool-size", "30", "--resamples", "20",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")]
    assert main(args + (["--quiet"] if quiet else [])) == 0
    return err.getvalue()


def test_bar_on_a_terminal_names_pair_layer_and_metric_for_every_layer(monkeypatch, tmp_path, inputs):
    text = _score_stderr(monkeypatch, tmp_path, inputs, tty=True, quiet=False)
    assert "en-tr: clusters, all layers" in text           # computed up front, a layer per core
    for layer in range(LAYERS):
        for metric in ("bls", "retrieval"):
            assert f"en-tr layer {layer}: {metric}" in text, (layer, metric)
    # the bar counts layers and reaches the total (tqdm's "n/total" after the last update)
    counts = [int(n) for n in re.findall(rf"(\d+)/{LAYERS} ", text)]
    assert counts and max(counts) == LAYERS and min(counts) == 0


def test_quiet_shows_no_measurement_bar_even_on_a_terminal(monkeypatch, tmp_path, inputs):
    text = _score_stderr(monkeypatch, tmp_path, inputs, tty=True, quiet=True)
    assert "layer" not in text and "\r" not in text


def test_no_measurement_bar_when_stderr_is_not_a_terminal(monkeypatch, tmp_path, inputs):
    text = _score_stderr(monkeypatch, tmp_path, inputs, tty=False, quiet=False)
    assert "en-tr layer" not in text and f"/{LAYERS} " not in text
    assert "words" not in text and "\r" not in text          # nor an extraction bar
