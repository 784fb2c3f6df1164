"""Word frequencies from wordfreq: candidate pools for retrieval (SPEC §2) and the frequency
ranks the lexicon builder filters by. Never wordfreq's silent English fallback: a language it
lacks (Swahili) gets no list."""
from __future__ import annotations

import unicodedata
from functools import lru_cache

from alignkit.inputs.lexicons import is_word_in_script


def wordfreq_key(word: str) -> str:
    """The form wordfreq stores a word under (it case-folds: ``straße`` -> ``strasse``)."""
    return word.casefold()


@lru_cache(maxsize=64)
def _wordfreq_list(lang: str, n: int) -> tuple[str, ...]:
    import wordfreq

    if not has_frequency_list(lang):
        return ()
    return tuple(wordfreq.top_n_list(lang, n))


@lru_cache(maxsize=None)
def has_frequency_list(lang: str) -> bool:
    """Whether wordfreq has a word list for ``lang`` (it has none for Swahili)."""
    import wordfreq

    return lang in wordfreq.available_languages()


def frequency_ranks(lang: str, n: int) -> dict[str, int]:
    """wordfreq key -> rank (0 = most frequent) over the top ``n`` entries; {} when wordfreq
    has no list for ``lang`` (never the silent English fallback of ``top_n_list``)."""
    ranks: dict[str, int] = {}
    for r, w in enumerate(_wordfreq_list(lang, n)):
        ranks.setdefault(w, r)
    return ranks


def frequent_words(lang: str, n: int) -> list[str]:
    """The ``n`` most frequent words of ``lang`` (wordfreq), most frequent first (a new list;
    the filtered list is memoised per (lang, n): a 20000-word pool took ~0.25 s to filter,
    and one score run asks for each language's pool twice or more).

    Only entries that are one word in the language's script are kept (wordfreq lists also
    hold numbers, and English words in e.g. its Hindi list); words are wordfreq's
    case-folded forms (German ``ß`` appears as ``ss``; Greek word-final ``σ`` is turned
    back into ``ς``). Returns [] for a language wordfreq lacks (e.g. Swahili) instead of
    its silent English fallback. Used for retrieval candidate pools (SPEC §2).
    """
    return list(_frequent_words(lang, n))


@lru_cache(maxsize=32)
def _frequent_words(lang: str, n: int) -> tuple[str, ...]:
    if n <= 0 or not has_frequency_list(lang):
        return ()
    fetch = int(n * 1.3) + 100
    while True:
        raw = _wordfreq_list(lang, fetch)
        if lang == "el":  # undo case-folding's word-final σ (wordfreq stores 'τησ' for 'της')
            raw = tuple(w[:-1] + "ς" if w.endswith("σ") else w for w in raw)
        words = [w for w in dict.fromkeys(unicodedata.normalize("NFC", w) for w in raw)
                 if is_word_in_script(w, lang)]
        if len(words) >= n or len(raw) < fetch:
            return tuple(words[:n])
        fetch *= 2
