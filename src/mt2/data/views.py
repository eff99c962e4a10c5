"""The training batch of docs/design.md section 3: views A, B, C of each track, from CQT magnitudes.

For each track: segments A and B (``segment_frames`` each) at two start frames, both cut
at the same CQT offset ``o``; view C is A's segment cut at ``o + k`` (a transposition by
``k`` semitones down), with ``o`` and ``o + k`` in ``[0, 15]`` and ``k mod 12 != 0``.
Views are compressed and normalised per segment, after the contrastive augmentations of
A and B (equalisation, noise floor, time stretch), which act on magnitudes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mt2.frontend import DEFAULT_COMPRESSION, MAX_OFFSET, WINDOW_FRAMES, model_window


@dataclass
class ViewConfig:
    segment_frames: int = WINDOW_FRAMES
    compression: str = DEFAULT_COMPRESSION
    augment: bool = True
    eq_db: float = 6.0  # peak of a random smooth spectral tilt/bump, in dB
    noise: float = 0.02  # noise floor, relative to the segment's mean magnitude
    stretch: float = 0.15  # time-stretch factors in [1 - s, 1 + s]


@dataclass
class Views:
    """``a``, ``b``, ``c``: ``(B, 84, T)`` windows; ``shift``: ``k`` per track; ``offset``: ``o``."""

    a: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    shift: torch.Tensor
    offset: torch.Tensor


def draw_offsets(batch: int, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``o`` and shifts ``k`` with ``o, o + k`` in ``[0, 15]`` and ``k mod 12 != 0``."""
    pairs = [(o, o2 - o) for o in range(MAX_OFFSET + 1) for o2 in range(MAX_OFFSET + 1) if (o2 - o) % 12 != 0]
    chosen = generator.integers(len(pairs), size=batch)
    offsets, shifts = zip(*(pairs[i] for i in chosen))
    return np.array(offsets), np.array(shifts)


def _stretch(segment: torch.Tensor, factor: float, frames: int) -> torch.Tensor:
    """Resample ``(F, T)`` in time by ``factor`` and keep ``frames`` frames."""
    new_length = max(frames, int(round(segment.shape[-1] * factor)))
    out = F.interpolate(segment[None], size=new_length, mode="linear", align_corners=False)[0]
    return out[:, :frames]


def _augment(segment: torch.Tensor, cfg: ViewConfig, generator: np.random.Generator) -> torch.Tensor:
    """Random equalisation (smooth gain curve over bins) and a noise floor, on magnitudes."""
    bins = segment.shape[0]
    x = torch.linspace(-1, 1, bins)
    curve_db = cfg.eq_db * (generator.uniform(-1, 1) * x + generator.uniform(-1, 1) * torch.cos(np.pi * generator.uniform(0.5, 2) * x))
    out = segment * (10 ** (curve_db / 20))[:, None]
    noise = torch.from_numpy(generator.random(out.shape).astype(np.float32))
    return out + cfg.noise * generator.uniform(0, 1) * out.mean() * noise


def sample_views(
    clips: list[np.ndarray],
    cfg: ViewConfig,
    generator: np.random.Generator,
) -> Views:
    """One training batch from magnitude CQTs ``clips[i]`` of shape ``(99, T_i)``, one track each.

    Clips shorter than ``segment_frames`` (after stretch) are zero-padded at the end.
    """
    frames = cfg.segment_frames
    offsets, shifts = draw_offsets(len(clips), generator)
    seg_a, seg_b = [], []
    for clip in clips:
        clip = torch.from_numpy(np.asarray(clip, dtype=np.float32))
        pieces = []
        for _ in range(2):
            factor = 1 + generator.uniform(-cfg.stretch, cfg.stretch) if cfg.augment else 1.0
            need = int(np.ceil(frames * factor)) + 1
            if clip.shape[1] < need:
                clip = F.pad(clip, (0, need - clip.shape[1]))
            start = int(generator.integers(0, clip.shape[1] - need + 1))
            pieces.append(_stretch(clip[:, start : start + need], 1 / factor, frames))
        seg_a.append(pieces[0])
        seg_b.append(pieces[1])
    a_full, b_full = torch.stack(seg_a), torch.stack(seg_b)
    if cfg.augment:
        a_full = torch.stack([_augment(s, cfg, generator) for s in a_full])
        b_full = torch.stack([_augment(s, cfg, generator) for s in b_full])
    offsets_t, shifts_t = torch.from_numpy(offsets), torch.from_numpy(shifts)
    return Views(
        a=model_window(a_full, offsets_t, cfg.compression),
        b=model_window(b_full, offsets_t, cfg.compression),
        c=model_window(a_full, offsets_t + shifts_t, cfg.compression),
        shift=shifts_t,
        offset=offsets_t,
    )
