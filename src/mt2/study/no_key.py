"""The no-key rule measured (``mt2 study --no-key``): the table of :mod:`mt2.inference.key_decision`.

Groups of clips, each run through :meth:`mt2.inference.Encoder.key` exactly as ``mt2 key`` runs:

* **noise**: white, pink (1/f power) and brown (1/f^2) noise of 4, 8 and 30 s at RMS levels
  of -90 to -3 dB; **silence**: digital zero and white noise at -75 dB, 4 and 30 s;
* **real music** (a corpus written by ``mt2 corpus real``; the rows of ``splits``): a 30-s
  excerpt 40 % of the way through each track and an 8-s excerpt at 70 %, and the 30-s excerpt
  again with white, pink or brown noise (drawn per track) at 0 dB SNR;
* **rendered music** (a corpus written by ``mt2 corpus render``, its pop and rock pieces with
  drums): every clip, and each clip again with noise at 10 and at 0 dB SNR.

Each group reports its clips, the range of the :func:`~mt2.inference.key_decision.tonal_contrast`
and :func:`~mt2.inference.key_decision.tonality` of the clip, and the share that gets no key.
Noise is generated from ``numpy.random.default_rng(seed)``, so the same seed gives the same table.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mt2.audio import AudioError, load_audio, load_excerpt
from mt2.corpus import read_manifest
from mt2.evaluation.real_music import read_manifest as read_real_manifest
from mt2.frontend import SAMPLE_RATE
from mt2.inference import Encoder
from mt2.inference.key_decision import clip_spectrum, tonal_contrast
from mt2.tables import markdown_table

NOISE_KINDS = ("white", "pink", "brown")
NOISE_LEVELS_DB = (-90, -70, -50, -30, -20, -10, -3)
NOISE_SECONDS = (4, 8, 30)
#: Real-music excerpts: (seconds, position through the track).
REAL_EXCERPTS = ((30.0, 0.4), (8.0, 0.7))
RENDERED_SNRS_DB = (10, 0)


@dataclass
class Measured:
    """One clip: its group, name, the statistics that decide, and the decision."""

    group: str
    clip: str
    contrast: float
    tonality: float
    level_db: float
    has_key: bool


def coloured_noise(kind: str, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise: white, pink (power falling as 1/f) or brown (1/f^2), shaped in the Fourier domain."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    f = np.maximum(np.arange(len(spectrum)), 1)
    spectrum /= {"white": 1, "pink": np.sqrt(f), "brown": f}[kind]
    noise = np.fft.irfft(spectrum, samples)
    return noise / np.sqrt(np.mean(noise**2))


def at_level(audio: np.ndarray, db: float) -> np.ndarray:
    """``audio`` scaled to an RMS level of ``db`` dB full scale, float32."""
    return (audio / np.sqrt(np.mean(np.square(audio, dtype=np.float64))) * 10 ** (db / 20)).astype(np.float32)


def with_noise(music: np.ndarray, snr_db: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``music`` plus ``kind`` noise ``snr_db`` dB below the music's RMS level."""
    level = 10 * np.log10(max(np.mean(np.square(music, dtype=np.float64)), 1e-20))
    return (music + at_level(coloured_noise(kind, len(music), rng), level - snr_db)).astype(np.float32)


def noise_clips(rng: np.random.Generator) -> Iterator[tuple[str, str, np.ndarray]]:
    """``(group, name, audio)`` of every noise and silence clip."""
    for kind in NOISE_KINDS:
        for db in NOISE_LEVELS_DB:
            for seconds in NOISE_SECONDS:
                yield f"{kind} noise", f"{kind} {db} dB {seconds} s", at_level(coloured_noise(kind, SAMPLE_RATE * seconds, rng), db)
    for seconds in (4, 30):
        yield "silence", f"zero {seconds} s", np.zeros(SAMPLE_RATE * seconds, np.float32)
        yield "silence", f"white -75 dB {seconds} s", at_level(coloured_noise("white", SAMPLE_RATE * seconds, rng), -75)


def real_clips(folder: Path, splits: tuple[str, ...], rng: np.random.Generator, warn: Callable[[str], None]) -> Iterator[tuple[str, str, np.ndarray]]:
    """Excerpts of the real corpus's tracks in ``splits`` (module docstring); unreadable tracks are named and skipped."""
    root, rows = read_real_manifest(folder)
    for row in rows:
        if row.get("split") not in splits:
            continue
        path = root / row["path"]
        try:
            excerpts = [load_excerpt(path, position, seconds) for seconds, position in REAL_EXCERPTS]
        except AudioError as error:
            warn(f"skipped: {error}")
            continue
        for (seconds, _), audio in zip(REAL_EXCERPTS, excerpts):
            yield f"real music, {seconds:.0f} s", row["path"], audio
        yield "real music + 0 dB noise", row["path"], with_noise(excerpts[0], 0, str(rng.choice(NOISE_KINDS)), rng)


