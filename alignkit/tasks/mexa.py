"""MEXA (SPEC §2 v2; Kargaran et al. 2024) on Tatoeba: per layer, the share of parallel
sentences whose translation has the strictly highest cosine in both its row and its column
of the cosine matrix; and, as its authors report it, aggregated over the scored layers
(SPEC §2 v3): metric ``mexa_layers``, method ``mean`` and ``max``, layer -1 (not a layer), no CI."""
from __future__ import annotations

from typing import Any

from alignkit.measures import Measure, register_measure
from alignkit.tasks.base import TaskMetadata, register_task
from alignkit.tasks.tatoeba import SentenceTask

register_measure(Measure("mexa", "MEXA (translation is the strict row and column maximum)", unit="share",
                         family="sentences", percent=True, summary=True, short="MEXA", plots=(("", "MEXA"),)))
register_measure(Measure("mexa_layers", "MEXA over the scored layers (mean, max)", unit="share", family="sentences",
                         percent=True, short="MEXA layers"))


@register_task
class MexaTask(SentenceTask):
    metadata = TaskMetadata(
        name="mexa", type="bitext", description="MEXA alignment score on Tatoeba sentences",
        measures=("mexa", "mexa_layers"), methods=("", "mean", "max"), dataset="tatoeba",
        reference="Kargaran et al. 2024")

    def evaluate(self, ctx: Any, unit: tuple[str, str]) -> None:
        first = len(ctx.rows)
        super().evaluate(ctx, unit)
        per_layer = [r for r in ctx.rows[first:] if r["metric"] == "mexa" and r["method"] == ""]
        if not per_layer:
            return
        values = [r["value"] for r in per_layer]
        for method, value in (("mean", sum(values) / len(values)), ("max", max(values))):
            ctx.add_row(layer=None, pair=per_layer[0]["pair"], metric="mexa_layers", method=method,
                        direction=per_layer[0]["direction"], value=value, n=per_layer[0]["n"],
                        pool_size=per_layer[0]["pool_size"], lexicon=self.metadata.dataset)

    def measure_layer(self, ctx: Any, lang: str, pair: str, x, e, layer: int, items, ids: list[str]) -> None:
        from alignkit.metrics.mexa import mexa

        r = mexa(x, e, n_resamples=ctx.cfg.n_resamples, seed=ctx.cfg.seed)
        direction = f"{lang}<->en"
        ctx.add_estimate(r.mexa, layer=layer, pair=pair, metric="mexa", direction=direction, pool_size=len(ids),
                         lexicon=self.metadata.dataset)
        if items:
            items.add(layer, "mexa", "", direction, ids, r.mexa.items)
