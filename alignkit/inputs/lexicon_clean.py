"""Cleaning dictionary strings into single words of a language (SPEC §6, step 3).

:func:`clean_word`: NFC, hyphen variants unified, language-specific marks and placeholders
removed, edge punctuation stripped, lower-cased where the script has case, then exactly one
word of the language's script. :func:`strip_brackets` and :func:`split_candidates` cut a
dictionary sense into candidate strings first.
"""
from __future__ import annotations

import re
import unicodedata

from alignkit.inputs.frequencies import wordfreq_key
from alignkit.inputs.lexicons import has_case, is_word_in_script

_ANY_BRACKET = re.compile(r"[()\[\]{}<>]")
_INNERMOST_BRACKETS = re.compile(r"\([^()\[\]{}<>]*\)|\[[^()\[\]{}<>]*\]|\{[^()\[\]{}<>]*\}|<[^()\[\]{}<>]*>")
_OPENER = re.compile(r"[(\[{<]")
_CLOSER = re.compile(r"[)\]}>]")
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


def is_kana(s: str) -> bool:
    """True when every character of ``s`` is hiragana, katakana or the long-vowel mark."""
    return all(unicodedata.name(c, "").startswith(("HIRAGANA", "KATAKANA")) or c == "\u30fc" for c in s)
