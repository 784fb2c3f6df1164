"""English single-word synonyms from WordNet 3.0 (the RS-DA substitution list).

Huang et al. (2021) draw synonyms from counter-fitted word vectors, which are not
installable offline; alignkit substitutes WordNet 3.0 as shipped by the Debian package
``wordnet-base`` (``/usr/share/wordnet``). The dictionary files are parsed directly
rather than through ``nltk``: only the synset lines of ``data.{noun,verb,adj,adv}`` are
needed (documented in ``wndb(5WN)``: ``offset lex_filenum ss_type w_cnt word lex_id ...``
with ``w_cnt`` two hex digits), which is a few lines of code and keeps a heavy dependency
out of the package.

Reading: two words are synonyms when they are lemmas of a common synset (any part of
speech). Lemmas are lower-cased; adjective markers such as ``(a)``/``(p)``/``(ip)`` are
stripped; multi-word lemmas (``motor_vehicle``) and lemmas with anything but letters
(hyphens, digits, apostrophes) are dropped, so a word is always replaced by one word.
No morphology: ``cars`` is not looked up as ``car``.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from alignkit.errors import AlignkitError

DEFAULT_DIRS = ("/usr/share/wordnet",)
ENV_VAR = "ALIGNKIT_WORDNET_DIR"
POS_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
_MARKER = re.compile(r"\((?:a|p|ip)\)$")
_SINGLE = re.compile(r"[a-z]+")


def find_wordnet_dir(directory: str | os.PathLike | None = None) -> Path:
    """The WordNet dictionary directory: ``directory``, else $ALIGNKIT_WORDNET_DIR, else /usr/share/wordnet."""
    cands = [directory] if directory is not None else [os.environ.get(ENV_VAR) or None, *DEFAULT_DIRS]
    for c in cands:
        if c and all((Path(c) / f).is_file() for f in POS_FILES):
            return Path(c)
    where = directory if directory is not None else ", ".join(DEFAULT_DIRS)
    raise AlignkitError(f"WordNet 3.0 not found in {where}; install it (apt-get install wordnet-base) "
                        f"or pass a directory holding {'/'.join(POS_FILES)} (${ENV_VAR})")


def synset_lemmas(line: str) -> list[str]:
    """The lemmas of one ``data.*`` synset line (lower case, markers stripped); [] for header lines."""
    if not line or line.startswith(" "):
        return []
    parts = line.split(" ")
    n = int(parts[3], 16)
    return [_MARKER.sub("", parts[4 + 2 * i]).lower() for i in range(n)]


def parse_synonyms(lines_by_file: Mapping[str, list[str]] | list[list[str]]) -> dict[str, tuple[str, ...]]:
    """{word: sorted single-word synonyms (itself excluded)} from synset lines."""
    groups = lines_by_file.values() if isinstance(lines_by_file, Mapping) else lines_by_file
    table: dict[str, set[str]] = {}
    for lines in groups:
        for line in lines:
            lemmas = {w for w in synset_lemmas(line) if _SINGLE.fullmatch(w)}
            for w in lemmas:
                others = lemmas - {w}
                if others:
                    table.setdefault(w, set()).update(others)
    return {w: tuple(sorted(s)) for w, s in table.items()}


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, tuple[str, ...]]:
    groups = []
    for f in POS_FILES:
        with open(Path(path) / f, encoding="latin-1") as fh:
            groups.append(fh.read().splitlines())
    return parse_synonyms(groups)


def load_synonyms(directory: str | os.PathLike | None = None) -> dict[str, tuple[str, ...]]:
    """WordNet 3.0's synonym table {lower-case word: single-word synonyms}, cached per directory.

    44,722 words for WordNet 3.0 (Debian wordnet-base 1:3.0). AlignkitError (install ``wordnet-base`` or pass a
    directory) when the dictionary files are missing.
    """
    return _load(str(find_wordnet_dir(directory).resolve()))


__all__ = ["DEFAULT_DIRS", "ENV_VAR", "find_wordnet_dir", "synset_lemmas", "parse_synonyms", "load_synonyms"]