def rendered_clips(folder: Path, rng: np.random.Generator) -> Iterator[tuple[str, str, np.ndarray]]:
    """Every clip of a rendered corpus, alone and with noise at :data:`RENDERED_SNRS_DB`."""
    for row in read_manifest(folder):
        audio = load_audio(Path(folder) / row["path"], SAMPLE_RATE)
        yield "rendered", row["path"], audio
        for snr in RENDERED_SNRS_DB:
            yield f"rendered + {snr} dB noise", row["path"], with_noise(audio, snr, str(rng.choice(NOISE_KINDS)), rng)


def measure(encoder: Encoder, real: Path | None = None, rendered: Path | None = None, splits: tuple[str, ...] = ("test",),
            seed: int = 0, warn: Callable[[str], None] = print) -> list[Measured]:
    """Every clip of the groups above through ``encoder.key`` (the real and rendered groups only
    where their folders are given)."""
    rng = np.random.default_rng(seed)
    clips = [noise_clips(rng)]
    if real is not None:
        clips.append(real_clips(real, splits, rng, warn))
    if rendered is not None:
        clips.append(rendered_clips(rendered, rng))
    rows = []
    for source in clips:
        for group, name, audio in source:
            embedding = encoder.embed(audio, SAMPLE_RATE, readout="equivariant")
            stats = encoder.statistics_of(embedding)
            contrast = float(tonal_contrast(clip_spectrum(embedding.spectrum, embedding.window_lengths)[0]))
            rows.append(Measured(group, name, contrast, stats.tonality, stats.level_db, encoder.decide(stats).has_key))
    return rows


#: Clip lengths (seconds) of the noise model's fit (:func:`fit_noise_model`).
FIT_SECONDS = (0.5, 1, 2, 3, 4, 6, 8, 15, 30, 60)


def fit_noise_model(encoder: Encoder, clips_per_length: int = 6, seed: int = 1) -> dict:
    """Fit :data:`~mt2.inference.key_decision.NOISE_FLOOR` and ``NOISE_SPREAD`` again: the median
    :func:`~mt2.inference.key_decision.tonal_contrast` ``c(N)`` of white, pink and brown noise clips
    (``clips_per_length`` of each, -20 dB) at each of :data:`FIT_SECONDS`, then least squares of
    ``c(N)**2 = floor**2 + spread**2 / N`` over the lengths (``N`` the frames the clip statistic averages).

    Returns ``{"floor", "spread", "lengths": [{"seconds", "frames", "median", "max"}]}``.
    """
    rng = np.random.default_rng(seed)
    lengths = []
    for seconds in FIT_SECONDS:
        contrasts, frames = [], 0.0
        for kind in NOISE_KINDS:
            for _ in range(clips_per_length):
                embedding = encoder.embed(at_level(coloured_noise(kind, int(SAMPLE_RATE * seconds), rng), -20), SAMPLE_RATE, readout="equivariant")
                clip, frames = clip_spectrum(embedding.spectrum, embedding.window_lengths)
                contrasts.append(float(tonal_contrast(clip)))
        lengths.append({"seconds": seconds, "frames": frames, "median": float(np.median(contrasts)), "max": float(np.max(contrasts))})
    design = np.array([[1.0, 1.0 / row["frames"]] for row in lengths])
    (floor_sq, spread_sq), *_ = np.linalg.lstsq(design, np.array([row["median"] ** 2 for row in lengths]), rcond=None)
    return {"floor": float(np.sqrt(max(floor_sq, 0))), "spread": float(np.sqrt(max(spread_sq, 0))), "lengths": lengths}


def table(rows: list[Measured]) -> str:
    """One Markdown row per group: clips, contrast and tonality ranges (median), share with no key."""
    groups: dict[str, list[Measured]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    lines = []
    for group, members in groups.items():
        contrast = np.array([m.contrast for m in members])
        tonality = np.array([m.tonality for m in members])
        no_key = np.mean([not m.has_key for m in members])
        lines.append([group, str(len(members)), f"{contrast.min():.3f} - {contrast.max():.3f} (median {np.median(contrast):.3f})",
                      f"{tonality.min():.2f} - {tonality.max():.2f}", f"{100 * no_key:.1f} %"])
    return "\n".join(markdown_table(["group", "clips", "tonal contrast", "tonality", "no key"], lines))


def fit_lines(fit: dict) -> list[str]:
    """The noise model's fit as Markdown lines."""
    lines = [f"Noise model: tonal contrast of noise = sqrt({fit['floor']:.3f}^2 + {fit['spread']:.3f}^2 / frames)", ""]
    rows = [[f"{r['seconds']:g}", f"{r['frames']:.0f}", f"{r['median']:.4f}", f"{r['max']:.4f}"] for r in fit["lengths"]]
    return lines + markdown_table(["seconds", "frames", "median contrast", "max contrast"], rows)


def write(rows: list[Measured], out: Path, fit: dict | None = None) -> None:
    """``out/no_key.md`` (the table, and the noise model's fit when given) and ``out/no_key.jsonl`` (one line per clip)."""
    out.mkdir(parents=True, exist_ok=True)
    text = table(rows) + "\n" + ("\n" + "\n".join(fit_lines(fit)) + "\n" if fit else "")
    (out / "no_key.md").write_text(text)
    (out / "no_key.jsonl").write_text("".join(json.dumps(asdict(row)) + "\n" for row in rows))
