"""``alignkit study CONFIG --out DIR --reproduce LABEL``: one finished run done again from
scratch (train, score, evaluate, in a fresh folder ``DIR/reproduce``) and its outputs compared
with the study's byte for byte. The outcome goes to ``DIR/reproduction.json`` and into report.md
(:func:`alignkit.study.report.reproduction_lines`).

Compared: every file of the run folder that holds a result (``results.csv``, the item scores,
the zero-shot predictions). Not compared: ``cost.json`` (times), ``manifest.json`` (paths and
dates) and ``training/`` (logs with timings).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alignkit.atomic import write_text
from alignkit.errors import AlignkitError

from alignkit.study.config import StudyConfig, run_dir
from alignkit.study.run import REPRODUCTION, Study, is_finished, machine_name

NOT_COMPARED = ("cost.json", "manifest.json")


def result_files(folder: Path) -> list[str]:
    """The run folder's files that hold results, relative and sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name not in NOT_COMPARED and p.relative_to(folder).parts[0] != "training")


def code_commit() -> str | None:
    """The git commit of the alignkit source this process runs (``+dirty`` if alignkit/ has
    uncommitted changes), or None outside a git checkout."""
    pkg = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(pkg), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(pkg), "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reproduce(cfg: StudyConfig, out: str | os.PathLike, label: str, command: str, progress: bool = True
              ) -> dict[str, Any]:
    """Re-run ``label`` from scratch into ``out/reproduce`` (resumable: a finished re-run there is
    compared again, not redone) and compare its result files with ``out/runs/<label>``."""
    out = Path(out)
    study = Study(cfg, out, progress)
    if label not in study.labels():
        raise AlignkitError(f"--reproduce {label!r} is not a run of this study; runs: {', '.join(study.labels())}")
    if not is_finished(out, label):
        raise AlignkitError(f"run {label} has not finished in {out}; run the study (or --only {label}) first")
    again = out / "reproduce"
    Study(cfg, again, progress).run_all(only=[label])
    a, b = run_dir(out, label), run_dir(again, label)
    files_a, files_b = result_files(a), result_files(b)
    same = [f for f in files_a if f in files_b and (a / f).read_bytes() == (b / f).read_bytes()]
    record = {
        "run": label, "command": command, "code": code_commit(), "machine": machine_name(),
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "compared": len(set(files_a) | set(files_b)), "identical": len(same),
        "different": [f for f in files_a if f in files_b and f not in same],
        "only_in_study": [f for f in files_a if f not in files_b],
        "only_in_rerun": [f for f in files_b if f not in files_a],
        "results_sha256": _sha256(a / "results.csv"), "rerun_results_sha256": _sha256(b / "results.csv"),
        "cost": json.loads((b / "cost.json").read_text()) if (b / "cost.json").is_file() else None,
    }
    record["byte_identical"] = record["identical"] == record["compared"]
    write_text(out / REPRODUCTION, json.dumps(record, indent=1))
    return record
