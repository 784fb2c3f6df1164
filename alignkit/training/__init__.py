"""Training: English-only fine-tuning with the EPT / APT / RT (VME) and cross-lingual
contrastive objectives of SPEC §3, and zero-shot task evaluation of the checkpoints.

Modules, by role:

* :mod:`~alignkit.training.config` -- :class:`TrainConfig`, :class:`ObjectiveConfig` (each field
  with its CLI help), TOML loading, :func:`load_train_config` (TOML + overrides).
* :mod:`~alignkit.training.losses` -- the loss maths as pure functions on tensors.
* :mod:`~alignkit.training.model` -- the narrow encoder interface of training
  (:class:`~alignkit.training.model.TrainableEncoder`), ``PairClassifier``, ``PairBatch``, ``TableView``.
* :mod:`~alignkit.training.objectives` -- the objective registry :data:`OBJECTIVES`, the named
  :data:`VARIANTS` (``ft``, ``rt``, ``rt+cl``, ``ept+apt+rt``, ``ept+apt+rt+cl``, ``rsda``,
  ``rsda+cl``), :func:`resolve_variant`, the per-step passes and their weighted sum.
* :mod:`~alignkit.training.codeswitch`, :mod:`~alignkit.training.rsda`, :mod:`~alignkit.training.synonyms`
  -- the code-switched and RS-DA views.
* :mod:`~alignkit.training.optim` -- AdamW groups, row-wise Adam, lr schedule, the table-lr reach rule.
* :mod:`~alignkit.training.checkpoint` -- atomic dirs, resume states, the HF checkpoint, the manifest.
* :mod:`~alignkit.training.trainer` -- the loop: :func:`train` (resumable, seeded; sparse embedding
  updates on CPU, bf16 + DDP on GPUs).
* :mod:`~alignkit.training.run` -- :func:`run_training`: the probe or fine-tuning, as the config says.
* :mod:`~alignkit.training.probe` -- the :func:`train_probe` baseline.
* :mod:`~alignkit.training.pairs` -- the sentence-pair pipeline (tokenise, pad, predict) that
  training and the classification tasks share.
* :mod:`~alignkit.training.diagnostics` -- does EPT/APT act? :func:`read_training_diagnostics`.

Importing this package is cheap: the names below load their module (and torch) on first use.
Formulas, choices and hyper-parameters: docs/method.md.
"""
from __future__ import annotations

import importlib

_HOME = {
    "TrainConfig": "config", "ObjectiveConfig": "config", "load_train_config": "config", "load_toml": "config",
    "OBJECTIVES": "objectives", "VARIANTS": "objectives", "register_objective": "objectives",
    "resolve_variant": "objectives",
    "TrainResult": "trainer", "train": "trainer", "run_training": "run",
    "train_probe": "probe",
    "read_training_diagnostics": "diagnostics",
}

__all__ = list(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(f"alignkit.training.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
