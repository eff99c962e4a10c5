"""Layers that commute with a roll of the 12 pitch classes (docs/design.md section 2).

A pitch-class tensor has shape ``(..., 12, c)``: 12 pitch classes times ``c`` channels.
Write ``R_k`` for the roll by ``k`` along the 12 axis. Every map ``f`` here satisfies
``f(R_k x) = R_k f(x)``:

* :class:`CirculantLinear`: ``y[q] = sum_r W[r] x[q - r] + b`` (indices mod 12), a circular
  convolution over pitch classes with a full channel-mixing kernel ``W[r]`` of shape
  ``(c_out, c_in)``; 1/12 of the parameters of a dense map of the same width.
* :class:`PitchClassLayerNorm`: normalise over all ``12 x c`` values, per-channel affine.
* pointwise nonlinearities, and attention whose heads are channel groups: the score of two
  tokens is a dot product over a whole ``12 x c/h`` block, unchanged by a common roll.

:func:`invariant_features` maps ``(..., 12, c)`` to roll-invariant values: the mean over
the 12 axis and the magnitudes of its Fourier modes 1..6. Only such values may flow from
the equivariant stream into an unconstrained one.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

PITCH_CLASSES = 12


@dataclass
class KernelOptions:
    """How the pitch-class layers are computed (never what they compute): the levers
    that ``mt2 perf`` times side by side (docs/perf). Change them with :func:`kernel_options`;
    each default is the faster setting as measured on 2 CPU cores (issue 21).

    * ``split_pair0``: pair 0 (frequencies 0 and 6) of every roll-commuting map as its two
      real blocks (:func:`mt2.model.fourier.pair_product`), else padded to a ``2c' x 2c`` block like the others
      (one ``bmm``); in the Fourier basis. A sixth fewer multiply-adds, but two products instead of one: measured
      1.01x in float32 and 0.96x under bf16 autocast on a training step of ``mt2-tiny``, so off.
    * ``sliced_gelu``: under autograd and in float32, the MLP's pitch-class GELU round trip
      through :class:`mt2.model.fourier._PitchClassGelu` (cache-sized slices, pitch-class values recomputed in
      the backward pass; one hidden-sized tensor fewer kept), else whole-tensor operations
      (the former implementation). Measured 1.03-1.05x on a float32 training step; under bf16
      autocast the whole-tensor form measured faster, so it is used there.
    * ``gelu_slice``: columns per slice of that round trip (with or without autograd):
      ``12 x 16384`` floats fit a 1 MB L2.
    * ``bf16_math_attention``: under CPU bf16 autocast, ``scaled_dot_product_attention``
      through its math backend (:func:`attention`): measured 1.16x on a bf16 training step of
      ``mt2-tiny`` over the flash kernel, which does not gain from bf16 on a CPU without AMX;
      in float32 the flash kernel is faster (0.93-0.96x with math), so it stays there.
    """

    split_pair0: bool = False
    sliced_gelu: bool = True
    gelu_slice: int = 16384
    bf16_math_attention: bool = True


#: The options in force (module-wide).
KERNELS = KernelOptions()


@contextmanager
def kernel_options(**changes) -> Iterator[KernelOptions]:
    """Run the block with the :class:`KernelOptions` fields in ``changes``, then restore them."""
    unknown = set(changes) - {f.name for f in fields(KernelOptions)}
    if unknown:
        raise ValueError(f"unknown kernel options {sorted(unknown)}; known: {[f.name for f in fields(KernelOptions)]}")
    previous = {name: getattr(KERNELS, name) for name in changes}
    for name, value in changes.items():
        setattr(KERNELS, name, value)
    try:
        yield KERNELS
    finally:
        for name, value in previous.items():
            setattr(KERNELS, name, value)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``F.scaled_dot_product_attention(q, k, v)``; under CPU bf16 autocast through the math
    backend when ``KERNELS.bf16_math_attention`` (:class:`KernelOptions`)."""
    if KERNELS.bf16_math_attention and q.device.type == "cpu" and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v)


def _circulant_index() -> torch.Tensor:
    q = torch.arange(PITCH_CLASSES)
    return (q[:, None] - q[None, :]) % PITCH_CLASSES  # [q, p] -> shift r = q - p


class CirculantLinear(nn.Module):
    """Roll-commuting linear map ``(..., 12, c_in) -> (..., 12, c_out)``.

    ``y[q, o] = sum_{p, i} W[(q - p) mod 12, o, i] x[p, i] + b[o]``. The weight is expanded
    to one dense ``(12 c_out, 12 c_in)`` matrix per call (cheap at these sizes), so the
    forward pass is a single matrix product.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        fan_in = PITCH_CLASSES * in_channels
        fan_out = PITCH_CLASSES * out_channels
        std = math.sqrt(2.0 / (fan_in + fan_out))
        self.weight = nn.Parameter(torch.randn(PITCH_CLASSES, out_channels, in_channels) * std)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("index", _circulant_index(), persistent=False)

    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense matrix, shape ``(12 c_out, 12 c_in)``."""
        w = self.weight[self.index]  # (12 q, 12 p, c_out, c_in)
        return w.permute(0, 2, 1, 3).reshape(PITCH_CLASSES * self.out_channels, PITCH_CLASSES * self.in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-2]
        bias = None if self.bias is None else self.bias.repeat(PITCH_CLASSES)
        y = F.linear(x.reshape(*shape, PITCH_CLASSES * self.in_channels), self.dense_weight(), bias)
        return y.reshape(*shape, PITCH_CLASSES, self.out_channels)


