"""Tasks that fail on purpose, for tests/test_ray.py. Ray workers import this module (the
tests put tests/ on their PYTHONPATH) to unpickle a unit's task.

Each is the lexicon task with one real fault injected into one unit (checkpoint ``b``, the
``en-de`` lexicon), steered by files in the run's cache folder (``cfg.cache_dir``) so a unit
can tell its first try from the next.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

from alignkit.tasks.base import register_task
from alignkit.tasks.lexicon import LexiconTask


def _is_target(ctx, lex) -> bool:
    return lex.pair == "en-de" and Path(str(ctx.enc.path)).name == "b"


class WorkerDiesOnce(LexiconTask):
    """The target unit's first try kills its own worker process (SIGKILL, as the OOM killer
    or a lost node would); later tries measure as the lexicon task does. Every try is logged."""

    metadata = dataclasses.replace(LexiconTask.metadata, name="lexicon-dies-once", default=False)

    def evaluate(self, ctx, lex) -> None:
        if _is_target(ctx, lex):
            marks = Path(ctx.cfg.cache_dir)
            with open(marks / "tries.log", "a") as fh:
                fh.write(f"{os.getpid()}\n")
            if not (marks / "died").exists():
                (marks / "died").write_text(str(os.getpid()))
                if (marks / "driver.pid").read_text() != str(os.getpid()):  # never the test process itself
                    os.kill(os.getpid(), signal.SIGKILL)
        super().evaluate(ctx, lex)


class HangsWhileBlocked(LexiconTask):
    """Registered as ``lexicon`` in a driver that is killed mid-run: the target unit waits
    while ``<cache>/block`` exists, the others finish."""

    metadata = LexiconTask.metadata

    def evaluate(self, ctx, lex) -> None:
        while _is_target(ctx, lex) and (Path(ctx.cfg.cache_dir) / "block").exists():
            time.sleep(0.1)
        super().evaluate(ctx, lex)


def register_dies_once() -> None:
    register_task(WorkerDiesOnce, replace=True)


def driver_with_a_hanging_unit(argv: list[str]) -> int:
    """``alignkit score`` (``argv``) in a driver whose ``lexicon`` task hangs on the target unit."""
    from alignkit.cli import main

    register_task(HangsWhileBlocked, replace=True)
    return main(argv)


if __name__ == "__main__":
    sys.exit(driver_with_a_hanging_unit(sys.argv[1:]))
