"""Zero-shot sentence-pair classification (XNLI, PAWS-X): accuracy per language of a
checkpoint fine-tuned on English by ``alignkit train`` (its classifier head,
:mod:`alignkit.inputs.finetuned`), on the split it was not trained on (v2 protocol,
:func:`alignkit.inputs.taskdata.check_zero_shot_protocol`).

:func:`evaluate_task` turns a checkpoint's accuracy per language into tidy rows (what
``alignkit score --tasks xnli``, the end of ``alignkit train`` and the study use);
:func:`eval_task_to_dir` is ``alignkit eval-task``: those rows plus ``results.csv``,
``predictions-{lang}.tsv`` and ``manifest.json`` in an output folder.

One rows per language: metric ``{task}_acc``, ``layer`` -1, ``method`` ``zero-shot`` (or
``supervised`` for the training language), a 95% Wilson CI. Adding a task of this type is
adding a :class:`~alignkit.inputs.taskdata.TaskSpec` and a subclass with its metadata.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from alignkit.errors import AlignkitError
from alignkit.inputs.finetuned import HEAD_FILE, has_classifier_head, read_meta
from alignkit.measures import Measure, register_measure
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
        if not has_classifier_head(str(enc.path)):
            raise AlignkitError(f"{enc.name} has no classifier head ({HEAD_FILE}); --tasks {self.metadata.name} "
                                "measures checkpoints written by `alignkit train`")

    def evaluate(self, ctx: Any, unit: tuple[Path, list[str]]) -> None:
        data, langs = unit
        cfg = ctx.cfg
        for r in evaluate_task(str(ctx.enc.path), self.metadata.name, data, langs, split=cfg.eval_split,
                               max_rows=cfg.eval_max_rows, device=cfg.device):
            ctx.rows.append({**r, "model": ctx.enc.name, "lexicon": self.metadata.dataset})


def accuracy_ci(correct: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of an accuracy of ``correct``/``n`` (scipy.stats.binomtest)."""
    from scipy.stats import binomtest

    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def load_classifier(ckpt: str | os.PathLike, device: str | None = None):
    """A fine-tuned checkpoint -> (Encoder, PairClassifier in eval mode, meta dict)."""
    from safetensors.torch import load_file

    from alignkit.inputs.encoders import load_encoder
    from alignkit.training.model import PairClassifier

    meta = read_meta(ckpt)
    enc = load_encoder(str(ckpt), device=device, dtype="fp32", decoders=False)
    head = load_file(str(Path(ckpt) / HEAD_FILE))
    labels = meta.get("labels") or []
    if "weight" not in head or head["weight"].shape != (len(labels), enc.hidden_size):
        raise AlignkitError(f"classifier head of {ckpt} does not match its encoder/labels; "
                            "re-run `alignkit train` for this checkpoint")
    clf = PairClassifier(enc.model, len(labels))
    clf.head.load_state_dict(head)
    clf.to(enc.device).eval()
    return enc, clf, meta


