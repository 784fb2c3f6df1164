"""The score pipeline: checkpoints x lexicons x layers -> tidy rows, item scores, report, plots.

``score()`` is the Python API behind ``alignkit score``. Vectors come from the extraction
cache (a warm re-run does no forward pass); every measurement is a pure function from
:mod:`alignkit.metrics`; results are written atomically at the end, so an interrupted run
leaves no partial ``results.csv`` (re-running picks up the cached vectors).
"""
from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from alignkit import __version__
from alignkit.atomic import ensure_writable_dir, write_text
from alignkit.errors import AlignkitError
from alignkit.results.rows import row, to_frame, write_csv

RETRIEVAL_METHODS = (("nn", False), ("csls", False), ("nn", True), ("csls", True))
KS = (1, 5, 10)


@dataclass
class ScoreConfig:
    """Everything that decides what ``score`` measures (stored in the manifest)."""

    pairs: list[str] = field(default_factory=list)      # e.g. ["en-tr"]; empty = all shipped
    layers: str = "all"
    mode: str = "isolated"
    pooling: str = "mean"
    pool_size: int = 20000                              # N most frequent target words added to the pool
    csls_k: int = 10
    tatoeba_dir: str | None = None
    tatoeba_langs: list[str] = field(default_factory=list)  # default: the non-English side of each pair
    corpora: dict[str, str] = field(default_factory=dict)  # lang -> sentence file (contextual mode)
    tsne_layers: list[int] = field(default_factory=list)
    tsne_sample: int = 300
    cluster: bool = True
    n_resamples: int = 1000
    seed: int = 0
    device: str | None = None
    cache_dir: str | None = None


def _method_name(method: str, center: bool) -> str:
    return method + ("+center" if center else "")


def _index(words: Sequence[str]) -> dict[str, int]:
    return {w: i for i, w in enumerate(words)}


def _resolve_pairs(pairs: Sequence[str]) -> list:
    from alignkit.inputs.lexicons import load_lexicon, shipped_pairs

    specs = list(pairs) or shipped_pairs()
    if not specs:
        raise AlignkitError("no lexicons found; pass --pairs with a shipped pair (en-tr) or a lexicon file")
    return [load_lexicon(p, split="test") for p in specs]


def _check_pools(lexicons, cfg: ScoreConfig) -> None:
    """Fail before any model runs if a candidate pool is smaller than the largest k."""
    for lex in lexicons:
        for lang, words in ((lex.tgt_lang, lex.targets()), (lex.src_lang, lex.sources())):
            pool, _ = _pool(words, lang, cfg.pool_size)
            if len(pool) < max(KS):
                raise AlignkitError(f"the {lang} candidate pool of {lex.name} has {len(pool)} words, fewer than "
                                    f"k={max(KS)}; use a larger lexicon or a larger --pool-size")


def _pool(test_words: list[str], lang: str, n: int) -> tuple[list[str], int]:
    """Candidate pool: the test words first, then the ``n`` most frequent words of ``lang``."""
    from alignkit.inputs.lexicons import frequent_words

    extra = frequent_words(lang, n) if n > 0 else []
    pool = list(dict.fromkeys(list(test_words) + extra))
    return pool, len(extra)


def _read_corpora(cfg: ScoreConfig) -> dict[str, list[str]]:
    from alignkit.inputs.text import read_lines

    return {lang: read_lines(path, f"corpus for {lang}") for lang, path in cfg.corpora.items()}


