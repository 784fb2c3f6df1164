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
    seeds = [1, 2, 3]
    pairs = ["en-sw", "en-tr"]           # lexicon pairs scored (BLS, retrieval, cluster gap)
    layers = "all"
    pool_size = 2000
    tatoeba = "../shared/data/tatoeba"   # optional
    tatoeba_langs = ["sw", "ur"]         # optional; default: the non-English side of each pair
    baselines = ["rt", "ft"]
    train_workers = 2                    # CPU: parallel single-thread training runs (default: cores, <= 4)
    [train]                              # any `alignkit train` setting (TrainConfig)
    train_file = "../shared/data/xnli/dev-en.tsv"
    max_steps = 60
    [eval]
    data = "../shared/data/xnli"
    langs = ["en", "sw", "ur"]
    max_rows = 1000

Relative paths in the config are resolved against the config file's directory.
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
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    pairs: list[str] = field(default_factory=lambda: ["en-sw"])
    layers: str = "all"
    pool_size: int = 2000
    tatoeba: str | None = None
    tatoeba_langs: list[str] = field(default_factory=list)  # default: the non-English side of each pair
    baselines: list[str] = field(default_factory=lambda: ["rt", "ft"])
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


def load_study_config(path: str | os.PathLike) -> StudyConfig:
    """Read and validate a study TOML (unknown keys are errors, not silently ignored)."""
    from alignkit.train.config import TrainConfig, load_toml
    from alignkit.train.objectives import VARIANTS

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
    unknown = set(raw) - {"study", "train", "eval"}
    if unknown:
        raise AlignkitError(f"{p}: unknown section(s) {', '.join(sorted(unknown))}; use [study], [train], [eval]")
    names = set(StudyConfig.__dataclass_fields__) - {"train", "eval"}
    bad = set(study) - names
    if bad:
        raise AlignkitError(f"{p}: unknown [study] key(s) {', '.join(sorted(bad))}; known: {', '.join(sorted(names))}")
    cfg = StudyConfig(**{k: resolve(v) for k, v in study.items()})
    cfg.train = {k: resolve(v) for k, v in raw.get("train", {}).items()}
    cfg.eval = {k: resolve(v) for k, v in raw.get("eval", {}).items()}
    bad_eval = set(cfg.eval) - {"data", "langs", "max_rows", "split", "batch_size"}
    if bad_eval:
        raise AlignkitError(f"{p}: unknown [eval] key(s) {', '.join(sorted(bad_eval))}")
    for v in cfg.variants:
        if v not in VARIANTS:
            raise AlignkitError(f"{p}: unknown variant {v!r}; use {', '.join(VARIANTS)}")
    for b in cfg.baselines:
        if b not in cfg.variants:
            raise AlignkitError(f"{p}: baseline {b!r} is not among the variants {cfg.variants}")
    if len(cfg.seeds) < 1 or len(set(cfg.seeds)) != len(cfg.seeds):
        raise AlignkitError(f"{p}: seeds {cfg.seeds} must be distinct integers (the study asks for >= 3)")
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


def _label(variant: str, seed: int) -> str:
    return f"{variant}/seed{seed}"
