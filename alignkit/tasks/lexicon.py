"""The bilingual-lexicon task: BLS and its scale-free forms, word retrieval P@k (NN and CSLS,
plain and centred, both directions) and the cluster diagnostics, per layer, per lexicon.

Vectors: each test pair's source and target word; retrieval candidate pools are the test
words followed by the ``pool_size`` most frequent words of the language (SPEC §2).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from alignkit.errors import AlignkitError
from alignkit.measures import Measure, register_measure
from alignkit.tasks.base import Task, TaskMetadata, register_task

RETRIEVAL_METHODS = (("nn", False), ("csls", False), ("nn", True), ("csls", True))
KS = (1, 5, 10)

# Registration order is the order of headlines in comparison.md: the primary outcome first.
for _m in (
    Measure("bls_auc", "BLS AUC (translation beats a non-translation; 0.5 = none)", unit="AUC", family="pairs",
            summary=True, plots=(("", "BLS AUC (translation beats a non-translation; 0.5 = none)"),), headline=("",),
            alignment="BLS AUC", short="BLS AUC", description="share of non-translations of the same source a translation beats"),
    Measure("bls_z", "BLS z (corrected cosine / cosine SD)", unit="SD", family="pairs", summary=True,
            plots=(("", "BLS z (corrected cosine / cosine SD)"),), headline=("",), short="BLS z"),
    Measure("bls", "BLS (anisotropy-corrected cosine)", unit="cosine", family="pairs", summary=True,
            plots=(("", "BLS (anisotropy-corrected cosine)"),), headline=("",), alignment="BLS", short="BLS"),
    Measure("bls_raw", "BLS, raw cosine of translation pairs", unit="cosine", family="pairs", summary=True),
    Measure("bls_baseline", "BLS baseline c (mean cosine of all source x target combinations)", unit="cosine",
            higher_is_better=None, family="words", report=("",), short="BLS c"),
    Measure("p@1", "P@1", unit="share", family="words", summary=True, percent=True,
            plots=(("nn", "P@1, nearest neighbour"), ("csls", "P@1, CSLS")), headline=("csls", "nn"),
            report=("csls",), short="P@1", per_direction=True),
    Measure("p@5", "P@5", unit="share", family="words", percent=True),
    Measure("p@10", "P@10", unit="share", family="words", percent=True),
    Measure("gap_ratio", "Cluster gap ratio (lower = mixed)", unit="ratio", higher_is_better=False, summary=True,
            plots=(("", "Cluster gap ratio (lower = mixed)"),)),
    Measure("langid_acc", "Language-ID accuracy of a linear probe (lower = mixed)", unit="share",
            higher_is_better=False, summary=True, percent=True),
    Measure("silhouette", "Silhouette of the two languages (lower = mixed)", unit="", higher_is_better=False),
    Measure("contextual_fallback_words", "Words with no corpus occurrence (isolated fallback)", unit="words",
            higher_is_better=None),
):
    register_measure(_m)


def _method_name(method: str, center: bool) -> str:
    return method + ("+center" if center else "")


def candidate_pool(test_words: list[str], lang: str, n: int) -> tuple[list[str], int]:
    """Candidate pool: the test words first, then the ``n`` most frequent words of ``lang``."""
    from alignkit.inputs.frequencies import frequent_words

    extra = frequent_words(lang, n) if n > 0 else []
    pool = list(dict.fromkeys(list(test_words) + extra))
    return pool, len(extra)


class LexiconPools:
    """One lexicon's test split laid out for measurement: candidate pools per side, their
    vectors' row indices of every test pair and the gold sets of each retrieval direction."""

    def __init__(self, lex, pool_size: int):
        self.lex = lex
        self.src_test, self.tgt_test = lex.sources(), lex.targets()
        self.src_pool, _ = candidate_pool(self.src_test, lex.src_lang, pool_size)
        self.tgt_pool, _ = candidate_pool(self.tgt_test, lex.tgt_lang, pool_size)
        si = {w: i for i, w in enumerate(self.src_pool)}
        ti = {w: i for i, w in enumerate(self.tgt_pool)}
        self.pair_idx = np.array([(si[s], ti[t]) for s, t in lex.pairs], dtype=np.int64)
        self.pair_ids = [f"{s}\t{t}" for s, t in lex.pairs]
        gold = lex.gold()
        rev: dict[str, set[str]] = {}
        for s, t in lex.pairs:
            rev.setdefault(t, set()).add(s)
        self.fwd = f"{lex.src_lang}->{lex.tgt_lang}"
        self.bwd = f"{lex.tgt_lang}->{lex.src_lang}"
        self.fwd_gold = [{ti[t] for t in gold[s]} for s in self.src_test]
        self.bwd_gold = [{si[s] for s in rev[t]} for t in self.tgt_test]


