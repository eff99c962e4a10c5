"""The key decision: window statistics in, a :class:`~mt2.inference.KeyEstimate` or no key out.
The one decision that ``mt2 key`` (:meth:`mt2.inference.Encoder.key`), the key timeline
(:mod:`mt2.inference.timeline`) and the study's key signature read (issue 29 item 3;
measured in docs/key-inference.md).

The encoder's pass yields, per window, the equivariant head's softmax and the equivariant class
token (each averaged over the encoder's bin shifts, :attr:`mt2.inference.Encoder.shifts`), the
model input averaged over time and the RMS level; the windows start every ``1 / passes`` of a
window (:attr:`mt2.inference.Encoder.passes`). :func:`key_statistics` gathers them
(:class:`KeyStatistics`) and :func:`decide_key` turns them into an estimate:

* each full window (:func:`evidence_windows`: a zero-padded tail is left out) gives the 24 key
  probabilities :func:`key_probabilities` ``P_w(s, m) = P_w(s) P_w(m | s)``: the **signature**
  profile calibrated by the stored :class:`~mt2.inference.calibration.Calibration`, times the
  **mode** given the signature (:func:`mode_given_signature`: the Krumhansl-Kessler templates on
  the window's chroma made soft, times the stored mode probe on the window's token rolled to the
  signature, when there is one);
* the clip's key is the argmax of their log-linear pool (:func:`pooled_key`), each window weighted
  by the share of time it covers (:func:`coverage_weights`), which is what the timeline's Viterbi
  pass keeps over the same windows when it makes no switch;
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
from mt2.keys import MODES, chroma_from_window, key_name, signature_name, signature_of, template_scores, tonic_of

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
#: Sharpness of the soft template mode rule (per unit of correlation difference; :func:`mode_given_signature`).
TEMPLATE_MODE_SHARPNESS = 10.0
#: The 24 keys in the order of :func:`key_probabilities`: index ``i`` is tonic ``i % 12`` in mode ``MODES[i // 12]``.
KEYS = tuple(key_name(i % 12, MODES[i // 12]) for i in range(24))
#: Floor of a probability before its log (:func:`pooled_key`).
TINY = 1e-12


@dataclass
class KeyStatistics:
    """Window averages (weighted by each window's valid duration) that a key decision reads,
    and the windows' own values (``W`` windows) for the decision of :func:`decide_key`."""

    bin_probabilities: np.ndarray  # (12,) uncalibrated softmax of the equivariant head, output-bin order
    token: np.ndarray  # (D,) the last block's equivariant class token
    chroma: np.ndarray  # (12,) of the model input, C = 0
    rms: float  # of the input at 16 kHz (1 for a full-scale square wave)
    tonality: float  # of the model input (:func:`tonality`; noise is below 1)
    window_probabilities: np.ndarray  # (W, 12) each evidence window's head softmax
    window_tokens: np.ndarray  # (W, D) each evidence window's equivariant token
    window_chroma: np.ndarray  # (W, 12) each evidence window's chroma
    window_weights: np.ndarray  # (W,) coverage weights, summing to 1

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
    window_starts: np.ndarray | None = None, passes: int = 1,
) -> KeyStatistics:
    """The statistics of a clip's windows: head softmax ``(W, 12)``, equivariant tokens ``(W, D)``,
    time-averaged model input ``(W, 84)`` of a window starting at CQT bin ``offset``, RMS ``(W,)``,
    valid durations ``window_lengths`` and starts ``window_starts`` ``(W,)`` in seconds, the
    windows of ``passes`` interleaved passes (window ``w`` of pass ``w % passes``).

    * The averages (``bin_probabilities``, ``token``, ``chroma``, ``rms``, ``tonality``: what the
      no-key rule, the calibration and the mode probe's fit read) are over the first pass's
      windows, which do not overlap, weighted by valid duration ``L_w``: ``sum_w L_w x_w / sum_w L_w``.
    * The windows the decision reads (``window_*``) are the :func:`evidence_windows` of all
      passes, weighted by :func:`coverage_weights` (normalised to sum 1)."""
    lengths = np.asarray(window_lengths, np.float64)
    first = slice(None, None, passes)
    weights = lengths[first] / lengths[first].sum()
    starts = np.arange(len(lengths)) * lengths.max() / passes if window_starts is None else np.asarray(window_starts, np.float64)
    keep = evidence_windows(lengths)
    evidence = coverage_weights(starts[keep], lengths[keep], passes)
    spectrum = np.asarray(spectrum)
    return KeyStatistics(
        bin_probabilities=weights @ probabilities[first],
        token=(weights @ tokens[first]).astype(np.float32),
        chroma=chroma_from_window((weights @ spectrum[first])[:, None], offset),
        rms=float(np.sqrt(weights @ np.square(rms[first]))),
        tonality=tonality(spectrum[first], lengths[first]),
        window_probabilities=np.asarray(probabilities)[keep],
        window_tokens=np.asarray(tokens)[keep],
        window_chroma=np.stack([chroma_from_window(x[:, None], offset) for x in spectrum[keep]]),
        window_weights=evidence / evidence.sum(),
    )


