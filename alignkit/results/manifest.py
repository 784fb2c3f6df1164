"""The one manifest builder: what every run writes next to its results (``manifest.json``):
alignkit version, command line, software versions, platform, plus the run's own fields
(configuration, models, lexicon hashes, seeds, timing)."""
from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any, Sequence

from alignkit import __version__
from alignkit.atomic import write_text


def software_versions() -> dict[str, str]:
    """Versions of the libraries a measurement depends on."""
    import faiss
    import numpy
    import pandas
    import sklearn
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "faiss": faiss.__version__, "numpy": numpy.__version__, "pandas": pandas.__version__,
            "scikit-learn": sklearn.__version__}


def run_manifest(command: Sequence[str] | None = None, **fields: Any) -> dict[str, Any]:
    """``{"alignkit_version", "command", **fields, "versions", "platform"}``; ``command``
    defaults to ``sys.argv``."""
    return {"alignkit_version": __version__, "command": list(command) if command is not None else sys.argv,
            **fields, "versions": software_versions(), "platform": platform.platform()}


def write_manifest(path: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` as JSON, atomically (non-JSON values as their ``str``)."""
    write_text(path, json.dumps(manifest, indent=2, default=str))
