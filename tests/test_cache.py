"""VectorCache: content addressing, atomic writes, corruption detection, sharing between processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

from alignkit.vectors.cache import CACHE_ENV, CacheWarning, VectorCache, default_cache_dir
from alignkit.errors import AlignkitError


def vectors(seed: int = 0, shape=(3, 5, 8)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_saved_entry_loads_back_identically(tmp_path):
    cache = VectorCache(tmp_path)
    key = cache.key(kind="words", model="abc", items=["a", "b"])
    v, occ = vectors(), np.array([1, 0, 3, 2, 0])
    path = cache.save(key, v, arrays={"occurrences": occ}, meta={"kind": "words"})
    assert path == cache.path(key) and path.is_file() and key in cache
    entry = cache.load(key)
    np.testing.assert_array_equal(entry.vectors, v)
    np.testing.assert_array_equal(entry.arrays["occurrences"], occ)
    assert entry.meta["kind"] == "words" and entry.meta["key"] == key and entry.vectors.dtype == np.float32
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


def test_missing_entry_is_a_silent_miss(tmp_path):
    cache = VectorCache(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load(cache.key(kind="words", items=["x"])) is None


def test_key_depends_on_every_field_and_not_on_their_order():
    base = dict(kind="words", model="fp1", items=["a", "b"], mode="isolated", pooling="mean")
    k = VectorCache.key(**base)
    assert k == VectorCache.key(**dict(reversed(list(base.items()))))
    assert len(k) == 64 and int(k, 16) >= 0
    for field, other in [("model", "fp2"), ("items", ["b", "a"]), ("mode", "contextual"),
                         ("pooling", "first"), ("kind", "sentences")]:
        assert VectorCache.key(**{**base, field: other}) != k
    assert VectorCache.key(**base, corpus="0" * 64) != k


def test_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    assert VectorCache().root == tmp_path / "env-cache" and (tmp_path / "env-cache").is_dir()
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir().parts[-3:] == (".cache", "alignkit", "vectors")


def test_unusable_cache_dir_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(AlignkitError, match="vector cache directory") as e:
        VectorCache(blocker / "sub")
    assert "\n" not in str(e.value)


def corrupt_entry(cache: VectorCache, how: str) -> str:
    key = cache.key(kind="words", items=[how])
    cache.save(key, vectors())
    path = cache.path(key)
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "garbage":
        path.write_bytes(b"not a numpy file at all")
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flipped":  # a bit flip inside the array data: the zip CRC catches it
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "wrong-checksum":  # a well-formed file whose vectors do not match its checksum
        with np.load(path) as z:
            meta, v = str(z["meta"][()]), z["vectors"]
        with path.open("wb") as fh:
            np.savez(fh, meta=np.array(meta), vectors=v + 1)
    elif how == "wrong-key":  # another key's (valid) entry under this key's name
        other = cache.key(kind="words", items=["other"])
        cache.save(other, vectors(1))
        path.write_bytes(cache.path(other).read_bytes())
    return key


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "flipped", "wrong-checksum", "wrong-key"])
def test_corrupt_entry_warns_and_counts_as_a_miss(tmp_path, how):
    cache = VectorCache(tmp_path)
    key = corrupt_entry(cache, how)
    with pytest.warns(CacheWarning, match="corrupt.*rebuilding"):
        assert cache.load(key) is None
    with warnings.catch_warnings():  # a second look (a score run's cached-only read, then its extraction's):
        warnings.simplefilter("error")  # no re-read, no second warning
        assert cache.load(key) is None
    cache.save(key, vectors(2))  # the rebuild replaces it
    np.testing.assert_array_equal(cache.load(key).vectors, vectors(2))


def test_a_failed_write_leaves_no_entry_and_no_temp_file(tmp_path, monkeypatch):
    cache = VectorCache(tmp_path)
    key = cache.key(kind="words", items=["x"])

    def crash(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.save(key, vectors())
    assert cache.load(key) is None
    assert list(tmp_path.rglob("*")) == [cache.path(key).parent]


def test_stale_temp_files_from_killed_runs_are_removed(tmp_path):
    cache = VectorCache(tmp_path)
    key = cache.key(kind="words", items=["x"])
    folder = cache.path(key).parent
    folder.mkdir(parents=True)
    stale, fresh = folder / ".tmp-old.npz", folder / ".tmp-live.npz"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - 3 * 24 * 3600
    os.utime(stale, (old, old))
    cache.save(key, vectors())
    assert not stale.exists() and fresh.exists()  # a live writer's temp file is left alone


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from alignkit.vectors.cache import VectorCache
    cache = VectorCache(sys.argv[1])
    key = cache.key(kind="words", items=["shared"])
    v = np.random.default_rng(0).standard_normal((13, 400, 384)).astype(np.float32)
    for _ in range(int(sys.argv[2])):
        cache.save(key, v, arrays={"occurrences": np.arange(400)})
""")


