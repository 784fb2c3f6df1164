"""The top-level API holds: ``alignkit.train`` is the training function whatever else of
alignkit was used first, every ``register_*`` is exported, and ``help(alignkit)`` lists them."""
from __future__ import annotations

import subprocess
import sys

import pytest

import alignkit

REGISTERS = ("register_measure", "register_task", "register_objective")


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("first", [n for n in alignkit.__all__ if n not in ("__version__",)])
def test_alignkit_train_stays_the_function_after_any_attribute_is_used(first):
    out = _python(
        "import inspect, alignkit\n"
        f"getattr(alignkit, {first!r})\n"
        "import alignkit.training.trainer, alignkit.training.config\n"
        "from alignkit.training import TrainConfig\n"
        "print(inspect.isfunction(alignkit.train), alignkit.train is alignkit.training.trainer.train, "
        "list(inspect.signature(alignkit.train).parameters)[0])")
    assert out == "True True cfg"


def test_every_register_function_of_the_package_is_exported():
    import ast
    from pathlib import Path

    defined = set()
    for path in Path(alignkit.__file__).parent.rglob("*.py"):
        defined |= {n.name for n in ast.parse(path.read_text(encoding="utf-8")).body
                    if isinstance(n, ast.FunctionDef) and n.name.startswith("register_")}
    assert defined == set(REGISTERS)
    for name in REGISTERS:
        assert name in alignkit.__all__ and callable(getattr(alignkit, name))


def test_help_lists_the_public_api():
    import pydoc

    text = pydoc.render_doc(alignkit, renderer=pydoc.plaintext)
    for name in (*REGISTERS, "train", "score", "compare_runs", "run_study", "TrainConfig", "ScoreConfig"):
        assert f"\n    {name}(" in text or f"class {name}(" in text, name
