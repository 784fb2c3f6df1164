"""A checkpoint fine-tuned by ``alignkit train``, as the rest of the kit reads it.

It is a HuggingFace encoder directory (what ``AutoModel.from_pretrained`` and ``alignkit
score`` read) plus :data:`HEAD_FILE` (``weight`` [C, H], ``bias`` [C]) and :data:`META_FILE`
(labels, task, input prefix, training config and metrics). The file names live here, once:
:mod:`alignkit.training.checkpoint` writes them, the classification tasks read them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from alignkit.errors import AlignkitError

HEAD_FILE = "classifier_head.safetensors"
META_FILE = "alignkit_train.json"


def has_classifier_head(ckpt: str | os.PathLike) -> bool:
    return (Path(ckpt) / HEAD_FILE).is_file()


def read_meta(ckpt: str | os.PathLike) -> dict:
    """``alignkit_train.json`` of a fine-tuned checkpoint (AlignkitError if absent)."""
    p = Path(ckpt) / META_FILE
    if not (Path(ckpt) / HEAD_FILE).is_file() or not p.is_file():
        raise AlignkitError(f"checkpoint {ckpt} has no classifier head ({HEAD_FILE}, {META_FILE}); "
                            "pass a directory written by `alignkit train`")
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise AlignkitError(f"cannot read {p} ({e}); re-run `alignkit train` for this checkpoint") from None
