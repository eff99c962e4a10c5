"""Cross-power spectral density (CPSD) loss over the circle of fifths (STONE; docs/design.md section 3).

For a 12-bin distribution ``y`` (a softmax), ``z(y) = sum_q y_q exp(2 pi i w q / 12)`` with
``w = 7``: the bins are visited along the circle of fifths. Views A and B are two segments
of one track cut at the same CQT offset; view C is A cut ``k`` bins higher, so its content
sounds ``k`` semitones lower. If the output index rises with pitch, ``y_C[q] = y_A[q + k]``
and ``z_C conj(z_A) = exp(i theta)`` with ``theta = -2 pi w k / 12``. The loss is

    L = |1 - z_A conj(z_B)|^2 + |e^{i theta} - z_C conj(z_A)|^2 + |e^{i theta} - z_C conj(z_B)|^2,

averaged over the batch, computed in fp32 from cosines and sines (no complex autograd).

Trivial floor: an output that ignores its input with ``|z|^2 = r`` scores
``3 + 3 r^2 - 18 r / 11`` on average over ``k = 1..11`` (the mean of ``cos theta`` is
``-1/11``), minimal at ``r = 3/11``: :data:`TRIVIAL_FLOOR` = ``3 - 27/121`` = 2.777. A run
whose loss ends near it has learned nothing.
"""
from __future__ import annotations

import math

import torch

CIRCLE_OF_FIFTHS_STEP = 7
TRIVIAL_FLOOR = 3.0 - 27.0 / 121.0


def circle_of_fifths_projection(probabilities: torch.Tensor, w: int = CIRCLE_OF_FIFTHS_STEP) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, 12)`` probabilities -> real and imaginary parts of ``z = sum_q y_q exp(2 pi i w q / 12)``."""
    n = probabilities.shape[-1]
    angles = 2 * math.pi * w * torch.arange(n, device=probabilities.device, dtype=torch.float32) / n
    y = probabilities.float()
    return y @ torch.cos(angles), y @ torch.sin(angles)


def _distance_to_rotation(zr_1, zi_1, zr_2, zi_2, theta: torch.Tensor | float) -> torch.Tensor:
    """``|e^{i theta} - z_1 conj(z_2)|^2`` from real and imaginary parts."""
    real = zr_1 * zr_2 + zi_1 * zi_2  # Re(z_1 conj(z_2))
    imag = zi_1 * zr_2 - zr_1 * zi_2  # Im(z_1 conj(z_2))
    theta = torch.as_tensor(theta, dtype=torch.float32, device=zr_1.device)
    return (torch.cos(theta) - real) ** 2 + (torch.sin(theta) - imag) ** 2


def cpsd_loss(
    probs_a: torch.Tensor,
    probs_b: torch.Tensor,
    probs_c: torch.Tensor,
    shift: torch.Tensor,
    w: int = CIRCLE_OF_FIFTHS_STEP,
) -> torch.Tensor:
    """CPSD loss of the three views; ``shift[i] = k`` (bins) for example ``i``. See the module doc."""
    if not (probs_a.shape == probs_b.shape == probs_c.shape) or probs_a.dim() != 2:
        raise ValueError(
            f"views must share one shape (batch, bins): got {tuple(probs_a.shape)}, {tuple(probs_b.shape)}, {tuple(probs_c.shape)}"
        )
    n = probs_a.shape[-1]
    shift = torch.as_tensor(shift, device=probs_a.device).float().reshape(-1)
    if shift.shape[0] != probs_a.shape[0]:
        raise ValueError(f"need one shift per example: {shift.shape[0]} shifts for batch {probs_a.shape[0]}")
    theta = -2 * math.pi * w * shift / n
    za, zb, zc = (circle_of_fifths_projection(p, w) for p in (probs_a, probs_b, probs_c))
    loss = (
        _distance_to_rotation(*za, *zb, 0.0)
        + _distance_to_rotation(*zc, *za, theta)
        + _distance_to_rotation(*zc, *zb, theta)
    )
    return loss.mean()
