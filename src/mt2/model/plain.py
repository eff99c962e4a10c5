"""The ``plain`` layout's modules (the paper's ViT-1D): every map is dense over ``width``."""
from __future__ import annotations

import torch
from torch import nn

from mt2.model.config import ModelConfig
from mt2.model.pitch_class import PITCH_CLASSES, FoldedEmbedding, attention


class Attention(nn.Module):
    """Multi-head self-attention over ``(B, N, width)`` with ``scaled_dot_product_attention``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = attention(q, k, v)  # the backend that pays for the precision (mt2.model.pitch_class.KernelOptions)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Sequential):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))


class PlainBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = MLP(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def pool_frames(frames: torch.Tensor, frames_per_token: int) -> torch.Tensor:
    """Average groups of ``frames_per_token`` consecutive frames: ``(B, T, F) -> (B, T / n, F)``."""
    b, t, bins = frames.shape
    return frames.view(b, t // frames_per_token, frames_per_token, bins).mean(dim=2)


class PlainEmbedding(nn.Module):
    """Patches of ``frames_per_token`` frames -> ``width`` (``linear``), plus an octave-folded
    frequency convolution projected to ``width`` when ``embedding='freq'``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(config.input_bins * config.frames_per_token, config.width)
        self.freq = None
        if config.embedding == "freq":
            self.freq = FoldedEmbedding(config.freq_channels, config.freq_kernel)
            self.freq_proj = nn.Linear(PITCH_CLASSES * config.freq_channels, config.width)
        self.frames_per_token = config.frames_per_token

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (B, T, bins)
        b, t, bins = frames.shape
        patches = frames.reshape(b, t // self.frames_per_token, self.frames_per_token * bins)
        tokens = self.proj(patches)
        if self.freq is not None:
            pooled = pool_frames(frames, self.frames_per_token)
            tokens = tokens + self.freq_proj(self.freq(pooled).flatten(-2))
        return tokens
