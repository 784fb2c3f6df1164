"""Strong alignment (SPEC §2 v2; after LAReQA, Roy et al. 2020): ``strong_p@1`` — the
candidate pool holds both languages (the query itself removed) and a hit needs the nearest
candidate to be a translation, not a same-language neighbour. For lexicon words (``strong``)
and Tatoeba sentences (``tatoeba-strong``); method ``nn`` (raw vectors) and ``nn+center``
(each language's mean removed first). ``strong_same_lang`` is the share of misses whose
nearest candidate was of the query's own language. The sentence versions are named
``tatoeba_strong_p@1`` / ``tatoeba_strong_same_lang`` (as ``tatoeba_acc`` is), because a row's
measurement key (layer, pair, metric, method, direction) must name one measurement: en-tr's
``tr->en`` is both a lexicon direction and a Tatoeba direction."""
from __future__ import annotations

from typing import Any

import numpy as np

from alignkit.measures import Measure, register_measure
from alignkit.tasks.base import TaskMetadata, register_task
from alignkit.tasks.lexicon import LexiconPools, WordTask
from alignkit.tasks.tatoeba import SentenceTask

register_measure(Measure("strong_p@1", "Strong P@1 (both languages in the pool)", unit="share", family="words",
                         percent=True, summary=True, short="strong P@1",
                         plots=(("nn+center", "Strong P@1 (both languages in the pool, centred)"),)))
register_measure(Measure("strong_same_lang", "Share of strong-P@1 misses to a same-language neighbour",
                         unit="share", higher_is_better=False, percent=True))
register_measure(Measure("tatoeba_strong_p@1", "Tatoeba strong P@1 (both languages' sentences in the pool)",
                         unit="share", family="sentences", percent=True, summary=True, short="Tatoeba strong",
                         plots=(("nn+center", "Tatoeba strong P@1 (both languages in the pool, centred)"),)))
register_measure(Measure("tatoeba_strong_same_lang", "Share of Tatoeba strong-P@1 misses to a same-language "
                         "sentence", unit="share", higher_is_better=False, percent=True))

STRONG_METHODS = (("nn", False), ("nn+center", True))


def _rows(ctx: Any, r, *, prefix: str, layer: int, method: str, direction: str, pair: str, lexicon: str,
          pool_size: int, ids: list[str], items) -> None:
    ctx.add_estimate(r.p1, layer=layer, metric=f"{prefix}strong_p@1", method=method, direction=direction, pair=pair,
                     lexicon=lexicon, pool_size=pool_size)
    misses = int(round((1 - r.p1.value) * r.n))
    ctx.add_row(layer=layer, metric=f"{prefix}strong_same_lang", method=method, direction=direction, pair=pair,
                lexicon=lexicon, value=r.same_language_misses, n=misses, pool_size=pool_size)
    if items:
        items.add(layer, f"{prefix}strong_p@1", method, direction, ids, r.p1.items)


@register_task
class StrongWordsTask(WordTask):
    metadata = TaskMetadata(
        name="strong", type="word-retrieval",
        description="strong P@1 of lexicon words: both languages' pools are candidates (query removed)",
        measures=("strong_p@1", "strong_same_lang"), methods=("nn", "nn+center"), needs_lexicons=True,
        reference="Roy et al. 2020 (LAReQA)")

    def measure_layer(self, ctx: Any, p: LexiconPools, x: np.ndarray, y: np.ndarray, layer: int, items) -> None:
        from alignkit.metrics.strong import strong_retrieve_both

        pool = x.shape[0] + y.shape[0] - 1
        for method, center in STRONG_METHODS:
            res = strong_retrieve_both(x, y, p.fwd_gold, p.bwd_gold, center=center, n_resamples=ctx.cfg.n_resamples,
                                       seed=ctx.cfg.seed)
            for side, direction, queries in (("src->tgt", p.fwd, p.src_test), ("tgt->src", p.bwd, p.tgt_test)):
                _rows(ctx, res[side], prefix="", layer=layer, method=method, direction=direction, pair=p.lex.pair,
                      lexicon=p.lex.name, pool_size=pool, ids=queries, items=items)


@register_task
class StrongTatoebaTask(SentenceTask):
    metadata = TaskMetadata(
        name="tatoeba-strong", type="bitext",
        description="strong P@1 of Tatoeba sentences: both languages' sentences are candidates (query removed)",
        measures=("tatoeba_strong_p@1", "tatoeba_strong_same_lang"), methods=("nn", "nn+center"), dataset="tatoeba",
        reference="Roy et al. 2020 (LAReQA)")

    def measure_layer(self, ctx: Any, lang: str, pair: str, x, e, layer: int, items, ids: list[str]) -> None:
        from alignkit.metrics.strong import strong_tatoeba

        for method, center in STRONG_METHODS:
            r = strong_tatoeba(x, e, center=center, n_resamples=ctx.cfg.n_resamples, seed=ctx.cfg.seed)
            for direction, res in ((f"{lang}->en", r.xx_to_en), (f"en->{lang}", r.en_to_xx)):
                _rows(ctx, res, prefix="tatoeba_", layer=layer, method=method, direction=direction, pair=pair,
                      lexicon=self.metadata.dataset, pool_size=2 * len(ids) - 1, ids=ids, items=items)
