"""The loss maths of SPEC §3 as pure functions on tensors (no model, no state, no I/O).

Notation (SPEC §3): W is the input word-embedding table, W⁰ a frozen copy taken before
training, E = W[x] the embeddings of an English batch, f the encoder, g the classifier
head, y the labels, ρ the RMS norm of the rows of W⁰. The unit tests pin each function to
known values; :mod:`alignkit.training.objectives` turns them into registered objectives.

The published paper (Ding et al. 2022) gives no code; these formulas are alignkit's own
reading of its text (SPEC §3), documented with the choices made in docs/method.md.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from alignkit.vectors.pooling import masked_mean as mean_pool  # the one mean pooling (SPEC §2)


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


__all__ = ["mean_pool", "rms_row_norm", "task_loss", "project_to_ball", "sample_in_ball", "pgd_perturbation",
           "robust_loss", "embedding_push_loss", "push_distance", "attention_pull_loss", "info_nce_loss",
           "negative_similarities", "variance_penalty"]