class PitchClassLayerNorm(nn.Module):
    """LayerNorm over all ``12 x c`` values of a token, with a per-channel scale and shift."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(-2)
        flat = F.layer_norm(flat, flat.shape[-1:], eps=self.eps)
        return flat.view_as(x) * self.weight + self.bias


def invariant_features(x: torch.Tensor) -> torch.Tensor:
    """Roll-invariant summary of ``(..., 12, c)``: ``(..., 7 c)``.

    The mean over the 12 axis (``c`` values) and ``|X_m| / 12`` for Fourier modes
    ``m = 1..6`` of the 12 axis (``6 c`` values); a roll only changes the phases.
    """
    spectrum = torch.fft.rfft(x.float(), dim=-2)  # (..., 7, c)
    mean = spectrum[..., 0, :].real / PITCH_CLASSES
    magnitudes = spectrum[..., 1:, :].abs().flatten(-2) / PITCH_CLASSES
    return torch.cat([mean, magnitudes], dim=-1).to(x.dtype)


def invariant_dim(channels: int) -> int:
    return 7 * channels


class DenseBasis:
    """The pitch-class stream in its own basis, every :class:`CirculantLinear` run as its
    dense ``12 c_out x 12 c_in`` expansion: the reference for
    :class:`mt2.model.fourier.FourierBasis`.

    A basis offers, for tensors ``(..., 12, c)`` in its coordinates: ``from_pitch_class`` /
    ``to_pitch_class`` (change of coordinates), ``linear(layer, x)`` (a
    :class:`CirculantLinear`), ``norm(layer, x)`` (a :class:`PitchClassLayerNorm`),
    ``mlp(module, x)`` (a :class:`PitchClassMLP`), ``invariant(x)`` (:func:`invariant_features` of
    the pitch-class values) and ``broadcast(v)`` (a per-channel ``(..., c)`` vector repeated
    over the 12 pitch classes).
    """

    name = "dense"

    @staticmethod
    def from_pitch_class(x: torch.Tensor) -> torch.Tensor:
        return x

    to_pitch_class = from_pitch_class

    @staticmethod
    def linear(layer: CirculantLinear, x: torch.Tensor) -> torch.Tensor:
        return layer(x)

    norm = linear
    mlp = linear
    invariant = staticmethod(invariant_features)

    @staticmethod
    def broadcast(per_channel: torch.Tensor) -> torch.Tensor:
        return per_channel.unsqueeze(-2).expand(*per_channel.shape[:-1], PITCH_CLASSES, per_channel.shape[-1])


class PitchClassAttention(nn.Module):
    """Self-attention over tokens ``(B, N, 12, c)`` in the coordinates of ``basis``, heads split
    along channels: a score is a dot product over a ``12 x c/h`` block, the same in any
    orthonormal basis of the 12 axis."""

    def __init__(self, channels: int, heads: int, basis) -> None:
        super().__init__()
        self.heads = heads
        self.basis = basis
        self.qkv = CirculantLinear(channels, 3 * channels)
        self.proj = CirculantLinear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, p, c = x.shape
        q, k, v = self.basis.linear(self.qkv, x).split(c, dim=-1)

        def split_heads(t: torch.Tensor) -> torch.Tensor:  # (B, N, 12, c) -> (B, H, N, 12 * c/H)
            return t.view(b, n, p, self.heads, c // self.heads).permute(0, 3, 1, 2, 4).reshape(b, self.heads, n, -1)

        out = attention(split_heads(q), split_heads(k), split_heads(v))
        out = out.view(b, self.heads, n, p, c // self.heads).permute(0, 2, 3, 1, 4).reshape(b, n, p, c)
        return self.basis.linear(self.proj, out)


class PitchClassMLP(nn.Module):
    """``fc2(gelu(fc1(x)))`` over ``(..., 12, c)`` pitch classes (GELU pointwise)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = CirculantLinear(channels, hidden)
        self.fc2 = CirculantLinear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class FoldedEmbedding(nn.Module):
    """CQT frames ``(B, T, bins)`` -> pitch-class features ``(B, T, 12, channels)``.

    A convolution along frequency shared by all bins (circular padding, so a roll of the
    bins rolls its output), a GELU, then the octaves averaged onto 12 pitch classes: a roll
    of the input bins by ``k`` rolls the output pitch classes by ``k``.
    """

    def __init__(self, channels: int, kernel: int = 7) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel={kernel} must be odd so that the convolution is centred")
        self.channels = channels
        self.conv = nn.Conv1d(1, channels, kernel, padding=kernel // 2, padding_mode="circular")

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t, bins = frames.shape
        h = F.gelu(self.conv(frames.reshape(b * t, 1, bins)))  # (B T, C, bins)
        folded = h.view(b * t, self.channels, bins // PITCH_CLASSES, PITCH_CLASSES).mean(dim=2)
        return folded.transpose(1, 2).reshape(b, t, PITCH_CLASSES, self.channels)
