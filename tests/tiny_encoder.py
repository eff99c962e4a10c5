"""A small randomly initialised encoder for the inference, CLI and HEAR tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from mt2.inference.calibration import Calibration
from mt2.inference import Encoder
from mt2.model import build_model


def make_encoder(variant: str = "mt2", mode_probe: bool = False, seed: int = 0) -> Encoder:
    """``mt2-mini`` with 4 frames per token, calibrated with rotation 0 and direction +1."""
    torch.manual_seed(seed)
    model = build_model("mt2-mini", variant, frames_per_token=4)
    probe = nn.Linear(model.layout.token_dim, 2) if mode_probe else None
    calibration = Calibration(rotation=0, direction=1) if "equivariant" in model.config.roles else None
    return Encoder(model, calibration=calibration, mode_probe=probe, training={"note": "random weights, for tests"})


def save_encoder(folder: Path, **kwargs) -> Path:
    make_encoder(**kwargs).save_pretrained(folder)
    return folder


def chord(seconds: float, shift: int = 0, sample_rate: int = 16000) -> np.ndarray:
    """Sustained sine tones A3 C4 E4 A4 B4 (amplitudes 1/n) transposed by ``shift`` semitones."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    notes = (57, 60, 64, 69, 71)
    audio = sum(np.sin(2 * np.pi * 440 * 2 ** ((m + shift - 69) / 12) * t) / (1 + i) for i, m in enumerate(notes))
    return (0.2 * audio).astype(np.float32)


def one_thread():
    """Generator for a module fixture: torch on one thread while the module runs. The
    developers' machines share two cores; two threads on a busy machine are several times
    slower than one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
