"""The audio that ``mt2 perf`` measures: music (real files or synthetic), tones, chords and long files.

Every function is deterministic, so that two runs measure the same work.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mt2.audio import AudioError, load_audio
from mt2.frontend import SAMPLE_RATE
from mt2.training.calibrate import TIMBRES, reference_audio

#: Extensions read from a folder of music.
MUSIC_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


def synthetic_music(seconds: float) -> np.ndarray:
    """``seconds`` of 16 kHz music without files: scales and cadences in every key and
    timbre of :mod:`mt2.training.calibrate`, one after the other, with a faint noise floor."""
    parts = [reference_audio(tonic, timbre) for timbre in TIMBRES for tonic in range(12)]
    return _fill(parts, seconds, np.random.default_rng(0))


def music_files(path: str | os.PathLike) -> list[Path]:
    """Audio files under ``path`` (itself if it is a file), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MUSIC_EXTENSIONS)
    if not files:
        raise ValueError(f"{path}: no audio files ({', '.join(MUSIC_EXTENSIONS)})")
    return files


def real_music(path: str | os.PathLike, seconds: float) -> np.ndarray:
    """``seconds`` of 16 kHz mono audio decoded from the files under ``path``, spread over the
    sorted list (every ``k``-th file) so that a corpus of several sources is sampled evenly."""
    files = music_files(path)
    step = max(1, len(files) // 50)
    order = [file for start in range(step) for file in files[start::step]]
    parts, total = [], 0
    for file in order:
        try:
            audio = load_audio(file, SAMPLE_RATE)
        except AudioError:
            continue
        parts.append(audio)
        total += audio.size
        if total >= seconds * SAMPLE_RATE:
            break
    if not parts:
        raise ValueError(f"{path}: none of the audio files could be decoded")
    return _fill(parts, seconds)


def _fill(parts: list[np.ndarray], seconds: float, noise: np.random.Generator | None = None) -> np.ndarray:
    """Concatenate ``parts`` (repeating them if needed) into exactly ``seconds`` of audio."""
    need = int(round(seconds * SAMPLE_RATE))
    joined = np.concatenate(parts)
    audio = np.tile(joined, -(-need // joined.size))[:need].astype(np.float32)
    if noise is not None:
        audio += (1e-3 * noise.standard_normal(audio.size)).astype(np.float32)
    return audio


def harmonic_tone(midi: float | list[float], seconds: float = 2.0, harmonics: int = 6) -> np.ndarray:
    """A 16 kHz tone (or a chord, for a list of MIDI pitches) of harmonics with amplitudes ``1/h``."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = np.zeros_like(t)
    for pitch in np.atleast_1d(midi):
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        for h in range(1, harmonics + 1):
            if h * f0 < SAMPLE_RATE / 2:
                audio += np.sin(2 * np.pi * h * f0 * t) / h
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32)


def write_long_file(path: str | os.PathLike, minutes: float, music: np.ndarray, sample_rate: int = 44_100) -> Path:
    """Write ``minutes`` of ``music`` (16 kHz, repeated) as a stereo FLAC at ``sample_rate``,
    the usual format of a music file; memory does not grow with the duration."""
    path = Path(path)
    block = soxr.resample(music, SAMPLE_RATE, sample_rate).astype(np.float32)
    stereo = np.stack([block, 0.8 * block], axis=1).clip(-1, 1)
    remaining = int(round(minutes * 60 * sample_rate))
    with sf.SoundFile(path, "w", samplerate=sample_rate, channels=2, format="FLAC", subtype="PCM_16") as handle:
        while remaining > 0:
            handle.write(stereo[:remaining])
            remaining -= len(stereo)
    return path
