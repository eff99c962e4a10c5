"""The key over time: local keys as segments ``(start, end, key, confidence)``.

**Windows.** The encoder analyses non-overlapping 3.97-s windows (:mod:`mt2.inference.encoder`).
For a finer grid the audio is embedded ``passes`` times, pass ``p`` starting ``p / passes``
of a window later (the default, 4 passes, gives a hop of 0.99 s), and the windows of all
passes are interleaved by their centre. Each window is still analysed on its own, so a
window near a modulation sees both keys; the hop only sets where a switch can be placed.
Measured on rendered modulating pieces (``mt2 study --timeline``, the validation seed), the
passes cost little: the model runs at hundreds of times real time on one CPU core. Every
window owns the stretch of time between the midpoints to its neighbours' centres (the first
from 0, the last to the end), so the segments cover the input without gap or overlap.
A window with fewer than :data:`MIN_WINDOW_SECONDS` of audio (a pass's tail) is dropped
unless nothing else is left.

**Evidence per window** (:class:`WindowEvidence`):

- signature: the equivariant head's softmax on the window, calibrated
  (:meth:`~mt2.inference.calibration.Calibration.signature_probabilities`);
- mode given the signature: the template rule made soft,
  ``P_t(major | s) = sigmoid(TEMPLATE_MODE_SHARPNESS * (r_major - r_minor))`` with ``r`` the
  Krumhansl-Kessler correlations of the two keys of ``s`` with the window's chroma, times (and
  renormalised) the stored mode probe on the window's equivariant token rolled so that the
  signature's bin sits at 0 (:meth:`Encoder.canonical_token`, as the clip-level key does for the
  argmax bin), evaluated for each of the 12 signatures; the template part alone without a probe.
  On 4-s windows the product beat the probe alone on the validation seed (tuning objective of
  :mod:`mt2.study.timeline` 1.333 against 1.255; boundaries found 0.58 against 0.51, relative
  modulations being the ones missed most: they keep the signature and only the mode changes);
- the 24-key probability ``P(s, m) = P(s) P(m | s)``;
- no key: :func:`window_has_key` (level and tonality of each window, the rule of
  :meth:`Encoder.key` applied per window).

**Smoothing.** A Viterbi pass over the 24 keys and a no-key state maximises
``sum_t log P_t(key_t) - switch_penalty * (number of key changes)``: the **switch penalty** is
the one parameter, in nats (natural log-probability) per switch. A switch is kept only where
the windows after it favour the new key by more than ``switch_penalty`` in total, so a larger
penalty never gives more switches (tested) and 0 follows each window's best key.
No-key windows are forced to the no-key state and key windows out of it; entering or
leaving it costs nothing. The default, :data:`DEFAULT_SWITCH_PENALTY` (24 nats), was chosen on
rendered modulating pieces of a validation seed (``mt2 study --timeline data/modulations
--timeline-valid data/modulations-valid``, seeds 2026 and 2027), never on the test seed; the test
numbers are in ``docs/timeline/timeline.md``.

**Template baseline** (the second half of :func:`evidence_pair`): the same windows and the same smoothing,
with ``P(key)`` the softmax of ``TEMPLATE_SHARPNESS`` times the Krumhansl-Kessler
correlations of each window's chroma (:func:`mt2.keys.template_key`).
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field

import numpy as np

from mt2.inference.embedding import NO_KEY
from mt2.inference.key_decision import MIN_WINDOW_SECONDS, window_tonality
from mt2.inference.windows import DEFAULT_BATCH_SIZE
from mt2.keys import MODES, chroma_from_window, key_name, signature_of, template_scores, tonic_of

#: Nats of log-probability a key switch costs in the Viterbi pass (the module docstring).
DEFAULT_SWITCH_PENALTY = 24.0
#: Embedding passes, each offset by ``1 / passes`` of a window (4: a hop of about 1 s).
DEFAULT_PASSES = 4
#: Sharpness of the soft template mode rule (per unit of correlation difference).
TEMPLATE_MODE_SHARPNESS = 10.0
#: Sharpness of the template baseline's key probabilities (per unit of correlation).
TEMPLATE_SHARPNESS = 20.0
#: The 24 keys in state order: state ``i`` is tonic ``i % 12`` in mode ``MODES[i // 12]``.
KEYS = tuple(key_name(i % 12, MODES[i // 12]) for i in range(24))
_NO_KEY_STATE = 24
_TINY = 1e-12


@dataclass
class WindowEvidence:
    """Per-window evidence for a timeline (``T`` windows, sorted by centre).

    Attributes:
        starts, lengths: ``(T,)`` window start and valid duration in seconds.
        centres: ``(T,)`` ``start + length / 2``.
        duration: the input's duration in seconds.
        key_probabilities: ``(T, 24)`` probability of each key (state order :data:`KEYS`).
        has_key: ``(T,)`` False where the window is silence or noise.
        signature_probabilities: ``(T, 12)`` calibrated signature profile (None for the template baseline).
    """

    starts: np.ndarray
    lengths: np.ndarray
    centres: np.ndarray
    duration: float
    key_probabilities: np.ndarray
    has_key: np.ndarray
    signature_probabilities: np.ndarray | None = None

    @property
    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        """``(begins, ends)`` ``(T,)``: the stretch of time each window owns (midpoints between centres)."""
        middles = (self.centres[1:] + self.centres[:-1]) / 2
        return np.concatenate([[0.0], middles]), np.concatenate([middles, [self.duration]])


@dataclass(frozen=True)
class KeySegment:
    """A stretch ``[start, end)`` seconds in one local key (``key`` None: no key)."""

    start: float
    end: float
    key: str | None
    confidence: float

    @property
    def label(self) -> str:
        """The key in mir_eval syntax, ``"X"`` without one."""
        return self.key if self.key is not None else NO_KEY

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "key": self.label,
                "has_key": self.key is not None, "confidence": round(self.confidence, 4)}


@dataclass
class KeyTimeline:
    """What :func:`key_timeline` returns.

    Attributes:
        segments: consecutive :class:`KeySegment` covering ``[0, duration)``.
        times: ``(T,)`` window centres (seconds); ``window_keys`` the smoothed key of each
            window, ``window_confidence`` the probability of that key in the window alone.
        switch_penalty: the penalty used (nats per switch).
        method: ``"mt2"`` (the equivariant token) or ``"template"`` (the baseline).
    """

    segments: list[KeySegment]
    times: np.ndarray
    window_keys: list[str]
    window_confidence: np.ndarray
    duration: float
    switch_penalty: float
    method: str = "mt2"
    hop: float = field(default=0.0)

    @property
    def switches(self) -> int:
        """Key changes between consecutive segments that both have a key."""
        keyed = [s.key for s in self.segments]
        return sum(a is not None and b is not None and a != b for a, b in zip(keyed, keyed[1:]))

    def labels_at(self, times: np.ndarray) -> list[str]:
        """The segment label (mir_eval syntax, ``"X"``: no key) at each time."""
        ends = np.array([s.end for s in self.segments])
        index = np.minimum(np.searchsorted(ends, np.asarray(times), side="right"), len(self.segments) - 1)
        return [self.segments[i].label for i in index]

    def to_dict(self) -> dict:
        """JSON-ready: duration, method, switch penalty, hop and the segments."""
        return {"duration": round(self.duration, 3), "method": self.method, "switch_penalty": self.switch_penalty,
                "hop": round(self.hop, 3), "segments": [s.to_dict() for s in self.segments]}

    def to_csv(self) -> str:
        """CSV text: a header ``start,end,key,confidence`` and one row per segment."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["start", "end", "key", "confidence"])
        for s in self.segments:
            writer.writerow([f"{s.start:.3f}", f"{s.end:.3f}", s.label, f"{s.confidence:.4f}"])
        return buffer.getvalue()


