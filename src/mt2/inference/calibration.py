"""The fitted calibration of the equivariant token: which output bin is which key signature.

Self-supervised training fixes the 12 outputs only up to a rotation ``r`` (which bin is
C major / A minor) and a direction ``d`` (docs/design.md section 5). Signature ``s`` sits at
bin ``q = (d s + r) mod 12``, so ``s = d (q - r) mod 12``. This module holds and applies
the fitted ``(r, d)``; fitting them is :mod:`mt2.training.calibrate`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Calibration:
    """Maps output bins of the equivariant token to key signatures (relative-major pitch class)."""

    rotation: int
    direction: int
    votes: dict[str, int] = field(default_factory=dict)
    agreement: float = 1.0  # share of references that the chosen map explains
    references: str = "synthetic"  # the reference family it was fitted on (mt2.training.calibrate.REFERENCES)

    def signature_of_bin(self, index: int | np.ndarray) -> int | np.ndarray:
        """``s = d (q - r) mod 12``."""
        return (self.direction * (np.asarray(index) - self.rotation)) % 12

    def bin_of_signature(self, signature: int | np.ndarray) -> int | np.ndarray:
        """``q = (d s + r) mod 12``, the inverse of :meth:`signature_of_bin`."""
        return (self.direction * np.asarray(signature) + self.rotation) % 12

    def signature_probabilities(self, probabilities: np.ndarray) -> np.ndarray:
        """Reorder ``(..., 12)`` bin probabilities so that entry ``s`` is signature ``s``."""
        return np.asarray(probabilities)[..., self.bin_of_signature(np.arange(12))]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        return cls(**data)
