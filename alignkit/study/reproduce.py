"""``alignkit study CONFIG --out DIR --reproduce LABEL``: one finished run done again from
scratch (train, score, evaluate, in a fresh folder ``DIR/reproduce``) and its outputs compared
with the study's byte for byte. The outcome goes to ``DIR/reproduction.json`` and into report.md
(:func:`alignkit.study.report.reproduction_lines`).

Compared: every file of the run folder that holds a result (``results.csv``, the item scores,
the zero-shot predictions). Not compared: ``cost.json`` (times), ``manifest.json`` (paths and
dates) and ``training/`` (logs with timings). Where results.csv differs, its rows are checked
one by one: a newer code may add rows (a measure added since the study ran) while every row
the study wrote comes back byte for byte; that counts as reproduced, and the added rows are
counted and their metrics named.
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alignkit.atomic import write_text
from alignkit.errors import AlignkitError

from alignkit.study.config import StudyConfig, run_dir
from alignkit.study.run import REPRODUCTION, RESULTS, Study, is_finished, machine_name

NOT_COMPARED = ("cost.json", "manifest.json")


def result_files(folder: Path) -> list[str]:
    """The run folder's files that hold results, relative and sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name not in NOT_COMPARED and p.relative_to(folder).parts[0] != "training")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _row_check(study_csv: Path, rerun_csv: Path) -> dict[str, Any]:
    """Whether every row of the study's results.csv is in the re-run's, byte for byte and in the
    same order (a newer code may add rows of new measures: counted, and their metrics named)."""
    old, new = study_csv.read_bytes().splitlines(), rerun_csv.read_bytes().splitlines()
    it = iter(new)
    in_order = bool(old) and bool(new) and old[0] == new[0] and all(line in it for line in old[1:])
    known = set(old[1:])
    extra = [line for line in new[1:] if line not in known]
    col = old[0].decode().split(",").index("metric") if old and b"metric" in old[0] else None
    metrics = sorted({line.decode().split(",")[col] for line in extra}) if col is not None else []
    return {"study_rows": max(len(old) - 1, 0), "rows_identical": in_order, "extra_rows": len(extra),
            "extra_metrics": metrics}


def reproduce(cfg: StudyConfig, out: str | os.PathLike, label: str, command: str, progress: bool = True,
              rerun_command: str | None = None) -> dict[str, Any]:
    """Re-run ``label`` from scratch into ``out/reproduce`` (resumable: a finished re-run there is
    compared again, not redone) and compare its result files with ``out/runs/<label>``.
    ``command``: how this comparison was asked for; ``rerun_command``: the equivalent plain re-run
    (both recorded for the report)."""
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
    cost = json.loads((b / "cost.json").read_text()) if (b / "cost.json").is_file() else {}
    record = {
        "run": label, "command": command, "rerun_command": rerun_command, "code": cost.get("code"), "machine": machine_name(),
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "compared": len(set(files_a) | set(files_b)), "identical": len(same),
        "different": [f for f in files_a if f in files_b and f not in same],
        "only_in_study": [f for f in files_a if f not in files_b],
        "only_in_rerun": [f for f in files_b if f not in files_a],
        "results_sha256": _sha256(a / "results.csv"), "rerun_results_sha256": _sha256(b / "results.csv"),
        "cost": cost or None,
    }
    record["byte_identical"] = record["identical"] == record["compared"]
    record.update(_row_check(a / RESULTS, b / RESULTS))
    others = [f for f in record["different"] if f != RESULTS] + record["only_in_study"]
    record["reproduced"] = record["rows_identical"] and not others
    write_text(out / REPRODUCTION, json.dumps(record, indent=1))
    return record
