"""RS-DA: randomized smoothing with data augmentation (Huang et al. 2021, uclanlp/Robust-XLT).

Each English word that has synonyms is replaced by a uniform pick from {itself} ∪ its
synonyms, independently per word, in each of ``copies`` augmented copies of a training
example (Huang et al. release 3 copies for XNLI, 10 for PAWS-X). Labels are unchanged.
The synonym table is WordNet 3.0 (:mod:`alignkit.training.synonyms`), not their
counter-fitted neighbours; no bilingual lexicon (so no lexicon test split) is read.

alignkit's reading: a word is a ``\\w+`` run with inner apostrophes (``it's`` is one word,
so ``s`` is never looked up); like Huang et al.'s exact match against a lower-case
vocabulary, only all-lower-case words are replaced (sentence-initial words, names,
acronyms and ``I`` are kept). English stop words (scikit-learn's 318-word list) and
one-letter words are never replaced nor inserted: WordNet lists ``a`` (ampere), ``i``
(iodine), ``still`` (a distillery), which counter-fitted neighbours of function words do not
give. Copies are drawn on the fly, seeded per (seed, epoch, example, copy), instead of
written to a file once.
"""
from __future__ import annotations

import random
import re
from typing import Mapping, Sequence

_WORD = re.compile(r"\w+(?:['’]\w+)*", re.UNICODE)


def content_table(table: Mapping[str, Sequence[str]], min_len: int = 2) -> dict[str, tuple[str, ...]]:
    """``table`` without English stop words and words shorter than ``min_len``, as keys or as picks."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    def ok(w: str) -> bool:
        return len(w) >= min_len and w not in ENGLISH_STOP_WORDS
    out = {w: tuple(s for s in syn if ok(s)) for w, syn in table.items() if ok(w)}
    return {w: s for w, s in out.items() if s}


def rsda_rng(seed: int, epoch: int, index: int, copy: int) -> random.Random:
    """A ``random.Random`` fixed by (seed, epoch, example index, copy) (reproducible, resumable)."""
    return random.Random(f"rsda:{seed}:{epoch}:{index}:{copy}")


class SynonymAugmenter:
    """Replace each word with synonyms by a uniform pick from {itself} ∪ synonyms.

    ``table`` maps a lower-case word to its synonyms (itself excluded).
    """

    def __init__(self, table: Mapping[str, Sequence[str]], copies: int = 3):
        self.table = table
        self.copies = int(copies)

    @classmethod
    def from_wordnet(cls, copies: int = 3, directory: str | None = None) -> "SynonymAugmenter":
        from alignkit.training.synonyms import load_synonyms

        return cls(content_table(load_synonyms(directory)), copies)

    def augment(self, text: str, rng: random.Random) -> str:
        """``text`` with its words resampled (spacing and punctuation kept)."""
        def repl(m: re.Match) -> str:
            word = m.group(0)
            syn = self.table.get(word)  # exact match: only lower-case words are replaced
            if not syn:
                return word
            k = rng.randrange(len(syn) + 1)
            return word if k == 0 else syn[k - 1]
        return _WORD.sub(repl, text)

    def pair_copies(self, first: str, second: str, seed: int, epoch: int, index: int) -> list[tuple[str, str]]:
        """``copies`` augmented (first, second) pairs of example ``index``."""
        out = []
        for c in range(self.copies):
            rng = rsda_rng(seed, epoch, index, c)
            out.append((self.augment(first, rng), self.augment(second, rng)))
        return out


__all__ = ["rsda_rng", "content_table", "SynonymAugmenter"]
