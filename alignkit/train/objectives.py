"""Training objectives of SPEC §3, one registry by name, combined by weights.

Notation (SPEC §3): W is the input word-embedding table, W⁰ a frozen copy taken before
training, E = W[x] the embeddings of an English batch, f the encoder, g the classifier
head, y the labels, ρ the RMS norm of the rows of W⁰.

The maths lives in pure functions on tensors (``task_loss``, ``sample_in_ball``,
``project_to_ball``, ``pgd_perturbation``, ``robust_loss``, ``embedding_push_loss``,
``attention_pull_loss``, ``info_nce_loss``, ``variance_penalty``) that the unit tests pin
to known values. :class:`StepContext` runs each forward pass an objective asks for once
per step (clean, VME-perturbed, reference attention with W⁰, code-switched), and the
registry :data:`OBJECTIVES` maps a name to the function that turns those passes into a
loss. :data:`VARIANTS` names the combinations the issue asks for.

The published paper (Ding et al. 2022) gives no code; these formulas are alignkit's own
reading of its text (SPEC §3), documented with the choices made in docs/method.md.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alignkit.errors import AlignkitError

# ----------------------------------------------------------------------------- pure maths


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``hidden`` [B, T, H] over positions where ``mask`` [B, T] is true -> [B, H].

    A row with no true position pools to zeros (never NaN).
    """
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def rms_row_norm(table: Tensor) -> float:
    """ρ = sqrt(mean over rows of ‖row‖²) of an embedding table [V, H]."""
    t = table.detach().float()
    return float(torch.sqrt((t * t).sum(1).mean()))


def task_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """L_task = mean cross-entropy of ``logits`` [B, C] against ``labels`` [B]."""
    return F.cross_entropy(logits.float(), labels)


def project_to_ball(delta: Tensor, radius: float) -> Tensor:
    """Scale each vector of ``delta`` [..., H] whose L2 norm exceeds ``radius`` back onto the sphere."""
    norm = delta.norm(dim=-1, keepdim=True)
    return delta * torch.clamp(radius / norm.clamp_min(1e-12), max=1.0)


def sample_in_ball(shape: Sequence[int], radius: float, mask: Tensor | None = None, *,
                   generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> Tensor:
    """δ [..., H] drawn uniformly from the L2 ball of ``radius`` per vector (randomized smoothing).

    Direction: a normalised Gaussian; radius: ``radius · U^(1/H)``. Positions where
    ``mask`` [...] is false get δ = 0 (special tokens and padding are never perturbed).
    """
    g = torch.randn(*shape, generator=generator, device=device, dtype=dtype)
    g = g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    u = torch.rand(*shape[:-1], 1, generator=generator, device=device, dtype=dtype)
    delta = g * (radius * u.pow(1.0 / shape[-1]))
    if mask is not None:
        delta = delta * mask.unsqueeze(-1).to(dtype)
    return delta


def pgd_perturbation(loss_of_delta: Callable[[Tensor], Tensor], init: Tensor, radius: float, steps: int,
                     step_size: float, mask: Tensor | None = None) -> Tensor:
    """k steps of projected gradient *ascent* on ``loss_of_delta`` inside per-token L2 balls.

    ``init`` [B, T, H] is the starting δ (e.g. a random point in the ball); each step moves
    every token's δ by ``step_size`` along its normalised gradient and projects back onto
    the ball of ``radius``; masked-out positions stay 0. Returns δ detached.
    """
    keep = None if mask is None else mask.unsqueeze(-1).to(init.dtype)
    delta = init.detach()
    for _ in range(steps):
        delta = delta.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_of_delta(delta), delta)
        grad = grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        delta = project_to_ball(delta.detach() + step_size * grad, radius)
        if keep is not None:
            delta = delta * keep
    return delta.detach()


