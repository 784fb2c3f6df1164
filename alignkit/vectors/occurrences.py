"""Contextual mode: where each word occurs in a corpus, and which sub-words feed its vector (SPEC §2).

A word's contextual vector is the mean over its first K occurrences (whole-word matches) in
the corpus sentences; each occurrence contributes the mean of the sub-words overlapping it.
:func:`find_occurrences` finds the occurrences, :func:`contextual_plan` turns them into token
sequences and :class:`~alignkit.vectors.forward.Picks`, :func:`corpus_hash` keys caches.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any, Sequence

import numpy as np

from alignkit.vectors.forward import Picks, tokenise
from alignkit.vectors.pooling import pooling_weights


def normalise(encoder: Any, texts: list[str]) -> list[str]:
    """The text the tokenizer's offsets refer to: the encoder's own normaliser applied, if any.

    (The bundled model normalises Unicode before tokenising; ``Encoder.tokenize`` returns
    offsets into the normalised text, and the normaliser is idempotent.)
    """
    norm = encoder.normalize
    return [norm(t) for t in texts] if norm is not None else list(texts)


# Scripts written without spaces between words: a word from them is matched as a substring.
_UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
                       r"\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_WORD = re.compile(r"\w+")


def find_occurrences(words: list[str], corpus: list[str], k: int) -> dict[str, list[tuple[int, int, int]]]:
    """First ``k`` occurrences ``(sentence, start, end)`` of each word in ``corpus``, in corpus order.

    A match is whole-word: not preceded or followed by a letter, digit or combining mark
    (``\\w``). Words made of ``\\w`` characters are looked up in one pass over the corpus;
    words with other characters (``e-mail``, ``New York``) use a regex per word; words in
    scripts written without spaces (Chinese, Japanese, Thai, ...) match as substrings, since
    those scripts have no word boundary to test.
    """
    found: dict[str, list[tuple[int, int, int]]] = {w: [] for w in words}
    simple = {w for w in words if _WORD.fullmatch(w) and not _UNSPACED.search(w)}
    others = [w for w in words if w not in simple]
    if simple:
        pending = set(simple)
        for si, sent in enumerate(corpus):
            if not pending:
                break
            for m in _WORD.finditer(sent):
                w = m.group()
                if w in pending:
                    lst = found[w]
                    lst.append((si, m.start(), m.end()))
                    if len(lst) >= k:
                        pending.discard(w)
    if others:
        joined = "\n".join(corpus)
        starts = np.cumsum([0] + [len(s) + 1 for s in corpus])
        for w in others:
            if not w.strip():
                continue
            pat = re.escape(w) if _UNSPACED.search(w) else r"(?<!\w)" + re.escape(w) + r"(?!\w)"
            for m in re.finditer(pat, joined):
                si = int(np.searchsorted(starts, m.start(), side="right")) - 1
                if m.end() > starts[si] + len(corpus[si]):
                    continue  # would span two sentences
                found[w].append((si, m.start() - int(starts[si]), m.end() - int(starts[si])))
                if len(found[w]) >= k:
                    break
    return found


def corpus_hash(corpus: Sequence[str]) -> str:
    """SHA-256 of a corpus (sentence boundaries included), for cache keys and manifests."""
    h = hashlib.sha256()
    for s in corpus:
        b = s.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def contextual_plan(encoder: Any, words: list[str], pooling: str, corpus: list[str], k: int,
                     ids: list[list[int]], picks: Picks) -> np.ndarray:
    """Add the corpus sentences holding each word; return occurrences used per word ``[words]``."""
    norm_words = normalise(encoder, words)
    norm_corpus = normalise(encoder, corpus)
    found = find_occurrences(list(dict.fromkeys(norm_words)), norm_corpus, k)
    needed = sorted({si for occ in found.values() for si, _, _ in occ})
    if not needed:
        return np.zeros(len(words), dtype=np.int64)
    enc = tokenise(encoder, [corpus[si] for si in needed], offsets=True)
    seq_of = {}
    for j, si in enumerate(needed):
        seq_of[si] = (len(ids), enc["offset_mapping"][j], enc["special_tokens_mask"][j])
        ids.append(list(enc["input_ids"][j]))
    counts = np.zeros(len(words), dtype=np.int64)
    per_word: list[list[tuple[int, list[int]]]] = []
    for wi, w in enumerate(norm_words):
        spans = []
        for si, a, b in found[w]:
            seq, offs, special = seq_of[si]
            pos = [p for p, ((x, y), s) in enumerate(zip(offs, special)) if not s and x < b and y > a]
            if pos:  # empty when truncation cut the occurrence off
                spans.append((seq, pos))
        per_word.append(spans)
        counts[wi] = len(spans)
    for wi, spans in enumerate(per_word):
        for seq, pos in spans:   # each occurrence pooled as an isolated word is, then averaged
            pos, weights = pooling_weights(pos, pooling)
            if pooling == "weighted":
                picks.add(seq, pos, wi, [w / len(spans) for w in weights])
            else:  # equal weights: 1 / (positions x occurrences), as ever
                picks.add(seq, pos, wi, 1.0 / (len(pos) * len(spans)))
    return counts
