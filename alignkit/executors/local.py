"""The ``local`` executor: every unit in this process, in order, as alignkit always ran."""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence

from alignkit.executors.base import EXECUTORS, Executor, Unit, UnitFailure


class LocalExecutor(Executor):
    """Runs units one after another on the calling thread; a unit's error is raised at once
    (the units finished before it keep their outputs, so a re-run resumes)."""

    name = "local"

    def run(self, fn: Callable[[Any], Any], units: Sequence[Unit],
            on_result: Callable[[Unit, Any], None]) -> list[UnitFailure]:
        for unit in units:
            on_result(unit, fn(unit.payload))
        return []

    def describe(self) -> dict[str, Any]:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        resources: dict[str, float] = {"CPU": float(cores)}
        torch = sys.modules.get("torch")  # only when already imported: describing must not load torch
        if torch is not None and torch.cuda.is_available():
            resources["GPU"] = float(torch.cuda.device_count())
        return {"name": self.name, "nodes": 1, "resources": resources}

    def has_gpus(self) -> bool:
        import torch

        return torch.cuda.is_available()


EXECUTORS.add("local", LocalExecutor)
