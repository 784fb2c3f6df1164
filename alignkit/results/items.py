"""Item-level scores kept next to results.csv, so two runs can be compared item by item.

Layout: ``RUN_DIR/items/{model_fingerprint}/{task}/{pair}.npz``; in each file, the array
``"{layer}|{metric}|{method}|{direction}"`` holds one score per item (e.g. 0/1 retrieval hits
per source word, the corrected cosine or the AUC share per test pair, 0/1 hits per Tatoeba
sentence), and ``"ids|{family}|{direction}"`` holds the item identifiers they line up with;
the family of a metric (what one item is) comes from the measurement registry.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from alignkit.atomic import atomic_path
from alignkit.results.measures import item_family


def item_key(layer: int, metric: str, method: str, direction: str) -> str:
    return f"{layer}|{metric}|{method}|{direction}"


def ids_key(family: str, direction: str) -> str:
    return f"ids|{family}|{direction}"


def items_path(run_dir: str | os.PathLike, fingerprint: str, task: str, pair: str) -> Path:
    return Path(run_dir) / "items" / fingerprint / task / f"{pair}.npz"


class ItemWriter:
    """Collects item scores for one (model, task, pair) and writes them atomically in one file."""

    def __init__(self, run_dir: str | os.PathLike, fingerprint: str, task: str, pair: str):
        self.path = items_path(run_dir, fingerprint, task, pair)
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, layer: int, metric: str, method: str, direction: str, ids: list[str], scores) -> None:
        k = ids_key(item_family(metric), direction)
        if k not in self.arrays:
            self.arrays[k] = np.asarray(ids, dtype=str)
        self.arrays[item_key(layer, metric, method, direction)] = np.asarray(scores, dtype=np.float32)

    def write(self) -> Path:
        with atomic_path(self.path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **self.arrays)
        return self.path


def load_items(run_dir: str | os.PathLike, fingerprint: str, pair: str, layer: int, metric: str, method: str,
               direction: str, dataset: str = "") -> tuple[np.ndarray, np.ndarray] | None:
    """(ids, scores) for one measurement of a run, or None when the run did not keep them.

    ``dataset`` is the row's ``lexicon`` column: with the metric it names the task whose
    folder holds the items (:func:`alignkit.tasks.task_for_row`)."""
    from alignkit.tasks import task_for_row

    task = task_for_row(metric, dataset, method)
    if task is None or int(layer) < 0:
        return None
    path = items_path(run_dir, fingerprint, task, pair)
    if not path.is_file():
        return None
    with np.load(path) as z:
        k = item_key(layer, metric, method, direction)
        ik = ids_key(item_family(metric), direction)
        if k not in z or ik not in z:
            return None
        return z[ik], z[k]