def test_two_processes_writing_one_key_leave_a_valid_entry_and_readers_never_see_a_partial_one(tmp_path):
    cache = VectorCache(tmp_path)
    key = cache.key(kind="words", items=["shared"])
    expected = np.random.default_rng(0).standard_normal((13, 400, 384)).astype(np.float32)  # 8 MB
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "15"]) for _ in range(2)]
    seen = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # a partial file would raise here
        while any(w.poll() is None for w in writers):
            entry = cache.load(key)
            if entry is not None:
                np.testing.assert_array_equal(entry.vectors, expected)
                seen += 1
        assert [w.wait() for w in writers] == [0, 0]
        final = cache.load(key)
    np.testing.assert_array_equal(final.vectors, expected)
    np.testing.assert_array_equal(final.arrays["occurrences"], np.arange(400))
    assert seen > 0
    assert [p.name for p in cache.path(key).parent.iterdir()] == [cache.path(key).name]


def test_meta_is_plain_json(tmp_path):
    cache = VectorCache(tmp_path)
    key = cache.key(kind="sentences", items=["s"])
    cache.save(key, vectors(), meta={"prefix": "query: "})
    with np.load(cache.path(key)) as z:
        meta = json.loads(str(z["meta"][()]))
    assert meta["prefix"] == "query: " and meta["shape"] == [3, 5, 8] and len(meta["sha256"]) == 64


def test_entry_of_an_unexpected_shape_or_missing_array_is_treated_as_corrupt(tmp_path):
    cache = VectorCache(tmp_path)
    key = cache.key(kind="words", items=["a"])
    cache.save(key, vectors(shape=(3, 5, 8)))
    assert cache.load(key, shape=(3, 5, 8)) is not None
    with pytest.warns(CacheWarning, match="shape"):
        assert cache.load(key, shape=(13, 5, 8)) is None
    with pytest.warns(CacheWarning, match="occurrences"):
        assert cache.load(key, wanted=("occurrences",)) is None


def test_a_large_entry_is_read_straight_into_its_array_and_a_flipped_bit_still_counts_as_a_miss(tmp_path):
    """Members over 1 MB skip zipfile (one readinto, no zip CRC); the SHA-256 catches damage."""
    cache = VectorCache(tmp_path)
    key = cache.key(kind="words", items=["big"])
    big = vectors(3, shape=(3, 2000, 64))                        # 1.5 MB: the direct path
    path = cache.save(key, big, arrays={"occurrences": np.arange(2000)})
    hit = cache.load(key)
    np.testing.assert_array_equal(hit.vectors, big)
    np.testing.assert_array_equal(hit.arrays["occurrences"], np.arange(2000))
    assert hit.vectors.flags["C_CONTIGUOUS"] and hit.vectors.flags["WRITEABLE"]
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01                                 # inside the vectors' bytes
    path.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="checksum"):
        assert cache.load(key) is None