class WordTask(Task):
    """Base of the tasks over the ``--pairs`` lexicons: validates the candidate pools before any
    model runs, extracts the two pools' vectors once per lexicon (cached), writes one item file
    per lexicon and calls :meth:`measure_layer` for every layer under a progress bar.

    Subclasses set ``metadata`` and implement ``measure_layer(ctx, pools, x, y, layer, items)``
    with x ``[|src_pool|, dim]`` and y ``[|tgt_pool|, dim]`` of one layer (test words first).
    """

    def prepare(self, cfg: Any, lexicons: Sequence[Any]) -> list[Any]:
        """Fail before any model runs if a candidate pool is smaller than the largest k."""
        for lex in lexicons:
            for lang, words in ((lex.tgt_lang, lex.targets()), (lex.src_lang, lex.sources())):
                pool, _ = candidate_pool(words, lang, cfg.pool_size)
                if len(pool) < max(KS):
                    raise AlignkitError(f"the {lang} candidate pool of {lex.name} has {len(pool)} words, fewer "
                                        f"than k={max(KS)}; use a larger lexicon or a larger --pool-size")
        return list(lexicons)

    def evaluate(self, ctx: Any, lex: Any) -> None:
        from alignkit.metrics.buffers import kept_buffers
        from alignkit.workers import import_in_background

        p = LexiconPools(lex, ctx.cfg.pool_size)
        slow = self.modules(ctx)
        if slow:
            import_in_background(slow)                        # while the vectors load
        # [layers, |pool|, d] each, test words first
        X, Y = ctx.word_vectors_of((p.src_pool, lex.src_lang), (p.tgt_pool, lex.tgt_lang))
        self.bar = ctx.bar(len(ctx.layers))
        self.before_layers(ctx, p, X, Y)
        items = ctx.items(lex.pair)
        with kept_buffers():                                  # one lexicon's searches reuse their buffers
            for li, layer in enumerate(ctx.layers):
                self.status(f"{lex.pair} layer {layer}: {self.metadata.name}")
                self.measure_layer(ctx, p, X[li], Y[li], layer, items)
                self.bar.update(1)
        self.bar.close()

    def status(self, text: str) -> None:
        """Show what is being measured in the progress bar's description."""
        self.bar.set_description(text)

    def modules(self, ctx: Any) -> tuple[str, ...]:
        """Modules the measurements import (slow ones: imported on a thread while the vectors
        load; default: none)."""
        return ()

    def before_layers(self, ctx: Any, p: LexiconPools, X: np.ndarray, Y: np.ndarray) -> None:
        """Hook run once per lexicon with all layers' vectors (default: nothing)."""

    def measure_layer(self, ctx: Any, p: LexiconPools, x: np.ndarray, y: np.ndarray, layer: int, items) -> None:
        raise NotImplementedError


