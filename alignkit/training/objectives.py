"""Training objectives of SPEC §3: one registry by name, the named variants, their combination.

:class:`StepContext` runs each forward pass an objective asks for once per step (clean,
VME-perturbed, reference attention with W⁰, code-switched, RS-DA copies), and the registry
:data:`OBJECTIVES` (an :class:`alignkit.registry.Registry`) maps a name to the function that
turns those passes into a loss; the maths itself is in :mod:`alignkit.training.losses`.
:data:`VARIANTS` names the combinations the study trains; :func:`resolve_variant` turns a
variant (or any ``+``-joined objective names) and weight overrides into weights λ, and
:class:`TrainingObjective` is L = Σ λ_n L_n as one module. :class:`Anchors` holds what EPT and
APT compare against (W⁰, ρ, the centroid). Notation: :mod:`alignkit.training.losses`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

from alignkit.errors import AlignkitError
from alignkit.registry import Registry
from alignkit.training.losses import (attention_pull_loss, embedding_push_loss, info_nce_loss, pgd_perturbation,
                                   rms_row_norm, robust_loss, sample_in_ball, task_loss, variance_penalty)
from alignkit.training.model import PairBatch, PairClassifier, PassOutput, TableView, layer_count_of

if TYPE_CHECKING:  # only an annotation: the config module imports this one to resolve variants
    from alignkit.training.config import ObjectiveConfig


# ----------------------------------------------------------------------------- anchors


class Anchors:
    """What is frozen before training: W⁰, ρ, the centroid anchor and the ``original`` offsets.

    ``table0`` [V, H] is a detached copy of W; ``centroid_ids`` are the frequent English
    token ids whose mean W⁰ row is the ``centroid`` anchor of EPT. With ``keep_copy=False``
    only ρ and the centroid are kept (objectives that never read W⁰ rows save the copy).
    ``params0``: a copy of every starting parameter θ⁰ by name, when ``parameters`` is given.

    The ``original`` anchor is a_t = W⁰[t] − ξ_t with a tiny seeded random offset ξ_t (norm
    ``offset_scale``·ρ, a Gaussian direction fixed by (``offset_seed``, t)), so at W = W⁰ a
    row already has a direction to be pushed in (‖W[t] − W⁰[t]‖ has no gradient at 0).
    The model itself is not changed.
    """

    def __init__(self, table: Tensor, centroid_ids: Tensor | None = None, keep_copy: bool = True,
                 offset_seed: int = 0, offset_scale: float = 1e-3, parameters: Mapping[str, Tensor] | None = None):
        self.table0 = table.detach().clone() if keep_copy else None
        # θ⁰: every starting parameter by name (objectives that need "params0", e.g. L2-SP)
        self.params0 = None if parameters is None else {n: p.detach().clone() for n, p in parameters.items()}
        self.rho = rms_row_norm(table)
        self.centroid = None if centroid_ids is None or len(centroid_ids) == 0 else \
            table.detach()[centroid_ids].float().mean(0).to(table.dtype)
        self.offset_seed, self.offset_scale = int(offset_seed), float(offset_scale)
        self._xi: dict[int, Tensor] = {}

    def offsets(self, ids: Tensor) -> Tensor:
        """ξ_t for rows ``ids`` [n] -> [n, H] float32 on the CPU (each a function of seed and t only)."""
        h = self.table0.shape[1]
        out = []
        for t in ids.tolist():
            xi = self._xi.get(t)
            if xi is None:
                g = torch.Generator().manual_seed(self.offset_seed * 1_000_003 + int(t))
                xi = torch.randn(h, generator=g)
                xi = self.offset_scale * self.rho * xi / xi.norm().clamp_min(1e-12)
                self._xi[t] = xi
            out.append(xi)
        return torch.stack(out) if out else torch.zeros(0, h)

    def ept_targets(self, ids: Tensor, anchor: str) -> tuple[Tensor, Tensor]:
        """EPT's anchors a_t [n, H] (or [H]) and start distances s_t [n] (ρ units) for rows ``ids`` [n]."""
        if self.table0 is None:
            raise RuntimeError("EPT needs the W⁰ copy (Anchors(keep_copy=True))")
        w0 = self.table0[ids].float()
        if anchor == "original":
            a = w0 - self.offsets(ids).to(w0.device)
        else:
            if self.centroid is None:
                raise AlignkitError("EPT with the centroid anchor needs frequent English token ids")
            a = self.centroid.float().to(w0.device)
        return a, (w0 - a).norm(dim=-1) / self.rho



