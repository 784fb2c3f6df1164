"""Zero-shot task evaluation of a fine-tuned checkpoint, plus the input pipeline it shares with training.

A checkpoint written by ``alignkit train`` is a HuggingFace encoder directory (what
``AutoModel.from_pretrained`` and ``alignkit score`` read) plus ``classifier_head.safetensors``
(``weight`` [C, H], ``bias`` [C]) and ``alignkit_train.json`` (labels, task, input prefix,
training config and metrics). :func:`evaluate_task` turns its accuracy per language into
tidy result rows (metric ``xnli_acc``, ``pair`` = language, ``layer`` None);
:func:`eval_task_to_dir` is ``alignkit eval-task``: those rows plus ``results.csv``,
``predictions-{lang}.tsv`` and ``manifest.json`` in an output folder.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from alignkit.errors import AlignkitError
from alignkit.results.rows import row
from alignkit.inputs.taskdata import PairExample, get_task, read_task_split, subsample
from alignkit.training.model import PairBatch, PairClassifier

HEAD_FILE = "classifier_head.safetensors"
META_FILE = "alignkit_train.json"


# ----------------------------------------------------------------------------- input pipeline


@dataclass
class EncodedPairs:
    """Tokenised sentence pairs (lists of token ids, unpadded) and their labels."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    special: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def tokenize_pairs(enc: Any, firsts: Sequence[str], seconds: Sequence[str], labels: Sequence[int],
                   max_length: int, prefix: str = "") -> EncodedPairs:
    """Tokenise (first, second) pairs with ``enc`` (an :class:`alignkit.encoders.Encoder`).

    ``prefix`` (E5's ``"query: "``) goes before the first sentence; pairs longer than
    ``max_length`` tokens are truncated longest-first.
    """
    norm = getattr(enc, "normalize", None)
    second = [norm(s) for s in seconds] if norm is not None else list(seconds)
    tok = enc.tokenize([prefix + a for a in firsts], text_pair=second, truncation=True,
                       max_length=max_length, return_special_tokens_mask=True, return_attention_mask=False)
    types = tok.get("token_type_ids")
    return EncodedPairs(list(tok["input_ids"]), list(types) if types is not None else None,
                        list(tok["special_tokens_mask"]), [int(y) for y in labels])


def tokenize_examples(enc: Any, examples: Sequence[PairExample], max_length: int, prefix: str = "") -> EncodedPairs:
    return tokenize_pairs(enc, [e.first for e in examples], [e.second for e in examples],
                          [e.label for e in examples], max_length, prefix)


def collate(data: EncodedPairs, indices: Sequence[int], pad_id: int) -> PairBatch:
    """Pad the examples ``indices`` of ``data`` to their longest -> :class:`PairBatch` (CPU)."""
    n = len(indices)
    t = max(len(data.input_ids[i]) for i in indices)
    ids = torch.full((n, t), pad_id, dtype=torch.long)
    att = torch.zeros((n, t), dtype=torch.long)
    special = torch.ones((n, t), dtype=torch.bool)
    types = torch.zeros((n, t), dtype=torch.long) if data.token_type_ids is not None else None
    for r, i in enumerate(indices):
        x = data.input_ids[i]
        ids[r, : len(x)] = torch.tensor(x)
        att[r, : len(x)] = 1
        special[r, : len(x)] = torch.tensor(data.special[i], dtype=torch.bool)
        if types is not None:
            types[r, : len(x)] = torch.tensor(data.token_type_ids[i])
    labels = torch.tensor([data.labels[i] for i in indices], dtype=torch.long)
    return PairBatch(ids, att, types, att.bool() & ~special, labels)


def pad_id_of(tokenizer: Any) -> int:
    pid = getattr(tokenizer, "pad_token_id", None)
    return int(pid) if pid is not None else 0


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA, a no-op elsewhere."""
    import contextlib

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict(classifier: PairClassifier, data: EncodedPairs, pad_id: int, batch_size: int = 64,
            device: torch.device | None = None) -> np.ndarray:
    """Predicted class per example -> int array [N]. Runs in eval mode, length-sorted batches."""
    device = device or next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    out = np.empty(len(data), dtype=np.int64)
    try:
        for s in range(0, len(order), batch_size):
            idx = order[s: s + batch_size]
            b = collate(data, idx, pad_id).to(device)
            with autocast_for(device):
                logits = classifier.run(classifier.word_embeddings(b.input_ids), b).logits
            out[idx] = logits.float().argmax(-1).cpu().numpy()
    finally:
        classifier.train(was_training)
    return out


def accuracy_ci(correct: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of an accuracy of ``correct``/``n`` (scipy.stats.binomtest)."""
    from scipy.stats import binomtest

    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


# ----------------------------------------------------------------------------- checkpoints


def read_meta(ckpt: str | os.PathLike) -> dict:
    """``alignkit_train.json`` of a fine-tuned checkpoint (AlignkitError if absent)."""
    p = Path(ckpt) / META_FILE
    if not (Path(ckpt) / HEAD_FILE).is_file() or not p.is_file():
        raise AlignkitError(f"checkpoint {ckpt} has no classifier head ({HEAD_FILE}, {META_FILE}); "
                            "pass a directory written by `alignkit train`")
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise AlignkitError(f"cannot read {p} ({e}); re-run `alignkit train` for this checkpoint") from None


def load_classifier(ckpt: str | os.PathLike, device: str | None = None):
    """A fine-tuned checkpoint -> (Encoder, PairClassifier in eval mode, meta dict)."""
    from safetensors.torch import load_file

    from alignkit.inputs.encoders import load_encoder

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
    from alignkit.atomic import write_text
    from alignkit.inputs.taskdata import check_zero_shot_protocol, zero_shot_split

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
    from alignkit.inputs.taskdata import task_data_dir, zero_shot_split
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
