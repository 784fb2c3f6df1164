"""Tatoeba sentence-retrieval data in the XTREME / LASER layout.

A directory holds ``tatoeba.{xxx}-eng.{xxx}`` and ``tatoeba.{xxx}-eng.eng`` (ISO 639-3
codes); line i of one file translates line i of the other.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from alignkit.errors import AlignkitError


def available_languages(directory: str | os.PathLike) -> list[str]:
    """ISO 639-3 codes with both files present in ``directory``."""
    d = Path(directory)
    found = []
    for f in sorted(d.glob("tatoeba.*-eng.eng")):
        m = re.match(r"tatoeba\.(\w+)-eng\.eng$", f.name)
        if m and (d / f"tatoeba.{m.group(1)}-eng.{m.group(1)}").is_file():
            found.append(m.group(1))
    return found


def tatoeba_code(lang: str) -> str:
    """Map an ISO 639-1 code (``tr``) to the 639-3 code Tatoeba files use (``tur``)."""
    if len(lang) == 3:
        return lang
    from alignkit.inputs.lexicons import TATOEBA_CODES

    if lang not in TATOEBA_CODES:
        raise AlignkitError(f"no Tatoeba code known for language {lang!r}; pass the ISO 639-3 code instead")
    return TATOEBA_CODES[lang]


def read_tatoeba(directory: str | os.PathLike, lang: str) -> tuple[list[str], list[str]]:
    """Return (sentences in ``lang``, their English translations), aligned by line."""
    d = Path(directory)
    if not d.is_dir():
        raise AlignkitError(f"Tatoeba directory {d} does not exist; pass the folder holding tatoeba.xxx-eng.* files")
    code = tatoeba_code(lang)
    xf, ef = d / f"tatoeba.{code}-eng.{code}", d / f"tatoeba.{code}-eng.eng"
    if not (xf.is_file() and ef.is_file()):
        have = available_languages(d)
        hint = f"it has {len(have)} languages ({', '.join(have[:8])}{', ...' if len(have) > 8 else ''})" if have \
            else "it has no tatoeba.xxx-eng.* files"
        raise AlignkitError(f"Tatoeba directory {d} lacks {xf.name} / {ef.name}; {hint}")
    xs = _read(xf)
    es = _read(ef)
    if len(xs) != len(es):
        raise AlignkitError(f"{xf} has {len(xs)} lines but {ef} has {len(es)}; the files must be line-aligned")
    if not xs:
        raise AlignkitError(f"{xf} is empty; Tatoeba files need at least one sentence pair")
    return xs, es


def _read(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").rstrip("\n").split("\n") if path.stat().st_size else []
    except UnicodeDecodeError:
        raise AlignkitError(f"{path} is not valid UTF-8; re-encode it as UTF-8") from None
