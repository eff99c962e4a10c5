"""Audio decoding: one place where files become float32 mono signals at the model's rate.

Decoding uses soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, MP3 and the other formats
libsndfile reads), resampling uses soxr, and multichannel audio is downmixed to mono by
the mean of its channels.

Every file that cannot be used raises :class:`AudioError`, whose message names the path,
says what is wrong with it and what to do. Callers that walk folders catch it, report
the file and go on (a bad file never stops a run).

Two cases are valid on purpose and are not errors:

- **silence**: an all-zero file is returned as zeros; deciding whether silence is
  useful is the caller's business.
- **short files**: a file shorter than a training segment is returned as it is, even a
  few samples long; callers pad or skip it.

Float files whose samples exceed [-1, 1] are clipped to that range; files with NaN or
infinite samples are rejected.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

__all__ = ["AudioError", "AudioInfo", "audio_info", "load_audio", "load_excerpt", "load_segment", "stream_audio"]

#: Resampling quality passed to soxr ("HQ": the library default, good to about -100 dB).
RESAMPLE_QUALITY = "HQ"


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the path and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str, advice: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        message = f"{self.path}: {reason}"
        if advice:
            message += f" ({advice})"
        super().__init__(message)


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says, before any resampling or downmix."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _check_path(path: Path) -> None:
    """Raise AudioError for a path that cannot even be opened as a file of audio."""
    if not path.exists():
        raise AudioError(path, "file does not exist", "check the path")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file", "pass a file, or a folder to a folder reader")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)", "re-export or remove it")


def _open(path: Path) -> sf.SoundFile:
    """Open ``path`` with libsndfile, turning its errors into AudioError."""
    _check_path(path)
    try:
        handle = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError(
            path,
            f"not a readable audio file ({error})",
            "supported: WAV, FLAC, OGG, MP3 and other libsndfile formats; re-encode or remove it",
        ) from None
    if handle.frames == 0 or handle.samplerate <= 0:
        handle.close()
        raise AudioError(path, "contains no audio samples", "re-export or remove it")
    return handle


def _decode_error(path: Path, error: Exception) -> AudioError:
    return AudioError(path, f"truncated or corrupt audio data ({error})", "re-encode or remove it")


#: Share of its declared frames that a file may decode short of and still count as whole. Lossy
#: formats declare an estimate: libsndfile decodes up to 0.09 % fewer frames than the header
#: says from whole MP3 and Ogg Vorbis files of the real-music corpus (``mt2 corpus real``);
#: a truncated file misses far more.
SHORT_DECODE_TOLERANCE = 0.005


def _truncated(declared: int, decoded: int) -> bool:
    """True when ``decoded`` frames fall short of the header's ``declared`` by more than
    :data:`SHORT_DECODE_TOLERANCE` of them."""
    return declared - decoded > SHORT_DECODE_TOLERANCE * declared


def _check_finite(path: Path, block: np.ndarray) -> np.ndarray:
    if not np.isfinite(block).all():
        raise AudioError(path, "contains NaN or infinite samples", "the file is damaged; re-export or remove it")
    return np.clip(block, -1.0, 1.0, out=block)


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of an audio file.

    Raises:
        AudioError: missing, empty, a directory, not audio, or without samples.
    """
    path = Path(path)
    with _open(path) as handle:
        return AudioInfo(sample_rate=handle.samplerate, channels=handle.channels, frames=handle.frames)


def load_audio(path: str | os.PathLike, sample_rate: int = 16000, mono: bool = True) -> np.ndarray:
    """Decode a whole file to float32 in [-1, 1] at ``sample_rate``.

    Args:
        path: audio file (WAV, FLAC, OGG, MP3, ... anything libsndfile decodes).
        sample_rate: output rate in Hz; the file is resampled with soxr if it differs.
        mono: downmix by the mean of the channels and return shape (samples,);
            otherwise return shape (channels, samples).

    Silence comes back as zeros and short files come back as they are (see the module
    docstring).

    Raises:
        AudioError: the file is missing, empty, a directory, not audio, truncated or
            corrupt, or has non-finite samples.
    """
    path = Path(path)
    with _open(path) as handle:
        declared = handle.frames
        source_rate = handle.samplerate
        try:
            data = handle.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as error:
            raise _decode_error(path, error) from None
    if _truncated(declared, len(data)):
        raise _decode_error(path, f"header declares {declared} frames, only {len(data)} decoded")
    data = _check_finite(path, data)
    if mono:
        data = data.mean(axis=1, dtype=np.float32)
    if source_rate != sample_rate:
        data = soxr.resample(data, source_rate, sample_rate, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)
        np.clip(data, -1.0, 1.0, out=data)
    return data if mono else np.ascontiguousarray(data.T)


