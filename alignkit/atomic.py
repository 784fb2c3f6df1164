"""Atomic file writes: write to a temp file in the same directory, fsync, then rename.

A reader (or a second process) sees either the old file or the complete new one, never a
half-written file; an interrupted run leaves at most a stray ``.tmp-*`` file behind.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from alignkit.errors import AlignkitError

_UMASK = os.umask(0)
os.umask(_UMASK)


def ensure_writable_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Create ``path`` (and parents) or raise an AlignkitError naming it."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AlignkitError(f"cannot create {what} {p}: {e.strerror}; choose a writable path") from None
    if not os.access(p, os.W_OK):
        raise AlignkitError(f"{what} {p} is not writable; choose a writable path")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it is renamed onto ``path``.

    >>> with atomic_path("out.npz") as tmp:  # doctest: +SKIP
    ...     np.savez(tmp, a=1)
    """
    dest = Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{dest.name}-", suffix=dest.suffix, dir=dest.parent)
    except OSError as e:
        raise AlignkitError(f"cannot write {dest}: {e.strerror}; choose a writable path") from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    write_bytes(path, text.encode("utf-8"))
