"""The key-timeline measure (issue 22): how well :func:`mt2.inference.timeline.key_timeline`
follows modulations, against a template baseline with the same windows and smoothing.

Material: a corpus rendered with ``mt2 corpus render OUT --size modulations --seed S`` (36-s
pieces, two thirds changing key once or twice at bar lines; ``key_segments`` in the manifest).
Both systems decode the **same windows** (:func:`mt2.inference.timeline.evidence_pair`): MT2
from the equivariant token, the baseline from the window's chroma and the Krumhansl-Kessler
templates. Per piece:

- ``weighted``: the share of time with the right local key, MIREX-weighted: the mean of
  ``mir_eval.key.weighted_score(reference, estimate)`` over a 10-Hz grid of frames (1 same key,
  0.5 a fifth, 0.3 relative, 0.2 parallel, 0 else; no key estimated counts 0);
- per true boundary (a key change in ``key_segments``): ``error``, the distance in seconds to
  the nearest estimated key change (the piece's duration when there is none), and a ``hit``
  when it is at most :data:`BOUNDARY_TOLERANCE` (2 s);
- ``switches``: estimated key changes; on a piece that does not modulate every one is
  spurious; on a modulating piece the ``spurious`` ones are those farther than 2 s from every
  true boundary.

Figures (:data:`FIGURES`): ``weighted`` (mean over modulating pieces, and over the others),
``boundary hit`` (pooled over true boundaries), ``boundary error`` (mean over true boundaries),
``spurious switches`` (per non-modulating piece). Each has a 95% percentile interval and MT2
minus baseline a **paired** one, both from the same resamples of pieces with replacement
(:func:`paired_bootstrap`: the package's one bootstrap, :mod:`mt2.evaluation.stats`, with its
:data:`~mt2.evaluation.stats.RESAMPLES`; the verdict is its :func:`~mt2.evaluation.stats.verdict`
with each figure's direction).

**Tuning.** Each system's switch penalty is chosen on a corpus of **another seed**
(``valid``), from :data:`PENALTY_GRID`, maximising ``weighted (all pieces) + boundary hit -
spurious switches per non-modulating piece``; the test corpus is then decoded once with it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mt2.audio import load_audio
from mt2.corpus import read_manifest
from mt2.evaluation.stats import HELD, LEVEL, RESAMPLES, REVERSED, Interval, Ratio, interval, paired_difference, resample_counts, verdict
from mt2.inference.timeline import DEFAULT_PASSES, KeyTimeline, WindowEvidence, decode, evidence_pair
from mt2.tables import markdown_table

#: A boundary is found when an estimated key change lies within this many seconds of it.
BOUNDARY_TOLERANCE = 2.0
#: Frames per second of the weighted score's grid.
FRAME_RATE = 10.0
#: Switch penalties (nats) tried on the validation corpus.
PENALTY_GRID = (0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0)
SYSTEMS = ("mt2", "template")
#: Figure name -> (higher is better, description).
FIGURES = {
    "weighted (modulating)": (True, "MIREX-weighted share of time, modulating pieces"),
    "weighted (one key)": (True, "MIREX-weighted share of time, pieces in one key"),
    "boundary hit": (True, f"true boundaries with an estimated change within {BOUNDARY_TOLERANCE:g} s"),
    "boundary error (s)": (False, "mean distance of a true boundary to the nearest estimated change"),
    "spurious switches": (False, "estimated changes per piece that stays in one key"),
}


@dataclass
class Piece:
    """A rendered piece with its reference segments ``[(start, end, key)]``."""

    path: Path
    segments: list[tuple[float, float, str]]

    @property
    def boundaries(self) -> list[float]:
        return [s[0] for a, s in zip(self.segments, self.segments[1:]) if s[2] != a[2]]

    @property
    def modulates(self) -> bool:
        return bool(self.boundaries)


def read_pieces(folder: str | Path) -> list[Piece]:
    """The clips of a corpus folder with their key segments (a clip without ``key_segments``
    but with a ``key`` is one segment over its duration; clips with neither are skipped)."""
    folder = Path(folder)
    pieces = []
    for record in read_manifest(folder):
        segments = record.get("key_segments") or ([[0.0, record["duration"], record["key"]]] if record.get("key") else None)
        if segments:
            pieces.append(Piece(folder / record["path"], [tuple(s) for s in segments]))
    if not pieces:
        raise ValueError(f"{folder}: no clip with a key or key_segments in its manifest")
    return pieces


def collect_evidence(encoder, pieces: list[Piece], passes: int = DEFAULT_PASSES, progress: bool = False) -> list[tuple[WindowEvidence, WindowEvidence]]:
    """``(mt2, template)`` window evidence of each piece (one set of embedding passes per piece)."""
    from tqdm import tqdm

    rate = encoder.sample_rate
    return [evidence_pair(encoder, load_audio(p.path, rate), rate, passes) for p in tqdm(pieces, desc="timeline", disable=not progress)]


_WEIGHTS: dict[tuple[str, str], float] = {}


def _weighted(reference: str, estimate: str) -> float:
    if (reference, estimate) not in _WEIGHTS:
        import mir_eval

        _WEIGHTS[reference, estimate] = float(mir_eval.key.weighted_score(reference, estimate))
    return _WEIGHTS[reference, estimate]


def estimated_changes(timeline: KeyTimeline) -> list[float]:
    """Times of the estimated key changes (between consecutive segments that both have a key)."""
    s = timeline.segments
    return [b.start for a, b in zip(s, s[1:]) if a.key is not None and b.key is not None and a.key != b.key]


def score_piece(timeline: KeyTimeline, piece: Piece) -> dict:
    """The per-piece numbers of the module docstring."""
    end = min(timeline.duration, piece.segments[-1][1])
    times = (np.arange(int(end * FRAME_RATE)) + 0.5) / FRAME_RATE
    starts = np.array([s[0] for s in piece.segments])
    references = [piece.segments[i][2] for i in np.maximum(np.searchsorted(starts, times, side="right") - 1, 0)]
    estimates = timeline.labels_at(times)
    changes = np.array(estimated_changes(timeline))
    errors = [float(np.min(np.abs(changes - b))) if changes.size else float(timeline.duration) for b in piece.boundaries]
    truths = np.array(piece.boundaries)
    spurious = sum(not truths.size or float(np.min(np.abs(truths - c))) > BOUNDARY_TOLERANCE for c in changes)
    return {
        "weighted": float(np.mean([_weighted(r, e) for r, e in zip(references, estimates)])),
        "errors": errors,
        "hits": sum(e <= BOUNDARY_TOLERANCE for e in errors),
        "boundaries": len(errors),
        "switches": int(changes.size),
        "spurious": int(spurious),
        "modulates": piece.modulates,
    }


def _figure_data(scores: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Figure -> (numerators, denominators) per piece: the figure is ``sum num / sum den``."""
    mod = np.array([s["modulates"] for s in scores], float)
    weighted = np.array([s["weighted"] for s in scores])
    boundaries = np.array([s["boundaries"] for s in scores], float)
    return {
        "weighted (modulating)": (weighted * mod, mod),
        "weighted (one key)": (weighted * (1 - mod), 1 - mod),
        "boundary hit": (np.array([s["hits"] for s in scores], float), boundaries),
        "boundary error (s)": (np.array([sum(s["errors"]) for s in scores]), boundaries),
        "spurious switches": (np.array([s["switches"] for s in scores], float) * (1 - mod), 1 - mod),
    }


