"""Usage errors through the installed ``alignkit`` console script: click's usage line and one
``error: ...`` line (or the error line alone), exit code 2, never a traceback.

typer 0.12-0.2x raise the ``click`` package's ``UsageError``; newer typer raises the one of its
vendored ``typer._click``. The same file runs against the oldest typer the pyproject allows by
putting it first on the path: ``pip install --target DIR typer==0.12.0 typer-slim==0.12.0
click==8.1.7 rich shellingham`` then ``PYTHONPATH=DIR pytest tests/test_cli_usage.py`` (the
console script inherits PYTHONPATH; ``test_reports_the_typer_it_runs_on`` shows which ran).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("alignkit")


def alignkit(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.skip("the alignkit console script is not installed next to this python (pip install -e .)")
    env = dict(os.environ, ALIGNKIT_CACHE=str(tmp / "cache"), COLUMNS="200")
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=tmp, env=env, timeout=120)


def assert_usage_error(p: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, nothing on stdout, stderr is an optional ``Usage:`` line and one ``error:`` line."""
    lines = p.stderr.splitlines()
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stdout == ""
    assert lines and lines[-1].startswith("error: "), p.stderr
    assert len(lines) == 1 or (len(lines) == 2 and lines[0].startswith("Usage: alignkit")), p.stderr
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    return lines[-1]


@pytest.mark.parametrize("args, needles", [
    (["score", "--lexicon", "x.tsv"], ["--lexicon"]),                 # unknown option
    (["compare", "--nope"], ["--nope"]),
    (["scroe"], ["scroe"]),                                           # unknown command
    (["compare"], ["Missing argument"]),                                        # missing argument
    (["extract"], ["--words"]),                                       # missing required option
    (["extract", "--words"], ["--words"]),                            # option without its value
    (["score", "--pool-size", "abc"], ["--pool-size"]),             # bad type
    (["score", "--csls-k", "1.5"], ["--csls-k"]),
])
def test_usage_errors_are_one_line_exit_2(tmp_path, args, needles):
    assert_usage_error(alignkit(*args, tmp=tmp_path), *needles)


def test_usage_line_names_the_command(tmp_path):
    first = alignkit("score", "--pool-size", "abc", tmp=tmp_path).stderr.splitlines()[0]
    assert first.startswith("Usage: alignkit score ")


@pytest.mark.parametrize("args, needles", [
    (["score", "--mode", "bogus", "--quiet"], ["--mode", "bogus", "isolated"]),   # bad choice
    (["score", "--pooling", "last", "--quiet"], ["last"]),
    (["score", "--tasks", "nope", "--quiet"], ["nope", "lexicon"]),
])
def test_bad_choices_are_one_line_exit_2(tmp_path, args, needles):
    assert_usage_error(alignkit(*args, tmp=tmp_path), *needles)


def test_help_still_exits_0(tmp_path):
    p = alignkit("score", "--help", tmp=tmp_path)
    assert p.returncode == 0 and "--pool-size" in p.stdout and p.stderr == ""


def test_reports_the_typer_it_runs_on(capsys):
    """Records (shown with ``-rP``) which typer and which click the console script ran on."""
    out = subprocess.run([sys.executable, "-c", "import typer; print(typer.__file__, typer.BadParameter.__module__)"],
                         capture_output=True, text=True)
    assert out.returncode == 0
    print(out.stdout.strip())
