"""The one training step of MT2 and its optimiser and schedule (docs/design.md section 3).

Every trainer runs this step: the recipe study (:func:`mt2.study.train`), the Lightning
module (:class:`mt2.training.lightning.MT2Module`, through Lightning's automatic
optimisation: the same loss function, optimiser and schedule, and clipping by the Trainer's
``gradient_clip_val = config.grad_clip``, which is the same ``clip_grad_norm_``) and
``mt2 perf`` (:func:`mt2.perf.training.training_speed` times :func:`train_step` itself).

One step, for a :class:`~mt2.training.config.PretrainConfig` ``c``:

1. losses from the views (:func:`step_losses`: CPSD + NT-Xent at ``c.temperature``, minus
   ``c.balance_weight`` x the entropy of the batch-mean key profile);
2. backward; the gradients' global L2 norm clipped to ``c.grad_clip``;
3. AdamW (``c.lr``, ``c.betas``, ``c.weight_decay``) at ``c.lr * lr_factor(step)``, then
   the schedule advances one step.

Schedules (``c.schedule``): ``cosine`` (warm-up, then cosine decay to 0 at ``max_steps``: the
length must be known in advance) and ``wsd``, warmup-stable-decay (Hägele et al. 2024,
"Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations"): warm-up, a
constant rate, and a short decay over the last ``c.decay_fraction`` of the steps. Until its
decay begins, a ``wsd`` run is the same run whatever its length, so it can be extended, and a
finished model at a smaller budget B is a *branch*: the run's checkpoint at
``decay_start(B)``, decayed for the remaining steps (:func:`decay_start`,
:mod:`mt2.training.lightning`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from mt2.model import MT2Model
from mt2.training.config import PretrainConfig
from mt2.training.objective import Losses, ssl_losses
from mt2.data.views import Views


def decay_start(total: int, decay_fraction: float) -> int:
    """The step at which a ``wsd`` run of ``total`` steps starts its decay:
    ``total - max(1, round(decay_fraction * total))``."""
    return total - max(1, round(decay_fraction * total))


def lr_factor(step: int, total: int, warmup: int, schedule: str = "cosine", decay_fraction: float = 0.1) -> float:
    """Multiplier of the peak learning rate at optimisation step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup`` for ``step < warmup``; then

    * ``cosine``: ``0.5 (1 + cos(pi min(1, (step - warmup) / (total - warmup))))``, 0 at ``total``;
    * ``wsd``: 1 until ``s0 = decay_start(total, decay_fraction)``, then the "1 - sqrt" cooldown
      of Hägele et al. (2024), ``1 - sqrt(min(1, (step - s0) / (total - s0)))``, 0 at ``total``.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "wsd":
        start = decay_start(total, decay_fraction)
        if step < start:
            return 1.0
        return 1.0 - math.sqrt(min(1.0, (step - start) / (total - start)))
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: torch.nn.Module, config: PretrainConfig) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over every parameter of ``model`` and its per-step schedule (:func:`lr_factor` over
    ``config.max_steps`` with ``config.warmup``, ``config.schedule`` and ``config.decay_fraction``)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(
        step, config.max_steps, config.warmup, config.schedule, config.decay_fraction))
    return optimizer, schedule


def step_losses(model: MT2Model, views: Views, config: PretrainConfig, generator: np.random.Generator | None = None) -> Losses:
    """The objective of a step: :func:`~mt2.training.objective.ssl_losses` with the config's
    temperature and balance weight; ``generator`` draws the masks of the ``masked`` variant
    (:func:`~mt2.training.objective.mask_generator`)."""
    return ssl_losses(model, views, config.temperature, config.balance_weight, generator, config.contrastive_pair)


def train_step(
    model: MT2Model,
    views: Views,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    config: PretrainConfig,
    generator: np.random.Generator | None = None,
) -> tuple[Losses, torch.Tensor]:
    """One optimisation step of ``model`` on ``views`` (module docstring); returns the losses
    and the gradients' global L2 norm before clipping (tensors: ``.item()`` to record them)."""
    losses = step_losses(model, views, config, generator)
    optimizer.zero_grad(set_to_none=True)
    losses.total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    schedule.step()
    return losses, grad_norm
