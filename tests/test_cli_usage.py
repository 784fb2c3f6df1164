"""Usage errors through the installed ``alignkit`` console script: click's usage line and one
``error: ...`` line (or the error line alone), exit code 2, never a traceback.

typer 0.12-0.2x raise the ``click`` package's ``UsageError``; newer typer raises the one of its
vendored ``typer._click``. Every test runs with the installed typer and, for each folder in
``$ALIGNKIT_TEST_TYPER_DIRS`` (``:``-separated), with the typer installed there put first on
the console script's path, e.g. the oldest the pyproject allows: ``pip install --no-deps
--target DIR typer==0.12.0 typer-slim==0.12.0 click==8.1.7 rich shellingham markdown-it-py
mdurl pygments typing-extensions`` (``test_reports_the_typer_it_runs_on`` shows which ran).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("alignkit")
TYPERS = [""] + [d for d in os.environ.get("ALIGNKIT_TEST_TYPER_DIRS", "").split(":") if d]


@pytest.fixture(params=TYPERS, ids=lambda d: f"typer:{d or 'installed'}")
def typer_dir(request) -> str:
    return request.param


def alignkit(*args: str, tmp: Path, typer_dir: str = "") -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.skip("the alignkit console script is not installed next to this python (pip install -e .)")
    env = dict(os.environ, ALIGNKIT_CACHE=str(tmp / "cache"), COLUMNS="200")
    if typer_dir:
        env["PYTHONPATH"] = os.pathsep.join([typer_dir, *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=tmp, env=env, timeout=60)


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
    (["extract"], ["--out"]),                                         # missing required option
    (["extract", "--words"], ["--words"]),                            # option without its value
    (["score", "--pool-size", "abc"], ["--pool-size"]),             # bad type
    (["score", "--csls-k", "1.5"], ["--csls-k"]),
])
def test_usage_errors_are_one_line_exit_2(tmp_path, typer_dir, args, needles):
    assert_usage_error(alignkit(*args, tmp=tmp_path, typer_dir=typer_dir), *needles)


def test_usage_line_names_the_command(tmp_path, typer_dir):
    first = alignkit("score", "--pool-size", "abc", tmp=tmp_path, typer_dir=typer_dir).stderr.splitlines()[0]
    assert first.startswith("Usage: alignkit score ")


@pytest.mark.parametrize("args, needles", [
    (["score", "--mode", "bogus", "--quiet"], ["--mode", "bogus", "isolated"]),   # bad choice
    (["score", "--pooling", "max", "--quiet"], ["--pooling", "max"]),
    (["score", "--tasks", "nope", "--quiet"], ["nope", "lexicon"]),
])
def test_bad_choices_are_one_line_exit_2(tmp_path, typer_dir, args, needles):
    assert_usage_error(alignkit(*args, tmp=tmp_path, typer_dir=typer_dir), *needles)


def test_help_still_exits_0(tmp_path, typer_dir):
    p = alignkit("score", "--help", tmp=tmp_path, typer_dir=typer_dir)
    assert p.returncode == 0 and "--pool-size" in p.stdout and p.stderr == ""


def test_reports_the_typer_it_runs_on(typer_dir):
    """Records (shown with ``-rP``) which typer and which click the console script ran on."""
    env = dict(os.environ, PYTHONPATH=typer_dir) if typer_dir else None
    out = subprocess.run([sys.executable, "-c", "import typer, importlib.metadata as m; "
                          "print(typer.__file__, typer.BadParameter.__module__, m.version('click'))"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0
    print(out.stdout.strip())
