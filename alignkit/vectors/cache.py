"""Content-addressed cache of extracted vectors, safe to share between processes.

>>> cache = VectorCache()                                        # doctest: +SKIP
>>> v = word_vectors(enc, words, cache=cache)                    # computes and stores
>>> v = word_vectors(enc, words, layers="-1", cache=cache)       # no forward pass

An entry is addressed by the SHA-256 of what determines its content: the model
fingerprint, the items (words or sentences), mode, pooling, corpus hash and the like
(:meth:`VectorCache.key`). It always holds every layer (``[L+1, items, dim]`` float32), so
any layer selection is answered from it.

Files: ``<root>/<key[:2]>/<key>.npz`` (uncompressed numpy zip: ``vectors``, extra arrays
``arr_<name>``, and a JSON ``meta`` string with the key and a SHA-256 of the arrays).
Writes go to a temp file in the same directory and are renamed into place
(:func:`alignkit.atomic.atomic_path`), so a reader, or a second process writing the same
key, sees either no entry or a complete one. Two processes that miss the same key both
compute it and the last rename wins; both wrote the same vectors. An entry that fails to
load or whose checksum or key does not match is reported with a :class:`CacheWarning`
and treated as a miss, so the caller rebuilds and replaces it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alignkit.atomic import atomic_path, ensure_writable_dir
from alignkit.errors import AlignkitError

CACHE_ENV = "ALIGNKIT_CACHE"
FORMAT_VERSION = 1
_STALE_TEMP_S = 24 * 3600  # temp files older than this were left by killed runs
_DIRECT_READ_BYTES = 1 << 20  # members larger than this are read straight into their array


class CacheWarning(UserWarning):
    """A cache entry was unreadable or inconsistent and is being rebuilt."""


@dataclass
class CacheEntry:
    """One loaded entry: ``vectors`` ``[L+1, items, dim]`` float32, extra ``arrays``, ``meta``."""

    vectors: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def default_cache_dir() -> Path:
    """``$ALIGNKIT_CACHE`` if set, else ``~/.cache/alignkit/vectors``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "alignkit" / "vectors"


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an uncompressed ``.npz`` (as :meth:`VectorCache.save` writes them).

    A large stored (uncompressed) member is one contiguous run of bytes in the file, so its
    array is read with one ``readinto`` into its final buffer; ``np.load`` reads a zip member
    in 256 KB pieces through zipfile (measured 1.5 s instead of ~0.3-0.8 s for a 400 MB
    entry). Such a read skips the zip CRC; the caller's SHA-256 over every array's dtype,
    shape and bytes covers it. Small members (the JSON meta, which no digest covers) and
    compressed or otherwise unusual ones go through zipfile, which checks their CRC.
    """
    import struct
    import zipfile

    from numpy.lib import format as npy

    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for info in zf.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            array = None
            if info.compress_type == zipfile.ZIP_STORED and info.file_size > _DIRECT_READ_BYTES:
                fh.seek(info.header_offset)
                local = fh.read(30)
                if len(local) == 30 and local[:4] == b"PK\x03\x04":
                    n_name, n_extra = struct.unpack("<HH", local[26:30])
                    fh.seek(info.header_offset + 30 + n_name + n_extra)
                    version = npy.read_magic(fh)
                    header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                    shape, fortran, dtype = header(fh)
                    if not fortran and not dtype.hasobject:
                        array = np.empty(shape, dtype=dtype)
                        if fh.readinto(memoryview(array).cast("B")) != array.nbytes:
                            raise ValueError(f"member {info.filename} is truncated")
            if array is None:
                with zf.open(info) as member:
                    array = npy.read_array(member, allow_pickle=False)
            out[name] = array
    return out


class VectorCache:
    """Vectors on disk under ``cache_dir`` (default :func:`default_cache_dir`), keyed by content.

    Raises AlignkitError at construction if the directory cannot be created or written.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.root = ensure_writable_dir(root, "vector cache directory")
        self._corrupt_keys: set[str] = set()   # found corrupt here: a miss until saved again (read and warned once)

    def __repr__(self) -> str:
        return f"VectorCache({str(self.root)!r})"

    @staticmethod
    def key(**fields) -> str:
        """Hex SHA-256 of the canonical JSON of ``fields`` (plus the cache format version)."""
        payload = json.dumps({"format": FORMAT_VERSION, **fields}, sort_keys=True, ensure_ascii=False,
                             separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / key[:2] / f"{key}.npz"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def load(self, key: str, shape: tuple[int, ...] | None = None, wanted: tuple[str, ...] = ()) -> CacheEntry | None:
        """The entry for ``key``, or None on a miss; a corrupt entry warns and counts as a miss.

        ``shape`` and ``wanted``: what the caller expects (vectors shape, extra array names);
        an entry that differs is treated as corrupt.
        """
        path = self.path(key)
        if key in self._corrupt_keys:
            return None
        try:
            arrays = _read_npz(path)
            meta = json.loads(str(arrays.pop("meta")[()]))
        except FileNotFoundError:
            return None
        except Exception as e:  # truncated zip, bad header, bad JSON, ...
            return self._corrupt(path, f"{type(e).__name__}: {str(e)[:80]}")
        if meta.get("format") != FORMAT_VERSION or meta.get("key") != key:
            return self._corrupt(path, "its key or format does not match")
        if "vectors" not in arrays or meta.get("sha256") != _digest(arrays):
            return self._corrupt(path, "checksum mismatch")
        vectors = arrays.pop("vectors")
        extra = {name[4:]: a for name, a in arrays.items() if name.startswith("arr_")}
        if shape is not None and tuple(vectors.shape) != tuple(shape):
            return self._corrupt(path, f"shape {tuple(vectors.shape)} instead of {tuple(shape)}", remember=False)
        missing = [name for name in wanted if name not in extra]
        if missing:
            return self._corrupt(path, f"array {missing[0]!r} missing", remember=False)
        return CacheEntry(vectors=vectors, arrays=extra, meta=meta)

    def save(self, key: str, vectors: np.ndarray, arrays: dict[str, np.ndarray] | None = None,
             meta: dict | None = None) -> Path:
        """Atomically store ``vectors`` (and named extra ``arrays``) under ``key``; returns the path."""
        payload = {"vectors": np.ascontiguousarray(vectors, dtype=np.float32)}
        for name, a in (arrays or {}).items():
            payload[f"arr_{name}"] = np.ascontiguousarray(a)
        info = {**(meta or {}), "format": FORMAT_VERSION, "key": key, "sha256": _digest(payload),
                "shape": list(payload["vectors"].shape)}
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AlignkitError(f"cannot write to vector cache {self.root}: {e.strerror}; pass a writable "
                                f"--cache-dir or set {CACHE_ENV}") from None
        self._remove_stale_temp(path.parent)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, meta=np.array(json.dumps(info, sort_keys=True)), **payload)
        self._corrupt_keys.discard(key)
        return path

    def _corrupt(self, path: Path, reason: str, remember: bool = True) -> None:
        """Warn; ``remember``: the file itself is bad (not just unexpected by this caller), so
        later loads of its key skip it until it is saved again."""
        if remember:
            self._corrupt_keys.add(path.stem)
        warnings.warn(f"vector cache entry {path} is corrupt ({reason}); rebuilding it", CacheWarning,
                      stacklevel=3)
        return None

    @staticmethod
    def _remove_stale_temp(folder: Path) -> None:
        """Delete temp files that killed runs left behind (never a live writer's: they are fresh)."""
        now = time.time()
        for p in folder.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > _STALE_TEMP_S:
                    p.unlink()