def mode_given_signature(chroma: np.ndarray, probe: Callable[[int], np.ndarray] | None = None) -> np.ndarray:
    """``(W, 12, 2)`` ``P(mode | signature)`` of ``W`` windows for each of the 12 signatures
    (last axis in :data:`mt2.keys.MODES` order): the soft template rule
    ``P_t(major | s) = sigmoid(TEMPLATE_MODE_SHARPNESS * (r_major - r_minor))``, ``r`` the
    Krumhansl-Kessler correlations (:func:`mt2.keys.template_scores`) of the two keys of ``s``
    with each window's chroma ``(W, 12)``, times ``probe(s)`` ``(W, 2)`` (the mode probe's
    probabilities with the token rolled to signature ``s``; None: the template alone),
    renormalised."""
    scores = template_scores(np.asarray(chroma))  # (W, 24)
    out = np.empty((len(scores), 12, 2))
    for s in range(12):
        p_major = 1 / (1 + np.exp(-TEMPLATE_MODE_SHARPNESS * (scores[:, s] - scores[:, 12 + tonic_of(s, "minor")])))
        out[:, s, 0], out[:, s, 1] = p_major, 1 - p_major
        if probe is not None:
            out[:, s] *= probe(s)
    return out / out.sum(axis=2, keepdims=True)


