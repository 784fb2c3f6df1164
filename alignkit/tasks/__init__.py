"""Tasks: what ``alignkit score`` measures, one registered class per task (``--tasks``).

Built-in: ``lexicon`` (BLS, word retrieval, cluster diagnostics on the bilingual lexicons),
``tatoeba`` (sentence retrieval), ``xnli`` / ``pawsx`` (zero-shot accuracy of a fine-tuned
checkpoint); opt-in (``--tasks``): ``procrustes`` (supervised-map BLI), ``margin`` and
``tatoeba-margin`` (ratio-margin retrieval), ``strong`` and ``tatoeba-strong`` (strong
alignment), ``mexa``. Add one with :func:`register_task` (docs/architecture.md has a worked example).
"""
from typing import Any

from alignkit.tasks.base import TASKS, Task, TaskMetadata, register_task
# registration order = the order tasks run in and headlines appear: lexicons, Tatoeba, accuracy
from alignkit.tasks import lexicon  # noqa: F401,E402,I001
from alignkit.tasks import tatoeba  # noqa: F401,E402
from alignkit.tasks import classification  # noqa: F401,E402
from alignkit.tasks import procrustes, margin, strong, mexa  # noqa: F401,E402  (v2 measures: opt-in tasks)

__all__ = ["TASKS", "Task", "TaskMetadata", "default_tasks", "get_task", "register_task", "task_names"]


def get_task(name: str) -> Task:
    return TASKS[name]()


def task_names() -> list[str]:
    return TASKS.names()


def default_tasks(cfg: Any) -> list[str]:
    """Tasks run when ``--tasks`` is not given: the default ones, and those switched on by a
    config field (e.g. ``--tatoeba DIR``)."""
    return [name for name, cls in TASKS.items()
            if cls.metadata.default or (cls.metadata.enabled_by and getattr(cfg, cls.metadata.enabled_by, None))]
