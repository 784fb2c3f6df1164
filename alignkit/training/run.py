"""The run a :class:`~alignkit.training.config.TrainConfig` describes (``alignkit train``):
the linear probe for ``variant = "probe"``, else fine-tuning. It sits above both, so the
probe (built on the trainer's data and checkpoint steps) and the trainer never import each other."""
from __future__ import annotations

from alignkit.training import probe, trainer
from alignkit.training.config import TrainConfig
from alignkit.training.trainer import TrainResult


def run_training(cfg: TrainConfig, progress: bool = True) -> TrainResult:
    """:func:`~alignkit.training.probe.train_probe` for ``variant = "probe"``, else
    :func:`~alignkit.training.trainer.train`."""
    if cfg.variant == "probe":
        return probe.train_probe(cfg, progress=progress)
    return trainer.train(cfg, progress=progress)
