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
Only the pointwise GELU needs pitch classes: ``Phi^T``, GELU, ``Phi`` inside each MLP
(:func:`fourier_mlp`).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from mt2.model.pitch_class import KERNELS, PITCH_CLASSES, CirculantLinear, PitchClassLayerNorm, PitchClassMLP

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


def _pair_coefficients() -> torch.Tensor:
    """``T[f, p, q, r]`` with ``blocks[f][(p, o), (q, i)] = sum_r T[f, p, q, r] W[r, o, i]``:
    ``[[A_0, 0], [0, A_6]]`` for pair 0, ``[[A_m, -B_m], [B_m, A_m]]`` for pair ``m``."""
    g = _unnormalised_basis()
    t = torch.zeros(PAIRS, 2, 2, PITCH_CLASSES, dtype=torch.float64)
    t[0, 0, 0], t[0, 1, 1] = g[0], g[1]
    for m in range(1, PAIRS):
        cos, sin = g[2 * m], g[2 * m + 1]
        t[m, 0, 0], t[m, 0, 1], t[m, 1, 0], t[m, 1, 1] = cos, -sin, sin, cos
    return t


@functools.lru_cache(maxsize=None)
def _constants(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Phi, T)`` on ``device``; built outside inference mode so that autograd may use them."""
    with torch.inference_mode(False):
        phi = _unnormalised_basis() / _row_norms()[:, None]
        return phi.to(device, dtype), _pair_coefficients().to(device, dtype)


def fourier_basis(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``Phi``, the orthogonal ``(12, 12)`` change of basis (module docstring): ``X = Phi x``."""
    return _constants(torch.device(device), dtype)[0]


def to_fourier(x: torch.Tensor) -> torch.Tensor:
    """Pitch classes ``(..., 12, c)`` -> Fourier coordinates ``(..., 12, c)``: ``X = Phi x``."""
    return (x.transpose(-1, -2) @ fourier_basis(x.device, x.dtype).T).transpose(-1, -2)


def to_pitch_class(x: torch.Tensor) -> torch.Tensor:
    """Fourier coordinates ``(..., 12, c)`` -> pitch classes: ``x = Phi^T X``."""
    return (x.transpose(-1, -2) @ fourier_basis(x.device, x.dtype)).transpose(-1, -2)


def circulant_blocks(weight: torch.Tensor) -> torch.Tensor:
    """Circulant kernel ``W`` ``(12, c_out, c_in)`` -> its 6 pair blocks ``(6, 2 c_out, 2 c_in)``
    (``F.linear`` form): ``Y_pair = blocks[pair] @ [X_first; X_second]``."""
    _, t = _constants(weight.device, weight.dtype)
    _, c_out, c_in = weight.shape
    return torch.einsum("fpqr,roi->fpoqi", t, weight).reshape(PAIRS, 2 * c_out, 2 * c_in)


def dc_only(per_channel: torch.Tensor) -> torch.Tensor:
    """Per-channel vector ``(..., c)`` broadcast over the 12 pitch classes, in Fourier
    coordinates: ``(..., 12, c)``, ``sqrt(12) v`` at DC and zero elsewhere."""
    return F.pad(SQRT12 * per_channel.unsqueeze(-2), (0, 0, 0, PITCH_CLASSES - 1))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype autocast runs products in on ``x``'s device (bf16 under CPU autocast), else ``x``'s."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class _PairProduct(torch.autograd.Function):
    """``Y[f] = blocks[f] X[f]`` for the 6 pairs: ``blocks`` ``(6, 2 o, 2 i)`` (:func:`circulant_blocks`),
    ``X`` ``(6, 2 i, M)`` -> ``Y`` ``(6, 2 o, M)``, with pair 0 (DC and frequency 6) run as its two
    real ``o x i`` blocks: the zero off-diagonal blocks of ``[[A_0, 0], [0, A_6]]`` are never
    multiplied (a sixth of the multiply-adds). Runs in the autocast dtype when autocast is on."""

    @staticmethod
    def forward(ctx, blocks_in, x_in):
        dtype = _compute_dtype(x_in)
        blocks, x = blocks_in, x_in
        _, two_o, two_i = blocks.shape
        o, i, m = two_o // 2, two_i // 2, x.shape[-1]
        with torch.autocast(x.device.type, enabled=False):
            blocks, x = blocks.to(dtype), x.to(dtype)
            real = torch.stack([blocks[0, :o, :i], blocks[0, o:, i:]])  # A_0, A_6
            y = torch.empty(PAIRS, two_o, m, dtype=dtype, device=x.device)
            torch.bmm(real, x[0].view(2, i, m), out=y[0].view(2, o, m))
            torch.bmm(blocks[1:], x[1:], out=y[1:])
        ctx.dtypes = (blocks_in.dtype, x_in.dtype)
        ctx.save_for_backward(real, blocks, x)
        return y

    @staticmethod
    def backward(ctx, grad):
        real, blocks, x = ctx.saved_tensors
        _, two_o, two_i = blocks.shape
        o, i, m = two_o // 2, two_i // 2, x.shape[-1]
        grad_blocks = grad_x = None
        with torch.autocast(x.device.type, enabled=False):
            grad = grad.to(x.dtype)
            if ctx.needs_input_grad[1]:
                grad_x = torch.empty(PAIRS, two_i, m, dtype=x.dtype, device=x.device)
                torch.bmm(real.transpose(1, 2), grad[0].view(2, o, m), out=grad_x[0].view(2, i, m))
                torch.bmm(blocks[1:].transpose(1, 2), grad[1:], out=grad_x[1:])
            if ctx.needs_input_grad[0]:
                grad_real = torch.bmm(grad[0].view(2, o, m), x[0].view(2, i, m).transpose(1, 2))
                grad_blocks = torch.zeros(blocks.shape, dtype=blocks.dtype, device=blocks.device)
                grad_blocks[0, :o, :i], grad_blocks[0, o:, i:] = grad_real[0], grad_real[1]
                torch.bmm(grad[1:], x[1:].transpose(1, 2), out=grad_blocks[1:])
        blocks_dtype, x_dtype = ctx.dtypes
        return (
            None if grad_blocks is None else grad_blocks.to(blocks_dtype),
            None if grad_x is None else grad_x.to(x_dtype),
        )


