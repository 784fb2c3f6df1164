"""``procrustes_p@k`` (SPEC §2 v2): word retrieval after an orthogonal map fitted on the
lexicon's TRAIN split (MUSE / vecmap's supervised baseline), NN and CSLS, both directions,
every layer. It separates "alignable by a rotation" (high here) from "already aligned"
(high plain P@k, lexicon task)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from alignkit.errors import AlignkitError
from alignkit.measures import Measure, register_measure
from alignkit.tasks.base import TaskMetadata, register_task
from alignkit.tasks.lexicon import KS, LexiconPools, WordTask

for _k in KS:
    register_measure(Measure(
        f"procrustes_p@{_k}", f"Procrustes P@{_k} (orthogonal map fitted on the train split)", unit="share",
        family="words", percent=True, summary=_k == 1, short=f"Procrustes P@{_k}",
        plots=(("csls", "Procrustes P@1, CSLS (map fitted on the train split)"),) if _k == 1 else ()))


def train_split(spec: str, test) -> Any:
    """The TRAIN split belonging to the test lexicon ``test`` loaded from ``spec``: the shipped
    ``{pair}.train.tsv`` for a pair, or the ``*.train.*`` file next to a ``*.test.*`` file."""
    from alignkit.inputs.lexicons import load_lexicon

    p = Path(str(spec))
    if not p.is_file():
        return load_lexicon(spec, split="train")
    if ".test." not in p.name:
        raise AlignkitError(f"the procrustes task needs {p.name}'s TRAIN split; name the files "
                            "PAIR.test.tsv / PAIR.train.tsv side by side, or use a shipped pair (en-tr)")
    train = p.with_name(p.name.replace(".test.", ".train."))
    if not train.is_file():
        raise AlignkitError(f"the procrustes task needs the TRAIN split {train}; put it next to {p.name}")
    return load_lexicon(train, src_lang=test.src_lang, tgt_lang=test.tgt_lang)


@register_task
class ProcrustesTask(WordTask):
    metadata = TaskMetadata(
        name="procrustes", type="word-retrieval",
        description="P@1/5/10 (NN, CSLS, both directions) after an orthogonal map fitted on each lexicon's "
                    "TRAIN split (supervised mapping baseline)",
        measures=tuple(f"procrustes_p@{k}" for k in KS), methods=("nn", "csls"), needs_lexicons=True,
        reference="Schönemann 1966; Conneau et al. 2018 (MUSE); Artetxe et al. 2018 (vecmap)")

    def prepare(self, cfg: Any, lexicons: Sequence[Any]) -> list[Any]:
        from alignkit.inputs.lexicons import shipped_pairs
        from alignkit.metrics.procrustes import check_train_test_disjoint

        specs = list(cfg.pairs) or shipped_pairs()
        units = []
        for spec, lex in zip(specs, super().prepare(cfg, lexicons)):
            train = train_split(spec, lex)
            check_train_test_disjoint(train.pairs, lex.pairs)  # refuse now, not after the forward passes
            units.append((lex, train))
        return units

    def evaluate(self, ctx: Any, unit) -> None:
        lex, train = unit
        si = {w: i for i, w in enumerate(train.sources())}
        ti = {w: i for i, w in enumerate(train.targets())}
        # [layers, n_train, dim]: row i of each is train pair i
        tx = ctx.word_vectors(train.sources(), lex.src_lang)[:, [si[s] for s, _ in train.pairs]]
        ty = ctx.word_vectors(train.targets(), lex.tgt_lang)[:, [ti[t] for _, t in train.pairs]]
        self._train = (train, tx, ty)
        super().evaluate(ctx, lex)

    def measure_layer(self, ctx: Any, p: LexiconPools, x: np.ndarray, y: np.ndarray, layer: int, items) -> None:
        from alignkit.metrics.procrustes import procrustes_retrieve_both

        train, tx, ty = self._train
        li = ctx.layers.index(layer)
        cfg = ctx.cfg
        res = procrustes_retrieve_both(tx[li], ty[li], x, y, p.fwd_gold, p.bwd_gold, train_pairs=train.pairs,
                                       test_pairs=p.lex.pairs, ks=KS, csls_k=cfg.csls_k,
                                       n_resamples=cfg.n_resamples, seed=cfg.seed, device=ctx.retrieval_device)
        for side, direction, queries in (("src->tgt", p.fwd, p.src_test), ("tgt->src", p.bwd, p.tgt_test)):
            for method in ("nn", "csls"):
                r = res[side, method]
                for k, est in r.precision.items():
                    ctx.add_row(layer=layer, metric=f"procrustes_p@{k}", method=method, value=est.value,
                                ci_low=est.ci_low, ci_high=est.ci_high, n=r.n, pool_size=r.pool_size,
                                coverage=r.coverage, direction=direction, pair=p.lex.pair, lexicon=p.lex.name)
                    if items:
                        items.add(layer, f"procrustes_p@{k}", method, direction, queries, est.items)