def key_probabilities(signature_profiles: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """``(W, 24)`` ``P(s, m) = P(s) P(m | s)`` in :data:`KEYS` order, from calibrated signature
    profiles ``(W, 12)`` and :func:`mode_given_signature` ``(W, 12, 2)``."""
    out = np.empty((len(signature_profiles), 24))
    for s in range(12):
        for m, mode in enumerate(MODES):
            out[:, 12 * m + tonic_of(s, mode)] = signature_profiles[:, s] * modes[:, s, m]
    return out


def evidence_windows(lengths: np.ndarray) -> np.ndarray:
    """``(T,)`` which windows a key decision reads: the full ones (valid length equal to the
    longest's), or the longest alone when none is full. A zero-padded window is normalised over
    its padding and the model never trained on one: on rendered 12-s clips the 1-s tails of the
    timeline's later passes name the key 0.18 of the time, full windows 0.55 to 0.79."""
    lengths = np.asarray(lengths, np.float64)
    return lengths >= lengths.max() - 1e-9


def coverage_weights(starts: np.ndarray, lengths: np.ndarray, passes: int = 1) -> np.ndarray:
    """``(T,)`` each window's share of the input's time: ``passes * integral over the window of
    dt / c(t) / L``, with ``c(t)`` the number of windows covering ``t`` and ``L`` the longest
    window. Each instant covered weighs the same in total (``passes / L`` per second), however
    many overlapping windows cover it, so the windows of ``passes`` offset passes pool like one
    pass's; an interior window of ``passes`` passes weighs about 1 (the scale of a switch penalty)."""
    starts = np.asarray(starts, np.float64)
    ends = starts + np.asarray(lengths, np.float64)
    edges = np.unique(np.concatenate([starts, ends]))
    middles = (edges[1:] + edges[:-1]) / 2
    cover = (middles[None, :] >= starts[:, None]) & (middles[None, :] < ends[:, None])  # (T, pieces)
    count = cover.sum(axis=0)
    share = np.where(count > 0, np.diff(edges) / np.maximum(count, 1), 0.0)
    return passes * (cover * share[None, :]).sum(axis=1) / (ends - starts).max()


def pooled_key(probabilities: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The clip's key distribution ``(24,)`` from its windows' :func:`key_probabilities` ``(W, 24)``:
    the log-linear pool ``q(k) ~ exp(sum_w a_w log P_w(k))`` with weights ``a`` summing to 1.
    Its argmax is the key that a Viterbi pass over the same windows keeps when it makes no switch
    (:mod:`mt2.inference.timeline`: ``sum_t log P_t(k)``), so ``mt2 key`` and the timeline agree
    on a clip in one key."""
    weights = np.asarray(weights, np.float64) / np.sum(weights)
    log = weights @ np.log(np.maximum(probabilities, TINY))
    q = np.exp(log - log.max())
    return q / q.sum()


def is_keyless(stats: KeyStatistics, silence_db: float = SILENCE_DB, min_tonality: float = MIN_TONALITY) -> bool:
    """The no-key rule (module docstring): silence (level below ``silence_db``) or noise
    (:func:`tonality` below ``min_tonality``)."""
    return stats.level_db < silence_db or stats.tonality < min_tonality


def decide_key(
    stats: KeyStatistics,
    calibration: Calibration,
    signature_probe: Callable[[np.ndarray], Callable[[int], np.ndarray] | None] | None = None,
    silence_db: float = SILENCE_DB,
    min_tonality: float = MIN_TONALITY,
) -> KeyEstimate:
    """The key of one clip's statistics, or no key (:func:`is_keyless`): the one decision that
    ``mt2 key``, the key timeline (per window, then Viterbi) and the study read.

    Each window ``w`` that :func:`key_statistics` keeps gives :func:`key_probabilities`
    ``P_w(s, m) = P_w(s) P_w(m | s)``: its calibrated signature profile times
    :func:`mode_given_signature` (the soft template rule on its chroma, times the mode probe
    when there is one); the key is the argmax of their :func:`pooled_key`
    ``q(k) ~ exp(sum_w a_w log P_w(k))``, ``a_w`` the windows' coverage weights. The estimate's
    ``profile`` is ``q`` summed over the two keys of each signature, its ``confidence`` ``q`` of the key.

    Args:
        stats: the clip's statistics (:func:`key_statistics`).
        calibration: which output bin is which signature.
        signature_probe: ``tokens (W, D) -> (signature -> (W, 2))`` major/minor probabilities of
            a mode probe (:meth:`mt2.inference.Encoder.signature_probe`), or None for the template
            rule alone.
    """
    profiles = calibration.signature_probabilities(stats.window_probabilities)
    probe = signature_probe(stats.window_tokens) if signature_probe is not None else None
    pooled = pooled_key(key_probabilities(profiles, mode_given_signature(stats.window_chroma, probe)), stats.window_weights)
    profile = np.array([pooled[tonic_of(s, "major")] + pooled[12 + tonic_of(s, "minor")] for s in range(12)])
    best = int(np.argmax(pooled))
    if is_keyless(stats, silence_db, min_tonality):
        return KeyEstimate(None, None, None, None, None, float(profile.max()), profile, None, stats.level_db, stats.tonality)
    tonic, mode = best % 12, MODES[best // 12]
    signature = signature_of(tonic, mode)
    return KeyEstimate(
        key=key_name(tonic, mode),
        tonic=tonic,
        mode=mode,
        signature=signature,
        signature_name=signature_name(signature),
        confidence=float(pooled[best]),
        profile=profile,
        mode_source="probe x template" if probe is not None else "template",
        level_db=stats.level_db,
        tonality=stats.tonality,
    )
