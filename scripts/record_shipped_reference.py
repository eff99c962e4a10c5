"""Record the outputs of the shipped mt2-mini weights on the fixed clip of
tests/test_inference_path.py into tests/data/shipped_reference.npz, with each weights file's
SHA-256, so that later changes to the inference path are checked against them.

Run it only when the shipped weights themselves change (a new training round), after the
round's measurements, and say so in the commit:

    python scripts/record_shipped_reference.py
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

import mt2
from mt2.inference.checkpoint import resolve

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_inference_path import MINI_MODELS, REFERENCE, fixed_clip  # noqa: E402


def weights_digest(name: str) -> str:
    """SHA-256 of the shipped model's ``model.safetensors``."""
    return hashlib.sha256((resolve(name) / "model.safetensors").read_bytes()).hexdigest()


def main() -> None:
    clip, sr = fixed_clip()
    arrays = {}
    for name in MINI_MODELS:
        encoder = mt2.load(name)
        emb = encoder.embed(clip, sr, layers=[0])
        arrays[f"{name}/sha256"] = np.array(weights_digest(name))
        arrays[f"{name}/class_tokens"] = emb.class_tokens_at(-1)
        arrays[f"{name}/class_tokens_0"] = emb.class_tokens_at(0)
        arrays[f"{name}/frames_mean"] = emb.frames.mean(axis=0)
        if encoder.model.equivariant_head is not None:
            estimate = encoder.key(clip, sr)
            arrays[f"{name}/key_probabilities"] = emb.key_probabilities
            arrays[f"{name}/profile"] = estimate.profile
            arrays[f"{name}/key"] = np.array(estimate.key)
    np.savez(REFERENCE, **arrays)
    print(f"wrote {REFERENCE} for {', '.join(MINI_MODELS)}")


if __name__ == "__main__":
    main()