def paired_bootstrap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], counts: np.ndarray,
                     level: float = LEVEL) -> dict:
    """Two ratio figures ``sum num / sum den`` over the same ``n`` pieces (:class:`~mt2.evaluation.stats.Ratio`)
    and their difference ``a - b``: values and percentile intervals, all on the resamples ``counts``
    ``(B, n)`` (:func:`~mt2.evaluation.stats.resample_counts`)."""
    ra, rb = Ratio(*a), Ratio(*b)
    ia, ib, difference = interval(ra, counts, level), interval(rb, counts, level), paired_difference(ra, rb, counts, level)
    return {
        "a": ia.value, "a_interval": [ia.low, ia.high],
        "b": ib.value, "b_interval": [ib.low, ib.high],
        "difference": difference.value, "difference_interval": [difference.low, difference.high],
    }


def objective(scores: list[dict]) -> float:
    """The tuning objective: weighted (all pieces) + boundary hit - spurious switches per one-key piece."""
    data = _figure_data(scores)
    weighted = float(np.mean([s["weighted"] for s in scores]))
    hit = data["boundary hit"][0].sum() / max(data["boundary hit"][1].sum(), 1)
    spurious = data["spurious switches"][0].sum() / max(data["spurious switches"][1].sum(), 1)
    return weighted + hit - spurious


def tune(evidence: list[WindowEvidence], pieces: list[Piece], method: str, grid=PENALTY_GRID) -> tuple[float, dict[float, float]]:
    """The penalty of ``grid`` with the best :func:`objective` (ties: the larger penalty) and every value tried."""
    values = {p: objective([score_piece(decode(e, p, method), piece) for e, piece in zip(evidence, pieces)]) for p in grid}
    best = max(values.values())
    return max(p for p, v in values.items() if v >= best - 1e-12), values


