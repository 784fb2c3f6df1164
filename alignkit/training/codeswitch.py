"""Code-switched views for the CL objective: English words replaced by lexicon translations.

Only the TRAIN split of a shipped bilingual lexicon is read, and every word of its test
split is kept out, so the test-split words the study scores stay unseen in training.
"""
from __future__ import annotations

import random
import re
from typing import Mapping, Sequence

from alignkit.errors import AlignkitError

_WORD = re.compile(r"\w+(?:['’]\w+)*", re.UNICODE)


class CodeSwitcher:
    """Replace English words by translations from the TRAIN split of bilingual lexicons.

    ``table`` maps a lower-cased English word to its candidate translations. Each word of
    a sentence found in the table is replaced with probability ``prob`` by one of them,
    chosen with the caller's ``random.Random`` (so views are reproducible per example).
    """

    def __init__(self, table: Mapping[str, Sequence[str]], prob: float, sources: tuple[str, ...] = ()):
        self.table = {k: sorted(set(v)) for k, v in table.items() if v}
        self.prob = float(prob)
        self.sources = sources

    @classmethod
    def from_lexicons(cls, pairs: Sequence[str], prob: float, split: str = "train") -> "CodeSwitcher":
        """Build from shipped lexicons (``en-sw``, ...), TRAIN split only.

        Any split other than ``train`` is refused. As a second guard, every source word of
        the pair's test split is dropped and no test-split translation is ever inserted.
        """
        if split != "train":
            raise AlignkitError(f"code-switching may only use the train split of a lexicon, not {split!r}; "
                                "test-split words must stay unseen in training")
        from alignkit.inputs import lexicons

        table: dict[str, set[str]] = {}
        names = []
        for pair in pairs:
            p = str(pair).strip()
            if not re.fullmatch(r"[a-z]{2,3}-[a-z]{2,3}", p.lower()):
                raise AlignkitError(f"code-switch lexicon {p!r} must be a shipped language pair like en-sw "
                                    "(a file's split cannot be checked)")
            src, _tgt = lexicons.parse_pair(p)
            if src != "en":
                raise AlignkitError(f"code-switch lexicon {p} must translate from English (en-xx)")
            train = lexicons.load_lexicon(p, split="train")
            try:
                test = lexicons.load_lexicon(p, split="test")
                banned_src = {s.lower() for s in test.sources()}
                banned_tgt = set(test.targets())
            except AlignkitError:
                banned_src, banned_tgt = set(), set()
            for s, t in train.pairs:
                if s.lower() in banned_src or t in banned_tgt:
                    continue
                table.setdefault(s.lower(), set()).add(t)
            names.append(train.name)
        if not table:
            raise AlignkitError(f"code-switch lexicons {', '.join(pairs)} have no usable train pairs")
        return cls({k: sorted(v) for k, v in table.items()}, prob, tuple(names))

    def switch(self, text: str, rng: random.Random) -> str:
        """``text`` with some words replaced by translations (punctuation and spacing kept)."""
        def repl(m: re.Match) -> str:
            word = m.group(0)
            cands = self.table.get(word.lower())
            if cands and rng.random() < self.prob:
                return cands[rng.randrange(len(cands))]
            return word
        return _WORD.sub(repl, text)


def example_rng(seed: int, epoch: int, index: int) -> random.Random:
    """A ``random.Random`` fixed by (seed, epoch, example index): views are reproducible and resumable."""
    return random.Random(f"{seed}:{epoch}:{index}")


__all__ = ["CodeSwitcher", "example_rng"]
