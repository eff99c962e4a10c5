"""The key decision: window statistics in, a :class:`~mt2.inference.KeyEstimate` or no key out.

The encoder's one pass yields, per window, the equivariant head's softmax, the equivariant
class token, the model input averaged over time and the RMS level. :func:`key_statistics`
averages them over windows (:class:`KeyStatistics`); :func:`decide_key` turns the averages
into an estimate:

* the **signature** is the argmax of the calibrated profile (the stored
  :class:`~mt2.inference.calibration.Calibration` says which output bin is which signature);
* the **mode** comes from the stored mode probe when there is one (the caller passes its
  probabilities), else from the Krumhansl-Kessler templates on the input chroma
  (:func:`mt2.keys.template_mode`), comparing only the two keys that share the signature;
* **no key** (silence, noise) is decided by :func:`is_keyless`, the one place of that rule.

**The no-key rule.** An input has no key when its RMS level is below ``silence_db`` (default
:data:`SILENCE_DB`, -60 dB) or its :func:`tonality` is below ``min_tonality`` (default
:data:`MIN_TONALITY`, 1.4). Tonality reads the input, not the model (the model's confidence
does not separate noise from music: brown noise reaches 0.63). It asks whether the
time-averaged spectrum has semitone-scale structure that noise of the same length cannot
have: the **tonal contrast** (:func:`tonal_contrast`) is the RMS, over the 84 bins, of the log
spectrum minus its 13-bin (one octave) moving average, which removes any smooth spectral
tilt (the colour of a noise, the balance of a mix) and keeps the peaks of notes and chords
a semitone apart. Averaged over ``N`` frames, noise keeps a contrast of about
``sqrt(NOISE_FLOOR**2 + NOISE_SPREAD**2 / N)`` (the median over white, pink and brown noise:
a floor of 0.028 left by the CQT's own ripple, and a finite-average term that falls as
``1 / sqrt(N)``); tonality is the contrast divided by that, so one threshold holds for a
2-s clip and an hour. The clip's spectrum averages its windows' time-averaged model inputs,
each scaled to unit mean (the last, zero-padded window is normalised over its padding too),
leaving out windows shorter than :data:`MIN_WINDOW_SECONDS` unless all are that short.

Measured with ``mt2 study --no-key --real data/real --corpus data/small`` (:mod:`mt2.study.no_key`;
the inputs, not the weights, decide, so the table holds for every shipped model with the
default ``sqrt`` compression): noise clips of 4, 8 and 30 s at -90 to -3 dB and silence
(digital zero and -75 dB white noise); a 30-s and an 8-s excerpt of every track of the
real-music corpus (``mt2 corpus real``: 166 tracks, 10.8 hours, 9 soundtracks; the 30-s
excerpt also with white, pink or brown noise at 0 dB SNR); the rendered small corpus (seed 3,
164 clips, its pop and rock pieces with drums; each clip also with noise at 10 and 0 dB SNR):

| group | clips | tonal contrast | tonality | no key |
|---|---:|---:|---:|---:|
| white noise | 21 | 0.028 - 0.052 (median 0.033) | 0.80 - 1.25 | 100.0 % |
| pink noise | 21 | 0.028 - 0.048 (median 0.036) | 0.87 - 1.15 | 100.0 % |
| brown noise | 21 | 0.029 - 0.046 (median 0.035) | 0.84 - 1.14 | 100.0 % |
| silence | 4 | 0.000 - 0.046 (median 0.014) | 0.00 - 1.11 | 100.0 % |
| real music, 30 s | 166 | 0.059 - 0.415 (median 0.150) | 1.97 - 13.76 | 0.0 % |
| real music, 8 s | 166 | 0.084 - 0.430 (median 0.184) | 2.38 - 12.15 | 0.0 % |
| real music + 0 dB noise | 166 | 0.034 - 0.367 (median 0.105) | 1.14 - 12.18 | 1.8 % |
| rendered | 164 | 0.105 - 0.757 (median 0.266) | 3.18 - 15.94 | 0.0 % |
| rendered + 10 dB noise | 164 | 0.062 - 0.618 (median 0.205) | 1.86 - 13.02 | 0.0 % |
| rendered + 0 dB noise | 164 | 0.042 - 0.534 (median 0.154) | 1.28 - 11.24 | 1.2 % |

The threshold 1.4 sits 12 % above the noisiest noise clip (1.25, 4 s of white noise) and below
every clean real and rendered clip (lowest 1.97); music buried in 0 dB of noise is where it
loses (3 of 166 real tracks, 2 of 164 rendered clips; 2 of the 492 rendered clips with and
without noise, 0.4 %). The rule of rounds 1 and 2 (the linear peakiness of each window,
threshold 0.085) called 37 % of real clips noise (issue 20).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mt2.frontend import FRAME_RATE
from mt2.inference.calibration import Calibration
from mt2.inference.embedding import KeyEstimate
from mt2.keys import MODES, chroma_from_window, key_name, signature_name, template_mode, tonic_of

#: Below this RMS level (dB full scale, 0 dB = a full-scale square wave) an input is silence:
#: no key, whatever the model says (measured values in the module docstring).
SILENCE_DB = -60.0
#: Below this :func:`tonality` an input is noise: no key (measured values in the module docstring).
MIN_TONALITY = 1.4
#: The noise model of :func:`tonality`: white, pink and brown noise averaged over ``N`` CQT frames
#: has a median :func:`tonal_contrast` of ``sqrt(NOISE_FLOOR**2 + NOISE_SPREAD**2 / N)``
#: (fitted to 18 noise clips at each of ten lengths, 0.5 to 60 s: :func:`mt2.study.no_key.fit_noise_model`,
#: printed by ``mt2 study --no-key``).
NOISE_FLOOR = 0.028
NOISE_SPREAD = 0.341
#: Windows shorter than this (seconds) are left out of a clip's :func:`tonality` unless all are.
MIN_WINDOW_SECONDS = 1.0
#: Bins of the moving average that :func:`tonal_contrast` subtracts (one octave and one bin).
CONTRAST_WIDTH = 13
#: Added to unit-mean spectra before the log, so that empty bins stay finite.
LOG_FLOOR = 1e-3


@dataclass
class KeyStatistics:
    """Window averages (weighted by each window's valid duration) that a key decision reads."""

    bin_probabilities: np.ndarray  # (12,) uncalibrated softmax of the equivariant head, output-bin order
    token: np.ndarray  # (D,) the last block's equivariant class token
    chroma: np.ndarray  # (12,) of the model input, C = 0
    rms: float  # of the input at 16 kHz (1 for a full-scale square wave)
    tonality: float  # of the model input (:func:`tonality`; noise is below 1)

    @property
    def level_db(self) -> float:
        """RMS level in dB full scale (``-inf`` for digital silence)."""
        return 20 * float(np.log10(self.rms)) if self.rms > 0 else float("-inf")


def tonal_contrast(spectrum: np.ndarray) -> np.ndarray:
    """Tonal contrast of time-averaged spectra ``(..., bins)``: the RMS over bins of
    ``log(s_b / mean(s) + LOG_FLOOR) - m_b``, with ``m`` the :data:`CONTRAST_WIDTH`-bin moving
    average of that log spectrum (edges reflected). 0 for silence.

    Notes and chords put peaks a semitone apart, which the moving average does not follow;
    noise, averaged over time, is smooth however it is coloured.
    """
    spectrum = np.asarray(spectrum, np.float64)
    level = spectrum.mean(axis=-1, keepdims=True)
    log = np.log(spectrum / np.where(level > 0, level, 1) + LOG_FLOOR)
    half = CONTRAST_WIDTH // 2
    padded = np.pad(log, [(0, 0)] * (log.ndim - 1) + [(half, half)], mode="reflect")
    cumulative = np.cumsum(np.pad(padded, [(0, 0)] * (log.ndim - 1) + [(1, 0)]), axis=-1)
    moving = (cumulative[..., CONTRAST_WIDTH:] - cumulative[..., :-CONTRAST_WIDTH]) / CONTRAST_WIDTH
    contrast = np.sqrt(np.mean(np.square(log - moving), axis=-1))
    return np.where(level[..., 0] > 0, contrast, 0.0)


def noise_contrast(frames) -> np.ndarray:
    """The median :func:`tonal_contrast` of noise averaged over ``frames`` CQT frames:
    ``sqrt(NOISE_FLOOR**2 + NOISE_SPREAD**2 / frames)``."""
    return np.sqrt(NOISE_FLOOR**2 + NOISE_SPREAD**2 / np.maximum(np.asarray(frames, np.float64), 1))


def window_tonality(spectrum: np.ndarray, window_lengths: np.ndarray) -> np.ndarray:
    """``(W,)`` :func:`tonality` of each window alone: its time-averaged model input ``(W, bins)``
    over its valid duration ``window_lengths`` ``(W,)`` in seconds."""
    return tonal_contrast(spectrum) / noise_contrast(np.asarray(window_lengths) * FRAME_RATE)


def clip_spectrum(spectrum: np.ndarray, window_lengths: np.ndarray) -> tuple[np.ndarray, float]:
    """The clip's spectrum that :func:`tonality` reads, and the CQT frames it averages: the mean
    of the windows' time-averaged model inputs ``(W, bins)``, each scaled to unit mean and
    weighted by its valid duration ``window_lengths`` ``(W,)`` (seconds), leaving out windows
    shorter than :data:`MIN_WINDOW_SECONDS` unless all are (zeros and 0 frames for silence)."""
    spectrum = np.asarray(spectrum, np.float64)
    lengths = np.asarray(window_lengths, np.float64)
    level = spectrum.mean(axis=-1)
    keep = (level > 0) & (lengths >= min(MIN_WINDOW_SECONDS, lengths.max()))
    if not keep.any():
        return np.zeros(spectrum.shape[-1]), 0.0
    weights = lengths[keep] / lengths[keep].sum()
    return weights @ (spectrum[keep] / level[keep, None]), float(lengths[keep].sum() * FRAME_RATE)


def tonality(spectrum: np.ndarray, window_lengths: np.ndarray) -> float:
    """How far a clip's spectrum is from noise: the :func:`tonal_contrast` of its
    :func:`clip_spectrum` over the :func:`noise_contrast` of noise as long (below 1: as smooth
    as noise; music measures 1.4 to 12, module docstring). 0 for silence."""
    clip, frames = clip_spectrum(spectrum, window_lengths)
    return float(tonal_contrast(clip) / noise_contrast(frames)) if frames else 0.0


def key_statistics(
    probabilities: np.ndarray, tokens: np.ndarray, spectrum: np.ndarray, rms: np.ndarray, window_lengths: np.ndarray, offset: int,
) -> KeyStatistics:
    """Average per-window values over windows, weighted by valid duration ``L_w``
    (``sum_w L_w x_w / sum_w L_w``): head softmax ``(W, 12)``, equivariant tokens ``(W, D)``,
    time-averaged model input ``(W, 84)`` of a window starting at CQT bin ``offset``, RMS ``(W,)``."""
    weights = window_lengths / window_lengths.sum()
    return KeyStatistics(
        bin_probabilities=weights @ probabilities,
        token=(weights @ tokens).astype(np.float32),
        chroma=chroma_from_window((weights @ spectrum)[:, None], offset),
        rms=float(np.sqrt(weights @ np.square(rms))),
        tonality=tonality(spectrum, window_lengths),
    )


def is_keyless(stats: KeyStatistics, silence_db: float = SILENCE_DB, min_tonality: float = MIN_TONALITY) -> bool:
    """The no-key rule (module docstring): silence (level below ``silence_db``) or noise
    (:func:`tonality` below ``min_tonality``)."""
    return stats.level_db < silence_db or stats.tonality < min_tonality


def decide_key(
    stats: KeyStatistics,
    calibration: Calibration,
    mode_probabilities: Callable[[KeyStatistics], np.ndarray] | None = None,
    silence_db: float = SILENCE_DB,
    min_tonality: float = MIN_TONALITY,
) -> KeyEstimate:
    """The key of one clip's statistics (module docstring), or no key (:func:`is_keyless`).

    Args:
        stats: the clip's window averages.
        calibration: which output bin is which signature.
        mode_probabilities: ``stats -> (2,)`` major/minor probabilities of a mode probe, or
            None for the template rule.
    """
    profile = calibration.signature_probabilities(stats.bin_probabilities)
    signature, confidence = int(np.argmax(profile)), float(profile.max())
    if is_keyless(stats, silence_db, min_tonality):
        return KeyEstimate(None, None, None, None, None, confidence, profile, None, stats.level_db, stats.tonality)
    if mode_probabilities is not None:
        mode, source = MODES[int(np.argmax(mode_probabilities(stats)))], "probe"
    else:
        mode, source = template_mode(stats.chroma, signature), "template"
    tonic = tonic_of(signature, mode)
    return KeyEstimate(
        key=key_name(tonic, mode),
        tonic=tonic,
        mode=mode,
        signature=signature,
        signature_name=signature_name(signature),
        confidence=confidence,
        profile=profile,
        mode_source=source,
        level_db=stats.level_db,
        tonality=stats.tonality,
    )
