"""What loading any checkpoint (encoder or decoder) shares: the device it runs on, the
fingerprint of its files, and the local snapshot of a hub id. A leaf of ``inputs/``, so the
encoder and decoder loaders both build on it without importing each other."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from alignkit.errors import AlignkitError
from alignkit.inputs.bundled import cache_root


def _hash_file(path: Path, h) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)


def model_fingerprint(path: Path) -> str:
    """16-hex-digit hash of config.json and the weight files of a local model directory.

    Weight hashes are memoised on (path, size, mtime) in the user cache, so a 500 MB
    checkpoint is hashed once, not on every run.
    """
    memo_file = cache_root() / "fingerprints.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    h = hashlib.sha256()
    h.update((path / "config.json").read_bytes())
    changed = False
    for fname in sorted(os.listdir(path)):
        fp = path / fname
        if not (fname.endswith((".safetensors", ".bin")) and fp.is_file()):
            continue
        st = fp.stat()
        key = f"{fp.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        if key not in memo:
            fh = hashlib.sha256()
            _hash_file(fp, fh)
            memo[key] = fh.hexdigest()
            changed = True
        h.update(fname.encode() + memo[key].encode())
    if changed:
        try:
            from alignkit.atomic import write_text

            write_text(memo_file, json.dumps(memo))
        except (OSError, AlignkitError):
            pass  # memo is an optimisation only
    return h.hexdigest()[:16]


def pick_device(device: str | None = None):
    """``cuda`` when present, else CPU; ``device`` overrides (e.g. ``"cpu"``, ``"cuda:1"``)."""
    import torch

    if device:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise AlignkitError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise AlignkitError(f"device {device} requested but no CUDA GPU is available; use --device cpu")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def hub_snapshot_dir(model: Any, hub_id: str) -> str:
    """The local snapshot folder of ``hub_id`` (else the path the model was loaded from)."""
    path = getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", "")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(hub_id, local_files_only=True)
    except Exception:
        return path


class LazyCheckpoint:
    """What :class:`~alignkit.inputs.encoders.LazyEncoder` and
    :class:`~alignkit.inputs.decoders.LazyDecoder` share: facts read without the weights, the
    model loaded on first use of ``model``, ``tokenizer``, ``max_length``, ``tokenize`` or
    ``hidden_states``, and checked against those facts (``CHECKED``) when it loads.

    A subclass sets ``name`` and the ``CHECKED`` attributes in ``__init__`` and implements
    ``_load_now()`` (the eager loader, with its errors).
    """

    CHECKED: tuple[str, ...] = ("fingerprint", "num_layers")
    _model: Any = None

    def _load_now(self) -> Any:
        raise NotImplementedError

    def load(self) -> Any:
        """The loaded model object (loading it now if needed)."""
        if self._model is None:
            m = self._load_now()
            if any(getattr(m, k) != getattr(self, k) for k in self.CHECKED):
                raise AlignkitError(f"checkpoint {self.name} changed while it was being scored; run again")
            m.name = self.name
            self._model = m
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    model = property(lambda self: self.load().model)
    tokenizer = property(lambda self: self.load().tokenizer)
    max_length = property(lambda self: self.load().max_length)

    def tokenize(self, texts: list[str], **kwargs):
        return self.load().tokenize(texts, **kwargs)

    def hidden_states(self, *args, **kwargs):
        return self.load().hidden_states(*args, **kwargs)
