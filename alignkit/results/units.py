"""What one work unit of a run produced, and the journal that lets a re-run skip finished units.

A unit (one checkpoint x one task x one lexicon or language) returns a :class:`UnitResult`:
its tidy rows, the files it wrote (item scores, as bytes, so they travel from a cluster node
to the driver), its t-SNE requests and what the manifest records about its model. The driver
writes the files, then the unit's entry in the journal ``<out>/units/<key>/`` (``unit.json``
last, atomically: its presence means the unit is done). A finished run removes the journal;
a run that stopped early (killed driver, failed unit) leaves it, and the next run with the
same command reuses every entry it holds.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alignkit.atomic import atomic_path, write_bytes, write_text


@dataclass
class UnitResult:
    """``rows``: tidy row dicts; ``files``: {path relative to the run folder: bytes};
    ``tsne``: (lexicon name, layer, source vectors ``[n, dim]``, target vectors ``[n, dim]``);
    ``model``: the model's manifest entry as the worker saw it (device, dtype)."""

    rows: list[dict[str, Any]]
    files: dict[str, bytes] = field(default_factory=dict)
    tsne: list[tuple[str, int, np.ndarray, np.ndarray]] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (JSON keeps every float digit, NaN included)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a unit journal")


class UnitJournal:
    """Finished units of one run folder, by key (``<run>/units/<key>/``)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "units"

    def done(self, key: str) -> bool:
        return (self.root / key / "unit.json").is_file()

    def save(self, key: str, label: str, result: UnitResult) -> None:
        """Write the unit's files into the run folder, then its journal entry (``unit.json`` last)."""
        for rel, data in result.files.items():
            write_bytes(self.run_dir / rel, data)
        d = self.root / key
        if result.tsne:
            with atomic_path(d / "tsne.npz") as tmp, open(tmp, "wb") as fh:
                np.savez(fh, **{f"{k}{i}": a for i, t in enumerate(result.tsne) for k, a in (("x", t[2]), ("y", t[3]))})
        entry = {"label": label, "rows": result.rows, "model": result.model, "files": sorted(result.files),
                 "tsne": [[name, int(layer)] for name, layer, _, _ in result.tsne]}
        write_text(d / "unit.json", json.dumps(entry, default=_plain))

    def load(self, key: str) -> UnitResult:
        d = self.root / key
        entry = json.loads((d / "unit.json").read_text(encoding="utf-8"))
        tsne = []
        if entry["tsne"]:
            with np.load(d / "tsne.npz") as z:
                tsne = [(name, layer, z[f"x{i}"], z[f"y{i}"]) for i, (name, layer) in enumerate(entry["tsne"])]
        return UnitResult(rows=entry["rows"], tsne=tsne, model=entry["model"])

    def keys(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob("*/unit.json")) if self.root.is_dir() else []

    def clear(self) -> None:
        """Remove the journal (the run it served is complete)."""
        shutil.rmtree(self.root, ignore_errors=True)
