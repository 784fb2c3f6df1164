"""Tasks: what ``alignkit score`` measures, one registered class per task (``--tasks``).

Built-in: ``lexicon`` (BLS, word retrieval, cluster diagnostics on the bilingual lexicons),
``tatoeba`` (sentence retrieval), ``xnli`` / ``pawsx`` (zero-shot accuracy of a fine-tuned
checkpoint); opt-in (``--tasks``): ``procrustes`` (supervised-map BLI), ``margin`` and
``tatoeba-margin`` (ratio-margin retrieval), ``strong`` and ``tatoeba-strong`` (strong
alignment), ``mexa``. Add one with :func:`register_task` (docs/architecture.md has a worked example).
"""
from alignkit.tasks.base import (TASKS, Task, TaskMetadata, default_tasks, get_task, register_task, task_for_row,
                                 task_names)
# registration order = the order tasks run in and headlines appear: lexicons, Tatoeba, accuracy
from alignkit.tasks import lexicon  # noqa: F401,E402,I001
from alignkit.tasks import tatoeba  # noqa: F401,E402
from alignkit.tasks import classification  # noqa: F401,E402
from alignkit.tasks import procrustes, margin, strong, mexa  # noqa: F401,E402  (v2 measures: opt-in tasks)

__all__ = ["TASKS", "Task", "TaskMetadata", "default_tasks", "get_task", "register_task", "task_for_row",
           "task_names"]
