"""Margin retrieval (SPEC §2 v2; Artetxe & Schwenk 2019): the ratio margin with k = 4,
``method = margin``, for word retrieval (rows ``p@k``) and for Tatoeba (rows ``tatoeba_acc``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from alignkit.tasks.base import TaskMetadata, register_task
from alignkit.tasks.lexicon import KS, LexiconPools, WordTask
from alignkit.tasks.tatoeba import SentenceTask


@register_task
class MarginTask(WordTask):
    metadata = TaskMetadata(
        name="margin", type="word-retrieval",
        description="word retrieval P@1/5/10 by ratio margin (k = 4), both directions (rows p@k, method margin)",
        measures=tuple(f"p@{k}" for k in KS), methods=("margin",), needs_lexicons=True,
        reference="Artetxe & Schwenk 2019 (ratio margin); XTREME BUCC")

    def measure_layer(self, ctx: Any, p: LexiconPools, x: np.ndarray, y: np.ndarray, layer: int, items) -> None:
        from alignkit.metrics.margin import margin_retrieve_both

        cfg = ctx.cfg
        res = margin_retrieve_both(x, y, p.fwd_gold, p.bwd_gold, ks=KS, n_resamples=cfg.n_resamples, seed=cfg.seed,
                                   device=ctx.retrieval_device)
        for side, direction, queries in (("src->tgt", p.fwd, p.src_test), ("tgt->src", p.bwd, p.tgt_test)):
            r = res[side, "margin"]
            for k, est in r.precision.items():
                ctx.add_row(layer=layer, metric=f"p@{k}", method="margin", value=est.value, ci_low=est.ci_low,
                            ci_high=est.ci_high, n=r.n, pool_size=r.pool_size, coverage=r.coverage,
                            direction=direction, pair=p.lex.pair, lexicon=p.lex.name)
                if items:
                    items.add(layer, f"p@{k}", "margin", direction, queries, est.items)


@register_task
class TatoebaMarginTask(SentenceTask):
    metadata = TaskMetadata(
        name="tatoeba-margin", type="bitext",
        description="Tatoeba accuracy by ratio margin (k = 4), both directions (rows tatoeba_acc, method margin)",
        measures=("tatoeba_acc",), methods=("margin",), dataset="tatoeba",
        reference="Artetxe & Schwenk 2019")

    def measure_layer(self, ctx: Any, lang: str, pair: str, x, e, layer: int, items, ids: list[str]) -> None:
        from alignkit.metrics.margin import margin_tatoeba

        r = margin_tatoeba(x, e, n_resamples=ctx.cfg.n_resamples, seed=ctx.cfg.seed, device=ctx.retrieval_device)
        for direction, est in ((f"{lang}->en", r.xx_to_en), (f"en->{lang}", r.en_to_xx)):
            ctx.add_estimate(est, layer=layer, pair=pair, metric="tatoeba_acc", method="margin", direction=direction,
                             pool_size=len(ids), lexicon=self.metadata.dataset)
            if items:
                items.add(layer, "tatoeba_acc", "margin", direction, ids, est.items)
