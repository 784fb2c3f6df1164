"""The score pipeline: checkpoints x lexicons x layers -> tidy rows, item scores, report, plots.

``score()`` is the Python API behind ``alignkit score``. The work is split into units, one
per checkpoint x task x task unit (a lexicon, a Tatoeba language): :func:`score_unit` runs
one (the extraction that unit needs and every measurement of it) wherever the executor puts
it (:mod:`alignkit.executors`: in this process, or as a Ray task). The driver keeps a journal
of finished units (:mod:`alignkit.results.units`) and writes the run's files from them in
plan order, so every executor writes the same rows. Vectors come from the extraction cache
(a warm re-run does no forward pass); every measurement is a pure function from
:mod:`alignkit.metrics`; results are written atomically at the end, so an interrupted run
leaves no partial ``results.csv`` (re-running skips the finished units and reads cached vectors).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from alignkit.atomic import ensure_writable_dir, write_text
from alignkit.errors import AlignkitError
from alignkit.results.manifest import write_manifest
from alignkit.results.rows import row, to_frame, write_csv
from alignkit.results.units import UnitJournal, UnitResult

def _help(text: str, flag: str | None = None, **more) -> dict:
    """Field metadata read by the CLI (help written once, here)."""
    return {"help": text, **({"flag": flag} if flag else {}), **more}


from alignkit.vectors.pooling import check_mode, check_pooling, check_template  # noqa: E402


@dataclass
class ScoreConfig:
    """Everything that decides what ``score`` measures (stored in the manifest).

    Validated at construction (and by :func:`score` after keyword overrides): a bad value
    raises a one-line AlignkitError naming the option and the fix.
    """

    pairs: list[str] = field(default_factory=list, metadata=_help(
        "Comma-separated pairs (en-tr,en-de) or lexicon files; default: all shipped."))
    layers: str = field(default="all", metadata=_help("'all' or comma-separated indices, e.g. 0,4,8,12."))
    mode: str = field(default="isolated", metadata=_help("isolated | contextual"))
    pooling: str = field(default="mean", metadata=_help(
        "mean | first | last | weighted: how a word's or sentence's own tokens become one vector."))
    template: str | None = field(default=None, metadata=_help(
        "Input template with {text}, e.g. 'Translate: {text}' (same for every language; only the "
        "text's own tokens are pooled)."))
    pool_size: int = field(default=20000, metadata=_help(
        "Most frequent target-language words added to the retrieval pool (0 = test words only)."))
    csls_k: int = field(default=10, metadata=_help("Neighbours k of the CSLS radii."))
    tasks: list[str] = field(default_factory=list, metadata=_help(
        "Comma-separated tasks (alignkit tasks lists them); default: lexicon, and tatoeba with --tatoeba."))
    tatoeba_dir: str | None = field(default=None, metadata=_help(
        "Tatoeba dir (XTREME layout) for sentence retrieval rows.", "--tatoeba"))
    tatoeba_langs: list[str] = field(default_factory=list, metadata=_help(
        "Languages for --tatoeba (tr,de or tur,deu); default: those of --pairs."))
    corpora: dict[str, str] = field(default_factory=dict, metadata=_help(
        "LANG=FILE[,LANG=FILE] sentence files for contextual mode.", "--corpus", parse=lambda v: parse_corpora(v)))
    tsne_layers: list[int] = field(default_factory=list, metadata=_help(
        "Layers to draw t-SNE maps for, e.g. 0,6,12."))
    tsne_sample: int = field(default=300, metadata=_help("Translation pairs drawn per t-SNE map."))
    cluster: bool = field(default=True, metadata=_help("Cluster-gap metrics (gap ratio, langid, silhouette); "
                                                       "--no-cluster is faster.", "--cluster/--no-cluster"))
    n_resamples: int = field(default=1000, metadata=_help("Bootstrap resamples for CIs (0 = no CIs).",
                                                          "--resamples"))
    seed: int = field(default=0, metadata=_help("Seed for bootstrap, CV folds and t-SNE."))
    device: str | None = field(default=None, metadata=_help(
        "cpu, cuda, cuda:N (default: cuda if present). On a GPU, extraction runs in bf16/fp16 and the "
        "retrieval GEMMs and top-k in fp32 (TF32 off)."))
    dtype: str | None = field(default=None, metadata=_help(
        "fp32 | bf16: the model's weights and forward (default fp32 on CPU; on CUDA bf16, fp16 for encoders "
        "without bf16). fp16 is refused for decoder-only models."))
    cache_dir: str | None = field(default=None, metadata=_help("Vector cache (default $ALIGNKIT_CACHE)."))
    eval_data: str | None = field(default=None, metadata=_help(
        "Task data folder ({split}-{lang}.tsv) for classification tasks (--tasks xnli / pawsx); "
        "default $ALIGNKIT_DATA/<task>."))
    eval_langs: list[str] = field(default_factory=lambda: ["en", "sw", "ur"], metadata=_help(
        "Languages of the classification tasks."))
    eval_split: str | None = field(default=None, metadata=_help(
        "Split of the classification tasks (default: the one the checkpoint was not trained on)."))
    eval_max_rows: int | None = field(default=None, metadata=_help(
        "Seeded subset of rows per language for the classification tasks."))

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> "ScoreConfig":
        """Raise AlignkitError (one line, naming the option) on a value ``score`` cannot use."""
        from alignkit.inputs.text import comma_list

        for name in ("pairs", "tasks", "tatoeba_langs", "eval_langs"):
            setattr(self, name, comma_list(getattr(self, name)))
        check_mode(self.mode, "--mode")
        check_pooling(self.pooling, "--pooling")
        self.template = check_template(self.template)
        for name, flag, low in (("pool_size", "--pool-size", 0), ("csls_k", "--csls-k", 1),
                                ("n_resamples", "--resamples", 0), ("tsne_sample", "--tsne-sample", 2)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise AlignkitError(f"{flag} {v!r} must be an integer >= {low}")
        if self.eval_max_rows is not None and self.eval_max_rows < 1:
            raise AlignkitError(f"--eval-max-rows {self.eval_max_rows!r} must be a positive integer")
        if self.tatoeba_langs and not self.tatoeba_dir:
            raise AlignkitError("--tatoeba-langs needs --tatoeba DIR (the Tatoeba folder); pass both")
        if self.tasks:
            from alignkit.tasks import task_names

            bad = [t for t in self.tasks if t not in task_names()]
            if bad:
                raise AlignkitError(f"--tasks {','.join(bad)}: unknown task; use {', '.join(task_names())}")
        return self

    def selected_tasks(self) -> list[str]:
        """``tasks``, or the default ones (see :func:`alignkit.tasks.default_tasks`)."""
        from alignkit.tasks import default_tasks

        return list(self.tasks) or default_tasks(self)


def parse_corpora(spec: str | dict) -> dict[str, str]:
    """``"tr=tr.txt,de=de.txt"`` -> ``{"tr": "tr.txt", "de": "de.txt"}`` (``--corpus``)."""
    if isinstance(spec, dict):
        return dict(spec)
    from alignkit.inputs.text import comma_list

    out = {}
    for part in comma_list(spec):
        if "=" not in part:
            raise AlignkitError(f"--corpus {part!r} must look like LANG=FILE, e.g. --corpus tr=tr.txt")
        lang, path = part.split("=", 1)
        out[lang.strip()] = path.strip()
    return out


def _resolve_pairs(pairs: Sequence[str]) -> list:
    from alignkit.inputs.lexicons import load_lexicon, shipped_pairs

    specs = list(pairs) or shipped_pairs()
    if not specs:
        raise AlignkitError("no lexicons found; pass --pairs with a shipped pair (en-tr) or a lexicon file")
    return [load_lexicon(p, split="test") for p in specs]


def _read_corpora(cfg: ScoreConfig) -> dict[str, list[str]]:
    from alignkit.inputs.text import read_lines

    return {lang: read_lines(path, f"corpus for {lang}") for lang, path in cfg.corpora.items()}


class ScoringContext:
    """What a task's ``evaluate`` gets for one encoder: the encoder and its layers, the config,
    vectors through the cache, a row builder, item writers and a progress bar; it collects the
    rows (and t-SNE requests) of every task run on that encoder."""

    def __init__(self, enc, cfg: ScoreConfig, out_dir: Path | None, cache, corpora, progress: bool):
        from alignkit.vectors.extract import parse_layers

        self.enc, self.cfg, self.out_dir, self.cache = enc, cfg, out_dir, cache
        self.corpora, self.progress = corpora, progress
        self.layers = parse_layers(cfg.layers, enc.num_layers)
        # retrieval GEMMs and top-k run where the model runs when that is a GPU
        self.retrieval_device = str(enc.device) if str(enc.device).startswith("cuda") else None
        self.rows: list[dict] = []
        self.tsne: list[tuple] = []
        self.task = ""
        self._writers: dict[tuple[str, str], Any] = {}

    def word_vectors(self, words: list[str], lang: str, cached_only: bool = False) -> np.ndarray | None:
        """``[layers, words, dim]`` in ``cfg.mode``/``cfg.pooling`` (contextual: ``lang``'s corpus);
        ``cached_only``: None when they are not in the cache (nothing extracted)."""
        from alignkit.vectors.extract import word_vectors

        corpus = self.corpora.get(lang) if self.cfg.mode == "contextual" else None
        if self.cfg.mode == "contextual" and corpus is None:
            raise AlignkitError(f"contextual mode needs a corpus for language {lang}; pass --corpus {lang}=FILE")
        return word_vectors(self.enc, words, layers=self.layers, mode=self.cfg.mode, pooling=self.cfg.pooling,
                            corpus=corpus, progress=self.progress, cache=self.cache, cached_only=cached_only,
                            template=self.cfg.template)

    def word_vectors_of(self, *requests: tuple[list[str], str]) -> list[np.ndarray]:
        """:meth:`word_vectors` of each ``(words, lang)``: those in the cache read on parallel
        threads (file reads and SHA-256 checks release the GIL: ~0.5 s less per lexicon here),
        the rest extracted after, one at a time, in order."""
        if self.cache is None or len(requests) < 2:
            return [self.word_vectors(*r) for r in requests]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(requests)) as pool:
            found = list(pool.map(lambda r: self.word_vectors(*r, cached_only=True), requests))
        return [v if v is not None else self.word_vectors(*r) for v, r in zip(found, requests)]

    def sentence_vectors(self, sentences: list[str]) -> np.ndarray:
        """``[layers, sentences, dim]``: ``cfg.pooling`` over the sentence's own tokens (the model's prefix
        applied; inside ``cfg.template`` when given)."""
        from alignkit.vectors.extract import sentence_vectors

        return sentence_vectors(self.enc, sentences, layers=self.layers, progress=self.progress, cache=self.cache,
                                pooling=self.cfg.pooling, template=self.cfg.template)

    def row(self, **kw) -> dict:
        return row(model=self.enc.name, model_fingerprint=self.enc.fingerprint, mode=self.cfg.mode, **kw)

    def add_row(self, **kw) -> None:
        """Append one tidy row (model, fingerprint and mode filled in)."""
        self.rows.append(self.row(**kw))

    def add_estimate(self, est, **kw) -> None:
        """Append a row from an estimate with ``value, ci_low, ci_high, n``."""
        self.add_row(value=est.value, ci_low=est.ci_low, ci_high=est.ci_high, n=est.n, **kw)

    def items(self, pair: str):
        """Item-score writer of the running task for ``pair`` (None when the run writes no
        files); the context writes it after the unit (:meth:`write_items`)."""
        from alignkit.results.items import ItemWriter

        if not self.out_dir:
            return None
        key = (self.task, pair)
        if key not in self._writers:
            self._writers[key] = ItemWriter(self.out_dir, self.enc.fingerprint, self.task, pair)
        return self._writers[key]

    def add_items(self, pair: str, layer: int, metric: str, method: str, direction: str, ids, scores) -> None:
        """Keep the per-item ``scores`` (one per id in ``ids``) behind one row, so that
        ``compare`` can pair them; nothing when the run writes no files."""
        writer = self.items(pair)
        if writer is not None:
            writer.add(layer, metric, method, direction, ids, scores)

    def write_items(self) -> None:
        """Write the item scores the tasks added (:func:`score_unit` calls it after the unit)."""
        for writer in self._writers.values():
            writer.write()
        self._writers.clear()

    def bar(self, total: int):
        """tqdm bar over a unit's layers (the metric in the description); silent under
        ``progress=False`` (``--quiet``) and when stderr is not a terminal."""
        from tqdm.auto import tqdm

        # mininterval=0: a handful of layer updates, each shown (tqdm would skip fast ones)
        return tqdm(total=total, unit="layer", disable=not self.progress or not sys.stderr.isatty(), leave=False,
                    mininterval=0)


def model_info(enc) -> dict:
    """What the manifest records about a scored checkpoint (so the model itself can be freed)."""
    info = {"name": enc.name, "fingerprint": enc.fingerprint, "path": str(enc.path), "layers": enc.num_layers,
            "hidden_size": enc.hidden_size, "device": str(enc.device), "dtype": str(enc.dtype),
            "architecture": getattr(enc, "architecture", "encoder")}
    if hasattr(enc, "last_layer_normed"):
        info["last_layer_normed"] = bool(enc.last_layer_normed)
    adapt = getattr(enc, "batch_adaptation", None)
    if adapt is not None:
        info["batch"] = adapt.as_dict()
    return info


def manifest(cfg: ScoreConfig, models: list[dict], lexicons: list, command: list[str] | None,
             seconds: float, executor: dict | None = None, units: dict | None = None) -> dict:
    from alignkit.results.manifest import run_manifest

    return run_manifest(
        command, config=dict(vars(cfg)), tasks=cfg.selected_tasks(), models=models,
        lexicons=[{"name": lx.name, "pair": lx.pair, "sha256": lx.sha256, "pairs": len(lx.pairs),
                   "sources": len(lx.sources()), "targets": len(lx.targets())} for lx in lexicons],
        seeds={"bootstrap": cfg.seed, "tsne": cfg.seed, "langid_cv": cfg.seed}, seconds=round(seconds, 1),
        executor=executor or {"name": "local"}, units=units or {})


@dataclass(frozen=True)
class ScoreUnit:
    """One work unit of ``score`` (what :func:`score_unit` gets, pickled to a worker under Ray):
    one checkpoint (``fingerprint`` as the driver saw it), one task and one of its units."""

    checkpoint: str
    fingerprint: str
    task: Any
    item: Any
    cfg: ScoreConfig
    corpora: dict
    keep_files: bool
    progress: bool


_LAST_ENCODER: dict = {}  # the encoder of the last unit: a worker runs one checkpoint's units in a row


def _unit_encoder(checkpoint: str, device: str | None, fingerprint: str | None = None, dtype: str | None = None):
    """The (lazy) encoder of ``checkpoint``, kept for the next unit; one model in memory at a
    time. A checkpoint whose files differ from the driver's (``fingerprint``) is refused: on a
    cluster every node must see the same checkpoint at the same path."""
    from alignkit.inputs.encoders import load_encoder

    key = (checkpoint, device, dtype)
    enc = _LAST_ENCODER.get(key)
    if enc is None or (fingerprint and enc.fingerprint != fingerprint):
        _LAST_ENCODER.clear()
        enc = load_encoder(checkpoint, device=device, dtype=dtype, lazy=True)
        _LAST_ENCODER[key] = enc
    if fingerprint and enc.fingerprint != fingerprint:
        raise AlignkitError(f"checkpoint {checkpoint} here (fingerprint {enc.fingerprint}) differs from the "
                            f"driver's ({fingerprint}); give every node the same files at the same path")
    return enc


def score_unit(unit: ScoreUnit) -> UnitResult:
    """Run one unit: the task measures its unit for the checkpoint (extracting through the
    vector cache of this node); item files are written to a staging folder and returned as
    bytes, so they reach the driver from any node."""
    from alignkit.vectors.cache import VectorCache

    cfg = unit.cfg
    enc = _unit_encoder(unit.checkpoint, cfg.device, unit.fingerprint, cfg.dtype)
    halvings = getattr(getattr(enc, "batch_adaptation", None), "halvings", 0)
    cache = VectorCache(cfg.cache_dir) if cfg.cache_dir else VectorCache()
    with tempfile.TemporaryDirectory(prefix="alignkit-unit-") as tmp:
        ctx = ScoringContext(enc, cfg, Path(tmp) if unit.keep_files else None, cache, unit.corpora, unit.progress)
        ctx.task = unit.task.metadata.name
        unit.task.evaluate(ctx, unit.item)
        ctx.write_items()  # the item scores the task added, whether or not it wrote them itself
        files = {p.relative_to(tmp).as_posix(): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
    tsne = [(lex.name, layer, xs, ys) for lex, layer, xs, ys in ctx.tsne]
    info = model_info(enc)
    if "batch" in info:  # this unit's out-of-memory halvings (the state lives on for the next unit)
        info["batch"]["oom_halvings"] -= halvings
    return UnitResult(rows=ctx.rows, files=files, tsne=tsne, model=info)


def _unit_key(cfg: ScoreConfig, checkpoint: str, fingerprint: str, task, item) -> str:
    """What decides a unit's outputs: the configuration, the checkpoint and its weights, the
    task and its unit (a lexicon by content)."""
    from alignkit import __version__

    what = [__version__, checkpoint, fingerprint, task.metadata.name, task.unit_name(item),
            getattr(item, "sha256", ""), dict(vars(cfg))]
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _plan_units(checkpoints: list[str], encs: list, plan: list, cfg: ScoreConfig, corpora: dict,
                keep_files: bool, progress: bool, gpus: float) -> list:
    """Every unit of the run in the order a local run measures them (checkpoint, task, unit)."""
    from alignkit.executors import Unit

    units = []
    for ckpt, enc in zip(checkpoints, encs):
        for task, items in plan:
            for item in items:
                payload = ScoreUnit(ckpt, enc.fingerprint, task, item, cfg, corpora, keep_files, progress)
                label = f"checkpoint {ckpt}, task {task.metadata.name}, {task.unit_name(item)}"
                units.append(Unit(_unit_key(cfg, ckpt, enc.fingerprint, task, item), label, payload, gpus=gpus))
    return units


def _merge_batch(into: dict, unit_model: dict) -> None:
    """Add a later unit's ``batch`` record to a checkpoint's manifest entry: out-of-memory
    halvings summed over units, the smallest batch cap kept."""
    batch, have = unit_model.get("batch"), into.get("batch")
    if batch is None or have is None:
        into["batch"] = have or batch
        return
    caps = [c for c in (have.get("max_rows_after_oom"), batch.get("max_rows_after_oom")) if c is not None]
    into["batch"] = {"oom_halvings": have.get("oom_halvings", 0) + batch.get("oom_halvings", 0),
                     "max_rows_after_oom": min(caps) if caps else None}


def _failure_line(failures: list, total: int, out_dir: Path | None) -> str:
    first = failures[0]
    more = f" (and {len(failures) - 1} more: {'; '.join(f.unit.label for f in failures[1:3])}" \
        f"{', ...' if len(failures) > 3 else ''})" if len(failures) > 1 else ""
    kept = f"; the other units' rows are in {out_dir / 'partial_results.csv'} and a re-run of the same command " \
        "runs only the failed units" if out_dir is not None else ""
    return f"{len(failures)} of {total} units failed: {first.unit.label}: {first.reason}{more}{kept}"


def score(checkpoints: Sequence[str] | str | None = None, *, out: str | Path | None = None,
          config: ScoreConfig | None = None, progress: bool = True, command: list[str] | None = None,
          executor: Any = "local", ray_address: str | None = None, **overrides) -> pd.DataFrame:
    """Score checkpoints with the selected tasks (lexicons, Tatoeba, ...), every requested
    layer; return the tidy rows.

    >>> df = alignkit.score("bundled:multilingual-e5-small", pairs=["en-tr"], layers="0,6,12")  # doctest: +SKIP

    With ``out``, also writes ``results.csv``, ``manifest.json``, ``summary.md``, plots and
    item-level scores (``items/``) there. Keyword overrides set :class:`ScoreConfig` fields
    (checked like the config itself). Every task's inputs are validated before any model runs.
    ``executor``: ``"local"`` (this process) or ``"ray"`` (a Ray cluster: ``ray_address``, else
    ``RAY_ADDRESS``, else a local one; docs/distributed.md), or an
    :class:`~alignkit.executors.Executor`; every executor gives the same rows. A unit that fails
    under Ray does not stop the others: their rows go to ``partial_results.csv`` and the
    AlignkitError names the failed unit; a re-run with the same ``out`` runs only the units
    that did not finish.
    """
    from alignkit.executors import executor_class, get_executor
    from alignkit.inputs.encoders import DEFAULT_MODEL
    from alignkit.tasks import get_task

    cfg = config or ScoreConfig()
    unknown = [k for k in overrides if k not in ScoreConfig.__dataclass_fields__]
    if unknown:
        raise TypeError(f"score() got an unknown option {unknown[0]!r}")
    if isinstance(executor, str):
        executor_class(executor, ray_address)  # a missing package or a bad name fails before any work
    cfg = dataclasses.replace(cfg, **overrides) if overrides else cfg.check()
    if isinstance(checkpoints, str):
        checkpoints = [checkpoints]
    checkpoints = [str(c) for c in (checkpoints or [DEFAULT_MODEL])]
    t0 = time.time()
    out_dir = ensure_writable_dir(out, "output directory") if out is not None else None
    tasks = [get_task(name) for name in cfg.selected_tasks()]
    lexicons = _resolve_pairs(cfg.pairs) if any(t.needs_lexicons(cfg) for t in tasks) else []
    plan = [(t, t.prepare(cfg, lexicons)) for t in tasks]  # raises now, before hours of work
    corpora = _read_corpora(cfg)
    owned = isinstance(executor, str)  # a name: this call starts the executor and gives it back
    local = (executor if owned else executor.name) == "local"
    encs = []
    for ckpt in checkpoints:  # every checkpoint checked before any unit runs (weights read by the units)
        # a distributed driver needs no GPU of its own: the units load the weights where they run
        enc = _unit_encoder(ckpt, cfg.device if local else "cpu", dtype=cfg.dtype)
        for t in tasks:
            t.check_encoder(enc, cfg)
        encs.append(enc)
    ex = get_executor(executor, ray_address)  # after the checks: no cluster is started for bad input
    try:
        if not local:
            _LAST_ENCODER.clear()  # the driver holds no model while the workers run
        on_gpu = str(cfg.device).startswith("cuda") or (cfg.device is None and not local and ex.has_gpus())
        if on_gpu and not local and not ex.has_gpus():  # Ray would wait forever for a GPU that never comes
            raise AlignkitError(f"--device {cfg.device} needs a GPU but the {ex.name} cluster has none; "
                                "pass --device cpu or add GPU nodes to the cluster")
        units = _plan_units(checkpoints, encs, plan, cfg, corpora, out_dir is not None, progress and local,
                            1.0 if on_gpu else 0.0)
        journal = UnitJournal(out_dir) if out_dir is not None else None
        results = {u.key: journal.load(u.key) for u in units if journal is not None and journal.done(u.key)}
        todo = [u for u in units if u.key not in results]
        bar = _units_bar(len(units), len(results), progress and not local)

        def finished(unit, result: UnitResult) -> None:
            if journal is not None:
                journal.save(unit.key, unit.label, result)
            results[unit.key] = result
            bar.update(1)

        try:
            failures = ex.run(score_unit, todo, finished)
        finally:
            bar.close()
        executor_info = ex.describe()
    finally:
        _LAST_ENCODER.clear()
        if owned:
            ex.close()
    done = [(u, results[u.key]) for u in units if u.key in results]
    df = to_frame([r for _, res in done for r in res.rows])
    if failures:
        if out_dir is not None:
            write_csv(df, out_dir / "partial_results.csv")
        raise AlignkitError(_failure_line(failures, len(units), out_dir))
    if out_dir is not None:
        models: dict[str, dict] = {}
        for u, res in done:
            ckpt = u.payload.checkpoint
            if ckpt in models:
                _merge_batch(models[ckpt], res.model)
            else:
                models[ckpt] = dict(res.model)
        by_name = {lx.name: lx for lx in lexicons}
        tsne = [(res.model.get("name", u.payload.checkpoint), by_name[name], layer, xs, ys)
                for u, res in done for name, layer, xs, ys in res.tsne]
        _write_outputs(df, out_dir, tsne, cfg)
        info = [models.get(c) or model_info(e) for c, e in zip(checkpoints, encs)]
        write_manifest(out_dir / "manifest.json", manifest(
            cfg, info, lexicons, command, time.time() - t0, executor_info,
            {"total": len(units), "run": len(todo), "reused": len(units) - len(todo)}))
        write_csv(df, out_dir / "results.csv")  # last: its presence means the run completed
        journal.clear()
        (out_dir / "partial_results.csv").unlink(missing_ok=True)
    return df


def _units_bar(total: int, done: int, show: bool):
    """The driver's one bar over units (a distributed run; a local run shows its extraction
    and layer bars instead)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="unit", desc="units", disable=not show, dynamic_ncols=True)


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
