"""A folder of awkward audio inputs, for tests of every reader.

:func:`make_bad_folder` writes files that must be rejected with an AudioError
(``BAD``) beside files that are valid but unusual (``VALID``) and one ordinary file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

#: Files that every reader must reject with an AudioError naming the file.
BAD = ("empty.wav", "truncated.flac", "text.wav", "dir.wav", "nan.wav")
#: Files that are valid on purpose (see mt2.audio): silence, a short clip, 8 kHz stereo.
VALID = ("silent.wav", "short.wav", "stereo8k.wav", "good.flac")


def tone(seconds: float, sample_rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    """A sine tone, float32."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_bad_folder(tmp_path: Path) -> dict[str, Path]:
    """Write the awkward inputs under ``tmp_path`` and return them by file name.

    - ``empty.wav``: 0 bytes.
    - ``truncated.flac``: the first half of the bytes of a 2-s FLAC.
    - ``text.wav``: a text file with an audio extension.
    - ``dir.wav``: a directory with an audio extension.
    - ``nan.wav``: a float WAV with NaN samples.
    - ``silent.wav``: 1 s of digital silence (valid).
    - ``short.wav``: a 0.1-s clip at 16 kHz (valid: callers pad).
    - ``stereo8k.wav``: 1 s of 8 kHz stereo, a different tone per channel (valid).
    - ``good.flac``: a 2-s 440 Hz tone at 16 kHz.
    """
    folder = Path(tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in BAD + VALID}

    paths["empty.wav"].write_bytes(b"")
    sf.write(paths["good.flac"], tone(2.0, 16000), 16000, subtype="PCM_16")
    data = paths["good.flac"].read_bytes()
    paths["truncated.flac"].write_bytes(data[: len(data) // 2])
    paths["text.wav"].write_text("this is not audio\n")
    paths["dir.wav"].mkdir(exist_ok=True)
    nan = tone(1.0, 16000)
    nan[1000:1010] = np.nan
    sf.write(paths["nan.wav"], nan, 16000, subtype="FLOAT")
    sf.write(paths["silent.wav"], np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    sf.write(paths["short.wav"], tone(0.1, 16000), 16000, subtype="PCM_16")
    stereo = np.stack([tone(1.0, 8000, 440.0, 0.4), tone(1.0, 8000, 660.0, 0.2)], axis=1)
    sf.write(paths["stereo8k.wav"], stereo, 8000, subtype="PCM_16")
    return paths
