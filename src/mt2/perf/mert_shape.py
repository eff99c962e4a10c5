"""A network with the shape and cost of MERT-95M, with random weights: the speed baseline.

MERT-v1-95M (Li et al., 2023) has the HuBERT-base layout on 24 kHz audio:

* a feature extractor of 7 convolutions, 512 channels, kernels ``(10, 3, 3, 3, 3, 2, 2)``
  and strides ``(5, 2, 2, 2, 2, 2, 2)`` (total stride 320: 75 frames per second), no
  bias, a GroupNorm with one group per channel after the first, GELU after each;
* a feature projection: LayerNorm(512) and Linear(512 -> 768);
* a convolutional positional embedding (Conv1d 768 -> 768, kernel 128, 16 groups, the
  last output frame dropped because the kernel is even, GELU) added to the features, then
  LayerNorm;
* 12 post-norm transformer layers of width 768, 12 heads, feed-forward 3072 with GELU.

Only the cost matters here: nothing is trained or loaded, dropout and masking are
left out (inference), and the positional convolution has a plain weight (HuBERT's weight
normalisation reparameterises it at no inference cost). :class:`MertShapeConfig` also
describes smaller networks of the same layout, for quick runs of ``mt2 perf``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr
import torch
import torch.nn.functional as F
from torch import nn

from mt2.inference.windows import cut_windows

MERT_SAMPLE_RATE = 24_000
#: MERT's context: it was pretrained on 5-s crops.
WINDOW_SECONDS = 5.0


@dataclass(frozen=True)
class MertShapeConfig:
    """Layout of the network; the defaults are MERT-95M's."""

    conv_channels: int = 512
    conv_kernels: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_strides: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    width: int = 768
    depth: int = 12
    heads: int = 12
    ffn: int = 3072
    pos_kernel: int = 128
    pos_groups: int = 16

    @property
    def total_stride(self) -> int:
        """Input samples per output frame (320 for MERT-95M: 75 frames/s at 24 kHz)."""
        stride = 1
        for s in self.conv_strides:
            stride *= s
        return stride


#: A network of the same layout about 100 times cheaper, for smoke tests.
QUICK_CONFIG = MertShapeConfig(conv_channels=64, width=96, depth=2, heads=4, ffn=384, pos_kernel=16, pos_groups=4)


class FeatureExtractor(nn.Module):
    """Waveform ``(B, N)`` -> conv features ``(B, C, T)``."""

    def __init__(self, config: MertShapeConfig) -> None:
        super().__init__()
        channels = config.conv_channels
        layers = []
        for i, (kernel, stride) in enumerate(zip(config.conv_kernels, config.conv_strides)):
            layers.append(nn.Conv1d(1 if i == 0 else channels, channels, kernel, stride=stride, bias=False))
            if i == 0:
                layers.append(nn.GroupNorm(channels, channels))
            layers.append(nn.GELU())
        self.layers = nn.Sequential(*layers)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.layers(audio[:, None])


class PositionalConv(nn.Module):
    """HuBERT's relative positional embedding: a wide grouped convolution over frames."""

    def __init__(self, config: MertShapeConfig) -> None:
        super().__init__()
        self.conv = nn.Conv1d(config.width, config.width, config.pos_kernel, padding=config.pos_kernel // 2, groups=config.pos_groups)
        self.trim = 1 if config.pos_kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[..., : -self.trim]
        return F.gelu(y).transpose(1, 2)


class PostNormLayer(nn.Module):
    """``x = norm(x + attn(x))``, then ``x = norm(x + ffn(x))`` (HuBERT-base ordering)."""

    def __init__(self, config: MertShapeConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.out = nn.Linear(config.width, config.width)
        self.norm1 = nn.LayerNorm(config.width)
        self.ffn = nn.Sequential(nn.Linear(config.width, config.ffn), nn.GELU(), nn.Linear(config.ffn, config.width))
        self.norm2 = nn.LayerNorm(config.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = self.norm1(x + self.out(attended))
        return self.norm2(x + self.ffn(x))


class MertShape(nn.Module):
    """Audio at 24 kHz ``(B, N)`` -> frame features ``(B, N // 320 (about), width)``."""

    sample_rate = MERT_SAMPLE_RATE

    def __init__(self, config: MertShapeConfig = MertShapeConfig()) -> None:
        super().__init__()
        self.config = config
        self.features = FeatureExtractor(config)
        self.projection = nn.Sequential(nn.LayerNorm(config.conv_channels), nn.Linear(config.conv_channels, config.width))
        self.positions = PositionalConv(config)
        self.norm = nn.LayerNorm(config.width)
        self.layers = nn.ModuleList(PostNormLayer(config) for _ in range(config.depth))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = self.projection(self.features(audio).transpose(1, 2))
        x = self.norm(x + self.positions(x))
        for layer in self.layers:
            x = layer(x)
        return x

    @torch.inference_mode()
    def embed(self, audio: np.ndarray, sr: int, batch_size: int = 4) -> np.ndarray:
        """Frame features ``(F, width)`` of mono ``audio`` at rate ``sr``: the work of embedding it.

        The audio is resampled to 24 kHz with soxr and cut into non-overlapping windows of
        :data:`WINDOW_SECONDS` (the last zero-padded), ``batch_size`` per forward pass, as
        :meth:`mt2.inference.Encoder.embed` does with its 4-s windows.
        """
        if sr != self.sample_rate:
            audio = soxr.resample(audio, sr, self.sample_rate).astype(np.float32, copy=False)
        size = int(WINDOW_SECONDS * self.sample_rate)
        frames = [self(torch.from_numpy(windows)).flatten(0, 1).numpy() for windows, _ in cut_windows([audio], size, batch_size)]
        return np.concatenate(frames)
