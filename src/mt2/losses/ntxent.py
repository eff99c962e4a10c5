"""NT-Xent (SimCLR) loss with negatives gathered from every DDP rank, with gradients.

For ``N`` positive pairs ``(a_i, b_i)`` (global batch, all ranks), let ``s(u, v) =
u.v / (|u| |v| tau)``. Each of the ``2N`` embeddings ``x`` with positive ``x+`` scores

    l(x) = -log( exp s(x, x+) / sum_{y != x} exp s(x, y) ),

the sum running over the other ``2N - 1`` embeddings. A rank's loss is the mean of ``l``
over its own ``2n`` rows; DDP's gradient averaging then gives the gradient of the global
mean, because :func:`gather_with_grad` routes every rank's gradient back to the rank that
produced each embedding.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

DEFAULT_TEMPERATURE = 0.1


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all ranks along dim 0, keeping gradients; identity on one process."""
    _, world = _world()
    if world == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def nt_xent_loss(a: torch.Tensor, b: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """NT-Xent of local pairs ``(a_i, b_i)`` ``(n, P)`` against the global batch; see the module doc."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"a and b must have the same shape (batch, dim): got {tuple(a.shape)} and {tuple(b.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be positive")
    rank, _ = _world()
    n = a.shape[0]
    a = F.normalize(a.float(), dim=-1)
    b = F.normalize(b.float(), dim=-1)
    all_a, all_b = gather_with_grad(a), gather_with_grad(b)
    big_n = all_a.shape[0]
    keys = torch.cat([all_a, all_b], dim=0)  # (2N, P): rows 0..N-1 are a, N..2N-1 are b
    queries = torch.cat([a, b], dim=0)  # (2n, P)
    logits = queries @ keys.T / temperature
    local = torch.arange(n, device=a.device) + rank * n
    self_index = torch.cat([local, local + big_n])
    positive = torch.cat([local + big_n, local])
    logits = logits.masked_fill(F.one_hot(self_index, 2 * big_n).bool(), float("-inf"))
    return F.cross_entropy(logits, positive)
