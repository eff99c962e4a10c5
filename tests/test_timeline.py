"""The key over time (issue 22): modulating material, the Viterbi smoothing, the timeline API,
the CLI outputs and the measure."""
import csv
import hashlib
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from mt2.corpus.build import plan, run_job
from mt2.corpus.generator import STYLES, generate_piece
from mt2.corpus.modulation import MODULATIONS, generate_modulating_piece, modulated_keys
from mt2.inference.timeline import KEYS, WindowEvidence, decode, viterbi
from mt2.keys import parse_key

SR = 16000


# -- the modulating material ----------------------------------------------------------------------
def test_generator_with_the_option_off_gives_the_same_pieces_and_plans_as_before():
    """Hashes taken before the modulation option existed: the ordinary pieces and the plans of
    the existing sizes do not change (so neither do their renders)."""
    digest = hashlib.sha256()
    for i, style in enumerate(sorted(STYLES)):
        for tonic, mode in ((0, "major"), (9, "minor"), (6, "major")):
            p = generate_piece("x", np.random.default_rng(1000 + i), tonic, mode, style, 30.0)
            digest.update(repr((p.parts, p.chords, p.beats, p.downbeats, p.tonic, p.mode, p.transposition, p.tempo)).encode())
    assert digest.hexdigest() == "1ab21e9222f844af56cf34e7153ae00a8ae91fd96031755454b2410604f0e9bc"
    fields = ("source", "piece_id", "split", "seed", "max_clips", "chorale", "renders", "tonic", "mode", "style", "seconds", "program", "pitch")
    jobs = [tuple(getattr(j, f) for f in fields) for size in ("small", "keys", "bench") for j in plan(size, 3)]
    assert hashlib.sha256(repr(jobs).encode()).hexdigest() == "9de3076cb6d315d99a20fb8d9212cd8075832a0092d56dfe7c03de7d6593ff8a"
    assert all(j.changes is None for size in ("small", "keys") for j in plan(size, 3))


@pytest.mark.parametrize("changes", [(), ("dominant",), ("relative",), ("step-up", "dominant"), ("relative", "relative")])
def test_modulating_piece_has_its_keys_at_bar_lines(changes):
    piece = generate_modulating_piece("m", np.random.default_rng(5), 2, "minor", "pop", 36.0, changes)
    keys = [seg[2] for seg in piece.key_segments]
    assert [parse_key(k) for k in keys] == modulated_keys(2, "minor", changes)
    assert piece.key_segments[0][0] == 0 and piece.end <= piece.key_segments[-1][1] + 1e-9
    assert piece.key_segments[-1][1] >= 36.0
    for (_, end, _), (start, _, _) in zip(piece.key_segments, piece.key_segments[1:]):
        assert end == pytest.approx(start)
        assert min(abs(start - d) for d in piece.downbeats) < 1e-9  # at a bar line
    moved = piece.transposed(3)
    assert [parse_key(k) for _, _, k in moved.key_segments] == [((t + 3) % 12, m) for t, m in modulated_keys(2, "minor", changes)]


def test_modulation_moves():
    assert modulated_keys(0, "major", ("dominant", "relative", "step-up")) == [(0, "major"), (7, "major"), (4, "minor"), (6, "minor")]
    assert set(MODULATIONS) == {"dominant", "relative", "step-up"}


def test_modulations_size_plans_two_thirds_modulating_and_renders_key_segments(tmp_path):
    from mt2.corpus.build import MODULATION_SECONDS, load_font

    jobs = plan("modulations", 11)
    assert len(jobs) == 72 and all(j.source == "generator" and j.changes is not None for j in jobs)
    assert sum(bool(j.changes) for j in jobs) == 48
    assert {len(j.changes) for j in jobs} == {0, 1, 2}
    job = next(j for j in jobs if len(j.changes) == 2)
    _, font = load_font(None)
    (record,) = run_job(job, tmp_path, font)
    segments = record["key_segments"]
    assert record["duration"] == MODULATION_SECONDS and len(segments) == 3
    assert segments[0][0] == 0 and segments[-1][1] == MODULATION_SECONDS
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))
    assert record["key"] == segments[0][2]
    assert list(record)[-1] == "key_segments"
    assert (tmp_path / record["path"]).is_file()


