"""The MT2 objective on one batch of views: CPSD on the equivariant token, NT-Xent on the
contrastive token; the total is their sum (DESIGN.md section 3)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mt2.data.views import Views
from mt2.losses import cpsd_loss, nt_xent_loss
from mt2.model import MT2Model


@dataclass
class Losses:
    total: torch.Tensor
    cpsd: torch.Tensor | None
    ntxent: torch.Tensor | None


def ssl_losses(model: MT2Model, views: Views, temperature: float = 0.1) -> Losses:
    """Run A, B (and C when there is an equivariant token) through ``model`` in one batch."""
    has_eq = model.equivariant_head is not None
    batch = [views.a, views.b] + ([views.c] if has_eq else [])
    out = model(torch.cat(batch, dim=0))
    n = views.a.shape[0]
    cpsd = ntxent = None
    if has_eq:
        probs = torch.softmax(out.key_logits.float(), dim=-1)
        cpsd = cpsd_loss(probs[:n], probs[n : 2 * n], probs[2 * n :], views.shift)
    if model.contrastive_head is not None:
        ntxent = nt_xent_loss(out.projection[:n], out.projection[n : 2 * n], temperature)
    total = sum(x for x in (cpsd, ntxent) if x is not None)
    return Losses(total=total, cpsd=cpsd, ntxent=ntxent)
