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


_LIBRARIES = (("torch", "torch", ("torch",)), ("transformers", "transformers", ("transformers",)),
              ("faiss", "faiss", ("faiss-cpu", "faiss-gpu", "faiss")), ("numpy", "numpy", ("numpy",)),
              ("pandas", "pandas", ("pandas",)), ("scikit-learn", "sklearn", ("scikit-learn",)))


def _version(module: str, distributions: Sequence[str]) -> str:
    """The module's ``__version__`` when it is imported, else its installed distribution's
    version (importing transformers just to read its version took ~0.45 s of a warm run)."""
    import importlib
    from importlib import metadata

    if module not in sys.modules:
        for dist in distributions:
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    return importlib.import_module(module).__version__


def software_versions() -> dict[str, str]:
    """Versions of the libraries a measurement depends on."""
    return {"python": platform.python_version(),
            **{name: _version(module, dists) for name, module, dists in _LIBRARIES}}


def run_manifest(command: Sequence[str] | None = None, **fields: Any) -> dict[str, Any]:
    """``{"alignkit_version", "command", **fields, "versions", "platform"}``; ``command``
    defaults to ``sys.argv``."""
    return {"alignkit_version": __version__, "command": list(command) if command is not None else sys.argv,
            **fields, "versions": software_versions(), "platform": platform.platform()}


def write_manifest(path: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` as JSON, atomically (non-JSON values as their ``str``)."""
    write_text(path, json.dumps(manifest, indent=2, default=str))
