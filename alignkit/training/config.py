"""What defines a training run: :class:`ObjectiveConfig`, :class:`TrainConfig`, TOML loading.

Every field carries its command-line help in ``dataclasses.field(metadata=...)`` (keys
``help``, ``flag``, ``panel``, ``cli``, ``parse``; see :mod:`alignkit.cli.options`), so the
``alignkit train`` options, their defaults and their help are written once, here.
:func:`load_train_config` merges a TOML file with explicitly given settings, the one place
the CLI and :mod:`alignkit.study` turn settings into a :class:`TrainConfig`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from alignkit.errors import AlignkitError
from alignkit.inputs.taskdata import check_zero_shot_protocol, get_task, zero_shot_split
from alignkit.inputs.text import comma_list

EMBEDDING_MODES = ("auto", "sparse", "dense", "frozen")
# Config fields that do not change the trained weights (a resumed run may change them).
NON_IDENTITY = {"out", "eval_data", "eval_langs", "eval_split", "eval_max_rows", "log_every",
                "keep_state", "save_every", "device", "eval_batch_size"}
_OBJ = "Objectives"
_RUN = "Run"


def _opt(default: Any = None, help: str = "", *, factory: Any = None, **meta: Any) -> Any:
    """A dataclass field with its CLI help (and optional flag / panel / cli / parse) as metadata."""
    md = {"help": help, **meta}
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(default=default, metadata=md)


def parse_weights(text: str) -> dict[str, float]:
    """``"rt=1,cl=0.5"`` -> {"rt": 1.0, "cl": 0.5}."""
    out: dict[str, float] = {}
    for part in comma_list(text):
        name, eq, val = part.partition("=")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            raise AlignkitError(f"bad objective weight {part!r}; write name=value, e.g. cl=0.5") from None
        if not eq:
            raise AlignkitError(f"bad objective weight {part!r}; write name=value, e.g. cl=0.5")
    return out


def _int_tuple(value: Any) -> tuple[int, ...]:
    parts = comma_list(value)
    try:
        return tuple(int(x) for x in parts)
    except ValueError:
        raise AlignkitError(f"bad layer list {value!r}; write 1-based layer numbers, e.g. 1,2,3") from None


@dataclass
class ObjectiveConfig:
    """Hyper-parameters of the objectives (defaults documented in docs/method.md)."""

    epsilon: float = _opt(0.3, "VME ball radius in units of rho.", panel=_OBJ)
    perturbation: str = _opt("random", "random | adversarial (PGD).", panel=_OBJ)
    pgd_steps: int = _opt(1, "PGD steps k.", panel=_OBJ)
    pgd_step_size: float | None = _opt(None, "PGD step in units of rho (default 2.5*eps/k).", panel=_OBJ)
    rt_kl: float = _opt(0.0, "Weight of KL(p(E)||p(E+delta)) in RT.", panel=_OBJ)
    ept_margin: float = _opt(0.3, "EPT margin m in units of rho.", panel=_OBJ)
    ept_anchor: str = _opt("centroid", "original | centroid.", panel=_OBJ)
    ept_offset: float = _opt(1e-3, "original anchor: start offset xi, in units of rho.", cli=False)
    ept_centroid_tokens: int = _opt(1000, "centroid: most frequent English train tokens.", cli=False)
    apt_layers: tuple[int, ...] | None = _opt(None, "1-based layers for APT, e.g. 1,2,3 (default: all).",
                                              panel=_OBJ, parse=_int_tuple)
    cl_view: str = _opt("vme", "vme | codeswitch (positive view).", panel=_OBJ)
    cl_layer: int = _opt(-1, "hidden_states index pooled for CL (-1 = last).", panel=_OBJ)
    cl_tau: float = _opt(0.05, "InfoNCE temperature.", panel=_OBJ)
    vrn_delta: float = _opt(0.0, "Target similarity of the variance penalty.", panel=_OBJ)
    codeswitch_lexicons: tuple[str, ...] = _opt(("en-sw",), "Shipped pairs whose TRAIN split code-switches, "
                                                "e.g. en-sw,en-ur.", panel=_OBJ)
    codeswitch_prob: float = _opt(0.3, "Per-word switch probability.", panel=_OBJ)
    rsda_copies: int = _opt(3, "RS-DA synonym copies per example (Huang et al.'s XNLI value).", panel=_OBJ)
    wordnet_dir: str | None = _opt(None, "WordNet 3.0 dict dir for RS-DA (default $ALIGNKIT_WORDNET_DIR or "
                                   "/usr/share/wordnet, from apt-get install wordnet-base).", panel=_OBJ)

    def check(self) -> None:
        if self.perturbation not in ("random", "adversarial"):
            raise AlignkitError(f"unknown perturbation {self.perturbation!r}; use random or adversarial")
        if self.ept_anchor not in ("original", "centroid"):
            raise AlignkitError(f"unknown EPT anchor {self.ept_anchor!r}; use original or centroid")
        if self.cl_view not in ("vme", "codeswitch"):
            raise AlignkitError(f"unknown CL positive view {self.cl_view!r}; use vme or codeswitch")
        if not self.ept_margin > 0:
            raise AlignkitError(f"EPT margin {self.ept_margin} must be > 0 (units of rho); pass e.g. --ept-margin 0.3")
        if not self.ept_offset > 0:
            raise AlignkitError(f"EPT start offset {self.ept_offset} must be > 0 (units of rho), e.g. 1e-3")
        if not self.epsilon > 0:
            raise AlignkitError(f"epsilon {self.epsilon} must be > 0; pass e.g. --epsilon 0.3")
        if self.pgd_steps < 1:
            raise AlignkitError(f"pgd steps {self.pgd_steps} must be >= 1")
        if not self.cl_tau > 0:
            raise AlignkitError(f"CL temperature {self.cl_tau} must be > 0")
        if not 0.0 <= self.codeswitch_prob <= 1.0:
            raise AlignkitError(f"codeswitch probability {self.codeswitch_prob} must be in [0, 1]")
        if int(self.rsda_copies) < 1:
            raise AlignkitError(f"rsda copies {self.rsda_copies} must be >= 1; pass e.g. --rsda-copies 3")


@dataclass
class TrainConfig:
    """Everything that defines a training run (CLI options / TOML keys of the same names)."""

    train_file: str = _opt("", "English training TSV (XTREME format).")
    out: str = _opt("", "Checkpoint directory (HF format); re-running resumes.")
    model: str = _opt("bundled:multilingual-e5-small", "Encoder to fine-tune.")
    task: str = _opt("xnli", "xnli | pawsx")
    dev_file: str | None = _opt(None, "English dev TSV for model selection (default: hold out --dev-fraction "
                                "of the training file).")
    dev_fraction: float = _opt(0.1, "Held-out share of the premises when no --dev-file (every premise's "
                               "hypotheses stay on one side).")
    dev_seed: int = _opt(0, "Seed of the premise-grouped dev hold-out (the same for every training seed).")
    max_train_rows: int | None = _opt(None, "Use a seeded subset of the training rows.")
    variant: str = _opt("ft", "ft | rt | rt+cl | ept+apt+rt | ept+apt+rt+cl | rt+tablelr | rsda | rsda+cl | probe (linear "
                        "probe on the frozen encoder) | any '+'-joined objectives.")
    weights: dict[str, float] = _opt(help="Objective weights, e.g. 'rt=1,cl=0.5,vrn=0.1'.", factory=dict,
                                     parse=parse_weights)
    objective: ObjectiveConfig = _opt(help="Objective hyper-parameters.", factory=ObjectiveConfig, cli=False)
    epochs: int = _opt(1, "Epochs.")
    max_steps: int | None = _opt(None, "Optimizer steps (overrides --epochs).")
    lr: float = _opt(2e-5, "AdamW learning rate.")
    embedding_lr: float | None = _opt(None, "Learning rate of the word-embedding table (default: --lr; with "
                                      "EPT the reach rule of docs/method.md).")
    weight_decay: float = _opt(0.0, "AdamW decoupled weight decay.")
    warmup_ratio: float = _opt(0.0, "Share of steps with linear warm-up.")
    batch_size: int = _opt(32, "Effective batch size.")
    grad_accum: int = _opt(1, "Micro-batches per step.")
    max_length: int = _opt(128, "Max tokens per pair.")
    clip: float = _opt(1.0, "Gradient-norm clip (0 = off).")
    dropout: float | None = _opt(None, "Head dropout (default: the encoder's hidden dropout).", cli=False)
    attention_dropout: float | None = _opt(0.0, "Dropout on attention probabilities for every variant "
                                           "(APT needs 0).")
    seed: int = _opt(42, "Random seed.")
    eval_every: int | None = _opt(None, "Evaluate English dev (and save) every N steps (default: each epoch).")
    save_every: int | None = _opt(None, "Also save a resume state every N steps.")
    embeddings: str = _opt("auto", "auto | sparse | dense | frozen (auto: sparse row updates on CPU, dense "
                           "on GPU/DDP).")
    device: str | None = _opt(None, "cpu, cuda, cuda:N (default: cuda if present).")
    eval_data: str | None = _opt(None, "Task data dir for the zero-shot evaluation at the end.", panel=_RUN)
    eval_langs: tuple[str, ...] = _opt((), "Languages to evaluate at the end, e.g. en,sw,ur.", panel=_RUN)
    eval_split: str | None = _opt(None, "Split evaluated at the end (default: the other split than the "
                                  "training file's: test-en -> dev).", panel=_RUN)
    eval_max_rows: int | None = _opt(None, "Seeded subset of each eval file.", panel=_RUN)
    eval_batch_size: int = _opt(64, "Batch size of dev and zero-shot evaluation.", cli=False)
    log_every: int = _opt(10, "Write metrics.jsonl every N steps.", cli=False)
    keep_state: bool = _opt(False, "Keep the last resume state after finishing.", panel=_RUN,
                            flag="--keep-state/--drop-state")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        """Build from flat keys (``-`` or ``_``); objective keys may sit flat or under ``objective``."""
        top = {f.name for f in dataclasses.fields(cls)} - {"objective"}
        obj_names = {f.name for f in dataclasses.fields(ObjectiveConfig)}
        kw: dict[str, Any] = {}
        obj: dict[str, Any] = {}
        flat = dict(values)
        nested = flat.pop("objective", {}) or {}
        if not isinstance(nested, Mapping):
            raise AlignkitError(f"{source}: 'objective' must be a table of objective settings")
        for k, v in list(flat.items()) + [(k, v) for k, v in nested.items()]:
            key = str(k).replace("-", "_")
            if key in top:
                kw[key] = v
            elif key in obj_names:
                obj[key] = v
            else:
                raise AlignkitError(f"{source}: unknown setting {k!r}; known: {', '.join(sorted(top | obj_names))}")
        if kw.get("eval_langs") is not None:
            kw["eval_langs"] = tuple(comma_list(kw["eval_langs"]))
        if isinstance(kw.get("weights"), str):
            kw["weights"] = parse_weights(kw["weights"])
        if obj.get("codeswitch_lexicons") is not None:
            obj["codeswitch_lexicons"] = tuple(comma_list(obj["codeswitch_lexicons"]))
        if obj.get("apt_layers") is not None:
            obj["apt_layers"] = _int_tuple(obj["apt_layers"])
        try:
            return cls(objective=ObjectiveConfig(**obj), **kw)
        except TypeError as e:
            raise AlignkitError(f"{source}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def resolved_eval_split(self) -> str:
        """The split of the end-of-training evaluation: ``eval_split``, or else the split the
        training file is NOT from (v2 protocol: train on test-en -> evaluate on dev-xx)."""
        return zero_shot_split(self.train_file, self.eval_split)

    def identity(self) -> dict[str, Any]:
        """The settings that determine the trained weights (compared on resume)."""
        d = self.to_dict()
        for k in NON_IDENTITY:
            d.pop(k, None)
        return json.loads(json.dumps(d))

    def check(self) -> dict[str, float]:
        """Validate; return the resolved objective weights."""
        from alignkit.training.objectives import resolve_variant

        if not self.train_file:
            raise AlignkitError("no training file; pass --train-file (e.g. .../xnli/dev-en.tsv)")
        if not self.out:
            raise AlignkitError("no output directory; pass --out DIR")
        get_task(self.task)
        self.objective.check()
        if self.embeddings not in EMBEDDING_MODES:
            raise AlignkitError(f"unknown embeddings mode {self.embeddings!r}; use {', '.join(EMBEDDING_MODES)}")
        for name, v in (("batch size", self.batch_size), ("grad accum", self.grad_accum),
                        ("max length", self.max_length), ("epochs", self.epochs)):
            if int(v) < 1:
                raise AlignkitError(f"{name} {v} must be >= 1")
        if self.batch_size % self.grad_accum:
            raise AlignkitError(f"batch size {self.batch_size} is not a multiple of grad accum {self.grad_accum}")
        if self.max_steps is not None and self.max_steps < 1:
            raise AlignkitError(f"max steps {self.max_steps} must be >= 1")
        if not self.lr > 0:
            raise AlignkitError(f"learning rate {self.lr} must be > 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise AlignkitError(f"warmup ratio {self.warmup_ratio} must be in [0, 1)")
        if self.eval_data and not self.eval_langs:
            raise AlignkitError("--eval-data needs --eval-langs (e.g. --eval-langs sw,ur)")
        if self.eval_data:
            check_zero_shot_protocol(self.train_file, self.resolved_eval_split, "training config")
        if self.attention_dropout is not None and not 0.0 <= self.attention_dropout < 1.0:
            raise AlignkitError(f"attention dropout {self.attention_dropout} must be in [0, 1); pass e.g. 0")
        if self.embedding_lr is not None and not self.embedding_lr > 0:
            raise AlignkitError(f"embedding learning rate {self.embedding_lr} must be > 0 (or unset for the EPT rule)")
        if self.variant == "probe":  # linear probe on the frozen encoder: no objective weights
            return {}
        weights = resolve_variant(self.variant, self.weights)
        if self.embeddings == "frozen" and "ept" in weights:
            raise AlignkitError("EPT trains the embedding table; it cannot run with --embeddings frozen")
        return weights


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML config file (AlignkitError on a missing or malformed file)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib  # type: ignore
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise AlignkitError(f"config file {p} does not exist; pass an existing TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise AlignkitError(f"config file {p} is not valid TOML ({e}); fix it") from None


def load_train_config(config_path: str | os.PathLike | None = None,
                      overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of a TOML file (optional) with ``overrides`` on top.

    TOML keys may use ``-`` or ``_`` and sit flat or under an ``[objective]`` table;
    ``overrides`` (e.g. the options given on the command line; None values count as not
    given) win over the file. Unknown keys are an AlignkitError naming the source.
    """
    values: dict[str, Any] = {}
    source = "options"
    if config_path is not None:
        values = load_toml(config_path)
        source = f"config {config_path}"
        nested = values.pop("objective", {}) or {}
        values.update(nested if isinstance(nested, dict) else {"objective": nested})
        values = {str(k).replace("-", "_"): v for k, v in values.items()}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TrainConfig.from_mapping(values, source=source)


__all__ = ["EMBEDDING_MODES", "NON_IDENTITY", "ObjectiveConfig", "TrainConfig", "parse_weights", "load_toml",
           "load_train_config"]
