"""The MT2 objective on one batch of views: CPSD on the equivariant token, NT-Xent on the
contrastive token; the total is their sum (DESIGN.md section 3), with an optional term
against collapse of the key profile."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mt2.losses import cpsd_loss, nt_xent_loss
from mt2.model import MT2Model
from mt2.training.views import Views


@dataclass
class Losses:
    """``total`` (what is minimised) and its parts; ``None`` where the model has no such token.
    ``entropy``: entropy of the batch-mean key profile of view A (nats), when the term against
    collapse is on."""

    total: torch.Tensor
    cpsd: torch.Tensor | None
    ntxent: torch.Tensor | None
    entropy: torch.Tensor | None = None


def ssl_losses(model: MT2Model, views: Views, temperature: float = 0.1, balance_weight: float = 0.0) -> Losses:
    """Run A, B (and C when there is an equivariant token) through ``model`` in one batch.

    ``total = CPSD(A, B, C) + NT-Xent(A, B; temperature) - balance_weight * H(mean_A p)``,
    where ``p`` is the softmax key profile of a view of A and ``H(q) = -sum_i q_i log q_i``
    (the term is left out when ``balance_weight`` is 0 or there is no equivariant token).
    """
    has_eq = model.equivariant_head is not None
    batch = [views.a, views.b] + ([views.c] if has_eq else [])
    out = model(torch.cat(batch, dim=0))
    n = views.a.shape[0]
    cpsd = ntxent = entropy = None
    if has_eq:
        probs = torch.softmax(out.key_logits.float(), dim=-1)
        cpsd = cpsd_loss(probs[:n], probs[n : 2 * n], probs[2 * n :], views.shift)
        if balance_weight:
            mean = probs[:n].mean(dim=0)
            entropy = -(mean * mean.clamp_min(1e-8).log()).sum()
    if model.contrastive_head is not None:
        ntxent = nt_xent_loss(out.projection[:n], out.projection[n : 2 * n], temperature)
    total = sum(x for x in (cpsd, ntxent) if x is not None)
    if entropy is not None:
        total = total - balance_weight * entropy
    return Losses(total=total, cpsd=cpsd, ntxent=ntxent, entropy=entropy)