def measure(encoder, test: str | Path, valid: str | Path | None = None, penalties: dict[str, float] | None = None,
            passes: int = DEFAULT_PASSES, progress: bool = False, seed: int = 0) -> dict:
    """The whole measure: tune each system's penalty on ``valid`` (or take ``penalties``), decode
    ``test`` once, score, bootstrap. Returns a JSON-ready dict (see :func:`report_lines`)."""
    result: dict = {"test": str(test), "passes": passes, "tolerance_s": BOUNDARY_TOLERANCE, "resamples": RESAMPLES}
    if valid is not None:
        valid_pieces = read_pieces(valid)
        valid_evidence = collect_evidence(encoder, valid_pieces, passes, progress)
        tuned = {m: tune([e[i] for e in valid_evidence], valid_pieces, m) for i, m in enumerate(SYSTEMS)}
        penalties = {m: tuned[m][0] for m in SYSTEMS}
        result["valid"] = str(valid)
        result["tuning"] = {m: {str(p): round(v, 4) for p, v in tuned[m][1].items()} for m in SYSTEMS}
    elif penalties is None:
        from mt2.inference.timeline import DEFAULT_SWITCH_PENALTY

        penalties = {m: DEFAULT_SWITCH_PENALTY for m in SYSTEMS}
    result["penalties"] = penalties
    pieces = read_pieces(test)
    evidence = collect_evidence(encoder, pieces, passes, progress)
    scores = {m: [score_piece(decode(e[i], penalties[m], m), p) for e, p in zip(evidence, pieces)] for i, m in enumerate(SYSTEMS)}
    data = {m: _figure_data(scores[m]) for m in SYSTEMS}
    result["pieces"] = {"modulating": sum(p.modulates for p in pieces), "one key": sum(not p.modulates for p in pieces),
                        "boundaries": sum(len(p.boundaries) for p in pieces)}
    counts = resample_counts(len(pieces), RESAMPLES, seed)
    result["figures"] = {f: paired_bootstrap(data["mt2"][f], data["template"][f], counts) for f in FIGURES}
    result["median boundary error (s)"] = {m: float(np.median([e for s in scores[m] for e in s["errors"]] or [np.nan])) for m in SYSTEMS}
    result["spurious on modulating pieces"] = {m: int(sum(s["spurious"] for s in scores[m] if s["modulates"])) for m in SYSTEMS}
    return result


def _verdict(figure: str, difference: float, bounds: list[float]) -> str:
    """:func:`~mt2.evaluation.stats.verdict` of MT2 - template in the figure's direction, in words
    (``n/a``: no interval, e.g. no piece of the kind)."""
    if not np.isfinite(bounds[0]):
        return "n/a"
    decided = verdict(Interval(difference, *bounds), higher_is_better=FIGURES[figure][0])
    return {HELD: "MT2 better", REVERSED: "MT2 worse"}.get(decided, "undecided")


def report_lines(result: dict) -> list[str]:
    """The result as Markdown: one row per figure (value [interval] per system, difference, verdict)."""
    def cell(v, ci):
        return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"

    rows = []
    for figure, r in result["figures"].items():
        rows.append([figure, cell(r["a"], r["a_interval"]), cell(r["b"], r["b_interval"]),
                     cell(r["difference"], r["difference_interval"]), _verdict(figure, r["difference"], r["difference_interval"])])
    p = result["pieces"]
    lines = [
        f"Key timeline on {result['test']}: {p['modulating']} modulating pieces ({p['boundaries']} boundaries), "
        f"{p['one key']} in one key; {result['passes']} passes; switch penalty (nats) MT2 {result['penalties']['mt2']:g}, "
        f"template {result['penalties']['template']:g}" + (f" (tuned on {result['valid']})" if "valid" in result else "") + ".",
        "",
        *markdown_table(["figure", "MT2", "template", "MT2 - template (paired)", "verdict"], rows),
        "",
        f"Median boundary error (s): MT2 {result['median boundary error (s)']['mt2']:.2f}, "
        f"template {result['median boundary error (s)']['template']:.2f}. Spurious switches on modulating pieces "
        f"(farther than {result['tolerance_s']:g} s from a true boundary): MT2 {result['spurious on modulating pieces']['mt2']}, "
        f"template {result['spurious on modulating pieces']['template']}. Intervals: {LEVEL:.0%} percentile, "
        f"{result['resamples']} resamples of the pieces.",
    ]
    return lines


def run_timeline_study(encoder, test, valid=None, out: str | Path = "runs/study", passes: int = DEFAULT_PASSES,
                       penalty: float | None = None, progress: bool = True) -> dict:
    """:func:`measure`, written to ``out/timeline.json`` and ``out/timeline.md``."""
    penalties = None if penalty is None else {m: penalty for m in SYSTEMS}
    result = measure(encoder, test, valid, penalties, passes, progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "timeline.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "timeline.md").write_text("\n".join(report_lines(result)) + "\n")
    return result
