"""Zero-shot sentence-pair classification (XNLI, PAWS-X): accuracy per language of a
checkpoint fine-tuned on English by ``alignkit train`` (its classifier head), on the split it
was not trained on (v2 protocol, :func:`alignkit.inputs.taskdata.check_zero_shot_protocol`).

One rows per language: metric ``{task}_acc``, ``layer`` -1, ``method`` ``zero-shot`` (or
``supervised`` for the training language), a 95% Wilson CI. Adding a task of this type is
adding a :class:`~alignkit.inputs.taskdata.TaskSpec` and a subclass with its metadata.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from alignkit.errors import AlignkitError
from alignkit.results.measures import Measure, register_measure
from alignkit.tasks.base import Task, TaskMetadata, register_task


class ClassificationTask(Task):
    """Base of the zero-shot classification tasks; a subclass sets ``metadata`` (its name is
    the :data:`alignkit.inputs.taskdata.TASKS` key)."""

    def prepare(self, cfg: Any, lexicons: Sequence[Any]) -> list[tuple[Path, list[str]]]:
        from alignkit.inputs.taskdata import get_task, task_data_dir

        spec = get_task(self.metadata.name)
        if not cfg.eval_langs:
            raise AlignkitError(f"--tasks {spec.name} needs languages; pass --eval-langs en,sw,ur")
        return [(task_data_dir(spec, cfg.eval_data), list(cfg.eval_langs))]

    def unit_name(self, unit: tuple[Path, list[str]]) -> str:
        return f"{unit[0]} ({','.join(unit[1])})"

    def check_encoder(self, enc: Any, cfg: Any) -> None:
        from alignkit.training.evaluate import HEAD_FILE

        if not (Path(str(enc.path)) / HEAD_FILE).is_file():
            raise AlignkitError(f"{enc.name} has no classifier head ({HEAD_FILE}); --tasks {self.metadata.name} "
                                "measures checkpoints written by `alignkit train`")

    def evaluate(self, ctx: Any, unit: tuple[Path, list[str]]) -> None:
        from alignkit.training.evaluate import evaluate_task

        data, langs = unit
        cfg = ctx.cfg
        for r in evaluate_task(str(ctx.enc.path), self.metadata.name, data, langs, split=cfg.eval_split,
                               max_rows=cfg.eval_max_rows, device=cfg.device):
            ctx.rows.append({**r, "model": ctx.enc.name, "lexicon": self.metadata.dataset})


def _accuracy_measure(task: str, title: str) -> Measure:
    return Measure(f"{task}_acc", title, unit="share", percent=True, headline=("zero-shot", "supervised"), short="acc",
                   description="accuracy of the fine-tuned classifier; layer -1 (not per layer)")


register_measure(_accuracy_measure("xnli", "XNLI accuracy"))
register_measure(_accuracy_measure("pawsx", "PAWS-X accuracy"))


@register_task
class XnliTask(ClassificationTask):
    metadata = TaskMetadata(name="xnli", type="classification", dataset="",
                            description="XNLI zero-shot accuracy of an `alignkit train` checkpoint (--eval-data)",
                            measures=("xnli_acc",), reference="Conneau et al. 2018")


@register_task
class PawsxTask(ClassificationTask):
    metadata = TaskMetadata(name="pawsx", type="classification", dataset="",
                            description="PAWS-X zero-shot accuracy of an `alignkit train` checkpoint (--eval-data)",
                            measures=("pawsx_acc",), reference="Yang et al. 2019")
