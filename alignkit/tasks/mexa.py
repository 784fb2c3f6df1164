"""MEXA (SPEC §2 v2; Kargaran et al. 2024) on Tatoeba: per layer, the share of parallel
sentences whose translation has the strictly highest cosine in both its row and its column
of the cosine matrix."""
from __future__ import annotations

from typing import Any

from alignkit.results.measures import Measure, register_measure
from alignkit.tasks.base import TaskMetadata, register_task
from alignkit.tasks.tatoeba import SentenceTask

register_measure(Measure("mexa", "MEXA (translation is the strict row and column maximum)", unit="share",
                         family="sentences", percent=True, summary=True, short="MEXA", plots=(("", "MEXA"),)))


@register_task
class MexaTask(SentenceTask):
    metadata = TaskMetadata(
        name="mexa", type="bitext", description="MEXA alignment score on Tatoeba sentences",
        measures=("mexa",), methods=("",), dataset="tatoeba", reference="Kargaran et al. 2024")

    def measure_layer(self, ctx: Any, lang: str, pair: str, x, e, layer: int, items, ids: list[str]) -> None:
        from alignkit.metrics.mexa import mexa

        r = mexa(x, e, n_resamples=ctx.cfg.n_resamples, seed=ctx.cfg.seed)
        direction = f"{lang}<->en"
        ctx.add_estimate(r.mexa, layer=layer, pair=pair, metric="mexa", direction=direction, pool_size=len(ids),
                         lexicon=self.metadata.dataset)
        if items:
            items.add(layer, "mexa", "", direction, ids, r.mexa.items)