def robust_loss(logits_perturbed: Tensor, labels: Tensor, logits_clean: Tensor | None = None,
                kl_weight: float = 0.0) -> Tensor:
    """L_RT = CE(g(f(Ẽ)), y) [+ kl_weight · KL(p(E) ‖ p(Ẽ))], mean over the batch.

    ``logits_*`` are [B, C]. The KL term keeps its gradient through both distributions.
    """
    loss = task_loss(logits_perturbed, labels)
    if kl_weight and logits_clean is not None:
        log_p = F.log_softmax(logits_clean.float(), dim=-1)
        log_q = F.log_softmax(logits_perturbed.float(), dim=-1)
        loss = loss + kl_weight * (log_p.exp() * (log_p - log_q)).sum(-1).mean()
    return loss


def embedding_push_loss(rows: Tensor, anchors: Tensor, margin: float, rho: float,
                        start: Tensor | None = None) -> Tensor:
    """L_EPT = mean over rows of relu(margin − (‖W[t] − a_t‖ / ρ − s_t)).

    ``rows`` [n, H] are the current table rows W[t]; ``anchors`` [n, H] (or [H], one anchor
    for all) are a_t; ``start`` [n] (ρ units, default 0) is s_t = ‖W⁰[t] − a_t‖ / ρ, the
    distance a row starts at, so the margin is how much FURTHER from its anchor a row must
    get (SPEC §3 v2, docs/method.md: with the centroid anchor every row of a real model
    already starts beyond m = 0.3). With s = 0 it is SPEC §3's relu(m − d). Zero once every
    row is ``margin``·ρ further than it started; below that its gradient points from the
    anchor to the row, so descent pushes away.
    """
    if rows.numel() == 0:
        return rows.sum() * 0.0
    dist = (rows.float() - anchors.float()).norm(dim=-1) / rho
    if start is not None:
        dist = dist - start.float()
    return F.relu(margin - dist).mean()


def push_distance(rows: Tensor, anchors: Tensor, rho: float, start: Tensor | None = None) -> Tensor:
    """How far each row has been pushed: ‖W[t] − a_t‖ / ρ − s_t -> [n] (the quantity EPT's margin bounds)."""
    dist = (rows.float() - anchors.float()).norm(dim=-1) / rho
    return dist if start is None else dist - start.float()


def attention_pull_loss(reference: Sequence[Tensor], current: Sequence[Tensor], query_mask: Tensor) -> Tensor:
    """L_APT = mean over layers, heads and real query positions of KL(A⁰ ‖ A).

    ``reference`` / ``current``: one [B, heads, T, T] tensor per chosen layer, each row a
    distribution over keys (padded keys have probability 0); ``query_mask`` [B, T] marks the
    real (non-padding) query positions. Zero exactly when A = A⁰.
    """
    if len(reference) != len(current) or not reference:
        raise ValueError("attention_pull_loss needs the same non-empty list of layers on both sides")
    tiny = 1e-30
    w = query_mask.float().unsqueeze(1)  # [B, 1, T]
    total = current[0].new_zeros((), dtype=torch.float32)
    for a0, a in zip(reference, current):
        a0 = a0.float().detach()
        a = a.float()
        kl = (a0 * (a0.clamp_min(tiny).log() - a.clamp_min(tiny).log())).sum(-1)  # [B, heads, T]
        total = total + (kl * w).sum() / (w.sum() * a.shape[1]).clamp_min(1.0)
    return total / len(reference)


def _view_similarities(anchor: Tensor, positive: Tensor) -> Tensor:
    z = F.normalize(torch.cat([anchor, positive]).float(), dim=-1)  # [2B, H]
    return z @ z.T


def info_nce_loss(anchor: Tensor, positive: Tensor, tau: float = 0.05) -> Tensor:
    """InfoNCE between two views with within-view negatives (NT-Xent), mean over 2B anchors.

    ``anchor``, ``positive`` [B, H]: row i of each is a view of sentence i. For each of the
    2B vectors the positive is its other view; the negatives are the 2B − 2 other vectors
    of both views. Similarities are cosines divided by ``tau``.
    """
    b = anchor.shape[0]
    s = _view_similarities(anchor, positive) / tau
    s = s.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=s.device), float("-inf"))
    idx = torch.arange(b, device=s.device)
    target = torch.cat([idx + b, idx])
    return F.cross_entropy(s, target)