# -- smoothing ---------------------------------------------------------------------------------------
def _brute_force(emissions, penalty, free):
    steps, states = emissions.shape
    best, best_path = -np.inf, None
    for path in itertools.product(range(states), repeat=steps):
        score = sum(emissions[t, s] for t, s in enumerate(path))
        score -= penalty * sum(a != b and not free[a] and not free[b] for a, b in zip(path, path[1:]))
        if score > best + 1e-12:
            best, best_path = score, path
    return best


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    emissions = np.log(rng.dirichlet(np.ones(4), size=5))
    free = np.array([False, False, False, seed % 2 == 1])
    for penalty in (0.0, 0.7, 2.0, 10.0):
        path = viterbi(emissions, penalty, free)
        score = emissions[np.arange(5), path].sum() - penalty * sum(
            a != b and not free[a] and not free[b] for a, b in zip(path, path[1:]))
        assert score == pytest.approx(_brute_force(emissions, penalty, free))


def _evidence(keys_per_window, rng, strength=3.0, has_key=None):
    """Evidence of windows 1 s apart favouring the given key states, with noise."""
    steps = len(keys_per_window)
    logits = rng.normal(0, 1, (steps, 24))
    logits[np.arange(steps), keys_per_window] += strength
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    starts = np.arange(steps) * 1.0
    lengths = np.full(steps, 4.0)
    return WindowEvidence(starts, lengths, starts + 2.0, float(steps + 3), probabilities,
                          np.ones(steps, bool) if has_key is None else has_key)


def test_segments_cover_the_input_and_larger_penalties_never_switch_more():
    rng = np.random.default_rng(0)
    evidence = _evidence(rng.integers(24, size=40), rng, strength=1.0)
    previous = None
    for penalty in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0):
        timeline = decode(evidence, penalty)
        assert timeline.segments[0].start == 0 and timeline.segments[-1].end == evidence.duration
        assert all(a.end == b.start and a.start < a.end for a, b in zip(timeline.segments, timeline.segments[1:]))
        assert all(a.key != b.key for a, b in zip(timeline.segments, timeline.segments[1:]))
        if previous is not None:
            assert timeline.switches <= previous
        previous = timeline.switches
    assert previous == 0