# ----------------------------------------------------------------------------- step context


class StepContext:
    """The forward passes of one (micro-)batch, each run at most once and shared by objectives.

    ``clean``: f(E) with E = W[x]; ``delta`` / ``perturbed``: the VME δ and f(E + δ);
    ``reference_attentions``: attentions of f(W⁰[x]) without gradient, run with the same
    dropout masks as ``clean`` so that A = A⁰ exactly when W = W⁰; ``switched``: f of the
    code-switched view; ``positive``: the CL positive view (perturbed or switched).
    """

    def __init__(self, model: PairClassifier, batch: PairBatch, table: TableView, anchors: Anchors,
                 cfg: ObjectiveConfig, needs: set[str]):
        self.model, self.batch, self.table, self.anchors, self.cfg = model, batch, table, anchors, cfg
        self.needs = needs
        self._cache: dict[str, object] = {}
        self._rng: tuple | None = None

    @property
    def radius(self) -> float:
        return self.cfg.epsilon * self.anchors.rho

    def _sentence_layer(self, view: str) -> int | None:
        if "synonym_views" in self.needs and view == "clean":  # RS-DA CL: the clean pass is the anchor view
            return self.cfg.cl_layer
        return self.cfg.cl_layer if "cl_views" in self.needs and view in ("clean", self.cfg.cl_view) else None

    def _get(self, key: str, make: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def embeds(self) -> Tensor:
        return self._get("embeds", lambda: self.table(self.batch.input_ids))

    @property
    def clean(self) -> PassOutput:
        def make():
            dev = self.batch.input_ids.device
            self._rng = (torch.get_rng_state(), torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None)
            return self.model.run(self.embeds, self.batch, attentions="attentions" in self.needs,
                                  sentence_layer=self._sentence_layer("clean"))
        return self._get("clean", make)

    @property
    def delta(self) -> Tensor:
        def make():
            e = self.embeds
            mask = self.batch.content_mask
            init = sample_in_ball(e.shape, self.radius, mask, device=e.device, dtype=torch.float32)
            if self.cfg.perturbation == "random":
                return init.to(e.dtype)
            step = (self.cfg.pgd_step_size if self.cfg.pgd_step_size is not None
                    else 2.5 * self.cfg.epsilon / self.cfg.pgd_steps) * self.anchors.rho
            base = e.detach()

            def loss_of(d: Tensor) -> Tensor:
                return task_loss(self.model.run(base + d.to(base.dtype), self.batch).logits, self.batch.labels)
            return pgd_perturbation(loss_of, init, self.radius, self.cfg.pgd_steps, step, mask).to(e.dtype)
        return self._get("delta", make)

    @property
    def perturbed(self) -> PassOutput:
        return self._get("perturbed", lambda: self.model.run(
            self.embeds + self.delta, self.batch, sentence_layer=self._sentence_layer("vme")))

    @property
    def reference_attentions(self) -> tuple[Tensor, ...]:
        def make():
            _ = self.clean  # fixes the RNG state the clean pass started from
            dev = self.batch.input_ids.device
            devices = [dev] if dev.type == "cuda" else []
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                torch.set_rng_state(self._rng[0])
                if self._rng[1] is not None:
                    torch.cuda.set_rng_state(self._rng[1], dev)
                e0 = self.anchors.table0[self.batch.input_ids].to(self.embeds.dtype)
                out = self.model.run(e0, self.batch, attentions=True, with_head=False)
            return out.attentions
        return self._get("reference", make)

    @property
    def switched(self) -> PassOutput:
        sw = self.batch.switched
        if sw is None:
            raise RuntimeError("CL with the codeswitch view needs batches built with a CodeSwitcher")
        return self._get("switched", lambda: self.model.run(
            self.table(sw.input_ids), sw, sentence_layer=self._sentence_layer("codeswitch"), with_head=False))

    @property
    def augmented(self) -> PassOutput:
        """f of the RS-DA copies [k·B] (logits; sentence vectors when ``cl_rsda`` is on)."""
        aug = self.batch.augmented
        if aug is None:
            raise RuntimeError("RS-DA needs batches built with a SynonymAugmenter")
        layer = self.cfg.cl_layer if "synonym_views" in self.needs else None
        return self._get("augmented", lambda: self.model.run(self.table(aug.input_ids), aug, sentence_layer=layer))

    @property
    def positive(self) -> PassOutput:
        return self.perturbed if self.cfg.cl_view == "vme" else self.switched

    def layer_indices(self) -> list[int]:
        """0-based indices into the attentions tuple of the APT layers."""
        n = layer_count_of(self.model.encoder)
        layers = self.cfg.apt_layers or tuple(range(1, n + 1))
        bad = [l for l in layers if not 1 <= l <= n]
        if bad:
            raise AlignkitError(f"APT layers {bad} are out of range; the encoder has layers 1..{n}")
        return [l - 1 for l in layers]


# ----------------------------------------------------------------------------- registry


#: What an objective can declare it needs (``register_objective(..., needs=...)``); the
#: trainer provides each one asked for and never asks which objective is running.
NEEDS = {
    "vme": "the VME perturbation δ and the pass f(E + δ)",
    "attentions": "attention maps of the clean pass and of f(W⁰[x]) (eager attention, no attention dropout)",
    "cl_views": "sentence vectors of the clean pass and of the CL positive view",
    "codeswitch": "batches with a code-switched view (a CodeSwitcher built from the lexicons)",
    "synonym_copies": "batches with RS-DA synonym copies (a SynonymAugmenter built from WordNet)",
    "synonym_views": "sentence vectors of the clean pass and of the RS-DA copies",
    "table0": "a copy of the starting embedding table W⁰ (ctx.anchors.table0)",
    "params0": "a copy of every starting parameter θ⁰ by name (ctx.anchors.params0)",
    "push_diagnostics": "the diagnostics track how far each row moved from its EPT anchor",
}


@dataclass(frozen=True)
class Objective:
    """A registered objective: ``loss(ctx) -> scalar``; ``needs`` names what it needs from the
    trainer (keys of :data:`NEEDS`), or is a function of the :class:`ObjectiveConfig` giving them.

    ``table_rate``: ``"model"`` (the table trains at the model's rate, unless ``embedding_lr``
    is set) or ``"reach"`` (the table trains at the reach rule's rate, docs/method.md: EPT, and
    its control ``tablelr``).
    """

    name: str
    loss: Callable[[StepContext], Tensor]
    summary: str
    needs: frozenset[str] | Callable[["ObjectiveConfig"], Iterable[str]] = field(default_factory=frozenset)
    table_rate: str = "model"

    def needs_for(self, cfg: "ObjectiveConfig") -> frozenset[str]:
        """What this objective needs under ``cfg``."""
        return frozenset(self.needs(cfg)) if callable(self.needs) else self.needs


OBJECTIVES: Registry[Objective] = Registry("objective")


def register_objective(name: str, summary: str, needs: Iterable[str] | Callable[["ObjectiveConfig"], Iterable[str]] = (),
                       table_rate: str = "model", *, replace: bool = False):
    """Decorator: add ``fn(ctx) -> loss`` to :data:`OBJECTIVES` under ``name`` (ValueError if
    taken, unless ``replace``). ``needs``: keys of :data:`NEEDS`, or a function of the
    :class:`~alignkit.training.config.ObjectiveConfig` that gives them."""
    if table_rate not in ("model", "reach"):
        raise ValueError(f"table_rate must be 'model' or 'reach', not {table_rate!r}")
    if not callable(needs):
        needs = frozenset(needs)
        unknown = sorted(needs - set(NEEDS))
        if unknown:
            raise ValueError(f"objective {name!r} needs {unknown}, which the trainer does not provide; "
                             f"use some of {', '.join(NEEDS)}")

    def deco(fn: Callable[[StepContext], Tensor]):
        OBJECTIVES.add(name, Objective(name, fn, summary, needs, table_rate), replace=replace)
        return fn
    return deco


def table_at_reach_rate(weights: Mapping[str, float]) -> bool:
    """Whether any objective of ``weights`` trains the embedding table at the reach rule's rate."""
    return any(OBJECTIVES[n].table_rate == "reach" for n in weights)


@register_objective("task", "CE(g(f(E)), y)")
def _task(ctx: StepContext) -> Tensor:
    return task_loss(ctx.clean.logits, ctx.batch.labels)


@register_objective("rt", "CE(g(f(E + δ)), y) [+ KL(p(E) ‖ p(E + δ))], δ in the VME ball", needs={"vme"})
def _rt(ctx: StepContext) -> Tensor:
    clean = ctx.clean.logits if ctx.cfg.rt_kl else None
    return robust_loss(ctx.perturbed.logits, ctx.batch.labels, clean, ctx.cfg.rt_kl)


@register_objective("ept", "mean over batch tokens of relu(m − (‖W[t] − a_t‖ − ‖W⁰[t] − a_t‖)/ρ)",
                    needs={"table0", "push_diagnostics"}, table_rate="reach")
def _ept(ctx: StepContext) -> Tensor:
    ids = torch.unique(ctx.batch.input_ids[ctx.batch.content_mask])
    rows = ctx.table(ids)
    anchors, start = ctx.anchors.ept_targets(ids, ctx.cfg.ept_anchor)
    return embedding_push_loss(rows, anchors.to(rows.device), ctx.cfg.ept_margin, ctx.anchors.rho,
                               start.to(rows.device))


@register_objective("apt", "mean over layers, heads, queries of KL(A⁰ ‖ A)", needs={"attentions", "table0"})
def _apt(ctx: StepContext) -> Tensor:
    idx = ctx.layer_indices()
    cur = [ctx.clean.attentions[i] for i in idx]
    ref = [ctx.reference_attentions[i] for i in idx]
    return attention_pull_loss(ref, cur, ctx.batch.attention_mask)


def _cl_needs(cfg: "ObjectiveConfig") -> set[str]:
    return {"cl_views", "codeswitch"} if cfg.cl_view == "codeswitch" else {"cl_views", "vme"}


@register_objective("cl", "InfoNCE(anchor view, positive view), within-view negatives", needs=_cl_needs)
def _cl(ctx: StepContext) -> Tensor:
    return info_nce_loss(ctx.clean.sentence, ctx.positive.sentence, ctx.cfg.cl_tau)


@register_objective("vrn", "mean over negative pairs of (s − δ)²", needs={"cl_views"})
def _vrn(ctx: StepContext) -> Tensor:
    return variance_penalty(ctx.clean.sentence, ctx.positive.sentence, ctx.cfg.vrn_delta)


@register_objective("rsda", "mean CE(g(f(E_aug)), y) over the RS-DA synonym copies", needs={"synonym_copies"})
def _rsda(ctx: StepContext) -> Tensor:
    return task_loss(ctx.augmented.logits, ctx.batch.augmented.labels)


@register_objective("cl_rsda", "InfoNCE(clean view, first RS-DA copy), within-view negatives",
                    needs={"synonym_copies", "synonym_views"})
def _cl_rsda(ctx: StepContext) -> Tensor:
    b = len(ctx.batch)
    return info_nce_loss(ctx.clean.sentence, ctx.augmented.sentence[:b], ctx.cfg.cl_tau)


@register_objective("tablelr", "no loss (0): the embedding table trains at EPT's reach-rule rate; the control "
                    "that isolates EPT's push from its table learning rate", table_rate="reach")
def _tablelr(ctx: StepContext) -> Tensor:
    return ctx.clean.logits.new_zeros(())


# ----------------------------------------------------------------------------- variants

VARIANTS: dict[str, tuple[str, ...]] = {
    "ft": ("task",),
    "rt": ("task", "rt"),
    "rt+cl": ("task", "rt", "cl"),
    "ept+apt+rt": ("task", "ept", "apt", "rt"),
    "ept+apt+rt+cl": ("task", "ept", "apt", "rt", "cl"),
    "rt+tablelr": ("task", "rt", "tablelr"),
    "rsda": ("task", "rsda"),
    "rsda+cl": ("task", "rsda", "cl_rsda"),
}
DEFAULT_WEIGHTS: dict[str, float] = {"task": 1.0, "rt": 1.0, "ept": 1.0, "apt": 1.0, "cl": 1.0, "vrn": 0.1,
                                   "rsda": 1.0, "cl_rsda": 1.0, "tablelr": 1.0}
ORDER = ("task", "rt", "ept", "apt", "cl", "vrn", "rsda", "cl_rsda", "tablelr")


def resolve_variant(variant: str, weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Objective weights λ for ``variant``: a named variant or any ``+``-joined objective names.

    ``task`` is always included; ``weights`` overrides λ per objective (``vrn`` is added
    only when given a weight, and needs ``cl``). Returns {name: λ} in a fixed order,
    dropping zero weights.
    """
    v = variant.strip().lower()
    if v in VARIANTS:
        names = list(VARIANTS[v])
    else:
        names = ["task"] + [p for p in v.split("+") if p and p not in ("ft", "task")]
        unknown = [p for p in names if p not in OBJECTIVES]
        if unknown or not v:
            raise AlignkitError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)} "
                                f"or a '+'-joined combination of {', '.join(OBJECTIVES)}")
    over = dict(weights or {})
    bad = [k for k in over if k not in OBJECTIVES]
    if bad:
        raise AlignkitError(f"unknown objective weight {bad[0]!r}; objectives are {', '.join(OBJECTIVES)}")
    if "vrn" in over and "vrn" not in names:
        names.append("vrn")
    if "vrn" in names and "cl" not in names:
        raise AlignkitError("the variance penalty (vrn) acts on the CL similarities; use a variant with cl")
    order = list(ORDER) + [n for n in OBJECTIVES if n not in ORDER]  # registered later: weight 1 by default
    out = {n: float(over.get(n, DEFAULT_WEIGHTS.get(n, 1.0))) for n in order if n in names}
    return {n: w for n, w in out.items() if w != 0.0 or n == "task"}


def needs_of(weights: Mapping[str, float], cfg: "ObjectiveConfig") -> set[str]:
    """What the objectives of ``weights`` need under ``cfg`` (keys of :data:`NEEDS`)."""
    out: set[str] = set()
    for n in weights:
        out |= OBJECTIVES[n].needs_for(cfg)
    return out


def compute_losses(ctx: StepContext, weights: Mapping[str, float]) -> tuple[Tensor, dict[str, Tensor]]:
    """L = Σ λ_n L_n over ``weights`` -> (total, {name: L_n detached})."""
    _ = ctx.clean  # the clean pass runs first so APT's reference pass can reuse its RNG state
    parts: dict[str, Tensor] = {}
    total = None
    for name, w in weights.items():
        loss = OBJECTIVES[name].loss(ctx)
        parts[name] = loss.detach()
        total = w * loss if total is None else total + w * loss
    return total, parts


class TrainingObjective(nn.Module):
    """The whole objective as one module, so DDP sees exactly one forward per backward."""

    def __init__(self, classifier: PairClassifier, weights: Mapping[str, float], cfg: ObjectiveConfig,
                 anchors: Anchors):
        super().__init__()
        self.classifier = classifier
        self.weights = dict(weights)
        self.cfg = cfg
        self.anchors = anchors  # plain attribute: W⁰ is not a buffer DDP should broadcast
        self.needs = needs_of(weights, cfg)

    def forward(self, batch: PairBatch, table: TableView | None = None):
        table = table if table is not None else TableView(self.classifier.word_embeddings.weight)
        ctx = StepContext(self.classifier, batch, table, self.anchors, self.cfg, self.needs)
        return compute_losses(ctx, self.weights)



__all__ = ["Anchors", "StepContext", "Objective", "OBJECTIVES", "NEEDS", "register_objective", "VARIANTS",
           "table_at_reach_rate",
           "DEFAULT_WEIGHTS", "resolve_variant", "needs_of", "compute_losses", "TrainingObjective"]
