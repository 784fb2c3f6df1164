"""Where the work units of a run execute: ``local`` (this process, one unit after another, as
alignkit always ran) or ``ray`` (Ray Core tasks on a Ray cluster: a laptop, a multi-GPU box,
a Slurm allocation; docs/distributed.md).

An executor knows nothing about scoring or training: it gets a module-level function and
:class:`Unit` s (a key, a label for messages, the function's argument and the resources the
unit asks for), calls ``on_result(unit, result)`` on the driver as each unit finishes and
returns the units that failed. Pick one by name with :func:`get_executor`; add one with
``EXECUTORS.add(name, cls)``.
"""
from alignkit.errors import AlignkitError
from alignkit.executors.base import EXECUTORS, Executor, Unit, UnitFailure
from alignkit.executors import local, ray_cluster  # noqa: F401,E402,I001  (register "local" and "ray")

__all__ = ["EXECUTORS", "Executor", "Unit", "UnitFailure", "executor_class", "executor_names", "get_executor"]


def executor_names() -> list[str]:
    return EXECUTORS.names()


def executor_class(name: str, address: str | None = None) -> type:
    """The class of the executor called ``name``, checked: a known name, an ``address`` only
    for executors that connect to a cluster, its packages installed (one-line AlignkitErrors,
    raised before any work starts)."""
    if name not in EXECUTORS:
        raise AlignkitError(f"--executor {name!r} is not an executor; use {' or '.join(EXECUTORS.names())}")
    cls = EXECUTORS[name]
    if address and not getattr(cls, "connects", False):
        raise AlignkitError(f"--ray-address needs --executor ray (the {name} executor connects to no cluster)")
    cls.check_available()
    return cls


def get_executor(name: str | Executor = "local", address: str | None = None) -> Executor:
    """The executor called ``name`` (an :class:`Executor` is returned as it is); ``address``
    is the cluster to connect to (``--ray-address``), for executors that connect to one."""
    if isinstance(name, Executor):
        return name
    cls = executor_class(name, address)
    return cls(address=address) if getattr(cls, "connects", False) else cls()
