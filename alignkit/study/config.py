"""``alignkit study``: the research question end to end (SPEC §1).

Does a cross-lingual contrastive loss during robust training improve alignment (BLS), and
does alignment track zero-shot accuracy? One TOML config names the base model, task data,
variants, seeds, pairs and layers. The study trains every variant x seed (finished runs are
skipped, interrupted ones resume), scores every checkpoint and the untrained base, evaluates
zero-shot task accuracy, and writes ``results.csv``, ``comparison.csv``, ``report.md`` and
plots. Every stage's outputs are written atomically and reused on a re-run.

Config layout::

    [study]
    base_model = "bundled:multilingual-e5-small"
    variants = ["ft", "rt", "rt+cl", "ept+apt+rt", "ept+apt+rt+cl"]
    seeds = [1, 2, 3]                    # or per variant: seeds = { rt = [1,2,3,4,5], default = [1,2,3] }
    pairs = ["en-sw", "en-tr"]           # lexicon pairs scored (BLS, retrieval, cluster gap)
    tasks = ["lexicon", "tatoeba"]       # optional: the score tasks (alignkit tasks lists them)
    layers = "all"
    pool_size = 2000
    tatoeba = "../shared/data/tatoeba"   # optional
    tatoeba_langs = ["sw", "ur"]         # optional; default: the non-English side of each pair
    baselines = ["rt", "ft"]             # each variant - each baseline (never also its mirror)
    contrasts = ["rt+cl - rt"]           # optional: more contrasts, "variant - baseline"
    train_workers = 2                    # CPU: parallel single-thread runs (default: cores, <= 4)
    prune_checkpoints = false            # delete a run's weights once it is scored and evaluated
    [outcomes]                           # declared before the run (SPEC §2 v3): see docs/studies/README.md
    primary = { metric = "bls_auc", pair = "en-sw", layer = "last", contrast = "rt+cl - rt" }
    [outcomes.secondary.alignment]
    contrasts = ["rt+cl - rt"]
    measures = ["bls_auc", "tatoeba_acc", "p@1:csls"]   # metric or metric:method
    layer = "last"                       # "last", "all" or an index; pairs = [...] to restrict
    [train]                              # any `alignkit train` setting (TrainConfig)
    train_file = "../shared/data/xnli/dev-en.tsv"
    max_steps = 60
    [eval]
    data = "../shared/data/xnli"
    langs = ["en", "sw", "ur"]
    max_rows = 1000

Relative paths in the config are resolved against the config file's directory.

Each finished run's small outputs (result rows, item scores, predictions, training
diagnostics, manifest; never weights) live under ``<out>/runs/<variant>/seed<k>/``. A run whose
``results.csv`` is there counts as finished even when its checkpoint is gone, so a study can be
committed run by run and continued on another machine from a copy of ``runs/``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from alignkit.errors import AlignkitError

DEFAULT_VARIANTS = ["ft", "rt", "rt+cl", "ept+apt+rt", "ept+apt+rt+cl"]
BASE_LABEL = "base"


@dataclass
class StudyConfig:
    base_model: str = "bundled:multilingual-e5-small"
    variants: list[str] = field(default_factory=lambda: list(DEFAULT_VARIANTS))
    seeds: list[int] | dict[str, list[int]] = field(default_factory=lambda: [1, 2, 3])
    pairs: list[str] = field(default_factory=lambda: ["en-sw"])
    tasks: list[str] = field(default_factory=list)  # score tasks; default: lexicon (+ tatoeba with tatoeba)
    layers: str = "all"
    pool_size: int = 2000
    tatoeba: str | None = None
    tatoeba_langs: list[str] = field(default_factory=list)  # default: the non-English side of each pair
    baselines: list[str] = field(default_factory=lambda: ["rt", "ft"])
    contrasts: list[str] = field(default_factory=list)  # "variant - baseline"; added to those of baselines
    run_first: list[str] = field(default_factory=list)  # variants trained first (default: the primary's)
    prune_checkpoints: bool = False
    score_resamples: int = 200
    compare_resamples: int = 2000
    device: str | None = None
    # CPU training: runs in this many parallel worker processes, one thread each (0 = one per
    # CPU core). One thread per run makes CPU training bit-exact across processes (multi-threaded
    # backward passes are not), and parallel single-thread runs use the cores better than one
    # multi-threaded run. On CUDA, runs go one after another.
    train_workers: int = 0
    train: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, Any] = field(default_factory=dict)

    def seeds_for(self, variant: str) -> list[int]:
        """The seeds ``variant`` is trained with (``seeds`` as a list, or its table's entry / ``default``)."""
        if isinstance(self.seeds, dict):
            return list(self.seeds.get(variant, self.seeds.get("default", [])))
        return list(self.seeds)

    def all_seeds(self) -> list[int]:
        return sorted({s for v in self.variants for s in self.seeds_for(v)})

    def contrast_list(self) -> list[tuple[str, str]]:
        """(variant, baseline) pairs, each once: every variant against each baseline, the explicit
        ``contrasts``, and the declared outcomes' contrasts. A pair and its mirror are one contrast;
        the kept direction is the declared one, else the one whose baseline is listed first in
        ``variants`` (so ``rt - ft`` with variants ``ft, rt, ...``)."""
        from alignkit.study.outcomes import outcome_contrasts, parse_contrast

        explicit = [parse_contrast(c) for c in self.contrasts] + outcome_contrasts(self.outcomes)
        implied = [(v, b) for b in self.baselines for v in self.variants if v != b]
        out: list[tuple[str, str]] = []
        seen: set[frozenset] = set()
        for v, b in explicit:
            if frozenset((v, b)) not in seen:
                seen.add(frozenset((v, b)))
                out.append((v, b))
        for v, b in implied:
            if frozenset((v, b)) in seen:
                continue
            seen.add(frozenset((v, b)))
            if self.variants.index(v) < self.variants.index(b):
                v, b = b, v  # the baseline is the variant listed first
            out.append((v, b))
        return out

    def run_order(self) -> list[tuple[str, int]]:
        """(variant, seed) in training order: the runs of ``run_first`` (default: the primary
        contrast's variants) first, seed by seed so their pairs complete early, then every other
        run seed by seed."""
        from alignkit.study.outcomes import primary_contrast

        prim = self.run_first or primary_contrast(self.outcomes) or ()
        first = [v for v in self.variants if v in prim]
        rest = [v for v in self.variants if v not in first]
        order = []
        for group in (first, rest):
            for s in sorted({s for v in group for s in self.seeds_for(v)}):
                order += [(v, s) for v in group if s in self.seeds_for(v)]
        return order


def load_study_config(path: str | os.PathLike) -> StudyConfig:
    """Read and validate a study TOML (unknown keys are errors, not silently ignored)."""
    from alignkit.training.config import TrainConfig, load_toml
    from alignkit.training.objectives import VARIANTS

    p = Path(path)
    raw = load_toml(p)
    base = p.resolve().parent

    def resolve(v):
        """Paths relative to the config file's folder (lists element-wise); other values unchanged."""
        if isinstance(v, list):
            return [resolve(x) for x in v]
        if isinstance(v, str) and v and not v.startswith("bundled:"):
            q = Path(v).expanduser()
            if not q.is_absolute() and (base / q).exists():
                return str((base / q).resolve())
        return v

    study = dict(raw.get("study", {}))
    unknown = set(raw) - {"study", "train", "eval", "outcomes"}
    if unknown:
        raise AlignkitError(f"{p}: unknown section(s) {', '.join(sorted(unknown))}; use [study], [train], [eval], "
                            "[outcomes]")
    names = set(StudyConfig.__dataclass_fields__) - {"train", "eval", "outcomes"}
    bad = set(study) - names
    if bad:
        raise AlignkitError(f"{p}: unknown [study] key(s) {', '.join(sorted(bad))}; known: {', '.join(sorted(names))}")
    cfg = StudyConfig(**{k: resolve(v) for k, v in study.items()})
    cfg.train = {k: resolve(v) for k, v in raw.get("train", {}).items()}
    cfg.eval = {k: resolve(v) for k, v in raw.get("eval", {}).items()}
    cfg.outcomes = dict(raw.get("outcomes", {}))
    bad_eval = set(cfg.eval) - {"data", "langs", "max_rows", "split", "batch_size"}
    if bad_eval:
        raise AlignkitError(f"{p}: unknown [eval] key(s) {', '.join(sorted(bad_eval))}")
    for v in cfg.variants:
        if v not in VARIANTS:
            raise AlignkitError(f"{p}: unknown variant {v!r}; use {', '.join(VARIANTS)}")
    for b in cfg.baselines:
        if b not in cfg.variants:
            raise AlignkitError(f"{p}: baseline {b!r} is not among the variants {cfg.variants}")
    check_study(cfg, str(p))
    if cfg.tatoeba_langs and not cfg.tatoeba:
        raise AlignkitError(f"{p}: tatoeba_langs is set but tatoeba (the Tatoeba folder) is not; set both")
    if cfg.tatoeba:
        from alignkit.inputs.tatoeba import read_tatoeba

        for lang in cfg.tatoeba_langs:
            read_tatoeba(cfg.tatoeba, lang)  # a missing language fails now, not after hours of training
    # validate the training settings now (file existence is checked before training starts)
    TrainConfig.from_mapping({**cfg.train, "out": "x", "variant": cfg.variants[0]}, source=f"{p} [train]").check()
    from alignkit.inputs.taskdata import check_zero_shot_protocol  # v2: never evaluate on the training split

    check_zero_shot_protocol(cfg.train.get("train_file", ""), cfg.eval.get("split", "test"), str(p))
    if not cfg.eval.get("data") or not Path(cfg.eval["data"]).is_dir():
        raise AlignkitError(f"{p}: [eval] data = {cfg.eval.get('data')!r} is not a folder; point it at the folder "
                            "with test-{lang}.tsv files")
    return cfg


def check_study(cfg: StudyConfig, where: str) -> None:
    """Seeds, contrasts and outcomes against the variants (one-line errors naming ``where``)."""
    from alignkit.study.outcomes import check_outcomes, parse_contrast

    if isinstance(cfg.seeds, dict):
        bad = [k for k in cfg.seeds if k != "default" and k not in cfg.variants]
        if bad:
            raise AlignkitError(f"{where}: seeds names {bad[0]!r}, which is not among the variants {cfg.variants}; "
                                "use a variant name or 'default'")
    for v in cfg.variants:
        seeds = cfg.seeds_for(v)
        if len(seeds) < 1 or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
            raise AlignkitError(f"{where}: the seeds of {v} ({seeds}) must be distinct integers; set seeds to a list "
                                "or a table with an entry for it or 'default'")
    for v in cfg.run_first:
        if v not in cfg.variants:
            raise AlignkitError(f"{where}: run_first names {v!r}, which is not among the variants {cfg.variants}")
    for c in cfg.contrasts:
        v, b = parse_contrast(c, where)
        if v not in cfg.variants or b not in cfg.variants:
            raise AlignkitError(f"{where}: contrast {c!r} names a variant not among {cfg.variants}")
    check_outcomes(cfg.outcomes, cfg.variants, where)


def _label(variant: str, seed: int) -> str:
    return f"{variant}/seed{seed}"


RUNS_DIR = "runs"


def run_dir(out: str | os.PathLike, label: str) -> Path:
    """Where a run's small outputs live: ``<out>/runs/<variant>/seed<k>`` (``runs/base``,
    ``runs/base+probe`` for the references)."""
    return Path(out) / RUNS_DIR / label