def _measure_bar(total: int, progress: bool):
    """tqdm bar over one pair's layers (the metric in the description); silent under
    ``progress=False`` (``--quiet``) and when stderr is not a terminal."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="layer", disable=not progress or not sys.stderr.isatty(), leave=False)


class _Scorer:
    """Scores one encoder; collects rows; writes item scores per pair."""

    def __init__(self, enc, cfg: ScoreConfig, out_dir: Path | None, cache, corpora, progress: bool):
        from alignkit.vectors.extract import parse_layers

        self.enc, self.cfg, self.out_dir, self.cache = enc, cfg, out_dir, cache
        self.corpora, self.progress = corpora, progress
        self.layers = parse_layers(cfg.layers, enc.num_layers)
        # retrieval GEMMs and top-k run where the model runs when that is a GPU
        self.retrieval_device = str(enc.device) if str(enc.device).startswith("cuda") else None
        self.rows: list[dict] = []
        self.tsne: list[tuple] = []

    def _vectors(self, words: list[str], lang: str) -> np.ndarray:
        from alignkit.vectors.extract import word_vectors

        corpus = self.corpora.get(lang) if self.cfg.mode == "contextual" else None
        if self.cfg.mode == "contextual" and corpus is None:
            raise AlignkitError(f"contextual mode needs a corpus for language {lang}; pass --corpus {lang}=FILE")
        return word_vectors(self.enc, words, layers=self.layers, mode=self.cfg.mode, pooling=self.cfg.pooling,
                            corpus=corpus, progress=self.progress, cache=self.cache)

    def _row(self, **kw) -> dict:
        return row(model=self.enc.name, model_fingerprint=self.enc.fingerprint, mode=self.cfg.mode, **kw)

    def score_lexicon(self, lex) -> None:
        from alignkit.results.items import ItemWriter
        from alignkit.metrics.clusters import gap_ratio, langid_acc, silhouette
        from alignkit.metrics.retrieval import retrieve_both
        from alignkit.metrics.similarity import bls

        cfg = self.cfg
        src_test, tgt_test = lex.sources(), lex.targets()
        src_pool, _ = _pool(src_test, lex.src_lang, cfg.pool_size)
        tgt_pool, _ = _pool(tgt_test, lex.tgt_lang, cfg.pool_size)
        X = self._vectors(src_pool, lex.src_lang)        # [layers, |src_pool|, d], test sources first
        Y = self._vectors(tgt_pool, lex.tgt_lang)        # [layers, |tgt_pool|, d], test targets first
        for name, V in (("source", X), ("target", Y)):
            if hasattr(V, "info") and V.info is not None and V.info.fallback_count:
                self.rows.append(self._row(layer=None, pair=lex.pair, metric="contextual_fallback_words",
                                           value=V.info.fallback_count, n=V.shape[1], lexicon=lex.name,
                                           direction=name))
        si, ti = _index(src_pool), _index(tgt_pool)
        pair_idx = np.array([(si[s], ti[t]) for s, t in lex.pairs], dtype=np.int64)
        pair_ids = [f"{s}\t{t}" for s, t in lex.pairs]
        gold = lex.gold()
        rev_gold: dict[str, set[str]] = {}
        for s, t in lex.pairs:
            rev_gold.setdefault(t, set()).add(s)
        fwd = (f"{lex.src_lang}->{lex.tgt_lang}", src_test, tgt_pool, [{ti[t] for t in gold[s]} for s in src_test], X, Y)
        bwd = (f"{lex.tgt_lang}->{lex.src_lang}", tgt_test, src_pool, [{si[s] for s in rev_gold[t]} for t in tgt_test], Y, X)
        items = ItemWriter(self.out_dir, self.enc.fingerprint, lex.pair) if self.out_dir else None
        common = dict(pair=lex.pair, lexicon=lex.name)
        kw = dict(n_resamples=cfg.n_resamples, seed=cfg.seed)
        bar = _measure_bar(len(self.layers), self.progress)
        for li, layer in enumerate(self.layers):
            bar.set_description(f"{lex.pair} layer {layer}: bls")
            res = bls(X[li], Y[li], pair_idx, **kw)
            # bls_baseline's items are per unique source word (test sources, in lexicon order)
            for metric, est, ids in (("bls", res.bls, pair_ids), ("bls_raw", res.bls_raw, pair_ids),
                                     ("bls_baseline", res.bls_baseline, src_test),
                                     ("bls_z", res.bls_z, pair_ids), ("bls_auc", res.bls_auc, pair_ids)):
                if est is None:
                    continue  # bls_z when every cosine is equal (spread 0)
                self.rows.append(self._row(layer=layer, metric=metric, value=est.value, ci_low=est.ci_low,
                                           ci_high=est.ci_high, n=est.n, direction=fwd[0], **common))
                if items:
                    items.add(layer, metric, "", fwd[0], ids, est.items)
            bar.set_description(f"{lex.pair} layer {layer}: retrieval")
            # one product per space gives both directions, NN and CSLS (retrieve_both)
            both = {center: retrieve_both(X[li], Y[li], fwd[3], bwd[3], ks=KS, center=center, csls_k=cfg.csls_k,
                                          device=self.retrieval_device, **kw) for center in (False, True)}
            for side, (direction, queries, pool_words, gold_idx, Q, P) in zip(("src->tgt", "tgt->src"), (fwd, bwd)):
                for method, center in RETRIEVAL_METHODS:
                    r = both[center][side, method]
                    for k, est in r.precision.items():
                        m = _method_name(method, center)
                        self.rows.append(self._row(layer=layer, metric=f"p@{k}", method=m, value=est.value,
                                                   ci_low=est.ci_low, ci_high=est.ci_high, n=r.n,
                                                   pool_size=r.pool_size, coverage=r.coverage,
                                                   direction=direction, **common))
                        if items:
                            items.add(layer, f"p@{k}", m, direction, queries, est.items)
            if cfg.cluster:
                bar.set_description(f"{lex.pair} layer {layer}: clusters")
                xs, ys = X[li, :len(src_test)], Y[li, :len(tgt_test)]
                for metric, fn, extra in (("gap_ratio", gap_ratio, dict(n_resamples=min(cfg.n_resamples, 199))),
                                          ("langid_acc", langid_acc, dict(n_resamples=cfg.n_resamples)),
                                          ("silhouette", silhouette, dict(n_resamples=cfg.n_resamples))):
                    est = fn(xs, ys, seed=cfg.seed, **extra)
                    self.rows.append(self._row(layer=layer, metric=metric, value=est.value, ci_low=est.ci_low,
                                               ci_high=est.ci_high, n=est.n, direction=fwd[0], **common))
            if layer in cfg.tsne_layers:
                self.tsne.append((lex, layer, X[li][pair_idx[:, 0]], Y[li][pair_idx[:, 1]]))
            bar.update(1)
        bar.close()
        if items:
            items.write()

    def score_tatoeba(self, lang: str, pair: str) -> None:
        from alignkit.vectors.extract import sentence_vectors
        from alignkit.results.items import ItemWriter
        from alignkit.metrics.sentences import tatoeba_accuracy
        from alignkit.inputs.tatoeba import read_tatoeba

        xs, es = read_tatoeba(self.cfg.tatoeba_dir, lang)
        XV = sentence_vectors(self.enc, xs, layers=self.layers, progress=self.progress, cache=self.cache)
        EV = sentence_vectors(self.enc, es, layers=self.layers, progress=self.progress, cache=self.cache)
        items = ItemWriter(self.out_dir, self.enc.fingerprint, f"tatoeba-{pair}") if self.out_dir else None
        ids = [str(i) for i in range(len(xs))]
        for li, layer in enumerate(self.layers):
            r = tatoeba_accuracy(XV[li], EV[li], n_resamples=self.cfg.n_resamples, seed=self.cfg.seed)
            for direction, est in ((f"{lang}->en", r.xx_to_en), (f"en->{lang}", r.en_to_xx)):
                self.rows.append(self._row(layer=layer, pair=pair, metric="tatoeba_acc", method="nn",
                                           direction=direction, value=est.value, ci_low=est.ci_low,
                                           ci_high=est.ci_high, n=est.n, pool_size=len(xs),
                                           lexicon="tatoeba"))
                if items:
                    items.add(layer, "tatoeba_acc", "nn", direction, ids, est.items)
        if items:
            items.write()


def _tatoeba_targets(lexicons, tatoeba_dir: str, langs: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(language, pair) to score on Tatoeba, validated up front.

    ``langs`` given: those languages (pair ``en-{lang}``); else the non-English side of each lexicon.
    """
    from alignkit.inputs.tatoeba import read_tatoeba

    wanted = [(lang, f"en-{lang}") for lang in langs] or \
        [(lx.tgt_lang if lx.src_lang == "en" else lx.src_lang, lx.pair) for lx in lexicons]
    out = []
    for lang, pair in wanted:
        if (lang, pair) not in out:
            read_tatoeba(tatoeba_dir, lang)  # raises now, before hours of work, if missing
            out.append((lang, pair))
    return out


