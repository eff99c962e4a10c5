"""The key over time: local keys as segments ``(start, end, key, confidence)``.

**Windows.** The key path's 3.97-s windows (:meth:`Encoder.key_embedding`), starting every
``1 / passes`` of a window (the default, 4 passes, gives a hop of 0.99 s), each analysed on its
own, so a window near a modulation sees both keys; the hop only sets where a switch can be
placed. Only full windows are read (:func:`~mt2.inference.key_decision.evidence_windows`: a
zero-padded tail names the key far less often), each weighing the share of time it covers
(:func:`~mt2.inference.key_decision.coverage_weights`, about 1 for an interior window), so that
the start of a piece, covered by fewer windows, counts as much as its end: with every window at
weight 1 and the tails kept, the timeline's main key on 144 rendered one-key clips differed from
``mt2 key``'s on 21 of them, 12 one fifth flatwards (docs/key-inference.md). Every window owns the stretch
of time between the midpoints to its neighbours' centres (the first from 0, the last to the
end), so the segments cover the input without gap or overlap.

**Evidence per window** (:class:`WindowEvidence`): the 24-key probability
``P(s, m) = P(s) P(m | s)`` of :func:`mt2.inference.key_decision.key_probabilities`, the function
``mt2 key`` pools over the same kind of windows (:func:`mt2.inference.key_decision.decide_key`):

- signature: the equivariant head's softmax on the window (averaged over the encoder's bin
  shifts), calibrated (:meth:`~mt2.inference.calibration.Calibration.signature_probabilities`);
- mode given the signature (:func:`mt2.inference.key_decision.mode_given_signature`): the
  template rule made soft, times (and renormalised) the stored mode probe on the window's
  equivariant token rolled so that the signature's bin sits at 0, for each of the 12
  signatures; the template part alone without a probe. On 4-s windows the product beat the
  probe alone on the validation seed (tuning objective of :mod:`mt2.study.timeline` 1.333
  against 1.255; boundaries found 0.58 against 0.51, relative modulations being the ones missed
  most: they keep the signature and only the mode changes);
- no key: :func:`window_has_key` (level and tonality of each window, the rule of
  :meth:`Encoder.key` applied per window).

**Smoothing.** A Viterbi pass over the 24 keys and a no-key state maximises
``sum_t a_t log P_t(key_t) - switch_penalty * (number of key changes)`` (``a_t`` the coverage
weights): the **switch penalty** is
the one parameter, in nats (natural log-probability) per switch. A switch is kept only where
the windows after it favour the new key by more than ``switch_penalty`` in total, so a larger
penalty never gives more switches (tested) and 0 follows each window's best key.
No-key windows are forced to the no-key state and key windows out of it; entering or
leaving it costs nothing. The default, :data:`DEFAULT_SWITCH_PENALTY` (20 nats; 24 before the
coverage weights and the shift average of issue 30), was chosen on
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
from mt2.inference.key_decision import KEYS, coverage_weights, evidence_windows, key_probabilities, mode_given_signature, window_tonality
from mt2.inference.windows import DEFAULT_BATCH_SIZE
from mt2.keys import chroma_from_window, signature_of, template_scores

#: Nats of log-probability a key switch costs in the Viterbi pass (the module docstring).
DEFAULT_SWITCH_PENALTY = 20.0
#: Embedding passes, each offset by ``1 / passes`` of a window (4: a hop of about 1 s).
DEFAULT_PASSES = 4
#: Sharpness of the template baseline's key probabilities (per unit of correlation).
TEMPLATE_SHARPNESS = 20.0
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
        weights: ``(T,)`` how much each window's log-probability counts in the Viterbi objective
            (:func:`mt2.inference.key_decision.coverage_weights`: each instant the same in total);
            None: 1 each.
    """

    starts: np.ndarray
    lengths: np.ndarray
    centres: np.ndarray
    duration: float
    key_probabilities: np.ndarray
    has_key: np.ndarray
    signature_probabilities: np.ndarray | None = None
    weights: np.ndarray | None = None

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
    weights = np.ones(steps) if evidence.weights is None else np.asarray(evidence.weights, np.float64)
    emissions[keyed, :24] = weights[keyed, None] * np.log(np.maximum(evidence.key_probabilities[keyed], _TINY))
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
def window_has_key(encoder, spectrum: np.ndarray, rms: np.ndarray, window_lengths: np.ndarray) -> np.ndarray:
    """``(W,)`` True where a window has a key: level at least ``encoder.silence_db`` and
    tonality at least ``encoder.min_tonality`` (the clip-level rule of :meth:`Encoder.key`, per
    window: :func:`mt2.inference.key_decision.window_tonality`)."""
    with np.errstate(divide="ignore"):
        level = 20 * np.log10(np.asarray(rms, np.float64))
    return (level >= encoder.silence_db) & (window_tonality(spectrum, window_lengths) >= encoder.min_tonality)