def negative_similarities(anchor: Tensor, positive: Tensor) -> Tensor:
    """Cosines of every unordered negative pair of :func:`info_nce_loss` -> [(2B)(2B−2)/2]."""
    b = anchor.shape[0]
    s = _view_similarities(anchor, positive)
    i, j = torch.triu_indices(2 * b, 2 * b, offset=1, device=s.device)
    neg = (j - i) != b  # drop the B positive pairs (i, i + B)
    return s[i[neg], j[neg]]


def variance_penalty(anchor: Tensor, positive: Tensor, delta: float = 0.0) -> Tensor:
    """L_VRN = mean over negative pairs of (s − δ)², s their cosine (Lee et al. 2025)."""
    s = negative_similarities(anchor, positive)
    if s.numel() == 0:
        return anchor.sum() * 0.0
    return ((s - delta) ** 2).mean()


# ----------------------------------------------------------------------------- model + batch


@dataclass
class PairBatch:
    """A padded batch of sentence pairs.

    ``input_ids``, ``attention_mask``, ``token_type_ids`` (or None) and ``content_mask``
    (true on real, non-special tokens) are [B, T]; ``labels`` [B]. ``switched`` is the
    code-switched view of the same examples (same labels) when CL uses it.
    """

    input_ids: Tensor
    attention_mask: Tensor
    token_type_ids: Tensor | None
    content_mask: Tensor
    labels: Tensor
    switched: "PairBatch | None" = None
    augmented: "PairBatch | None" = None  # RS-DA: k copies stacked copy-major, [k·B, T]

    def to(self, device) -> "PairBatch":
        return PairBatch(
            self.input_ids.to(device), self.attention_mask.to(device),
            None if self.token_type_ids is None else self.token_type_ids.to(device),
            self.content_mask.to(device), self.labels.to(device),
            None if self.switched is None else self.switched.to(device),
            None if self.augmented is None else self.augmented.to(device))

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass
class PassOutput:
    """One forward pass: ``logits`` [B, C], ``sentence`` [B, H] (mean-pooled at the CL layer,
    or None), ``attentions`` (one [B, heads, T, T] per encoder layer, or None)."""

    logits: Tensor | None
    sentence: Tensor | None
    attentions: tuple[Tensor, ...] | None


class PairClassifier(nn.Module):
    """Encoder f + head g: logits = Linear(dropout(mean over non-special tokens of the last layer)).

    The head reads the same mean-pooled sentence vector alignkit scores (SPEC §2), so the
    fine-tuned encoder alone stays a sentence encoder; the checkpoint is the encoder's
    ``save_pretrained`` directory plus ``classifier_head.safetensors``.
    """

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float | None = None):
        super().__init__()
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        p = dropout if dropout is not None else float(getattr(encoder.config, "hidden_dropout_prob", 0.1))
        self.dropout = nn.Dropout(p)
        self.head = nn.Linear(hidden, num_labels)

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.encoder.get_input_embeddings()

    def run(self, embeds: Tensor, batch: PairBatch, *, attentions: bool = False,
            sentence_layer: int | None = None, with_head: bool = True) -> PassOutput:
        """Encode word embeddings ``embeds`` [B, T, H] of ``batch`` (positions/types added by the model)."""
        kwargs = {}
        if batch.token_type_ids is not None:
            kwargs["token_type_ids"] = batch.token_type_ids
        need_hidden = sentence_layer is not None and sentence_layer != -1
        out = self.encoder(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                           output_attentions=attentions, output_hidden_states=need_hidden, **kwargs)
        last = out.last_hidden_state
        pooled = mean_pool(last, batch.content_mask)
        sentence = None
        if sentence_layer is not None:
            sentence = pooled if not need_hidden else mean_pool(out.hidden_states[sentence_layer], batch.content_mask)
        logits = self.head(self.dropout(pooled)) if with_head else None
        return PassOutput(logits, sentence, tuple(out.attentions) if attentions else None)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None,
                content_mask: Tensor | None = None, labels: Tensor | None = None):
        """HF-style call (used for inference and by the HF ``Trainer`` benchmark): -> dict(logits[, loss])."""
        cm = attention_mask.bool() if content_mask is None else content_mask
        batch = PairBatch(input_ids, attention_mask, token_type_ids, cm,
                          labels if labels is not None else input_ids.new_zeros(input_ids.shape[0]))
        logits = self.run(self.word_embeddings(input_ids), batch).logits
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = task_loss(logits, labels)
        return out