def model_info(enc) -> dict:
    """What the manifest records about a scored checkpoint (so the model itself can be freed)."""
    return {"name": enc.name, "fingerprint": enc.fingerprint, "path": str(enc.path), "layers": enc.num_layers,
            "hidden_size": enc.hidden_size, "device": str(enc.device), "dtype": str(enc.dtype)}


def manifest(cfg: ScoreConfig, models: list[dict], lexicons: list, command: list[str] | None,
             seconds: float) -> dict:
    import faiss
    import sklearn
    import torch
    import transformers

    return {
        "alignkit_version": __version__,
        "command": command if command is not None else sys.argv,
        "config": {k: v for k, v in vars(cfg).items()},
        "models": models,
        "lexicons": [{"name": lx.name, "pair": lx.pair, "sha256": lx.sha256, "pairs": len(lx.pairs),
                      "sources": len(lx.sources()), "targets": len(lx.targets())} for lx in lexicons],
        "seeds": {"bootstrap": cfg.seed, "tsne": cfg.seed, "langid_cv": cfg.seed},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "faiss": faiss.__version__,
                     "numpy": np.__version__, "pandas": pd.__version__, "scikit-learn": sklearn.__version__},
        "seconds": round(seconds, 1),
        "platform": platform.platform(),
    }


