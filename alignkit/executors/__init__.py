"""Where the work units of a run execute: ``local`` (this process, one unit after another, as
alignkit always ran) or ``ray`` (Ray Core tasks on a Ray cluster: a laptop, a multi-GPU box,
a Slurm allocation; docs/distributed.md).

An executor knows nothing about scoring or training: it gets a module-level function and
:class:`Unit` s (a key, a label for messages, the function's argument and the resources the
unit asks for), calls ``on_result(unit, result)`` on the driver as each unit finishes and
returns the units that failed. Pick one by name with :func:`get_executor`; add one with
``EXECUTORS.add(name, cls)``.
"""
from alignkit.executors.base import (EXECUTORS, Executor, Unit, UnitFailure, executor_class, executor_names,
                                     get_executor)
from alignkit.executors import local, ray_cluster  # noqa: F401,E402,I001  (register "local" and "ray")

__all__ = ["EXECUTORS", "Executor", "Unit", "UnitFailure", "executor_class", "executor_names", "get_executor"]