class TableView:
    """How one optimisation step reads the word-embedding table W.

    * dense: ``TableView(weight)`` -- lookups go through ``weight`` (gradient, if any, is a
      dense [V, H] tensor on the parameter).
    * sparse: ``TableView.sparse(weight, ids)`` -- the rows of the step's unique ids are
      copied into a small leaf tensor ``rows`` [n, H]; lookups index it, so backward fills
      only ``rows.grad`` and the optimiser updates only those rows (CPU path, SPEC §4).
    """

    def __init__(self, weight: Tensor, rows: Tensor | None = None, row_ids: Tensor | None = None):
        self.weight = weight
        self.rows = rows
        self.row_ids = row_ids

    @classmethod
    def sparse(cls, weight: Tensor, ids: Iterable[Tensor]) -> "TableView":
        row_ids = torch.unique(torch.cat([t.reshape(-1) for t in ids]))  # sorted
        rows = weight.detach()[row_ids].clone().requires_grad_(True)
        return cls(weight, rows, row_ids)

    def __call__(self, ids: Tensor) -> Tensor:
        """W[ids] -> [*ids.shape, H]."""
        if self.rows is None:
            return F.embedding(ids, self.weight)
        pos = torch.searchsorted(self.row_ids, ids.reshape(-1)).reshape(ids.shape)
        return self.rows[pos]


class Anchors:
    """What is frozen before training: W⁰, ρ, the centroid anchor and the ``original`` offsets.

    ``table0`` [V, H] is a detached copy of W; ``centroid_ids`` are the frequent English
    token ids whose mean W⁰ row is the ``centroid`` anchor of EPT. With ``keep_copy=False``
    only ρ and the centroid are kept (objectives that never read W⁰ rows save the copy).

    The ``original`` anchor is a_t = W⁰[t] − ξ_t with a tiny seeded random offset ξ_t (norm
    ``offset_scale``·ρ, a Gaussian direction fixed by (``offset_seed``, t)), so at W = W⁰ a
    row already has a direction to be pushed in (‖W[t] − W⁰[t]‖ has no gradient at 0).
    The model itself is not changed.
    """

    def __init__(self, table: Tensor, centroid_ids: Tensor | None = None, keep_copy: bool = True,
                 offset_seed: int = 0, offset_scale: float = 1e-3):
        self.table0 = table.detach().clone() if keep_copy else None
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


# ----------------------------------------------------------------------------- configuration