@register_task
class LexiconTask(WordTask):
    metadata = TaskMetadata(
        name="lexicon", type="word-retrieval",
        description="BLS (+ baseline, z, AUC), retrieval P@1/5/10 (NN, CSLS, +center, both directions) and "
                    "cluster gap / langid / silhouette on the --pairs lexicons",
        measures=("bls", "bls_raw", "bls_baseline", "bls_z", "bls_auc", "p@1", "p@5", "p@10", "gap_ratio",
                  "langid_acc", "silhouette", "contextual_fallback_words"),
        methods=("", "nn", "csls", "nn+center", "csls+center"),
        default=True, needs_lexicons=True, reference="SPEC §2; Conneau et al. 2018 (CSLS)")

    def check_encoder(self, enc: Any, cfg: Any) -> None:
        bad = [layer for layer in cfg.tsne_layers if not 0 <= layer <= enc.num_layers]
        if bad:
            raise AlignkitError(f"--tsne-layers {bad} out of range for {enc.name}; use 0..{enc.num_layers}")

    def modules(self, ctx: Any) -> tuple[str, ...]:
        on_cpu = str(ctx.retrieval_device or "cpu").startswith("cpu")
        # matplotlib last (the plots come at the end of the run: ~0.25 s less there)
        return (("alignkit.metrics.clusters",) if ctx.cfg.cluster else ()) + \
            (("alignkit.metrics.cpu_tops",) if on_cpu else ()) + \
            (("matplotlib.figure", "matplotlib.backends.backend_agg") if ctx.out_dir is not None else ())

    def before_layers(self, ctx: Any, p: LexiconPools, X: np.ndarray, Y: np.ndarray) -> None:
        for name, V in (("source", X), ("target", Y)):
            if getattr(V, "info", None) is not None and V.info.fallback_count:
                ctx.add_row(layer=None, pair=p.lex.pair, metric="contextual_fallback_words",
                            value=V.info.fallback_count, n=V.shape[1], lexicon=p.lex.name, direction=name)
        self._cluster_rows = self._all_clusters(ctx, p, X, Y) if ctx.cfg.cluster else {}

    def measure_layer(self, ctx: Any, p: LexiconPools, x: np.ndarray, y: np.ndarray, layer: int, items) -> None:
        pair = p.lex.pair
        self.status(f"{pair} layer {layer}: bls")
        self._bls(ctx, p, x, y, layer, items)
        self.status(f"{pair} layer {layer}: retrieval")
        self._retrieval(ctx, p, x, y, layer, items)
        for metric, est in self._cluster_rows.pop(layer, ()):
            ctx.add_estimate(est, layer=layer, metric=metric, direction=p.fwd, pair=pair, lexicon=p.lex.name)
        if layer in ctx.cfg.tsne_layers:
            ctx.tsne.append((p.lex, layer, x[p.pair_idx[:, 0]], y[p.pair_idx[:, 1]]))

    @staticmethod
    def _bls(ctx, p: LexiconPools, x, y, layer: int, items) -> None:
        from alignkit.metrics.similarity import bls

        res = bls(x, y, p.pair_idx, n_resamples=ctx.cfg.n_resamples, seed=ctx.cfg.seed)
        # bls_baseline's items are per unique source word (test sources, in lexicon order)
        for metric, est, ids in (("bls", res.bls, p.pair_ids), ("bls_raw", res.bls_raw, p.pair_ids),
                                 ("bls_baseline", res.bls_baseline, p.src_test),
                                 ("bls_z", res.bls_z, p.pair_ids), ("bls_auc", res.bls_auc, p.pair_ids)):
            if est is None:
                continue  # bls_z when every cosine is equal (spread 0)
            ctx.add_estimate(est, layer=layer, metric=metric, direction=p.fwd, pair=p.lex.pair, lexicon=p.lex.name)
            if items:
                items.add(layer, metric, "", p.fwd, ids, est.items)

    @staticmethod
    def _retrieval(ctx, p: LexiconPools, x, y, layer: int, items) -> None:
        from alignkit.metrics.retrieval import retrieve_spaces

        cfg = ctx.cfg
        # one product gives both spaces and directions, NN and CSLS (retrieve_spaces)
        both = retrieve_spaces(x, y, p.fwd_gold, p.bwd_gold, ks=KS, centers=(False, True), csls_k=cfg.csls_k,
                               device=ctx.retrieval_device, n_resamples=cfg.n_resamples, seed=cfg.seed)
        for side, direction, queries in (("src->tgt", p.fwd, p.src_test), ("tgt->src", p.bwd, p.tgt_test)):
            for method, center in RETRIEVAL_METHODS:
                r = both[center][side, method]
                m = _method_name(method, center)
                for k, est in r.precision.items():
                    ctx.add_row(layer=layer, metric=f"p@{k}", method=m, value=est.value, ci_low=est.ci_low,
                                ci_high=est.ci_high, n=r.n, pool_size=r.pool_size, coverage=r.coverage,
                                direction=direction, pair=p.lex.pair, lexicon=p.lex.name)
                    if items:
                        items.add(layer, f"p@{k}", m, direction, queries, est.items)

    def _all_clusters(self, ctx, p: LexiconPools, X, Y) -> dict[int, list]:
        """Cluster metrics of every layer (test words only), one (layer, metric) solve per
        item spread over the worker threads, the costliest first: each is a small
        single-threaded solve, so this keeps both cores busy to the end (one item per layer
        left a core idle for ~0.7 s of ~6 s here); the rows are still added layer by layer, in
        metric order."""
        import torch

        from alignkit.metrics.clusters import gap_ratio, langid_acc, silhouette
        from alignkit.workers import single_threaded_map

        cfg = ctx.cfg
        # (name, function, options, relative cost: 1500 x 2938 test words, one core)
        metrics = (("gap_ratio", gap_ratio, dict(n_resamples=min(cfg.n_resamples, 199)), 1.0),
                   ("langid_acc", langid_acc, dict(n_resamples=cfg.n_resamples), 1.5),
                   ("silhouette", silhouette, dict(n_resamples=cfg.n_resamples), 4.5))
        ns, nt = len(p.src_test), len(p.tgt_test)
        self.status(f"{p.lex.pair}: clusters, all layers")
        jobs = [(li, mi) for li in range(len(ctx.layers)) for mi in range(len(metrics))]

        def one(job: tuple[int, int]):
            li, mi = job
            name, fn, kw, _ = metrics[mi]
            return name, fn(X[li][:ns], Y[li][:nt], seed=cfg.seed, **kw)

        results = single_threaded_map(one, jobs, torch.get_num_threads(), cost=[metrics[mi][3] for _, mi in jobs])
        rows: dict[int, list] = {layer: [] for layer in ctx.layers}
        for (li, _), result in zip(jobs, results):
            rows[ctx.layers[li]].append(result)
        return rows
