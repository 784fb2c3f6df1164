"""One way to run many small torch jobs on a CPU: worker threads with one intra-op thread each.

Small ops (a block's top-k, a small model's forward) split over OpenMP threads stall on a
shared CPU (measured: 3x to 30x slower with 2 threads than with 1 under load); independent
single-threaded jobs, one per core, keep the cores busy and give the same numbers (each job
computes exactly what it would alone). Torch releases the GIL inside ops.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence


def single_threaded_map(fn: Callable[..., Any], items: Sequence[Any], workers: int, *,
                        cost: Sequence[float] | None = None, worker_id: bool = False, inference: bool = True) -> list:
    """``[fn(item) for item in items]`` (``fn(item, wid)`` with ``worker_id``) on ``workers``
    threads, each with one torch intra-op thread (and in inference mode unless ``inference`` is
    False: results then may be modified in place later); ``workers <= 1`` runs
    them in order on the calling thread as it is. ``cost``: items start largest first, so the
    workers finish together. Results come back in the order of ``items``; after a failure the
    other workers stop after their current item and the first error is raised. The caller's
    thread count is restored."""
    import torch

    call = (lambda i, wid: fn(items[i], wid)) if worker_id else (lambda i, wid: fn(items[i]))
    if workers <= 1 or len(items) <= 1:
        return [call(i, 0) for i in range(len(items))]
    order = sorted(range(len(items)), key=lambda i: -cost[i]) if cost is not None else range(len(items))
    results: list = [None] * len(items)
    saved, lock, queue, failed = torch.get_num_threads(), threading.Lock(), iter(order), threading.Event()

    def loop(wid: int) -> None:
        torch.set_num_threads(1)
        with torch.inference_mode(inference):
            while not failed.is_set():
                with lock:
                    i = next(queue, None)
                if i is None:
                    return
                try:
                    results[i] = call(i, wid)
                except BaseException:
                    failed.set()
                    raise

    from threadpoolctl import threadpool_limits

    try:
        with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
            for f in [pool.submit(loop, w) for w in range(workers)]:
                f.result()
    finally:
        torch.set_num_threads(saved)
    return results


def import_in_background(modules: Sequence[str]) -> threading.Thread:
    """Import ``modules`` on a daemon thread (started, returned) while the caller goes on,
    e.g. reading cached vectors, whose file reads and checksums release the GIL: scikit-learn
    alone takes ~1.4 s to import here. A module that fails to import is left alone: the
    caller's own import of it raises the error where it is used."""
    import importlib

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - reported by the caller's own import
                pass

    thread = threading.Thread(target=run, name="alignkit-import", daemon=True)
    thread.start()
    return thread