def _gather(encoder, audio, sr: float, passes: int, batch_size: int):
    """The key path's windows of ``passes`` passes (:meth:`Encoder.key_embedding`) that a key
    decision reads (:func:`~mt2.inference.key_decision.evidence_windows`): starts, lengths, the
    input's duration, their rows and coverage weights."""
    from mt2.inference.windows import to_model_rate

    audio16 = to_model_rate(audio, sr)
    emb = encoder.key_embedding(audio16, encoder.sample_rate, passes, batch_size)
    keep = evidence_windows(emb.window_lengths)
    starts, lengths = emb.window_starts[keep], emb.window_lengths[keep]
    rows = {"bins": emb.key_probabilities[keep], "tokens": emb.key_tokens[keep], "spectrum": emb.spectrum[keep], "rms": emb.rms[keep]}
    return starts, lengths, len(audio16) / encoder.sample_rate, rows, coverage_weights(starts, lengths, passes)


def _chroma(encoder, spectrum: np.ndarray) -> np.ndarray:
    return np.stack([chroma_from_window(s[:, None], encoder.offset) for s in spectrum])


def evidence_of_rows(encoder, starts: np.ndarray, lengths: np.ndarray, duration: float, rows: dict,
                     weights: np.ndarray | None = None) -> tuple[WindowEvidence, WindowEvidence]:
    """``(mt2 evidence, template evidence)`` of windows sorted by start: ``starts`` and ``lengths``
    ``(T,)`` in seconds, ``rows`` with the head softmax ``bins`` ``(T, 12)``, equivariant ``tokens``
    ``(T, D)``, time-averaged model input ``spectrum`` ``(T, 84)`` and ``rms`` ``(T,)``, and each
    window's ``weights`` in the Viterbi objective. The mt2 evidence is
    :func:`mt2.inference.key_decision.key_probabilities` of each window, what ``mt2 key`` pools
    (:func:`mt2.inference.key_decision.decide_key`)."""
    chroma = _chroma(encoder, rows["spectrum"])
    has_key = window_has_key(encoder, rows["spectrum"], rows["rms"], lengths)
    centres = starts + lengths / 2
    signatures = encoder.calibration.signature_probabilities(rows["bins"])  # (T, 12) by signature
    keys = key_probabilities(signatures, mode_given_signature(chroma, encoder.signature_probe(rows["tokens"])))
    model = WindowEvidence(starts, lengths, centres, duration, keys, has_key, signatures, weights)
    logits = TEMPLATE_SHARPNESS * template_scores(chroma)
    template = np.exp(logits - logits.max(axis=1, keepdims=True))
    template /= template.sum(axis=1, keepdims=True)
    return model, WindowEvidence(starts, lengths, centres, duration, template, has_key.copy(), weights=weights)


def evidence_pair(encoder, audio, sr: float, passes: int = DEFAULT_PASSES, batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[WindowEvidence, WindowEvidence]:
    """``(mt2 evidence, template evidence)`` from the same windows of one set of passes."""
    return evidence_of_rows(encoder, *_gather(encoder, audio, sr, passes, batch_size))


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
