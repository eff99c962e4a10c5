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
:data:`SILENCE_DB`, -60 dB) or the spectral peakiness of the model input (:func:`peakiness`,
window average) is below ``min_peakiness`` (default :data:`MIN_PEAKINESS`, 0.085). Both read
the input, not the model: the model's confidence does not separate noise from music. Measured
(the confidence row with the round-1 ``mt2`` weights; the two statistics that decide read only
the input) on 8-s noise clips (white, pink, brown at -90 to -10 dB, 32 clips) and rendered
music (three 24-key sets, seeds 2026-2028, and the small corpus, seed 3: 236 clips):

==========  ==============================  ===================================
statistic   noise (32 clips)                music (236 clips)
==========  ==============================  ===================================
peakiness   0.046 - 0.077 (median 0.063)    0.097 - 0.579 (5th percentile 0.120)
confidence  0.125 - 0.737 (brown 0.48+)     0.467 - 0.964 (24-key sets, 72 clips)
RMS level   -90 to -10 dB (as generated)    -19.4 to -11.5 dB (24-key sets)
==========  ==============================  ===================================

Digital silence has level ``-inf`` and peakiness 0 (its profile is flat, confidence 1/12).
The peakiness threshold sits in the gap between the two ranges; real recordings (drums,
reverb, dense mixes) were not measured (DESIGN.md section 3: a third of real clips fall in
the noise range).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mt2.inference.calibration import Calibration
from mt2.inference.embedding import KeyEstimate
from mt2.keys import MODES, chroma_from_window, key_name, signature_name, template_mode, tonic_of

#: Below this RMS level (dB full scale, 0 dB = a full-scale square wave) an input is silence:
#: no key, whatever the model says (measured values in the module docstring).
SILENCE_DB = -60.0
#: Below this spectral peakiness (:func:`peakiness`) an input is noise: no key (measured values
#: in the module docstring).
MIN_PEAKINESS = 0.085


@dataclass
class KeyStatistics:
    """Window averages (weighted by each window's valid duration) that a key decision reads."""

    bin_probabilities: np.ndarray  # (12,) uncalibrated softmax of the equivariant head, output-bin order
    token: np.ndarray  # (D,) the last block's equivariant class token
    chroma: np.ndarray  # (12,) of the model input, C = 0
    rms: float  # of the input at 16 kHz (1 for a full-scale square wave)
    peakiness: float  # of the model input, window average

    @property
    def level_db(self) -> float:
        """RMS level in dB full scale (``-inf`` for digital silence)."""
        return 20 * float(np.log10(self.rms)) if self.rms > 0 else float("-inf")


def peakiness(spectrum: np.ndarray) -> np.ndarray:
    """Spectral peakiness of time-averaged CQT windows ``(..., bins)``: how far each bin stands
    out from the mean of its two neighbours, relative to the mean level,
    ``mean_b |s_b - (s_{b-1} + s_{b+1}) / 2| / mean_b s_b`` over the inner bins (0 for silence).

    Notes and chords put peaks a semitone apart; noise, averaged over a window, is smooth.
    """
    spectrum = np.asarray(spectrum, np.float64)
    curvature = np.abs(spectrum[..., 1:-1] - (spectrum[..., :-2] + spectrum[..., 2:]) / 2).mean(axis=-1)
    level = spectrum.mean(axis=-1)
    return np.where(level > 0, curvature / np.where(level > 0, level, 1), 0.0)


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
        peakiness=float(weights @ peakiness(spectrum)),
    )


def is_keyless(stats: KeyStatistics, silence_db: float = SILENCE_DB, min_peakiness: float = MIN_PEAKINESS) -> bool:
    """The no-key rule (module docstring): silence (level below ``silence_db``) or noise
    (peakiness below ``min_peakiness``)."""
    return stats.level_db < silence_db or stats.peakiness < min_peakiness


def decide_key(
    stats: KeyStatistics,
    calibration: Calibration,
    mode_probabilities: Callable[[KeyStatistics], np.ndarray] | None = None,
    silence_db: float = SILENCE_DB,
    min_peakiness: float = MIN_PEAKINESS,
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
    if is_keyless(stats, silence_db, min_peakiness):
        return KeyEstimate(None, None, None, None, None, confidence, profile, None, stats.level_db, stats.peakiness)
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
        peakiness=stats.peakiness,
    )
