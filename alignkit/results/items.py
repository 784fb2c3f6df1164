"""Item-level scores kept next to results.csv, so two runs can be compared item by item.

Layout: ``RUN_DIR/items/{model_fingerprint}/{task}/{pair}.npz``; in each file, the array
``"{layer}|{metric}|{method}|{direction}"`` holds one score per item (e.g. 0/1 retrieval hits
per source word, the corrected cosine or the AUC share per test pair, 0/1 hits per Tatoeba
sentence), and ``"ids|{family}|{direction}"`` holds the item identifiers they line up with;
the family of a metric (what one item is) comes from the measurement registry.

The task folder is written by the scoring context of the task that measured the rows, so
the items carry their task: reading them back looks for the one file of the pair that holds
the measurement's key, and never asks the task registry which task wrote a row.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from alignkit.atomic import atomic_path
from alignkit.errors import AlignkitError
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
        self._unwritten = False

    def add(self, layer: int, metric: str, method: str, direction: str, ids: list[str], scores) -> None:
        k = ids_key(item_family(metric), direction)
        if k not in self.arrays:
            self.arrays[k] = np.asarray(ids, dtype=str)
        self.arrays[item_key(layer, metric, method, direction)] = np.asarray(scores, dtype=np.float32)
        self._unwritten = True

    def write(self) -> Path:
        """Write what was added since the last write (nothing new: nothing written)."""
        if self._unwritten:
            with atomic_path(self.path) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez_compressed(fh, **self.arrays)
            self._unwritten = False
        return self.path


# Open item files (np.load's NpzFile: its zip directory read once) by path, with the size and
# mtime they were opened at; the oldest is closed past _OPEN_MAX.
_OPEN: dict[Path, tuple[tuple[int, int], Any, frozenset[str]]] = {}
_OPEN_MAX = 64


def _opened(path: Path) -> tuple[Any, frozenset[str]]:
    """``np.load(path)`` and its array names, kept open while the file's size and mtime stay the same."""
    st = path.stat()
    stamp = (st.st_size, st.st_mtime_ns)
    hit = _OPEN.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1], hit[2]
    if hit is not None:
        hit[1].close()
    while len(_OPEN) >= _OPEN_MAX:
        _OPEN.pop(next(iter(_OPEN)))[1].close()
    z = np.load(path)
    _OPEN[path] = (stamp, z, frozenset(z.files))
    return z, _OPEN[path][2]


def _keys_of(path: Path) -> frozenset[str]:
    """The array names of an items file."""
    return _opened(path)[1]


def load_items(run_dir: str | os.PathLike, fingerprint: str, pair: str, layer: int, metric: str, method: str,
               direction: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(ids, scores) for one measurement of a run, or None when the run did not keep them.

    The measurement's file is the one of ``pair`` under some task folder of the model that
    holds its key (``layer|metric|method|direction``); two task folders holding the same key
    for one pair is an error (two tasks wrote one measurement)."""
    if int(layer) < 0:
        return None
    k = item_key(layer, metric, method, direction)
    model_dir = Path(run_dir) / "items" / fingerprint
    holders = [p for p in sorted(model_dir.glob(f"*/{pair}.npz")) if k in _keys_of(p)] if model_dir.is_dir() else []
    if not holders:
        return None
    if len(holders) > 1:
        raise AlignkitError(f"item scores of {metric} {method} {direction} layer {layer} for {pair} were written by "
                            f"{len(holders)} tasks ({', '.join(p.parent.name for p in holders)}); a measurement "
                            "(metric, method) must come from one task")
    z, names = _opened(holders[0])
    ik = ids_key(item_family(metric), direction)
    if ik not in names:
        return None
    return z[ik], z[k]
