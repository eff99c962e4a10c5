"""A tiny synthetic corpus in the manifest format, for tests that must not wait for a render."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from mt2.training.calibrate import TIMBRES, reference_audio
from mt2.keys import key_name


def write_synthetic_corpus(root: Path, keys: int = 12) -> Path:
    """Scale-and-cadence clips in ``keys`` major keys x every reference timbre; returns the manifest."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for tonic in range(keys):
        for program, timbre in enumerate(TIMBRES):
            path = f"audio/{timbre}-{tonic:02d}.flac"
            (root / "audio").mkdir(exist_ok=True)
            audio = np.concatenate([reference_audio(tonic, timbre)] * 2)
            sf.write(root / path, audio, 16000)
            rows.append({
                "path": path, "clip_id": f"{timbre}-{tonic}", "piece_id": f"{timbre}-{tonic}",
                "split": "test" if tonic % 3 == 0 else "train", "duration": len(audio) / 16000,
                "key": key_name(tonic, "major"), "tonic": tonic, "mode": "major", "signature": tonic,
                "instrument": program, "pitch": None,
            })
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest
