"""Training: English-only fine-tuning with the EPT / APT / RT (VME) and cross-lingual
contrastive objectives of SPEC §3, and zero-shot task evaluation of the checkpoints.

* :mod:`alignkit.train.objectives` -- the losses (pure functions), their registry by name
  (:data:`~alignkit.train.objectives.OBJECTIVES`) and the named variants
  (``ft``, ``rt``, ``rt+cl``, ``ept+apt+rt``, ``ept+apt+rt+cl``).
* :mod:`alignkit.train.trainer` -- :class:`~alignkit.train.trainer.TrainConfig`,
  :func:`~alignkit.train.trainer.train` (resumable, seeded; sparse embedding updates on CPU,
  bf16 + DDP on GPUs) and the :func:`~alignkit.train.trainer.train_probe` baseline.
* :mod:`alignkit.train.evaluate` -- :func:`~alignkit.train.evaluate.evaluate_task`: accuracy
  per language as tidy result rows (metric ``xnli_acc``).
* :mod:`alignkit.train.diagnostics` -- does EPT/APT act? Row movement of the table in ρ
  units, share of rows at EPT's margin, EPT/APT losses over steps;
  :func:`~alignkit.train.diagnostics.read_training_diagnostics` reads them per checkpoint.

Formulas, choices and hyper-parameters: docs/method.md.
"""
from alignkit.train.diagnostics import read_training_diagnostics
from alignkit.train.evaluate import evaluate_task, load_classifier
from alignkit.train.objectives import OBJECTIVES, VARIANTS, ObjectiveConfig, register_objective, resolve_variant
from alignkit.train.trainer import TrainConfig, TrainResult, train, train_probe

__all__ = ["OBJECTIVES", "VARIANTS", "ObjectiveConfig", "register_objective", "resolve_variant",
           "TrainConfig", "TrainResult", "train", "train_probe", "evaluate_task", "load_classifier",
           "read_training_diagnostics"]
