"""Bilingual lexicons: the :class:`Lexicon` type, strict readers, the shipped lexicons.

A lexicon is a list of (source word, target word) pairs; a test lexicon is a set of unique
source words, each with one or more gold translations (SPEC §2). Train and test splits of
a shipped pair share no source word.

Readers (all strict: every malformed line is reported as ``file:line``):

* **alignkit TSV** (what ``alignkit lexicon build`` writes and ``lexicons/`` ships)::

      # alignkit-lexicon 1
      # pair: en-tr
      # ...more "# key: value" provenance lines...
      en<TAB>tr
      house<TAB>ev

* **TSV with a header**: the first line names the two columns (``src``/``tgt``,
  ``source``/``target`` or the two language codes); further columns are ignored.
* **MUSE text**: ``src tgt`` per line, separated by one space or one tab, no header.

UTF-8 only; a leading BOM and CRLF line ends are tolerated; words are NFC-normalised;
blank lines are skipped; repeated pairs are kept once.

Users refer to a shipped lexicon by pair (``en-tr``) or to any file by path
(:func:`load_lexicon`).
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from alignkit.atomic import write_text
from alignkit.errors import AlignkitError

FORMAT_TAG = "# alignkit-lexicon 1"
SPLITS = ("train", "test")

# ISO 639-1 -> ISO 639-3 code used by the Tatoeba files in ../shared/data/tatoeba
# (tatoeba.{xxx}-eng.{xxx}); Tatoeba uses the macro-language members cmn, swh, pes, zsm.
TATOEBA_CODES: dict[str, str] = {
    "af": "afr", "am": "amh", "ar": "ara", "az": "aze", "be": "bel", "bg": "bul", "bn": "ben",
    "br": "bre", "bs": "bos", "ca": "cat", "cs": "ces", "cy": "cym", "da": "dan", "de": "deu",
    "el": "ell", "en": "eng", "eo": "epo", "es": "spa", "et": "est", "eu": "eus", "fa": "pes",
    "fi": "fin", "fo": "fao", "fr": "fra", "fy": "fry", "ga": "gle", "gd": "gla", "gl": "glg",
    "he": "heb", "hi": "hin", "hr": "hrv", "hu": "hun", "hy": "hye", "id": "ind", "ia": "ina",
    "io": "ido", "is": "isl", "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz",
    "km": "khm", "ko": "kor", "ku": "kur", "la": "lat", "lt": "lit", "lv": "lvs", "mk": "mkd",
    "ml": "mal", "mn": "mon", "mr": "mar", "ms": "zsm", "nb": "nob", "nl": "nld", "nn": "nno",
    "oc": "oci", "pl": "pol", "pt": "por", "ro": "ron", "ru": "rus", "sk": "slk", "sl": "slv",
    "sq": "sqi", "sr": "srp", "sv": "swe", "sw": "swh", "ta": "tam", "te": "tel", "th": "tha",
    "tk": "tuk", "tl": "tgl", "tr": "tur", "tt": "tat", "ug": "uig", "uk": "ukr", "ur": "urd",
    "uz": "uzb", "vi": "vie", "xh": "xho", "yi": "yid", "zh": "cmn",
}

# Writing system of a language's words (prefix of the Unicode character names that may
# occur in a word). Languages not listed are written in Latin script.
_SCRIPT_OF_LANG: dict[str, tuple[str, ...]] = {
    "ar": ("ARABIC",), "fa": ("ARABIC",), "ur": ("ARABIC",), "ug": ("ARABIC",),
    "he": ("HEBREW",), "yi": ("HEBREW",),
    "hi": ("DEVANAGARI",), "mr": ("DEVANAGARI",), "bn": ("BENGALI",), "ta": ("TAMIL",),
    "te": ("TELUGU",), "ml": ("MALAYALAM",), "th": ("THAI",), "km": ("KHMER",),
    "ka": ("GEORGIAN",), "hy": ("ARMENIAN",), "am": ("ETHIOPIC",), "el": ("GREEK",),
    "ru": ("CYRILLIC",), "uk": ("CYRILLIC",), "bg": ("CYRILLIC",), "be": ("CYRILLIC",),
    "mk": ("CYRILLIC",), "kk": ("CYRILLIC",), "mn": ("CYRILLIC",), "sr": ("CYRILLIC",),
    "zh": ("CJK UNIFIED IDEOGRAPH",),
    "ja": ("CJK UNIFIED IDEOGRAPH", "HIRAGANA", "KATAKANA", "IDEOGRAPHIC ITERATION MARK"),
    "ko": ("HANGUL",),
}
_LATIN = ("LATIN",)
# Joiners that are part of correct spelling in Indic and Arabic-script words.
_JOINERS = {"\u200c", "\u200d"}
# Characters allowed inside (never at either end of) a word in any script.
_INNER_PUNCT = {"-", "'", "\u2019"}

_PAIR_RE = re.compile(r"^([a-z]{2,3})-([a-z]{2,3})$")
_FILENAME_PAIR_RE = re.compile(r"^([a-z]{2,3})[-_]([a-z]{2,3})(?![a-z])")
_HEADER_NAMES_SRC = {"src", "source", "src_word", "source_word", "word"}
_HEADER_NAMES_TGT = {"tgt", "target", "tgt_word", "target_word", "translation"}


@dataclass(frozen=True)
class Lexicon:
    """Word pairs from ``src_lang`` to ``tgt_lang`` (ISO 639-1 codes).

    ``pairs`` keeps file order without repeats; ``sha256`` is the content hash of
    :func:`content_sha256` (languages + pairs, independent of file format and comments);
    ``name`` says where it came from (``en-tr.test`` or a file name).
    """

    src_lang: str
    tgt_lang: str
    pairs: tuple[tuple[str, str], ...]
    name: str
    sha256: str

    @classmethod
    def from_pairs(cls, src_lang: str, tgt_lang: str, pairs: Iterable[tuple[str, str]],
                   name: str = "") -> "Lexicon":
        """Build a lexicon (repeated pairs kept once, first-seen order) and hash it."""
        unique = tuple(dict.fromkeys((str(s), str(t)) for s, t in pairs))
        return cls(src_lang, tgt_lang, unique, name or f"{src_lang}-{tgt_lang}",
                   content_sha256(src_lang, tgt_lang, unique))

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def pair(self) -> str:
        """``"{src_lang}-{tgt_lang}"``."""
        return f"{self.src_lang}-{self.tgt_lang}"

    def sources(self) -> list[str]:
        """Unique source words in first-seen order."""
        return list(dict.fromkeys(s for s, _ in self.pairs))

    def targets(self) -> list[str]:
        """Unique target words in first-seen order."""
        return list(dict.fromkeys(t for _, t in self.pairs))

    def gold(self) -> dict[str, set[str]]:
        """Source word -> its set of gold translations (keys in first-seen order)."""
        out: dict[str, set[str]] = {}
        for s, t in self.pairs:
            out.setdefault(s, set()).add(t)
        return out

    def inverted(self) -> "Lexicon":
        """The same pairs read from target to source (for the tgt->src direction)."""
        return Lexicon.from_pairs(self.tgt_lang, self.src_lang, ((t, s) for s, t in self.pairs),
                                  name=f"{self.name}.inverted")


def content_sha256(src_lang: str, tgt_lang: str, pairs: Iterable[tuple[str, str]]) -> str:
    """SHA-256 (hex) of ``"src<TAB>tgt\\n"`` followed by one ``"s<TAB>t\\n"`` line per pair."""
    h = hashlib.sha256(f"{src_lang}\t{tgt_lang}\n".encode("utf-8"))
    for s, t in pairs:
        h.update(f"{s}\t{t}\n".encode("utf-8"))
    return h.hexdigest()


# ----------------------------------------------------------------------------- scripts


@lru_cache(maxsize=65536)
def _char_name(ch: str) -> str:
    return unicodedata.name(ch, "")


def script_prefixes(lang: str) -> tuple[str, ...]:
    """Unicode-name prefixes of the letters ``lang`` is written with (Latin by default)."""
    return _SCRIPT_OF_LANG.get(lang, _LATIN)


def is_word_in_script(word: str, lang: str) -> bool:
    """True if ``word`` is one word written in ``lang``'s script.

    Every character is a letter or combining mark of that script (joiners allowed in
    non-Latin scripts, the Japanese long-vowel mark in Japanese); ``-`` and apostrophes
    only inside the word. Digits, spaces and other punctuation make it False.
    """
    if not word or word[0] in _INNER_PUNCT or word[-1] in _INNER_PUNCT:
        return False
    prefixes = script_prefixes(lang)
    for ch in word:
        if ch in _INNER_PUNCT:
            continue
        if ch in _JOINERS and prefixes is not _LATIN:
            continue
        if lang == "ja" and ch == "\u30fc":  # KATAKANA-HIRAGANA PROLONGED SOUND MARK
            continue
        cat = unicodedata.category(ch)
        if cat[0] not in "LM":
            return False
        if not _char_name(ch).startswith(prefixes):
            return False
    return True


def has_case(lang: str) -> bool:
    """Whether ``lang``'s script distinguishes upper and lower case."""
    return script_prefixes(lang)[0] in ("LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "GEORGIAN")


# ----------------------------------------------------------------------------- reading


def _err(path: Path, line: int | None, msg: str) -> AlignkitError:
    where = f"{path}:{line}" if line is not None else f"{path}"
    return AlignkitError(f"lexicon {where}: {msg}")


def _decode(path: Path, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise _err(path, line, f"not valid UTF-8 (byte 0x{data[e.start]:02x}); "
                               "save the file as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


def _languages_from_filename(path: Path) -> tuple[str, str] | None:
    m = _FILENAME_PAIR_RE.match(path.name.lower())
    return (m.group(1), m.group(2)) if m else None


def _is_lang_code(s: str) -> bool:
    return s in TATOEBA_CODES or s in TATOEBA_CODES.values()


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``# key: value`` provenance lines at the top of an alignkit TSV ({} if none)."""
    path = Path(path)
    meta: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            for line in fh:
                if not line.startswith("#"):
                    break
                body = line[1:].strip()
                if ":" in body:
                    key, value = body.split(":", 1)
                    meta[key.strip()] = value.strip()
    except OSError as e:
        raise _err(path, None, f"cannot read ({e.strerror}); check the path") from None
    return meta


def _file_lines(path: Path) -> list[str]:
    """The file's lines (UTF-8 checked, CRLF and a final newline tolerated)."""
    if not path.is_file():
        raise _err(path, None, "no such file; give a lexicon file or a shipped pair "
                               f"({', '.join(shipped_pairs()) or 'none shipped'})")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _err(path, None, f"cannot read ({e.strerror}); check the permissions") from None
    lines = _decode(path, data).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _detect_layout(path: Path, lines: list[str], fmt: str) -> tuple[str, list[str] | None, int]:
    """(kind, header columns or None, index of the header or first data line)."""
    i = 0
    tagged = bool(lines) and lines[0].strip() == FORMAT_TAG
    if fmt == "alignkit" and not tagged:
        raise _err(path, 1, f"alignkit TSV must start with {FORMAT_TAG!r}; use fmt='auto' for other formats")
    if tagged or fmt in ("auto", "alignkit"):  # leading comment block (alignkit provenance)
        while i < len(lines) and lines[i].startswith("#"):
            i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    if tagged or fmt == "alignkit":
        if i >= len(lines):
            raise _err(path, None, "no header line after the '#' comments; add 'src<TAB>tgt' language codes")
        header = [c.strip() for c in lines[i].split("\t")]
        if len(header) != 2 or not all(_is_lang_code(c) for c in header):
            raise _err(path, i + 1, "header must be two language codes separated by a tab (e.g. 'en\\ttr')")
        return "alignkit", header, i
    if fmt == "tsv":
        if i >= len(lines):
            raise _err(path, None, "empty file; add a header line and word pairs")
        return "tsv", [c.strip().lower() for c in lines[i].split("\t")], i
    if fmt == "muse":
        return "muse", None, i
    first = [c.strip().lower() for c in lines[i].split("\t")] if i < len(lines) else []
    looks_header = len(first) >= 2 and (
        (first[0] in _HEADER_NAMES_SRC and first[1] in _HEADER_NAMES_TGT)
        or (len(first) == 2 and all(_is_lang_code(c) for c in first) and first[0] != first[1]))
    return ("tsv", first, i) if looks_header else ("muse", None, i)


def _header_columns(path: Path, kind: str, header: list[str], line: int) -> tuple[int, int]:
    """(source column, target column) named by a TSV header (default 0, 1)."""
    if kind == "tsv":
        src_names = [k for k, c in enumerate(header) if c in _HEADER_NAMES_SRC]
        tgt_names = [k for k, c in enumerate(header) if c in _HEADER_NAMES_TGT]
        if src_names and tgt_names:
            return src_names[0], tgt_names[0]
        if len(header) < 2:
            raise _err(path, line, "header needs two columns (e.g. 'src<TAB>tgt')")
    return 0, 1


def _pairs(path: Path, lines: list[str], start: int, kind: str, n_cols: int, si: int, ti: int) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for k in range(start, len(lines)):
        raw = lines[k]
        if not raw.strip():
            continue
        if kind == "muse":
            cols, want = (raw.split("\t") if "\t" in raw else raw.split()), 2
        else:
            cols, want = raw.split("\t"), n_cols
        if len(cols) != want:
            sep = "tab" if kind != "muse" else "space or tab"
            raise _err(path, k + 1, f"expected {want} {sep}-separated columns, found {len(cols)}; "
                                    "write one 'source<sep>target' pair per line")
        s, t = cols[si].strip(), cols[ti].strip()
        if not s:
            raise _err(path, k + 1, "empty source word; remove the line or fill it in")
        if not t:
            raise _err(path, k + 1, "empty target word; remove the line or fill it in")
        pairs.append((unicodedata.normalize("NFC", s), unicodedata.normalize("NFC", t)))
    if not pairs:
        raise _err(path, None, "no word pairs; a lexicon needs at least one 'source<TAB>target' line")
    return pairs


def read_lexicon(path: str | os.PathLike, *, fmt: str = "auto", src_lang: str | None = None,
                 tgt_lang: str | None = None, name: str | None = None) -> Lexicon:
    """Read a lexicon file strictly.

    ``fmt``: ``"auto"`` (alignkit TSV if the first line is :data:`FORMAT_TAG`, TSV with a
    header if the first row is a header, else MUSE), ``"alignkit"``, ``"tsv"`` or ``"muse"``.
    Languages come from ``src_lang``/``tgt_lang``, else the header (alignkit TSV, or a TSV
    header naming language codes), else a file name starting with ``xx-yy``.

    Raises AlignkitError with ``file:line`` for: bad UTF-8, wrong column count, empty
    fields; and for a missing/unreadable file, unknown languages or no pairs at all.
    """
    path = Path(path)
    if fmt not in ("auto", "alignkit", "tsv", "muse"):
        raise AlignkitError(f"unknown lexicon format {fmt!r}; use auto, alignkit, tsv or muse")
    lines = _file_lines(path)
    kind, header, i = _detect_layout(path, lines, fmt)
    si, ti, n_cols = 0, 1, 2
    if header is not None:
        n_cols = len(header)
        si, ti = _header_columns(path, kind, header, i + 1)
        if all(_is_lang_code(c) for c in header[:2]) and header[0] != header[1]:
            src_lang = src_lang or header[0]
            tgt_lang = tgt_lang or header[1]
        i += 1
    if src_lang is None or tgt_lang is None:
        guess = _languages_from_filename(path)
        if guess is None:
            raise _err(path, None, "cannot tell the languages; name the file like en-de.txt, "
                                   "add a header 'en<TAB>de' or pass src_lang/tgt_lang")
        src_lang, tgt_lang = src_lang or guess[0], tgt_lang or guess[1]
    pairs = _pairs(path, lines, i, kind, n_cols, si, ti)
    return Lexicon.from_pairs(src_lang, tgt_lang, pairs, name=name or path.name)


# ----------------------------------------------------------------------------- writing


def format_lexicon(lex: Lexicon, metadata: dict[str, str] | None = None) -> str:
    """The alignkit TSV text of ``lex``: tag, ``# key: value`` lines, header, pairs."""
    out = [FORMAT_TAG]
    for key, value in (metadata or {}).items():
        if "\n" in str(value) or ":" in key:
            raise ValueError(f"metadata {key!r} must be one line with no ':' in the key")
        out.append(f"# {key}: {value}")
    out.append(f"{lex.src_lang}\t{lex.tgt_lang}")
    for s, t in lex.pairs:
        if "\t" in s or "\t" in t or "\n" in s or "\n" in t:
            raise ValueError(f"word pair {s!r}/{t!r} contains a tab or newline")
        out.append(f"{s}\t{t}")
    return "\n".join(out) + "\n"


def write_lexicon(lex: Lexicon, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write ``lex`` as alignkit TSV, atomically (readers never see a half-written file)."""
    write_text(path, format_lexicon(lex, metadata))
    return Path(path)


# ----------------------------------------------------------------------------- shipped


def lexicon_dirs() -> list[Path]:
    """Directories searched for ``{pair}.{split}.tsv``: ``$ALIGNKIT_LEXICONS`` (an
    ``os.pathsep``-separated list) first, then the shipped lexicons (:func:`shipped_dir`)."""
    dirs = [Path(p) for p in os.environ.get("ALIGNKIT_LEXICONS", "").split(os.pathsep) if p]
    dirs.append(shipped_dir())
    return dirs


def shipped_dir() -> Path:
    """The shipped lexicons: the repository's top-level ``lexicons/`` folder, installed as the
    data package ``alignkit.shipped_lexicons`` (wheel and editable installs find it alike)."""
    try:
        from importlib.resources import files

        return Path(str(files("alignkit.shipped_lexicons")))
    except ModuleNotFoundError:  # a source tree on sys.path without an install
        return Path(__file__).resolve().parents[2] / "lexicons"


def shipped_pairs() -> list[str]:
    """Sorted pairs (``en-tr``, ...) that have both a train and a test file on the search path."""
    found: set[str] = set()
    for d in lexicon_dirs():
        if not d.is_dir():
            continue
        for f in d.glob("*.test.tsv"):
            pair = f.name[: -len(".test.tsv")]
            if _PAIR_RE.match(pair) and (d / f"{pair}.train.tsv").is_file():
                found.add(pair)
    return sorted(found)


def lexicon_path(pair: str, split: str = "test") -> Path:
    """Path of the shipped (or ``$ALIGNKIT_LEXICONS``) file for ``pair`` and ``split``."""
    if split not in SPLITS:
        raise AlignkitError(f"unknown lexicon split {split!r}; use one of {', '.join(SPLITS)}")
    for d in lexicon_dirs():
        p = d / f"{pair}.{split}.tsv"
        if p.is_file():
            return p
    raise AlignkitError(f"no lexicon for pair {pair!r}; shipped pairs: "
                        f"{', '.join(shipped_pairs()) or 'none'} (or give a lexicon file path)")


def parse_pair(pair: str) -> tuple[str, str]:
    """``"en-tr"`` -> ``("en", "tr")``; AlignkitError for anything else."""
    m = _PAIR_RE.match(pair.strip().lower())
    if not m or m.group(1) == m.group(2):
        raise AlignkitError(f"bad language pair {pair!r}; write it as two ISO 639-1 codes like en-tr")
    return m.group(1), m.group(2)


def load_lexicon(spec: str | os.PathLike, split: str = "test", *, fmt: str = "auto",
                 src_lang: str | None = None, tgt_lang: str | None = None) -> Lexicon:
    """A shipped lexicon by pair (``"en-tr"`` -> ``lexicons/en-tr.{split}.tsv``) or a file by path.

    ``split`` only applies to pairs. An unknown pair raises AlignkitError listing the
    shipped pairs; a file is read with :func:`read_lexicon`.
    """
    if isinstance(spec, Path) or os.sep in str(spec) or Path(str(spec)).is_file():
        return read_lexicon(spec, fmt=fmt, src_lang=src_lang, tgt_lang=tgt_lang)
    text = str(spec).strip()
    if not _PAIR_RE.match(text.lower()):
        raise AlignkitError(f"lexicon {text!r} is neither a file nor a language pair; give a path or "
                            f"one of the shipped pairs: {', '.join(shipped_pairs()) or 'none'}")
    pair = text.lower()
    path = lexicon_path(pair, split)
    lex = read_lexicon(path, fmt="alignkit")
    return Lexicon(lex.src_lang, lex.tgt_lang, lex.pairs, f"{pair}.{split}", lex.sha256)
