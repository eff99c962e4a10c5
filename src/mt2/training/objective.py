"""The MT2 objective on one batch of views: CPSD on the equivariant token, NT-Xent on the
contrastive token; the total is their sum (docs/design.md section 3), with an optional term
against collapse of the key profile. The ``masked`` variant instead predicts masked frame
tokens of view A (:func:`masked_losses`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mt2.losses import cpsd_loss, masked_prediction_loss, nt_xent_loss
from mt2.losses.ntxent import DEFAULT_TEMPERATURE
from mt2.model import MT2Model
from mt2.model.masked import span_mask
from mt2.data.views import Views


@dataclass
class Losses:
    """``total`` (what is minimised) and its parts; ``None`` where the model has no such token.
    ``entropy``: entropy of the batch-mean key profile of view A (nats), when the term against
    collapse is on; ``masked_ce``, ``masked_mse``: the masked variant's two terms."""

    total: torch.Tensor
    cpsd: torch.Tensor | None
    ntxent: torch.Tensor | None
    entropy: torch.Tensor | None = None
    masked_ce: torch.Tensor | None = None
    masked_mse: torch.Tensor | None = None


def mask_generator(seed: int, index: int, rank: int) -> np.random.Generator:
    """The generator of the masks of batch ``index`` on ``rank`` (a stream apart from the batch's own)."""
    return np.random.default_rng([seed, index, rank, 1])


def masked_losses(model: MT2Model, views: Views, generator: np.random.Generator) -> Losses:
    """MERT's objective on view A: span-mask its frame tokens, predict their codes and frames."""
    head = model.masked_prediction
    codes, frames = head.targets(views.a)
    mask = span_mask(*codes.shape, generator).to(codes.device)
    tokens = model.forward_features(views.a, mask)[:, model.num_prefix_tokens :]
    logits, reconstruction = head(tokens[mask])
    total, ce, mse = masked_prediction_loss(logits, codes[mask], reconstruction, frames[mask])
    return Losses(total=total, cpsd=None, ntxent=None, masked_ce=ce, masked_mse=mse)


#: NT-Xent's positive pair: ``AB`` (two segments at one CQT offset) or ``CB`` (segment A
#: transposed by k semitones against segment B: the pair differs in register, so register alone
#: cannot identify it).
CONTRASTIVE_PAIRS = ("AB", "CB")
#: The recipe's pair (round 2, docs/recipe.md): the default of :class:`~mt2.training.config.PretrainConfig` and :func:`ssl_losses`.
DEFAULT_CONTRASTIVE_PAIR = "CB"


def ssl_losses(
    model: MT2Model,
    views: Views,
    temperature: float = DEFAULT_TEMPERATURE,
    balance_weight: float = 0.0,
    generator: np.random.Generator | None = None,
    contrastive_pair: str = DEFAULT_CONTRASTIVE_PAIR,
) -> Losses:
    """Run A, B (and C when there is an equivariant token or the pair uses it) through ``model`` in one batch.

    ``total = CPSD(A, B, C) + NT-Xent(A, B; temperature) - balance_weight * H(mean_A p)``
    (NT-Xent on ``C, B`` with ``contrastive_pair="CB"``, :data:`CONTRASTIVE_PAIRS`),
    where ``p`` is the softmax key profile of a view of A and ``H(q) = -sum_i q_i log q_i``
    (the term is left out when ``balance_weight`` is 0 or there is no equivariant token).
    The ``masked`` variant runs :func:`masked_losses` instead, with ``generator`` (required for it).
    """
    if model.masked_prediction is not None:
        if generator is None:
            raise ValueError("the masked variant draws its masks from a generator: pass generator=mask_generator(seed, index, rank)")
        return masked_losses(model, views, generator)
    if contrastive_pair not in CONTRASTIVE_PAIRS:
        raise ValueError(f"contrastive_pair={contrastive_pair!r} is not one of {CONTRASTIVE_PAIRS}")
    has_eq = model.equivariant_head is not None
    batch = [views.a, views.b] + ([views.c] if has_eq or contrastive_pair == "CB" else [])
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
        first = out.projection[2 * n :] if contrastive_pair == "CB" else out.projection[:n]
        ntxent = nt_xent_loss(first, out.projection[n : 2 * n], temperature)
    total = sum(x for x in (cpsd, ntxent) if x is not None)
    if entropy is not None:
        total = total - balance_weight * entropy
    return Losses(total=total, cpsd=cpsd, ntxent=ntxent, entropy=entropy)
