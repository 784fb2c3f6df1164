"""The Tatoeba task (XTREME-R): 1-nearest-neighbour retrieval of parallel sentences,
xxx→eng and eng→xxx, per layer; sentence vector = mean over non-special tokens (SPEC §2)."""
from __future__ import annotations

from typing import Any, Sequence

from alignkit.measures import Measure, register_measure
from alignkit.tasks.base import Task, TaskMetadata, register_task

register_measure(Measure("tatoeba_acc", "Tatoeba accuracy", unit="share", family="sentences", summary=True,
                         percent=True, plots=(("nn", "Tatoeba accuracy (xx->en)"),), headline=("nn",),
                         alignment="Tatoeba acc", alignment_method="nn", short="Tatoeba"))


class SentenceTask(Task):
    """Base of the tasks over Tatoeba's parallel sentences (``--tatoeba DIR``): units are
    (language, pair), from ``--tatoeba-langs`` or the non-English side of each lexicon; every
    file is read in :meth:`prepare`, so a missing language fails before any work. Subclasses
    set ``metadata`` (``dataset="tatoeba"``) and implement
    ``measure_layer(ctx, lang, pair, x, e, layer, items, ids)`` with x, e ``[n, dim]``
    (row i of both is a translation pair)."""

    def needs_lexicons(self, cfg: Any) -> bool:
        return not cfg.tatoeba_langs  # default languages: the non-English side of each lexicon

    def prepare(self, cfg: Any, lexicons: Sequence[Any]) -> list[tuple[str, str]]:
        from alignkit.errors import AlignkitError
        from alignkit.inputs.tatoeba import read_tatoeba

        if not cfg.tatoeba_dir:
            raise AlignkitError(f"the {self.metadata.name} task needs the Tatoeba folder; pass --tatoeba DIR")
        wanted = [(lang, f"en-{lang}") for lang in cfg.tatoeba_langs] or \
            [(lx.tgt_lang if lx.src_lang == "en" else lx.src_lang, lx.pair) for lx in lexicons]
        out = []
        for lang, pair in wanted:
            if (lang, pair) not in out:
                read_tatoeba(cfg.tatoeba_dir, lang)
                out.append((lang, pair))
        return out

    def unit_name(self, unit: tuple[str, str]) -> str:
        return f"Tatoeba {unit[0]}"

    def evaluate(self, ctx: Any, unit: tuple[str, str]) -> None:
        from alignkit.inputs.tatoeba import read_tatoeba

        lang, pair = unit
        xs, es = read_tatoeba(ctx.cfg.tatoeba_dir, lang)
        XV, EV = ctx.sentence_vectors(xs), ctx.sentence_vectors(es)
        items = ctx.items(pair)
        ids = [str(i) for i in range(len(xs))]
        for li, layer in enumerate(ctx.layers):
            self.measure_layer(ctx, lang, pair, XV[li], EV[li], layer, items, ids)

    def measure_layer(self, ctx: Any, lang: str, pair: str, x, e, layer: int, items, ids: list[str]) -> None:
        raise NotImplementedError


@register_task
class TatoebaTask(SentenceTask):
    metadata = TaskMetadata(
        name="tatoeba", type="bitext",
        description="Tatoeba sentence retrieval accuracy, both directions (needs --tatoeba DIR)",
        measures=("tatoeba_acc",), dataset="tatoeba", enabled_by="tatoeba_dir", methods=("nn",),
        reference="Artetxe & Schwenk 2019; XTREME-R")

    def measure_layer(self, ctx: Any, lang: str, pair: str, x, e, layer: int, items, ids: list[str]) -> None:
        from alignkit.metrics.sentences import tatoeba_accuracy

        r = tatoeba_accuracy(x, e, n_resamples=ctx.cfg.n_resamples, seed=ctx.cfg.seed)
        for direction, est in ((f"{lang}->en", r.xx_to_en), (f"en->{lang}", r.en_to_xx)):
            ctx.add_estimate(est, layer=layer, pair=pair, metric="tatoeba_acc", method="nn", direction=direction,
                             pool_size=len(ids), lexicon=self.metadata.dataset)
            if items:
                items.add(layer, "tatoeba_acc", "nn", direction, ids, est.items)
