"""The ``ray`` executor: units as Ray Core tasks on a Ray cluster (``pip install "alignkit[ray]"``).

Connects Ray's own way: ``--ray-address`` (``address``), else ``RAY_ADDRESS``, else a cluster
started on this machine with ``ray start``, else a new local cluster on this machine's cores
(given back when the run ends). A unit asks for its GPUs, or for its CPU cores; Ray places it
and runs it again when its worker process or node dies (at most ``max_retries`` times). An
error the unit raises itself (bad input, corrupt weights) is not retried: running it again
would fail the same way. Results travel back to the driver through Ray's object store.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

from alignkit.errors import AlignkitError
from alignkit.executors.base import EXECUTORS, Executor, Unit, UnitFailure, one_line

MAX_RETRIES = 2  # a unit whose worker dies runs at most 3 times


def _call(fn: Callable[[Any], Any], payload: Any) -> Any:
    """The Ray task: one unit on a worker (``fn`` and ``payload`` are pickled to it)."""
    return fn(payload)


def import_ray():
    """The ``ray`` module, or a one-line AlignkitError naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise AlignkitError('--executor ray needs the Ray package; install it with pip install "alignkit[ray]"') \
            from None
    return ray


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse in one line a ``HOST:PORT`` nothing listens on (Ray itself would retry for
    minutes, logging each try)."""
    import socket

    if address in ("auto", "local") or "://" in address:
        return  # Ray's own forms: the local cluster of `ray start`, a new one, a ray:// client
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise AlignkitError(f"Ray address {address!r} must look like HOST:PORT (the head node's GCS port, "
                            "e.g. 10.0.0.1:6379); check --ray-address or RAY_ADDRESS")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise AlignkitError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}); start it with "
                            "`ray start --head` or fix --ray-address / RAY_ADDRESS, or unset both for a local "
                            "cluster") from None


class RayExecutor(Executor):
    """Runs units as Ray tasks; see the module docstring. ``address``: the cluster to join
    (None: Ray's own lookup, ending in a new local cluster)."""

    name = "ray"
    connects = True

    @classmethod
    def check_available(cls) -> None:
        import_ray()

    def __init__(self, address: str | None = None, max_retries: int = MAX_RETRIES, gpu_share: float = 1.0):
        """``gpu_share``: the part of a GPU a unit that asks for one gets (0.25: four units
        share each GPU, for models small enough that one unit leaves a GPU mostly idle)."""
        ray = import_ray()
        if not 0 < gpu_share <= 1:
            raise AlignkitError(f"gpu_share {gpu_share!r} must be in (0, 1]")
        self.ray, self.max_retries, self.gpu_share, self._started = ray, max_retries, gpu_share, False
        if not ray.is_initialized():
            where = address or os.environ.get("RAY_ADDRESS")
            if where:
                _reachable(where)
            try:
                # no dashboard, no worker logs echoed into the driver's terminal (they stay in
                # Ray's session folder): the driver shows one progress bar over units
                ray.init(address=address or None, include_dashboard=False, logging_level=logging.ERROR,
                         log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
                raise AlignkitError(f"cannot connect to the Ray cluster at {where} ({one_line(e)}); check "
                                    "--ray-address or RAY_ADDRESS (HOST:PORT of the head node), or unset both "
                                    "to start a local cluster") from None
            self._started = True
        elif address and address not in ("auto", ray.get_runtime_context().gcs_address):
            raise AlignkitError(f"this process is already connected to the Ray cluster at "
                                f"{ray.get_runtime_context().gcs_address}, not {address}; drop the address or "
                                "call ray.shutdown() first")
        self._remote = ray.remote(_call)

    def run(self, fn: Callable[[Any], Any], units: Sequence[Unit],
            on_result: Callable[[Unit, Any], None]) -> list[UnitFailure]:
        ray = self.ray
        pending: dict[Any, Unit] = {}
        for unit in units:
            task = self._remote.options(num_cpus=unit.cpus, num_gpus=unit.gpus * self.gpu_share,
                                        max_retries=self.max_retries, retry_exceptions=False, name=unit.label[:100])
            pending[task.remote(fn, unit.payload)] = unit
        failures: list[UnitFailure] = []
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    unit = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:  # the unit raised: not retried
                        failures.append(UnitFailure(unit, one_line(getattr(e, "cause", None) or e)))
                        continue
                    except ray.exceptions.RayError as e:  # its worker or node died on every try
                        tries = self.max_retries + 1
                        failures.append(UnitFailure(unit, f"its worker process died ({tries} "
                                                          f"{'try' if tries == 1 else 'tries'}): {one_line(e)}", tries))
                        continue
                    on_result(unit, result)
        finally:
            for ref in pending:  # the driver stops early (an error, Ctrl-C): stop what is still queued
                ray.cancel(ref)
        return failures

    def describe(self) -> dict[str, Any]:
        ray = self.ray
        resources = {k: v for k, v in ray.cluster_resources().items() if not k.startswith("node:")}
        return {"name": self.name, "address": ray.get_runtime_context().gcs_address, "ray_version": ray.__version__,
                "nodes": sum(1 for n in ray.nodes() if n.get("Alive")), "resources": resources,
                "max_retries": self.max_retries, "gpu_share": self.gpu_share}

    def has_gpus(self) -> bool:
        return self.ray.cluster_resources().get("GPU", 0) > 0

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False


EXECUTORS.add("ray", RayExecutor)
