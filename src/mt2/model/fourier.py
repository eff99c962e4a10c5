"""The pitch-class layout computed in the real orthonormal Fourier basis of the 12 axis.

Coordinates. A pitch-class tensor ``x`` of shape ``(..., 12, c)`` has Fourier coordinates
``X = Phi x`` (along the 12 axis), ``Phi`` the orthogonal ``12 x 12`` matrix whose rows are,
in this order, with ``t_m(q) = 2 pi m q / 12``:

* ``k = 0``: ``1 / sqrt(12)`` (DC), ``k = 1``: ``(-1)^q / sqrt(12)`` (frequency 6),
* ``k = 2m, 2m + 1`` for ``m = 1..5``: ``sqrt(2/12) cos t_m(q)``, ``sqrt(2/12) sin t_m(q)``.

So the coordinates come in 6 pairs ``(2f, 2f + 1)``: pair 0 is ``(DC, frequency 6)``, pair
``m`` is ``(cos, sin)`` of frequency ``m``.

Why it is cheaper. A roll-commuting map ``y[q] = sum_r W[r] x[q - r]`` is block-diagonal
in these coordinates. With ``A_m = sum_r cos t_m(r) W[r]`` and ``B_m = sum_r sin t_m(r) W[r]``:

* ``Y_DC = A_0 X_DC``, ``Y_6 = A_6 X_6`` (real ``c' x c`` blocks),
* ``[Y_cos; Y_sin] = [[A_m, -B_m], [B_m, A_m]] [X_cos; X_sin]`` (rotation-scale form).

Pair 0 is run as the block-diagonal ``[[A_0, 0], [0, A_6]]`` so that all 6 pairs are one
batched product of ``2c x 2c'`` blocks: ``24 c c'`` multiply-adds per token instead of
``144 c c'`` for the dense ``12c' x 12c`` expansion. The blocks are computed from ``W`` in
every forward pass, so gradients reach the same parameters.

What stays in the basis. ``Phi`` is orthogonal (Parseval): dot products of whole
``12 x c/h`` blocks (attention scores), sums of squares, residual sums and per-channel
scales are the same in both bases. A per-channel constant (bias, class token, position)
lives in DC only, times ``sqrt(12)``; the mean over the 12 pitch classes is ``X_DC / sqrt(12)``.
Only the pointwise GELU needs pitch classes: ``Phi^T``, GELU, ``Phi`` inside each MLP.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from mt2.model.pitch_class import PITCH_CLASSES, CirculantLinear, PitchClassLayerNorm

PAIRS = PITCH_CLASSES // 2
SQRT12 = math.sqrt(PITCH_CLASSES)


def _unnormalised_basis() -> torch.Tensor:
    """``G[k, r]``: rows ``1``, ``(-1)^r``, ``cos t_m(r)``, ``sin t_m(r)`` (``m = 1..5``), ``(12, 12)`` float64."""
    r = torch.arange(PITCH_CLASSES, dtype=torch.float64)
    rows = [torch.ones_like(r), torch.cos(math.pi * r)]
    for m in range(1, PAIRS):
        angle = 2 * math.pi * m * r / PITCH_CLASSES
        rows += [torch.cos(angle), torch.sin(angle)]
    return torch.stack(rows)


def _row_norms() -> torch.Tensor:
    return torch.tensor([SQRT12, SQRT12] + [math.sqrt(PITCH_CLASSES / 2)] * (PITCH_CLASSES - 2), dtype=torch.float64)


@functools.lru_cache(maxsize=None)
def _constants(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(Phi, G, pair0)`` on ``device``; built outside inference mode so autograd may use them."""
    with torch.inference_mode(False):
        g = _unnormalised_basis()
        phi = g / _row_norms()[:, None]
        pair0 = torch.zeros(PAIRS, 1, 1, dtype=torch.bool)
        pair0[0] = True
        return phi.to(device, dtype), g.to(device, dtype), pair0.to(device)


