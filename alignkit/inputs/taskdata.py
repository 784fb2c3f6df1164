"""Readers for XTREME-format sentence-pair classification data (XNLI, PAWS-X).

Layout (XTREME / XTREME-R): one directory per task holding ``{split}-{lang}.tsv`` files,
no header, one example per line::

    premise<TAB>hypothesis<TAB>label        # XNLI: entailment | neutral | contradiction
    sentence1<TAB>sentence2<TAB>label       # PAWS-X: 0 | 1

Also accepted, because real copies of the data come in these shapes:

* the original PAWS-X layout: a header line ``id<TAB>sentence1<TAB>sentence2<TAB>label``
  and a leading id column;
* XNLI-MT's ``contradictory`` label (MultiNLI translations) read as ``contradiction``.

Every bad line is reported as ``path:line: what is wrong; the fix`` (an
:class:`~alignkit.errors.AlignkitError`).
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from alignkit.errors import AlignkitError


@dataclass(frozen=True)
class TaskSpec:
    """A sentence-pair classification task: its name, label names (index = class id)."""

    name: str
    labels: tuple[str, ...]
    fields: tuple[str, str]
    aliases: tuple[tuple[str, str], ...] = ()

    @property
    def metric(self) -> str:
        """Name of the accuracy metric in result rows (``xnli_acc``)."""
        return f"{self.name}_acc"

    def label_id(self, name: str) -> int | None:
        name = dict(self.aliases).get(name, name)
        try:
            return self.labels.index(name)
        except ValueError:
            return None


TASKS: dict[str, TaskSpec] = {
    "xnli": TaskSpec("xnli", ("entailment", "neutral", "contradiction"), ("premise", "hypothesis"),
                     aliases=(("contradictory", "contradiction"),)),
    "pawsx": TaskSpec("pawsx", ("0", "1"), ("sentence1", "sentence2")),
}


@dataclass(frozen=True)
class PairExample:
    """One labelled sentence pair; ``line`` is its 1-based line number in ``path``."""

    first: str
    second: str
    label: int
    line: int


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` called ``name`` (case-insensitive; ``paws-x`` = ``pawsx``)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in TASKS:
        raise AlignkitError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[key]


def task_file(data_dir: str | os.PathLike, task: str | TaskSpec, split: str, lang: str) -> Path:
    """Path of ``{split}-{lang}.tsv`` in ``data_dir`` (checked to exist)."""
    spec = get_task(task) if isinstance(task, str) else task
    d = Path(data_dir)
    if not d.is_dir():
        raise AlignkitError(f"{spec.name} data directory {d} does not exist; pass the folder holding "
                            f"{split}-{lang}.tsv (XTREME layout)")
    p = d / f"{split}-{lang}.tsv"
    if not p.is_file():
        have = sorted(x.name for x in d.glob("*.tsv"))[:8]
        hint = f" (found: {', '.join(have)})" if have else ""
        raise AlignkitError(f"{spec.name} file {p} does not exist{hint}; pass a folder with "
                            f"{split}-{lang}.tsv or another --langs/--split")
    return p


def read_pair_file(path: str | os.PathLike, task: str | TaskSpec) -> list[PairExample]:
    """Read one XTREME-format TSV file of ``task`` -> examples in file order.

    Blank lines are skipped. Raises AlignkitError naming ``path:line`` for a wrong number
    of fields, an empty sentence or a label outside the task's label set, and for a file
    that is missing, unreadable, not UTF-8 or holds no example.
    """
    spec = get_task(task) if isinstance(task, str) else task
    p = Path(path)
    if not p.is_file():
        raise AlignkitError(f"{spec.name} file {p} does not exist; pass an existing {{split}}-{{lang}}.tsv file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise AlignkitError(f"{spec.name} file {p} is not UTF-8 text (byte {e.start}); re-encode it as UTF-8") from None
    except OSError as e:
        raise AlignkitError(f"cannot read {spec.name} file {p}: {e.strerror}; check the path and permissions") from None
    want = f"{spec.fields[0]}<TAB>{spec.fields[1]}<TAB>label"
    out: list[PairExample] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        cols = line.split("\t")
        if n == 1 and cols[-1].strip().lower() == "label":  # PAWS-X header line
            continue
        if len(cols) == 4 and spec.name == "pawsx":  # original PAWS-X: id column first
            cols = cols[1:]
        if len(cols) != 3:
            raise AlignkitError(f"{p}:{n}: expected 3 tab-separated fields ({want}), found {len(cols)}; "
                                f"fix the line or pass a file in XTREME format")
        a, b, lab = (c.strip() for c in cols)
        if not a or not b:
            raise AlignkitError(f"{p}:{n}: empty sentence; fix or delete the line")
        y = spec.label_id(lab)
        if y is None:
            raise AlignkitError(f"{p}:{n}: label {lab!r} is not a {spec.name} label "
                                f"({', '.join(spec.labels)}); fix the line or pass the right --task")
        out.append(PairExample(a, b, y, n))
    if not out:
        raise AlignkitError(f"{spec.name} file {p} holds no example; pass a non-empty {want} file")
    return out


def read_task_split(data_dir: str | os.PathLike, task: str | TaskSpec, split: str, lang: str) -> list[PairExample]:
    """Read ``{data_dir}/{split}-{lang}.tsv``."""
    return read_pair_file(task_file(data_dir, task, split, lang), task)


def holdout_split(examples: Sequence[PairExample], fraction: float, seed: int) -> tuple[list[PairExample], list[PairExample]]:
    """Split ``examples`` into (train, dev) with ``round(fraction * n)`` dev examples.

    The split is a seeded shuffle, so it is reproducible and independent of file order
    beyond the seed. Used to hold out an English dev set for model selection when only
    one English file is given.
    """
    if not 0.0 < fraction < 1.0:
        raise AlignkitError(f"dev fraction {fraction} must be in (0, 1); pass e.g. --dev-fraction 0.2")
    idx = list(range(len(examples)))
    random.Random(seed).shuffle(idx)
    n_dev = max(1, round(fraction * len(examples)))
    if n_dev >= len(examples):
        raise AlignkitError(f"{len(examples)} examples are too few to hold out a dev set; pass a larger file or --dev-file")
    dev = sorted(idx[:n_dev])
    train = sorted(idx[n_dev:])
    return [examples[i] for i in train], [examples[i] for i in dev]


def grouped_holdout_split(examples: Sequence[PairExample], fraction: float,
                          seed: int) -> tuple[list[PairExample], list[PairExample]]:
    """Split ``examples`` into (train, dev) by premise: no premise occurs on both sides.

    Examples are grouped by their first sentence (the XNLI premise, shared by its three
    hypotheses); a seeded shuffle of the groups sends the first ``round(fraction * groups)``
    groups to dev. Both sides keep file order. This is the English dev set of the v2 XNLI
    protocol (SPEC §2): with test-en.tsv (1670 premises) and fraction 0.1, 167 premises /
    501 rows are held out.
    """
    if not 0.0 < fraction < 1.0:
        raise AlignkitError(f"dev fraction {fraction} must be in (0, 1); pass e.g. --dev-fraction 0.1")
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.first, []).append(i)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    n_dev = max(1, round(fraction * len(keys)))
    if n_dev >= len(keys):
        raise AlignkitError(f"{len(keys)} premises are too few to hold out a dev set by premise; "
                            "pass a larger file or --dev-file")
    dev_idx = sorted(i for k in keys[:n_dev] for i in groups[k])
    dev_set = set(dev_idx)
    return [ex for i, ex in enumerate(examples) if i not in dev_set], [examples[i] for i in dev_idx]


def split_of(path: str | os.PathLike) -> tuple[str, str] | None:
    """(split, lang) of an XTREME file name ``{split}-{lang}.tsv``, or None for another name."""
    stem = Path(path).name
    if not stem.endswith(".tsv") or "-" not in stem:
        return None
    split, _, lang = stem[: -len(".tsv")].rpartition("-")
    return (split, lang) if split and lang else None


def zero_shot_split(train_file: str | os.PathLike, split: str | None = None) -> str:
    """``split`` if given, else the split ``train_file`` is NOT from (``test-en.tsv`` -> ``dev``)."""
    if split:
        return split
    got = split_of(train_file)
    return "dev" if got is not None and got[0] == "test" else "test"


def check_zero_shot_protocol(train_file: str | os.PathLike, eval_split: str, where: str = "config") -> None:
    """Refuse training on English rows of the split that is evaluated (SPEC §2, v2 protocol).

    XNLI row i is the same example (premise) in every language of a split, so training on
    ``test-en`` and evaluating on ``test-sw`` evaluates on translations of training items.
    """
    got = split_of(train_file)
    if got is not None and got[0] == eval_split:
        raise AlignkitError(f"{where}: trains on {Path(train_file).name} and evaluates on the same split "
                            f"{eval_split!r} (its examples are translations of the training rows); "
                            f"evaluate on the other split, e.g. eval split = 'dev' with train_file = test-en.tsv")


def subsample(examples: Sequence[PairExample], max_rows: int | None, seed: int = 0) -> list[PairExample]:
    """At most ``max_rows`` examples, a seeded random subset kept in file order.

    Row i of every XNLI language file is the same example, so the same seed picks the
    same items in every language (paired comparisons stay paired).
    """
    if max_rows is None or max_rows >= len(examples):
        return list(examples)
    idx = sorted(random.Random(seed).sample(range(len(examples)), max_rows))
    return [examples[i] for i in idx]


def task_data_dir(spec: TaskSpec, data: str | os.PathLike | None = None) -> Path:
    """The folder of ``spec``'s ``{split}-{lang}.tsv`` files: ``data``, else ``$ALIGNKIT_DATA/<task>``."""
    if data is None:
        env = os.environ.get("ALIGNKIT_DATA")
        if not env:
            raise AlignkitError(f"no task data; pass --data DIR (the {spec.name} folder) or set ALIGNKIT_DATA")
        data = Path(env) / spec.name
    d = Path(data)
    if not d.is_dir():
        raise AlignkitError(f"task data folder {d} does not exist; pass the folder with {{split}}-{{lang}}.tsv files")
    return d
