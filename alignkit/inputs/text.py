"""Reading user text files (word lists, corpora) with one-line errors."""
from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from alignkit.errors import AlignkitError


def read_lines(path: str | os.PathLike, what: str = "file", allow_empty: bool = False) -> list[str]:
    """Non-empty, stripped, NFC-normalised lines of a UTF-8 file (BOM and CRLF tolerated)."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise AlignkitError(f"{what} {p} does not exist; check the path") from None
    except IsADirectoryError:
        raise AlignkitError(f"{what} {p} is a directory; pass a text file") from None
    except UnicodeDecodeError as e:
        line = p.read_bytes()[: e.start].count(b"\n") + 1
        raise AlignkitError(f"{what} {p}:{line} is not valid UTF-8; re-encode the file as UTF-8") from None
    lines = [unicodedata.normalize("NFC", ln.strip()) for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines and not allow_empty:
        raise AlignkitError(f"{what} {p} is empty; give at least one non-empty line")
    return lines


def comma_list(value: str | list | tuple | None) -> list[str]:
    """``"en-tr, en-de"`` -> ``["en-tr", "en-de"]``: the one parser of comma-separated options
    (CLI flags, TOML strings); a list or tuple passes through stripped, ``None`` gives ``[]``."""
    if value is None:
        return []
    parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [str(p).strip() for p in parts if str(p).strip()]
