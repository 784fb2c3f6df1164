"""Large float32 buffers a thread's CPU searches reuse from one search to the next
(:func:`alignkit.metrics.cpu_tops.cpu_product_search`): inside :func:`kept_buffers` the
kept query rows of both spaces and the block buffers (~1 GB at 20k pools) stay allocated
instead of page-faulting fresh memory in every call."""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

_KEPT = threading.local()   # the calling thread's kept search buffers (see kept_buffers)


@contextmanager
def kept_buffers():
    """Within this block the calling thread's CPU searches keep their large buffers (query
    rows of both spaces and block buffers: ~1 GB at 20k pools) from one search to the next,
    instead of page-faulting fresh memory in every call (~0.15 s of system time per search);
    they are freed when the outermost block ends. A word task wraps its layers in it."""
    _KEPT.depth = getattr(_KEPT, "depth", 0) + 1
    try:
        yield
    finally:
        _KEPT.depth -= 1
        if _KEPT.depth == 0:
            _KEPT.__dict__.pop("pool", None)


def reused_buffer(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float32 array of ``shape``: inside :func:`kept_buffers`, the calling
    thread's buffer ``name`` (grown when too small), else a fresh array."""
    if getattr(_KEPT, "depth", 0) == 0:
        return np.empty(shape, dtype=np.float32)
    pool = _KEPT.__dict__.setdefault("pool", {})
    nbytes = 4 * int(np.prod(shape))
    buf = pool.get(name)
    if buf is None or buf.nbytes < nbytes:
        pool[name] = buf = None                  # the old buffer goes before the new one is made
        pool[name] = buf = np.empty(max(nbytes, 64), dtype=np.uint8)
    return buf[:nbytes].view(np.float32).reshape(shape)