def pair_product(blocks: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``blocks`` ``(6, 2 o, 2 i)`` times ``x`` ``(6, 2 i, M)`` pair by pair: ``(6, 2 o, M)``;
    pair 0 without its zero blocks when ``KERNELS.split_pair0`` (:class:`_PairProduct`), else one
    ``bmm`` over the padded pairs (the former implementation)."""
    if KERNELS.split_pair0:
        return _PairProduct.apply(blocks, x)
    return torch.bmm(blocks, x)


def fourier_linear(layer: CirculantLinear, x: torch.Tensor) -> torch.Tensor:
    """``layer`` on Fourier coordinates ``(..., 12, c_in)`` -> ``(..., 12, c_out)``: one batched
    product over the 6 pairs (with ``KERNELS.split_pair0``, :func:`pair_product`)."""
    shape = x.shape[:-2]
    if KERNELS.split_pair0:
        columns = x.reshape(-1, PAIRS, 2 * layer.in_channels).permute(1, 2, 0)  # (6, 2 c_in, M)
        y = pair_product(circulant_blocks(layer.weight), columns)  # (6, 2 c_out, M)
        if layer.bias is not None:
            y[0, : layer.out_channels] += SQRT12 * layer.bias.unsqueeze(-1)  # DC only
        return y.permute(2, 0, 1).reshape(*shape, PITCH_CLASSES, layer.out_channels)
    pairs = x.reshape(-1, PAIRS, 2 * layer.in_channels).transpose(0, 1)  # (6, M, 2 c_in)
    y = torch.bmm(pairs, circulant_blocks(layer.weight).transpose(1, 2))  # (6, M, 2 c_out)
    if layer.bias is not None:
        y[0, :, : layer.out_channels] += SQRT12 * layer.bias  # DC only
    return y.transpose(0, 1).reshape(*shape, PITCH_CLASSES, layer.out_channels)


def fourier_mlp(mlp: PitchClassMLP, x: torch.Tensor) -> torch.Tensor:
    """``fc2(gelu(fc1(x)))`` on Fourier coordinates ``(..., 12, c)``, GELU on pitch classes.

    The hidden values are held coordinate-major, ``(12, hidden M)`` for ``M`` tokens, so that
    ``Phi^T`` and ``Phi`` are each one product with ``(12, 12)`` and the wide hidden tensor is
    never transposed in memory; only the narrow input and output are. The GELU round trip
    runs a cache-sized slice of columns at a time (``KERNELS.gelu_slice``): in place without
    autograd, through :class:`_PitchClassGelu` with it (``KERNELS.sliced_gelu``; otherwise
    whole-tensor operations, the former implementation, kept as the reference). (The
    whole-tensor pitch-class values are computed transposed, ``(hidden M, 12) = H^T Phi``: the
    same numbers, but a matrix product shape that runs about 5x faster on CPU than ``Phi^T H``
    on a tensor that does not fit the cache.)
    """
    shape, c = x.shape[:-2], x.shape[-1]
    hidden = mlp.fc1.out_channels
    columns = x.reshape(-1, PAIRS, 2 * c).permute(1, 2, 0)  # (6, 2c, M)
    m = columns.shape[-1]
    h = pair_product(circulant_blocks(mlp.fc1.weight), columns)  # (6, 2 hidden, M) = (12, hidden, M)
    h[0, :hidden] += SQRT12 * mlp.fc1.bias.unsqueeze(-1)  # DC only
    phi = fourier_basis(x.device, x.dtype)
    h = h.view(PITCH_CLASSES, hidden * m)
    if not torch.is_grad_enabled():  # in place, a cache-sized slice at a time: fresh large buffers cost page faults
        for piece in h.split(KERNELS.gelu_slice, dim=1):
            phi_piece = phi.to(piece.dtype)
            torch.mm(phi_piece, torch.ops.aten.gelu_(piece.T @ phi_piece).T, out=piece)
    elif KERNELS.sliced_gelu and h.dtype == torch.float32:
        h = _PitchClassGelu.apply(h, phi, KERNELS.gelu_slice)
    else:
        h = phi @ F.gelu(h.T @ phi).T  # pitch classes (hidden M, 12), GELU, back
    h = h.view(PAIRS, 2 * hidden, m)
    y = pair_product(circulant_blocks(mlp.fc2.weight), h)  # (6, 2c, M)
    y[0, :c] += SQRT12 * mlp.fc2.bias.unsqueeze(-1)
    return y.permute(2, 0, 1).reshape(*shape, PITCH_CLASSES, c)


class _PitchClassGelu(torch.autograd.Function):
    """``A = Phi gelu(Phi^T H)`` for Fourier coordinates held coordinate-major, ``H`` ``(12, n)``:
    GELU on pitch classes, a cache-sized slice of columns at a time
    (``KernelOptions.gelu_slice`` columns).

    Whole-tensor operations would write and read three ``H``-sized tensors (the pitch-class
    values, the GELU, the way back) and keep two for the backward pass; here only ``A`` is
    written, only ``H`` is kept, and the pitch-class values are recomputed slice by slice in
    the backward pass (one ``12 x 12`` product per slice), in ``phi``'s dtype.
    """

    @staticmethod
    def forward(ctx, h, phi, columns: int):
        out = torch.empty_like(h)
        with torch.autocast(h.device.type, enabled=False):
            for start in range(0, h.shape[1], columns):
                stop = min(start + columns, h.shape[1])
                out[:, start:stop] = phi @ F.gelu(phi.T @ h[:, start:stop].to(phi.dtype))
        ctx.columns = columns
        ctx.save_for_backward(h, phi)
        return out

    @staticmethod
    def backward(ctx, grad):
        h, phi = ctx.saved_tensors
        out = torch.empty_like(h)
        with torch.autocast(h.device.type, enabled=False):
            for start in range(0, h.shape[1], ctx.columns):
                stop = min(start + ctx.columns, h.shape[1])
                pitch_classes = phi.T @ h[:, start:stop].to(phi.dtype)
                out[:, start:stop] = phi @ torch.ops.aten.gelu_backward(phi.T @ grad[:, start:stop].to(phi.dtype), pitch_classes)
        return out, None, None


def fourier_layer_norm(layer: PitchClassLayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``layer`` on Fourier coordinates ``(..., 12, c)``. With ``n = 12 c`` pitch-class values:
    their mean is ``mu = mean(X_DC) / sqrt(12)``, their mean square ``|X|^2 / n`` (Parseval), so
    ``rstd = (|X|^2 / n - mu^2 + eps)^(-1/2)``; every coordinate is scaled by ``rstd * w``,
    and DC is centred (``- sqrt(12) mu``) and shifted (``+ sqrt(12) b``)."""
    n = x.shape[-2] * x.shape[-1]
    dc = x[..., 0, :]
    mu = dc.mean(dim=-1, keepdim=True) / SQRT12
    mean_square = torch.linalg.vector_norm(x.flatten(-2), dim=-1, keepdim=True).square() / n
    scale = torch.rsqrt(mean_square - mu.square() + layer.eps) * layer.weight  # (..., c)
    y = x * scale.unsqueeze(-2)
    y[..., 0, :] = (dc - SQRT12 * mu) * scale + SQRT12 * layer.bias
    return y


def fourier_invariant_features(x: torch.Tensor) -> torch.Tensor:
    """:func:`mt2.model.pitch_class.invariant_features` from Fourier coordinates ``(..., 12, c)``:
    mean ``X_DC / sqrt(12)``; ``|X_m| / 12 = sqrt(6) |(X_cos, X_sin)| / 12`` for ``m = 1..5``;
    ``|X_6| / 12 = |X_k=1| / sqrt(12)``. A magnitude of zero has gradient zero (as ``abs``)."""
    xf = x.float()
    mean = xf[..., 0, :] / SQRT12
    squares = xf[..., 2:, :].square().unflatten(-2, (PAIRS - 1, 2)).sum(dim=-2)  # (..., 5, c)
    positive = squares > 0
    magnitudes = torch.where(positive, torch.where(positive, squares, 1.0).sqrt(), 0.0) * (math.sqrt(6) / PITCH_CLASSES)
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
    mlp = staticmethod(fourier_mlp)
    invariant = staticmethod(fourier_invariant_features)
    broadcast = staticmethod(dc_only)
