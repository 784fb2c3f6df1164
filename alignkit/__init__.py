"""alignkit: measure and improve how well multilingual encoders align languages, layer by layer.

Data flow (docs/architecture.md)::

    inputs (encoders, lexicons, task data) -> vectors (extraction, cache)
        -> measurements (metrics: pure functions; tasks: what score runs)
        -> results (tidy rows, items, manifest, summary, plots, compare) -> study
    training: fine-tunes encoders into checkpoints the rest of the kit scores

Public API (lazy: ``import alignkit`` stays cheap, torch loads on first use):

* :func:`score` / :class:`ScoreConfig` — ``alignkit score``: checkpoints x tasks x layers -> rows
  (``executor="ray"``: its units as Ray tasks on a cluster; docs/distributed.md)
* :func:`compare_runs` — ``alignkit compare``: paired differences with CIs (checkpoint or seed level)
* :func:`run_study` — ``alignkit study``: the research question end to end
* :func:`train` / :class:`TrainConfig` — ``alignkit train`` (the package behind it is
  :mod:`alignkit.training`, so ``alignkit.train`` is always this function)
* :func:`load_encoder`, :func:`word_vectors`, :func:`sentence_vectors`, :func:`load_lexicon` — the stages
* :func:`register_measure` / :class:`Measure`, :func:`register_task` / :class:`Task` /
  :class:`TaskMetadata` — extend what is measured; :func:`register_objective` — extend how
  encoders are trained (one registry per kind of extension)
* :class:`AlignkitError` — every user-facing error (one line naming the problem and the fix)
"""
__version__ = "0.1.0"

from alignkit.errors import AlignkitError  # noqa: E402

_LAZY = {
    "score": ("alignkit.scoring", "score"),
    "ScoreConfig": ("alignkit.scoring", "ScoreConfig"),
    "compare_runs": ("alignkit.results.compare", "compare_runs"),
    "run_study": ("alignkit.study", "run_study"),
    "train": ("alignkit.training", "train"),
    "TrainConfig": ("alignkit.training", "TrainConfig"),
    "load_encoder": ("alignkit.inputs.encoders", "load_encoder"),
    "word_vectors": ("alignkit.vectors.extract", "word_vectors"),
    "sentence_vectors": ("alignkit.vectors.extract", "sentence_vectors"),
    "load_lexicon": ("alignkit.inputs.lexicons", "load_lexicon"),
    "Measure": ("alignkit.measures", "Measure"),
    "register_measure": ("alignkit.measures", "register_measure"),
    "Task": ("alignkit.tasks", "Task"),
    "TaskMetadata": ("alignkit.tasks", "TaskMetadata"),
    "register_task": ("alignkit.tasks", "register_task"),
    "register_objective": ("alignkit.training.objectives", "register_objective"),
}

__all__ = ["AlignkitError", "__version__", *_LAZY]


def __getattr__(name: str):
    """Lazy top-level API (importing alignkit stays cheap: no torch until needed)."""
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'alignkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