def fourier_basis(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``Phi``, the orthogonal ``(12, 12)`` change of basis (module docstring): ``X = Phi x``."""
    return _constants(torch.device(device), dtype)[0]


def to_fourier(x: torch.Tensor) -> torch.Tensor:
    """Pitch classes ``(..., 12, c)`` -> Fourier coordinates ``(..., 12, c)``: ``X = Phi x``."""
    return torch.matmul(fourier_basis(x.device, x.dtype), x)


def to_pitch_class(x: torch.Tensor) -> torch.Tensor:
    """Fourier coordinates ``(..., 12, c)`` -> pitch classes: ``x = Phi^T X``."""
    return torch.matmul(fourier_basis(x.device, x.dtype).T, x)


def circulant_blocks(weight: torch.Tensor) -> torch.Tensor:
    """Circulant kernel ``W`` ``(12, c_out, c_in)`` -> its 6 pair blocks ``(6, 2 c_in, 2 c_out)``,
    laid out so that ``Y_pair = X_pair @ blocks[pair]`` with ``X_pair = [X_first | X_second]``."""
    _, g, pair0 = _constants(weight.device, weight.dtype)
    sums = torch.einsum("kr,roi->koi", g, weight)  # A_0, A_6, A_1, B_1, ..., A_5, B_5
    first, second = sums.unflatten(0, (PAIRS, 2)).unbind(1)  # (6, c_out, c_in) each
    off = second.masked_fill(pair0, 0.0)  # B_m; zero for pair 0
    diagonal2 = torch.where(pair0, second, first)  # A_6 for pair 0, A_m otherwise
    blocks = torch.cat([torch.cat([first, -off], dim=-1), torch.cat([off, diagonal2], dim=-1)], dim=-2)
    return blocks.transpose(1, 2)  # (6, 2 c_in, 2 c_out)


def dc_only(per_channel: torch.Tensor) -> torch.Tensor:
    """Per-channel vector ``(..., c)`` broadcast over the 12 pitch classes, in Fourier
    coordinates: ``(..., 12, c)``, ``sqrt(12) v`` at DC and zero elsewhere."""
    zeros = per_channel.new_zeros(*per_channel.shape[:-1], PITCH_CLASSES - 1, per_channel.shape[-1])
    return torch.cat([SQRT12 * per_channel.unsqueeze(-2), zeros], dim=-2)


def fourier_linear(layer: CirculantLinear, x: torch.Tensor) -> torch.Tensor:
    """``layer`` applied to Fourier coordinates ``(..., 12, c_in)`` -> ``(..., 12, c_out)``."""
    shape = x.shape[:-2]
    pairs = x.reshape(-1, PAIRS, 2 * layer.in_channels).transpose(0, 1)  # (6, M, 2 c_in)
    blocks = circulant_blocks(layer.weight)
    if layer.bias is None:
        y = torch.bmm(pairs, blocks)
    else:
        bias = torch.cat([SQRT12 * layer.bias, layer.bias.new_zeros((PITCH_CLASSES - 1) * layer.out_channels)])
        y = torch.baddbmm(bias.view(PAIRS, 1, 2 * layer.out_channels), pairs, blocks)
    return y.transpose(0, 1).reshape(*shape, PITCH_CLASSES, layer.out_channels)


def fourier_layer_norm(layer: PitchClassLayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``layer`` on Fourier coordinates: the mean of the ``12 c`` pitch-class values is
    ``mean(X_DC) / sqrt(12)`` and leaves DC only; the variance is the mean square of the
    centred coordinates (Parseval); scale every coordinate, shift DC by ``sqrt(12) b``."""
    mean = x[..., 0, :].mean(dim=-1, keepdim=True)  # (..., 1) = sqrt(12) * pitch-class mean
    centred = x - F.pad(mean.unsqueeze(-1), (0, 0, 0, PITCH_CLASSES - 1))
    normed = F.rms_norm(centred.flatten(-2), (x.shape[-2] * x.shape[-1],), eps=layer.eps).view_as(x)
    return torch.addcmul(dc_only(layer.bias), normed, layer.weight)


def fourier_gelu(x: torch.Tensor) -> torch.Tensor:
    """Pointwise GELU of the pitch-class values: ``Phi gelu(Phi^T X)``."""
    return to_fourier(F.gelu(to_pitch_class(x)))


def fourier_invariant_features(x: torch.Tensor) -> torch.Tensor:
    """:func:`mt2.model.pitch_class.invariant_features` from Fourier coordinates ``(..., 12, c)``:
    mean ``X_DC / sqrt(12)``; ``|X_m| / 12 = sqrt(6) |(X_cos, X_sin)| / 12`` for ``m = 1..5``;
    ``|X_6| / 12 = |X_k=1| / sqrt(12)``."""
    xf = x.float()
    mean = xf[..., 0, :] / SQRT12
    pairs = xf[..., 2:, :].unflatten(-2, (PAIRS - 1, 2))  # (..., 5, 2, c)
    magnitudes = torch.linalg.vector_norm(pairs, dim=-2) * (math.sqrt(6) / PITCH_CLASSES)
    nyquist = xf[..., 1, :].abs() / SQRT12
    return torch.cat([mean, magnitudes.flatten(-2), nyquist], dim=-1).to(x.dtype)


class FourierBasis:
    """The pitch-class stream in Fourier coordinates (module docstring); the operations of
    :class:`mt2.model.pitch_class.DenseBasis`, with the same contracts."""

    name = "fourier"
    from_pitch_class = staticmethod(to_fourier)
    to_pitch_class = staticmethod(to_pitch_class)
    linear = staticmethod(fourier_linear)
    norm = staticmethod(fourier_layer_norm)
    gelu = staticmethod(fourier_gelu)
    invariant = staticmethod(fourier_invariant_features)
    broadcast = staticmethod(dc_only)