def evaluate_task(ckpt: str | os.PathLike, task: str, data_dir: str | os.PathLike, langs: Sequence[str],
                  split: str | None = None, max_rows: int | None = None, batch_size: int = 64,
                  max_length: int | None = None, seed: int = 0, device: str | None = None,
                  predictions_dir: str | os.PathLike | None = None, loaded=None) -> list[dict]:
    """Accuracy of a fine-tuned checkpoint on ``{split}-{lang}.tsv`` for each language -> tidy rows.

    Rows: metric ``{task}_acc`` (``xnli_acc``), ``pair`` = language, ``layer`` None,
    ``method`` ``zero-shot`` (``supervised`` for the training language), ``n`` the number of
    examples and a 95% Wilson CI. ``max_rows`` subsamples each file with the same seeded
    subset of rows (XNLI rows are parallel across languages). With ``predictions_dir``,
    per-item predictions go to ``predictions-{lang}.tsv`` there (for paired comparisons).

    ``split`` None: the split the checkpoint's training file is not from (v2 protocol:
    trained on ``test-en`` -> ``dev``). A split whose English rows the checkpoint was trained
    on is refused (its other languages are translations of the training items).
    """
    import numpy as np

    from alignkit.atomic import write_text
    from alignkit.inputs.taskdata import check_zero_shot_protocol, get_task, read_task_split, subsample, zero_shot_split
    from alignkit.results.rows import row
    from alignkit.training.pairs import pad_id_of, predict, tokenize_examples

    spec = get_task(task)
    if not langs:
        raise AlignkitError("no languages to evaluate; pass e.g. --langs en,sw,ur")
    meta0 = loaded[2] if loaded is not None else read_meta(ckpt)
    train_file = (meta0.get("config") or {}).get("train_file") or ""
    split = zero_shot_split(train_file, split)
    check_zero_shot_protocol(train_file, split, f"checkpoint {ckpt}")
    # Read (and so validate) every file before the model is loaded.
    data = {lang: subsample(read_task_split(data_dir, spec, split, lang), max_rows, seed) for lang in langs}
    enc, clf, meta = loaded if loaded is not None else load_classifier(ckpt, device=device)
    if tuple(meta.get("labels", ())) != spec.labels:
        raise AlignkitError(f"checkpoint {ckpt} was trained for labels {', '.join(meta.get('labels', []))}, "
                            f"not the {spec.name} labels {', '.join(spec.labels)}; pass the matching --task")
    max_len = int(max_length or meta.get("max_length", 128))
    prefix = meta.get("input_prefix", "")
    train_lang = meta.get("train_lang", "en")
    rows = []
    for lang, examples in data.items():
        encoded = tokenize_examples(enc, examples, max_len, prefix)
        pred = predict(clf, encoded, pad_id_of(enc.tokenizer), batch_size, enc.device)
        gold = np.array(encoded.labels)
        correct = pred == gold
        lo, hi = accuracy_ci(int(correct.sum()), len(gold))
        rows.append(row(model=str(ckpt), model_fingerprint=enc.fingerprint, metric=spec.metric,
                        value=float(correct.mean()), layer=None, pair=lang,
                        method="supervised" if lang == train_lang else "zero-shot",
                        ci_low=lo, ci_high=hi, n=len(gold)))
        if predictions_dir is not None:
            lines = ["line\tlabel\tprediction\tcorrect"] + [
                f"{e.line}\t{spec.labels[g]}\t{spec.labels[p]}\t{int(c)}"
                for e, g, p, c in zip(examples, gold, pred, correct)]
            write_text(Path(predictions_dir) / f"predictions-{lang}.tsv", "\n".join(lines) + "\n")
    return rows


def eval_task_to_dir(ckpt: str | os.PathLike, task: str, data: str | os.PathLike | None, langs: Sequence[str],
                     out: str | os.PathLike, split: str | None = None, max_rows: int | None = None,
                     batch_size: int = 64, max_length: int | None = None, seed: int = 0,
                     device: str | None = None) -> list[dict]:
    """:func:`evaluate_task` written to the folder ``out`` -> its rows.

    Writes ``results.csv`` (tidy rows), ``predictions-{lang}.tsv`` and ``manifest.json``
    (versions, command line, checkpoint fingerprint, task, split, languages, subset). ``data``
    None: ``$ALIGNKIT_DATA/<task>``.
    """
    from alignkit.atomic import ensure_writable_dir
    from alignkit.inputs.taskdata import get_task, task_data_dir, zero_shot_split
    from alignkit.results.manifest import run_manifest, write_manifest
    from alignkit.results.rows import to_frame, write_csv

    spec = get_task(task)
    data_dir = task_data_dir(spec, data)
    lang_list = list(langs)
    out_dir = ensure_writable_dir(out)
    rows = evaluate_task(ckpt, spec.name, str(data_dir), lang_list, split=split, max_rows=max_rows,
                         batch_size=batch_size, max_length=max_length, seed=seed, device=device,
                         predictions_dir=out_dir)
    write_csv(to_frame(rows), out_dir / "results.csv")
    write_manifest(out_dir / "manifest.json", run_manifest(
        model=str(ckpt), model_fingerprint=rows[0]["model_fingerprint"] if rows else "", task=spec.name,
        split=zero_shot_split((read_meta(ckpt).get("config") or {}).get("train_file") or "", split),
        langs=lang_list, max_rows=max_rows, seed=seed))
    return rows


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