@dataclass
class ObjectiveConfig:
    """Hyper-parameters of the objectives (defaults documented in docs/method.md)."""

    epsilon: float = 0.3                 # VME ball radius, in units of ρ
    perturbation: str = "random"         # random | adversarial
    pgd_steps: int = 1                   # adversarial: PGD steps k
    pgd_step_size: float | None = None   # in units of ρ; None -> 2.5·ε/k
    rt_kl: float = 0.0                   # weight of KL(p(E) ‖ p(Ẽ)) inside L_RT
    ept_margin: float = 0.3              # m, in units of ρ
    ept_anchor: str = "centroid"         # centroid | original (v2 default: centroid)
    ept_offset: float = 1e-3             # original anchor: start offset ξ, in units of ρ
    ept_centroid_tokens: int = 1000      # centroid: most frequent English train tokens
    apt_layers: tuple[int, ...] | None = None  # 1-based encoder layers; None = all
    cl_view: str = "vme"                 # vme | codeswitch
    cl_layer: int = -1                   # hidden_states index of the pooled sentence (-1 = last)
    cl_tau: float = 0.05
    vrn_delta: float = 0.0
    codeswitch_lexicons: tuple[str, ...] = ("en-sw",)
    codeswitch_prob: float = 0.3
    rsda_copies: int = 3                 # RS-DA augmented copies per example (Huang et al.'s XNLI value)
    wordnet_dir: str | None = None       # None -> $ALIGNKIT_WORDNET_DIR or /usr/share/wordnet

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
        if "cl_rsda" in self.needs and view == "clean":  # RS-DA CL: the clean pass is the anchor view
            return self.cfg.cl_layer
        return self.cfg.cl_layer if "cl" in self.needs and view in ("clean", self.cfg.cl_view) else None

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
            return self.model.run(self.embeds, self.batch, attentions="apt" in self.needs,
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
        layer = self.cfg.cl_layer if "cl_rsda" in self.needs else None
        return self._get("augmented", lambda: self.model.run(self.table(aug.input_ids), aug, sentence_layer=layer))

    @property
    def positive(self) -> PassOutput:
        return self.perturbed if self.cfg.cl_view == "vme" else self.switched

    def layer_indices(self) -> list[int]:
        """0-based indices into the attentions tuple of the APT layers."""
        n = len(self.clean.attentions)
        layers = self.cfg.apt_layers or tuple(range(1, n + 1))
        bad = [l for l in layers if not 1 <= l <= n]
        if bad:
            raise AlignkitError(f"APT layers {bad} are out of range; the encoder has layers 1..{n}")
        return [l - 1 for l in layers]


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Objective:
    """A registered objective: ``loss(ctx) -> scalar``; ``needs`` names the extra passes."""

    name: str
    loss: Callable[[StepContext], Tensor]
    summary: str
    needs: frozenset[str] = field(default_factory=frozenset)


OBJECTIVES: dict[str, Objective] = {}


def register_objective(name: str, summary: str, needs: Iterable[str] = ()):
    """Decorator: add ``fn(ctx) -> loss`` to :data:`OBJECTIVES` under ``name``."""
    def deco(fn: Callable[[StepContext], Tensor]):
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} registered twice")
        OBJECTIVES[name] = Objective(name, fn, summary, frozenset(needs))
        return fn
    return deco


@register_objective("task", "CE(g(f(E)), y)")
def _task(ctx: StepContext) -> Tensor:
    return task_loss(ctx.clean.logits, ctx.batch.labels)


@register_objective("rt", "CE(g(f(E + δ)), y) [+ KL(p(E) ‖ p(E + δ))], δ in the VME ball", needs={"vme"})
def _rt(ctx: StepContext) -> Tensor:
    clean = ctx.clean.logits if ctx.cfg.rt_kl else None
    return robust_loss(ctx.perturbed.logits, ctx.batch.labels, clean, ctx.cfg.rt_kl)


@register_objective("ept", "mean over batch tokens of relu(m − (‖W[t] − a_t‖ − ‖W⁰[t] − a_t‖)/ρ)")
def _ept(ctx: StepContext) -> Tensor:
    ids = torch.unique(ctx.batch.input_ids[ctx.batch.content_mask])
    rows = ctx.table(ids)
    anchors, start = ctx.anchors.ept_targets(ids, ctx.cfg.ept_anchor)
    return embedding_push_loss(rows, anchors.to(rows.device), ctx.cfg.ept_margin, ctx.anchors.rho,
                               start.to(rows.device))


@register_objective("apt", "mean over layers, heads, queries of KL(A⁰ ‖ A)", needs={"attentions"})
def _apt(ctx: StepContext) -> Tensor:
    idx = ctx.layer_indices()
    cur = [ctx.clean.attentions[i] for i in idx]
    ref = [ctx.reference_attentions[i] for i in idx]
    return attention_pull_loss(ref, cur, ctx.batch.attention_mask)