def load_excerpt(path: str | os.PathLike, position: float, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """Decode ``seconds`` of a file, mono float32 at ``sample_rate``, starting at ``position`` (0 to 1)
    of the way through the part of the file where such an excerpt fits (0: the start, 1: the end;
    the whole file when it is shorter). Only the excerpt is read (libsndfile seeks).

    Raises:
        AudioError: as :func:`load_audio`.
        ValueError: ``position`` outside [0, 1] or ``seconds`` not positive.
    """
    if not 0 <= position <= 1 or not seconds > 0:
        raise ValueError(f"need 0 <= position <= 1 and seconds > 0, got position={position}, seconds={seconds}")
    return _read_span(path, seconds, sample_rate, lambda frames, count, rate: int(position * (frames - count)))


def load_segment(path: str | os.PathLike, start: float, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """Decode ``seconds`` of a file from ``start`` seconds (kept inside the file), mono float32 at
    ``sample_rate``; less where the file ends first. Only the segment is read (libsndfile seeks).

    Raises:
        AudioError: as :func:`load_audio`.
        ValueError: ``start`` negative or ``seconds`` not positive.
    """
    if not start >= 0 or not seconds > 0:
        raise ValueError(f"need start >= 0 and seconds > 0, got start={start}, seconds={seconds}")
    return _read_span(path, seconds, sample_rate, lambda frames, count, rate: min(int(start * rate), max(0, frames - 1)))


def _read_span(path: str | os.PathLike, seconds: float, sample_rate: int, first: Callable[[int, int, int], int]) -> np.ndarray:
    """Read ``seconds`` of ``path`` from frame ``first(frames, count, rate)``; mono, resampled."""
    path = Path(path)
    with _open(path) as handle:
        count = min(handle.frames, int(round(seconds * handle.samplerate)))
        handle.seek(first(handle.frames, count, handle.samplerate))
        source_rate = handle.samplerate
        try:
            data = handle.read(count, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as error:
            raise _decode_error(path, error) from None
    data = _check_finite(path, data).mean(axis=1, dtype=np.float32)
    if source_rate != sample_rate:
        data = soxr.resample(data, source_rate, sample_rate, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)
    return data


def stream_audio(
    path: str | os.PathLike, sample_rate: int = 16000, block_seconds: float = 60.0
) -> Iterator[np.ndarray]:
    """Decode a file block by block: mono float32 blocks at ``sample_rate``.

    Memory does not depend on the duration of the file. Resampling runs through one
    ``soxr.ResampleStream``, so the concatenated blocks equal :func:`load_audio` of the
    same file up to the resampler's tolerance. Block lengths are about
    ``block_seconds`` seconds but not exact when resampling.

    The file is opened and checked when this function is called, so a missing, empty or
    non-audio file raises here; damage found while decoding (corrupt data, non-finite
    samples) raises during iteration.

    Raises:
        AudioError: as :func:`load_audio`.
    """
    path = Path(path)
    if block_seconds <= 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds}")
    handle = _open(path)
    return _stream(path, handle, sample_rate, max(1, int(round(block_seconds * handle.samplerate))))


def _stream(path: Path, handle: sf.SoundFile, sample_rate: int, block_frames: int) -> Iterator[np.ndarray]:
    resampler = None
    if handle.samplerate != sample_rate:
        resampler = soxr.ResampleStream(handle.samplerate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
    decoded = 0
    with handle:
        declared = handle.frames
        while True:
            try:
                block = handle.read(block_frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as error:
                raise _decode_error(path, error) from None
            decoded += len(block)
            last = len(block) < block_frames or decoded >= declared
            mono = _check_finite(path, block).mean(axis=1, dtype=np.float32)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
                np.clip(mono, -1.0, 1.0, out=mono)
            if len(mono):
                yield mono
            if last:
                break
    if _truncated(declared, decoded):
        raise _decode_error(path, f"header declares {declared} frames, only {decoded} decoded")