def score(checkpoints: Sequence[str] | str | None = None, *, out: str | Path | None = None,
          config: ScoreConfig | None = None, progress: bool = True, command: list[str] | None = None,
          **overrides) -> pd.DataFrame:
    """Score checkpoints on lexicons (and Tatoeba), every requested layer; return the tidy rows.

    >>> df = alignkit.score("bundled:multilingual-e5-small", pairs=["en-tr"], layers="0,6,12")  # doctest: +SKIP

    With ``out``, also writes ``results.csv``, ``manifest.json``, ``summary.md``, plots and
    item-level scores (``items/``) there. Keyword overrides set :class:`ScoreConfig` fields.
    All inputs are validated before any model runs.
    """
    from alignkit.vectors.cache import VectorCache
    from alignkit.inputs.encoders import DEFAULT_MODEL, load_encoder

    cfg = config or ScoreConfig()
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise TypeError(f"score() got an unknown option {k!r}")
        setattr(cfg, k, v)
    if isinstance(checkpoints, str):
        checkpoints = [checkpoints]
    checkpoints = list(checkpoints or [DEFAULT_MODEL])
    t0 = time.time()
    out_dir = ensure_writable_dir(out, "output directory") if out is not None else None
    lexicons = _resolve_pairs(cfg.pairs)
    _check_pools(lexicons, cfg)
    corpora = _read_corpora(cfg)
    tatoeba = _tatoeba_targets(lexicons, cfg.tatoeba_dir, cfg.tatoeba_langs) if cfg.tatoeba_dir else []
    cache = VectorCache(cfg.cache_dir) if cfg.cache_dir else VectorCache()
    rows, models, tsne = [], [], []
    for ckpt in checkpoints:
        enc = load_encoder(ckpt, device=cfg.device)
        bad = [layer for layer in cfg.tsne_layers if not 0 <= layer <= enc.num_layers]
        if bad:
            raise AlignkitError(f"--tsne-layers {bad} out of range for {enc.name}; use 0..{enc.num_layers}")
        models.append(model_info(enc))  # keep metadata only: one model in memory at a time
        scorer = _Scorer(enc, cfg, out_dir, cache, corpora, progress)
        for lex in lexicons:
            scorer.score_lexicon(lex)
        for lang, pair in tatoeba:
            scorer.score_tatoeba(lang, pair)
        rows += scorer.rows
        tsne += [(enc.name,) + t for t in scorer.tsne]
        del scorer, enc
    df = to_frame(rows)
    if out_dir is not None:
        _write_outputs(df, out_dir, tsne, cfg)
        write_text(out_dir / "manifest.json",
                   json.dumps(manifest(cfg, models, lexicons, command, time.time() - t0), indent=2, default=str))
        write_csv(df, out_dir / "results.csv")  # last: its presence means the run completed
    return df


def _write_outputs(df: pd.DataFrame, out_dir: Path, tsne: list, cfg: ScoreConfig) -> None:
    from alignkit.metrics.tsne import tsne_pairs
    from alignkit.results.report import plot_all_layers, plot_tsne, summary_markdown

    write_text(out_dir / "summary.md", summary_markdown(df))
    plot_all_layers(df, out_dir)
    for model, lex, layer, xs, ys in tsne:
        m = tsne_pairs(xs, ys, sample=cfg.tsne_sample, seed=cfg.seed)
        words = [lex.pairs[i][0] for i in m.index] + [lex.pairs[i][1] for i in m.index]
        slug = "".join(c if c.isalnum() else "_" for c in model)[-40:]
        plot_tsne(np.vstack([m.src_xy, m.tgt_xy]), len(m.index), lex.src_lang, lex.tgt_lang,
                  f"{model}: {lex.pair}, layer {layer}", out_dir / f"tsne_{lex.pair}_L{layer}_{slug}.png", labels=words)