def test_a_transposed_evidence_gives_the_transposed_timeline():
    rng = np.random.default_rng(1)
    truth = [0] * 12 + [7] * 12 + [16] * 10  # C major, G major, E minor
    evidence = _evidence(truth, rng)
    base = decode(evidence, 4.0)
    assert [s.key for s in base.segments] == ["C major", "G major", "E minor"]
    for k in (1, 5, 11):
        rolled = np.concatenate([np.roll(evidence.key_probabilities[:, :12], k, axis=1),
                                 np.roll(evidence.key_probabilities[:, 12:], k, axis=1)], axis=1)
        moved = decode(WindowEvidence(evidence.starts, evidence.lengths, evidence.centres, evidence.duration, rolled, evidence.has_key), 4.0)
        expected = [KEYS[(KEYS.index(s.key) % 12 + k) % 12 + 12 * (KEYS.index(s.key) // 12)] for s in base.segments]
        assert [s.key for s in moved.segments] == expected
        assert [(s.start, s.end) for s in moved.segments] == [(s.start, s.end) for s in base.segments]


def test_no_key_windows_make_no_key_segments():
    rng = np.random.default_rng(2)
    has_key = np.ones(20, bool)
    has_key[8:12] = False
    timeline = decode(_evidence([3] * 20, rng, has_key=has_key), 100.0)
    assert [s.label for s in timeline.segments] == ["D# major", "X", "D# major"] or [s.label for s in timeline.segments] == ["Eb major", "X", "Eb major"]
    assert timeline.switches == 0
    assert timeline.segments[1].key is None and timeline.segments[1].confidence == 0


# -- the API on the shipped model, and the CLI -----------------------------------------------------------
def _chords(seconds, roots=(0, 5, 7, 0), sr=SR):
    """Harmonic tones of a I-IV-V-I progression in C major (one chord per second, looping)."""
    t = np.arange(int(seconds * sr)) / sr
    audio = np.zeros_like(t)
    for i in range(int(np.ceil(seconds))):
        root = roots[i % len(roots)]
        span = (t >= i) & (t < i + 1)
        for pc in (0, 4, 7):
            f = 261.63 * 2 ** ((root + pc) / 12)
            for h in range(1, 5):
                audio[span] += np.sin(2 * np.pi * f * h * t[span]) / h
        audio[span] += np.sin(2 * np.pi * 65.41 * 2 ** (root / 12) * t[span])
    return (0.1 * audio / np.abs(audio).max()).astype(np.float32)


@pytest.fixture(scope="module")
def encoder():
    import mt2

    return mt2.load("mt2")


def test_silence_within_a_file_is_a_no_key_segment(encoder):
    audio = np.concatenate([_chords(12), np.zeros(12 * SR, np.float32), _chords(12)])
    timeline = encoder.key_timeline(audio, SR)
    assert timeline.segments[0].start == 0 and timeline.segments[-1].end == pytest.approx(36.0)
    assert all(a.end == b.start for a, b in zip(timeline.segments, timeline.segments[1:]))
    labels = timeline.labels_at(np.array([6.0, 18.0, 30.0]))
    assert labels[1] == "X" and labels[0] != "X" and labels[2] != "X"
    assert encoder.key_timeline(np.zeros(5 * SR, np.float32), SR).labels_at(np.array([2.0])) == ["X"]


def test_key_timeline_methods_and_file(encoder, tmp_path):
    import soundfile as sf

    audio = _chords(20)
    sf.write(tmp_path / "c.wav", audio, SR)
    from_file = encoder.key_timeline_file(tmp_path / "c.wav", switch_penalty=1000.0)
    assert len(from_file.segments) == 1 and from_file.segments[0].key is not None
    assert from_file.hop == pytest.approx(encoder.window_samples / 4 / SR, rel=0.01)
    template = encoder.key_timeline(audio, SR, method="template", switch_penalty=1000.0, passes=2)
    assert template.segments[0].key == "C major" and template.method == "template"
    with pytest.raises(ValueError):
        encoder.key_timeline(audio, SR, method="other")


def test_cli_timeline_json_csv_and_plot(tmp_path, capsys):
    import soundfile as sf

    from mt2.cli import main

    for name, audio in (("a.wav", _chords(14)), ("b.wav", np.concatenate([_chords(8), np.zeros(8 * SR, np.float32)]))):
        sf.write(tmp_path / name, audio, SR)
    status = main(["key", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--timeline", "--json",
                   "--csv", str(tmp_path / "out.csv"), "--plot", str(tmp_path / "t.png"), "--switch-penalty", "10"])
    assert status == 0
    results = json.loads(capsys.readouterr().out)
    assert [Path(r["path"]).name for r in results] == ["a.wav", "b.wav"]
    for r in results:
        assert r["switch_penalty"] == 10 and r["segments"][0]["start"] == 0
        assert r["segments"][-1]["end"] == pytest.approx(r["duration"], abs=1e-3)
    assert results[1]["segments"][-1]["key"] == "X"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert len(rows) == sum(len(r["segments"]) for r in results) and set(rows[0]) == {"path", "start", "end", "key", "confidence"}
    for name in ("t-a.png", "t-b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["key", str(tmp_path / "a.wav"), "--timeline"]) == 0
    assert "\t" in capsys.readouterr().out
    assert main(["key", str(tmp_path / "a.wav"), "--plot", str(tmp_path / "x.png")]) == 2


def test_the_measure_scores_a_perfect_and_a_flat_timeline():
    from mt2.inference.timeline import KeySegment, KeyTimeline
    from mt2.evaluation.stats import resample_counts
    from mt2.study.timeline import Piece, paired_bootstrap, score_piece

    piece = Piece(Path("x.flac"), [(0.0, 10.0, "C major"), (10.0, 20.0, "G major")])

    def timeline(segments):
        return KeyTimeline([KeySegment(*s, 0.5) for s in segments], np.zeros(0), [], np.zeros(0), 20.0, 1.0)

    perfect = score_piece(timeline([(0, 11, "C major"), (11, 20, "G major")]), piece)
    assert perfect["weighted"] == pytest.approx(0.95) and perfect["hits"] == 1 and perfect["errors"] == [1.0]
    flat = score_piece(timeline([(0, 20, "C major")]), piece)
    assert flat["weighted"] == pytest.approx(0.5)  # mir_eval: C for G is a fifth below, 0 and flat["hits"] == 0 and flat["switches"] == 0
    one_key = Piece(Path("y.flac"), [(0.0, 20.0, "A minor")])
    assert not one_key.modulates and score_piece(timeline([(0, 11, "C major"), (11, 20, "G major")]), one_key)["switches"] == 1
    r = paired_bootstrap((np.array([1.0, 1, 1]), np.ones(3)), (np.array([0.0, 0, 1]), np.ones(3)), resample_counts(3, 200))
    assert r["difference"] == pytest.approx(2 / 3) and r["difference_interval"][0] >= 0