# -- smoothing ----------------------------------------------------------------------------------
def viterbi(log_emissions: np.ndarray, switch_penalty: float, free: np.ndarray | None = None) -> np.ndarray:
    """The state path ``(T,)`` maximising ``sum_t E[t, s_t] - switch_penalty * #{t: s_t != s_{t-1}}``,
    where a change into or out of a ``free`` state (bool ``(S,)``) costs nothing.

    Ties go to the lowest state index (at the end) and to staying (on the way).
    """
    emissions = np.asarray(log_emissions, np.float64)
    steps, states = emissions.shape
    free = np.zeros(states, bool) if free is None else np.asarray(free, bool)
    score = emissions[0].copy()
    back = np.zeros((steps, states), np.int64)
    for t in range(1, steps):
        best = int(np.argmax(score))
        # the best way to arrive in each state j from another state: from the best state paying
        # the penalty, from the best free state without cost, and into a free j without cost
        arrive = np.full(states, score[best] - switch_penalty)
        origin = np.full(states, best)
        if free.any():
            best_free = int(np.flatnonzero(free)[np.argmax(score[free])])
            from_free = score[best_free] > arrive
            arrive, origin = np.where(from_free, score[best_free], arrive), np.where(from_free, best_free, origin)
        into_free = free & (score[best] > arrive)
        arrive, origin = np.where(into_free, score[best], arrive), np.where(into_free, best, origin)
        stay = score >= arrive
        back[t] = np.where(stay, np.arange(states), origin)
        score = np.where(stay, score, arrive) + emissions[t]
    path = np.empty(steps, np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(steps - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def decode(evidence: WindowEvidence, switch_penalty: float = DEFAULT_SWITCH_PENALTY, method: str = "mt2") -> KeyTimeline:
    """Smooth per-window evidence into a :class:`KeyTimeline` (the module docstring)."""
    if switch_penalty < 0:
        raise ValueError(f"switch_penalty must be >= 0, got {switch_penalty}")
    steps = len(evidence.centres)
    emissions = np.full((steps, 25), -np.inf)
    keyed = evidence.has_key
    emissions[keyed, :24] = np.log(np.maximum(evidence.key_probabilities[keyed], _TINY))
    emissions[~keyed, _NO_KEY_STATE] = 0.0
    free = np.zeros(25, bool)
    free[_NO_KEY_STATE] = True
    path = viterbi(emissions, switch_penalty, free)
    confidence = np.where(path < 24, evidence.key_probabilities[np.arange(steps), np.minimum(path, 23)], 0.0)
    begins, ends = evidence.cells
    segments = []
    first = 0
    for t in range(1, steps + 1):
        if t == steps or path[t] != path[first]:
            state = int(path[first])
            segments.append(KeySegment(
                float(begins[first]), float(ends[t - 1]), None if state == _NO_KEY_STATE else KEYS[state],
                float(np.average(confidence[first:t], weights=evidence.lengths[first:t])),
            ))
            first = t
    hop = float(np.median(np.diff(evidence.centres))) if steps > 1 else float(evidence.duration)
    return KeyTimeline(
        segments=segments, times=evidence.centres.copy(),
        window_keys=[NO_KEY if s == _NO_KEY_STATE else KEYS[s] for s in path],
        window_confidence=confidence, duration=evidence.duration, switch_penalty=float(switch_penalty),
        method=method, hop=hop,
    )


# -- evidence -------------------------------------------------------------------------------------
def _embed_passes(encoder, audio16: np.ndarray, passes: int, batch_size: int):
    """Embeddings of ``audio16`` (16 kHz) from ``passes`` offsets, with each pass's offset in seconds."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    rate = encoder.sample_rate
    results = []
    for p in range(passes):
        shift = p * encoder.window_samples // passes
        if p and shift >= len(audio16):
            break
        results.append((encoder.embed(audio16[shift:], rate, readout="equivariant", batch_size=batch_size, shifts=encoder.shifts), shift / rate))
    return results


def window_has_key(encoder, spectrum: np.ndarray, rms: np.ndarray, window_lengths: np.ndarray) -> np.ndarray:
    """``(W,)`` True where a window has a key: level at least ``encoder.silence_db`` and
    tonality at least ``encoder.min_tonality`` (the clip-level rule of :meth:`Encoder.key`, per
    window: :func:`mt2.inference.key_decision.window_tonality`)."""
    with np.errstate(divide="ignore"):
        level = 20 * np.log10(np.asarray(rms, np.float64))
    return (level >= encoder.silence_db) & (window_tonality(spectrum, window_lengths) >= encoder.min_tonality)


def _gather(encoder, audio, sr: float, passes: int, batch_size: int):
    """Windows of every pass, sorted by centre: starts, lengths, the embeddings' rows."""
    from mt2.inference.windows import to_model_rate

    audio16 = to_model_rate(audio, sr)
    duration = len(audio16) / encoder.sample_rate
    rows = []
    for emb, offset in _embed_passes(encoder, audio16, passes, batch_size):
        tokens = emb.key_tokens
        for w in range(len(emb.window_starts)):
            rows.append((offset + emb.window_starts[w], emb.window_lengths[w], emb.key_probabilities[w], tokens[w],
                         emb.spectrum[w], emb.rms[w]))
    longest = max(r[1] for r in rows)
    rows = [r for r in rows if r[1] >= min(MIN_WINDOW_SECONDS, longest)]
    rows.sort(key=lambda r: r[0] + r[1] / 2)
    starts = np.array([r[0] for r in rows], np.float64)
    lengths = np.array([r[1] for r in rows], np.float64)
    return starts, lengths, duration, {
        "bins": np.stack([r[2] for r in rows]), "tokens": np.stack([r[3] for r in rows]),
        "spectrum": np.stack([r[4] for r in rows]), "rms": np.array([r[5] for r in rows]),
    }


def _mode_given_signature(encoder, bins: np.ndarray, tokens: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """``(T, 12, 2)`` ``P(mode | signature)`` for each window and signature (the module docstring)."""
    import torch

    steps = len(bins)
    out = np.empty((steps, 12, 2))
    scores = template_scores(chroma)  # (T, 24)
    for s in range(12):
        major, minor = scores[:, s], scores[:, 12 + tonic_of(s, "minor")]
        p_major = 1 / (1 + np.exp(-TEMPLATE_MODE_SHARPNESS * (major - minor)))
        out[:, s, 0], out[:, s, 1] = p_major, 1 - p_major
    if encoder.mode_probe is None:
        return out
    probe = encoder.mode_probe
    for s in range(12):
        bin_of_s = int(encoder.calibration.bin_of_signature(s))
        features = np.stack([encoder.canonical_token(token, bin_of_s) for token in tokens])
        with torch.inference_mode():
            logits = probe(torch.from_numpy(features).to(probe.weight))
        out[:, s] *= torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out / out.sum(axis=2, keepdims=True)


def _chroma(encoder, spectrum: np.ndarray) -> np.ndarray:
    return np.stack([chroma_from_window(s[:, None], encoder.offset) for s in spectrum])


def evidence_pair(encoder, audio, sr: float, passes: int = DEFAULT_PASSES, batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[WindowEvidence, WindowEvidence]:
    """``(mt2 evidence, template evidence)`` from the same windows of one set of passes."""
    starts, lengths, duration, rows = _gather(encoder, audio, sr, passes, batch_size)
    chroma = _chroma(encoder, rows["spectrum"])
    has_key = window_has_key(encoder, rows["spectrum"], rows["rms"], lengths)
    centres = starts + lengths / 2
    signatures = encoder.calibration.signature_probabilities(rows["bins"])  # (T, 12) by signature
    modes = _mode_given_signature(encoder, rows["bins"], rows["tokens"], chroma)
    keys = np.empty((len(starts), 24))
    for s in range(12):
        for m, mode in enumerate(MODES):
            tonic = tonic_of(s, mode)
            keys[:, 12 * m + tonic] = signatures[:, s] * modes[:, s, m]
    model = WindowEvidence(starts, lengths, centres, duration, keys, has_key, signatures)
    logits = TEMPLATE_SHARPNESS * template_scores(chroma)
    template = np.exp(logits - logits.max(axis=1, keepdims=True))
    template /= template.sum(axis=1, keepdims=True)
    return model, WindowEvidence(starts, lengths, centres, duration, template, has_key.copy())


def key_timeline(encoder, audio, sr: float, switch_penalty: float = DEFAULT_SWITCH_PENALTY, passes: int = DEFAULT_PASSES,
                 method: str = "mt2", batch_size: int = DEFAULT_BATCH_SIZE) -> KeyTimeline:
    """The local key of ``audio`` over time (the module docstring).

    Args:
        encoder: an :class:`~mt2.inference.Encoder` with an equivariant token and a calibration.
        audio, sr: as :meth:`Encoder.embed` (any length, rate, channels).
        switch_penalty: nats of log-probability per key change (0: each window's best key).
        passes: embedding passes, each offset by ``1 / passes`` of a window (hop = window / passes).
        method: ``"mt2"`` (the equivariant token) or ``"template"`` (chroma + Krumhansl-Kessler).
    """
    if method not in ("mt2", "template"):
        raise ValueError(f"method must be 'mt2' or 'template', got {method!r}")
    encoder.check_key_support()
    model, template = evidence_pair(encoder, audio, sr, passes, batch_size)
    return decode(model if method == "mt2" else template, switch_penalty, method)


def key_timeline_file(encoder, path: str | os.PathLike, **options) -> KeyTimeline:
    """:func:`key_timeline` of an audio file (decoded whole, then resampled to 16 kHz)."""
    from mt2.audio import load_audio

    return key_timeline(encoder, load_audio(path, encoder.sample_rate), encoder.sample_rate, **options)


def signature_label(key: str | None) -> int | None:
    """Key signature of a key name (None for no key)."""
    from mt2.keys import parse_key

    return None if key in (None, NO_KEY) else signature_of(*parse_key(key))
