"""The executor interface, its registry and the unit it runs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from alignkit.registry import Registry


@dataclass(frozen=True)
class Unit:
    """One piece of work: ``fn(payload)`` for the function an executor is given.

    ``key`` names the unit's outputs (resume: a unit whose outputs exist is not run again);
    ``label`` names it in messages ("checkpoint ckpt_a, task lexicon, en-tr"); ``gpus``: the
    GPUs it needs (0: it runs on ``cpus`` CPU cores).
    """

    key: str
    label: str
    payload: Any
    cpus: int = 1
    gpus: float = 0.0


@dataclass(frozen=True)
class UnitFailure:
    """A unit that did not finish: ``reason`` is one line; ``tries`` how often it was run."""

    unit: Unit
    reason: str
    tries: int = 1


class Executor:
    """Runs units. Subclasses set ``name`` and implement :meth:`run` and :meth:`describe`;
    use one as a context manager (``close`` gives back what it started)."""

    name: str = ""

    def run(self, fn: Callable[[Any], Any], units: Sequence[Unit],
            on_result: Callable[[Unit, Any], None]) -> list[UnitFailure]:
        """Run ``fn(unit.payload)`` for every unit; call ``on_result(unit, result)`` on the
        calling thread as each finishes (in any order); return the units that failed."""
        raise NotImplementedError

    @classmethod
    def check_available(cls) -> None:
        """Raise a one-line AlignkitError when this executor cannot run here (a missing package)."""

    def describe(self) -> dict[str, Any]:
        """What the manifest records: the executor's name and the resources it ran on."""
        raise NotImplementedError

    def has_gpus(self) -> bool:
        """Whether units can ask for a GPU here."""
        return bool(self.describe().get("resources", {}).get("GPU"))

    def close(self) -> None:
        """Give back what this executor started (default: nothing)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


EXECUTORS: Registry[type] = Registry("executor")


def one_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an error's message (its type when it has none), at most ``limit`` characters."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    return first[:limit]