@register_objective("cl", "InfoNCE(anchor view, positive view), within-view negatives", needs={"cl"})
def _cl(ctx: StepContext) -> Tensor:
    return info_nce_loss(ctx.clean.sentence, ctx.positive.sentence, ctx.cfg.cl_tau)


@register_objective("vrn", "mean over negative pairs of (s − δ)²", needs={"cl"})
def _vrn(ctx: StepContext) -> Tensor:
    return variance_penalty(ctx.clean.sentence, ctx.positive.sentence, ctx.cfg.vrn_delta)


@register_objective("rsda", "mean CE(g(f(E_aug)), y) over the RS-DA synonym copies", needs={"rsda"})
def _rsda(ctx: StepContext) -> Tensor:
    return task_loss(ctx.augmented.logits, ctx.batch.augmented.labels)


@register_objective("cl_rsda", "InfoNCE(clean view, first RS-DA copy), within-view negatives",
                    needs={"rsda", "cl_rsda"})
def _cl_rsda(ctx: StepContext) -> Tensor:
    b = len(ctx.batch)
    return info_nce_loss(ctx.clean.sentence, ctx.augmented.sentence[:b], ctx.cfg.cl_tau)


# ----------------------------------------------------------------------------- variants

VARIANTS: dict[str, tuple[str, ...]] = {
    "ft": ("task",),
    "rt": ("task", "rt"),
    "rt+cl": ("task", "rt", "cl"),
    "ept+apt+rt": ("task", "ept", "apt", "rt"),
    "ept+apt+rt+cl": ("task", "ept", "apt", "rt", "cl"),
    "rsda": ("task", "rsda"),
    "rsda+cl": ("task", "rsda", "cl_rsda"),
}
DEFAULT_WEIGHTS: dict[str, float] = {"task": 1.0, "rt": 1.0, "ept": 1.0, "apt": 1.0, "cl": 1.0, "vrn": 0.1,
                                   "rsda": 1.0, "cl_rsda": 1.0}
ORDER = ("task", "rt", "ept", "apt", "cl", "vrn", "rsda", "cl_rsda")


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


def needs_of(weights: Mapping[str, float]) -> set[str]:
    """Names of the objectives plus the passes they need (``attentions``, ``cl``, ``vme``)."""
    out = set(weights)
    for n in weights:
        out |= set(OBJECTIVES[n].needs)
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
        self.needs = needs_of(weights)

    def forward(self, batch: PairBatch, table: TableView | None = None):
        table = table if table is not None else TableView(self.classifier.word_embeddings.weight)
        ctx = StepContext(self.classifier, batch, table, self.anchors, self.cfg, self.needs)
        return compute_losses(ctx, self.weights)


def _attention_dropouts(model: nn.Module) -> list[nn.Dropout]:
    """The dropout modules on attention probabilities of a BERT-family encoder
    (``*.attention.self.dropout``, DistilBERT's ``*.attention.dropout``)."""
    return [mod for name, mod in model.named_modules() if isinstance(mod, nn.Dropout)
            and (name.endswith("attention.self.dropout") or name.endswith("attention.dropout"))]


def set_attention_dropout(model: nn.Module, p: float) -> int:
    """Set the dropout on attention probabilities to ``p``; returns how many modules changed.

    One value for every variant of a study (SPEC §3 v2): APT needs 0 (it compares the
    attention maps as distributions), so the other variants must run with the same value,
    or "APT" would also mean "no attention dropout".
    """
    mods = _attention_dropouts(model)
    for mod in mods:
        mod.p = float(p)
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "attention_probs_dropout_prob"):
        cfg.attention_probs_dropout_prob = float(p)
    return len(mods)


def attention_dropout_of(model: nn.Module) -> float:
    """The largest attention-probability dropout of ``model`` (0 when it has none)."""
    return max((m.p for m in _attention_dropouts(model)), default=0.0)


