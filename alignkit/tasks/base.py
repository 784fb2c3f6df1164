"""What a task is: metadata, inputs validated up front, and an ``evaluate`` that turns one
encoder's vectors into tidy rows (after MTEB's ``TaskMetadata`` + one base class per type).

A task declares a :class:`TaskMetadata` and implements :meth:`Task.prepare` (read and check
its inputs before any model runs; return the units it will measure, e.g. lexicons or
languages) and :meth:`Task.evaluate` (measure one unit for the encoder of a
:class:`~alignkit.scoring.ScoringContext`, adding rows and item scores through it). Register
it in :data:`TASKS` with :func:`register_task`; ``alignkit score --tasks NAME`` runs it and
its rows, items, summary lines and comparisons come with no other file changed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from alignkit.registry import Registry


@dataclass(frozen=True)
class TaskMetadata:
    """- ``name``: registry key, the ``--tasks`` name and the item-score folder.
    - ``type``: e.g. ``word-retrieval``, ``bitext``, ``classification``.
    - ``measures``: metric names its rows carry (each registered in
      :mod:`alignkit.results.measures`).
    - ``dataset``: the ``lexicon`` column value of its rows; ``None`` = the name of the
      lexicon measured (tasks over the bilingual lexicons).
    - ``default``: run when ``--tasks`` is not given; ``enabled_by``: or when this
      :class:`~alignkit.scoring.ScoreConfig` field is set (``tatoeba_dir`` for Tatoeba).
    - ``needs_lexicons``: :meth:`Task.prepare` receives the resolved ``--pairs`` lexicons.
    - ``methods``: the ``method`` values its rows carry (None: any); two tasks may write one
      metric with different methods (``p@1`` by ``nn`` and by ``margin``), never the same
      (metric, method): item scores are found by that key.
    """

    name: str
    type: str
    description: str
    measures: tuple[str, ...]
    dataset: str | None = None
    default: bool = False
    enabled_by: str | None = None
    needs_lexicons: bool = False
    methods: tuple[str, ...] | None = None
    reference: str = ""


class Task:
    """Base class: subclasses set ``metadata`` and implement ``prepare`` and ``evaluate``."""

    metadata: ClassVar[TaskMetadata]

    def prepare(self, cfg: Any, lexicons: Sequence[Any]) -> list[Any]:
        """Validate this task's inputs for ``cfg`` (raise AlignkitError now, not after hours
        of work) and return the units :meth:`evaluate` is called with, in order."""
        raise NotImplementedError

    def evaluate(self, ctx: Any, unit: Any) -> None:
        """Measure ``unit`` for ``ctx.enc``: ``ctx.add_row(...)``, ``ctx.items(pair)``."""
        raise NotImplementedError

    def unit_name(self, unit: Any) -> str:
        """How messages name one of this task's units (default: its ``name``, e.g. a lexicon's)."""
        name = getattr(unit, "name", None)
        return name if isinstance(name, str) else str(unit)

    def needs_lexicons(self, cfg: Any) -> bool:
        """Whether :meth:`prepare` needs the ``--pairs`` lexicons for ``cfg``."""
        return self.metadata.needs_lexicons

    def check_encoder(self, enc: Any, cfg: Any) -> None:
        """Refuse an encoder this task cannot measure (default: every encoder is fine)."""


TASKS: Registry[type] = Registry("task")


def register_task(cls: type, *, replace: bool = False) -> type:
    """Class decorator: register a :class:`Task` subclass under ``cls.metadata.name``."""
    return TASKS.add(cls.metadata.name, cls, replace=replace)