def disable_attention_dropout(model: nn.Module) -> int:
    """:func:`set_attention_dropout` with 0."""
    return set_attention_dropout(model, 0.0)


# ----------------------------------------------------------------------------- code-switching

_WORD = re.compile(r"\w+(?:['’]\w+)*", re.UNICODE)


class CodeSwitcher:
    """Replace English words by translations from the TRAIN split of bilingual lexicons.

    ``table`` maps a lower-cased English word to its candidate translations. Each word of
    a sentence found in the table is replaced with probability ``prob`` by one of them,
    chosen with the caller's ``random.Random`` (so views are reproducible per example).
    """

    def __init__(self, table: Mapping[str, Sequence[str]], prob: float, sources: tuple[str, ...] = ()):
        self.table = {k: sorted(set(v)) for k, v in table.items() if v}
        self.prob = float(prob)
        self.sources = sources

    @classmethod
    def from_lexicons(cls, pairs: Sequence[str], prob: float, split: str = "train") -> "CodeSwitcher":
        """Build from shipped lexicons (``en-sw``, ...), TRAIN split only.

        Any split other than ``train`` is refused. As a second guard, every source word of
        the pair's test split is dropped and no test-split translation is ever inserted.
        """
        if split != "train":
            raise AlignkitError(f"code-switching may only use the train split of a lexicon, not {split!r}; "
                                "test-split words must stay unseen in training")
        from alignkit.inputs import lexicons

        table: dict[str, set[str]] = {}
        names = []
        for pair in pairs:
            p = str(pair).strip()
            if not re.fullmatch(r"[a-z]{2,3}-[a-z]{2,3}", p.lower()):
                raise AlignkitError(f"code-switch lexicon {p!r} must be a shipped language pair like en-sw "
                                    "(a file's split cannot be checked)")
            src, _tgt = lexicons.parse_pair(p)
            if src != "en":
                raise AlignkitError(f"code-switch lexicon {p} must translate from English (en-xx)")
            train = lexicons.load_lexicon(p, split="train")
            try:
                test = lexicons.load_lexicon(p, split="test")
                banned_src = {s.lower() for s in test.sources()}
                banned_tgt = set(test.targets())
            except AlignkitError:
                banned_src, banned_tgt = set(), set()
            for s, t in train.pairs:
                if s.lower() in banned_src or t in banned_tgt:
                    continue
                table.setdefault(s.lower(), set()).add(t)
            names.append(train.name)
        if not table:
            raise AlignkitError(f"code-switch lexicons {', '.join(pairs)} have no usable train pairs")
        return cls({k: sorted(v) for k, v in table.items()}, prob, tuple(names))

    def switch(self, text: str, rng: random.Random) -> str:
        """``text`` with some words replaced by translations (punctuation and spacing kept)."""
        def repl(m: re.Match) -> str:
            word = m.group(0)
            cands = self.table.get(word.lower())
            if cands and rng.random() < self.prob:
                return cands[rng.randrange(len(cands))]
            return word
        return _WORD.sub(repl, text)


def example_rng(seed: int, epoch: int, index: int) -> random.Random:
    """A ``random.Random`` fixed by (seed, epoch, example index): views are reproducible and resumable."""
    return random.Random(f"{seed}:{epoch}:{index}")


__all__ = [
    "mean_pool", "rms_row_norm", "task_loss", "project_to_ball", "sample_in_ball", "pgd_perturbation",
    "robust_loss", "embedding_push_loss", "push_distance", "attention_pull_loss", "info_nce_loss", "negative_similarities",
    "variance_penalty", "PairBatch", "PassOutput", "PairClassifier", "TableView", "Anchors",
    "ObjectiveConfig", "StepContext", "Objective", "OBJECTIVES", "register_objective", "VARIANTS",
    "DEFAULT_WEIGHTS", "resolve_variant", "needs_of", "compute_losses", "TrainingObjective",
    "disable_attention_dropout", "set_attention_dropout", "attention_dropout_of", "CodeSwitcher", "example_rng",
]
