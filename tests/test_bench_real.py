"""The real-recordings section of ``mt2 bench`` on a small corpus of tones made here."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from mt2.bench import real as bench_real
from mt2.bench.real_report import real_markdown
from mt2.bench.features import FeatureCache
from mt2.corpus.real import build_real_corpus
from mt2.evaluation.real_music import shift_by_resampling

from tiny_encoder import make_encoder, one_thread

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def single_thread():
    yield from one_thread()


def _track(seconds: float, root_hz: float, kind: int, sr: int = 22050) -> np.ndarray:
    """A 'soundtrack' style: kind 0 sine chord, 1 square-ish chord, 2 noisy pulses."""
    t = np.arange(int(seconds * sr)) / sr
    chord = sum(np.sin(2 * np.pi * root_hz * r * t) for r in (1, 1.26, 1.5))
    if kind == 1:
        chord = np.sign(chord) * 0.5
    if kind == 2:
        chord = chord * (np.sin(2 * np.pi * 2 * t) > 0) + 0.05 * np.random.default_rng(int(root_hz)).standard_normal(len(t))
    return (0.2 * chord).astype(np.float32)


@pytest.fixture(scope="module")
def small_real_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("realbench")
    for kind, album in enumerate(("sines", "squares", "pulses")):
        (root / "mine" / album).mkdir(parents=True)
        for i in range(4):
            sf.write(root / "mine" / album / f"t{i}.flac", _track(16.0, 110 * 2 ** (i / 5), kind), 22050)
    build_real_corpus(root / "corpus", folder=root / "mine", seed=0, log=lambda _: None)
    return root


def test_shift_by_resampling_moves_pitch_by_n_semitones():
    sr = 16000
    t = np.arange(sr * 2) / sr
    shifted = shift_by_resampling(np.sin(2 * np.pi * 440 * t).astype(np.float32), 3)
    spectrum = np.abs(np.fft.rfft(shifted * np.hanning(len(shifted))))
    peak = np.argmax(spectrum) * sr / len(shifted)
    assert peak == pytest.approx(440 * 2 ** (3 / 12), rel=0.01)
    assert len(shifted) == pytest.approx(len(t) / 2 ** (3 / 12), abs=2)


def test_key_measures_count_followed_shifts_and_no_key():
    E = bench_real.Excerpt
    excerpts = [E(None, "a", "s", "test", 0, 0), E(None, "a", "s", "test", 0, 2), E(None, "b", "s", "test", 0, 0),
                E(None, "b", "s", "test", 0, -1)]
    keys = {"model": ["C major", "D major", None, "B major"], "other": ["C major", "E major", "A minor", "G# minor"]}
    rows = bench_real.key_measures(keys, excerpts, seed=0, resamples=50)
    assert rows["model"]["followed"][0] == 0.5 and rows["model"]["no_key"][0] == 0.5
    assert rows["other"]["followed"][0] == 0.5 and rows["other"]["no_key"][0] == 0.0
    assert rows["model"]["agree_other"][0] == 0.5


def test_real_section_runs_and_reports(small_real_corpus, tmp_path):
    encoder = make_encoder()
    settings = bench_real.RealSettings(str(small_real_corpus / "corpus"), seeds=[0], resamples=50, probe_steps=30,
                                       seconds=4.0, extras=False, progress=False)
    section = bench_real.run_real({"tiny": encoder}, settings, FeatureCache(tmp_path / "cache"), tmp_path / "work")
    assert section["excerpts"]["by_split"] == {"train": 6 * 3, "valid": 3 * 2, "test": 3 * 2, "holdout": 0}
    assert section["excerpts"]["shifted"] == 6 * 11
    ident = section["identification"]
    assert set(ident) == {bench_real.MFCC, "tiny average", "tiny contrastive", "tiny equivariant"}
    assert 0 <= ident[bench_real.MFCC]["accuracy"][0] <= 1 and "minus_mfcc" in ident["tiny average"]
    assert ident[bench_real.MFCC]["accuracy"][0] >= 2 / 3  # three very different 'soundtracks'
    assert section["retrieval"]["tiny average"]["queries"] == 6
    key = section["key"]["tiny"]
    assert key["clips"] == 6 and key["pairs"] == 66 and 0 <= key["followed"][0] <= 1
    lines = "\n".join(real_markdown(json.loads(json.dumps(section))))
    assert "Soundtrack identification" in lines and "not run" in lines
    # a second run reads the cache: same numbers
    again = bench_real.run_real({"tiny": encoder}, settings, FeatureCache(tmp_path / "cache"), tmp_path / "work")
    assert again["key"] == section["key"] and again["retrieval"] == section["retrieval"]


def test_section_is_skipped_with_a_message_without_a_corpus(tmp_path, capsys):
    section = bench_real.run_real({}, bench_real.RealSettings(str(tmp_path)), FeatureCache(None), tmp_path)
    assert "mt2 corpus real" in section["skipped"] and "skipped" in capsys.readouterr().err
    assert "Skipped" in "\n".join(real_markdown(section))


def test_study_real_measures_on_the_same_excerpts(small_real_corpus, tmp_path):
    from mt2.evaluation.real_music import real_measures

    measures = real_measures(make_encoder(), small_real_corpus / "corpus", tmp_path, seconds=4.0)
    assert measures["test_excerpts"] == 6 and measures["pairs"] == 66
    for name in ("followed", "no_key", "retrieval_top1", "retrieval_mrr", "soundtrack_knn"):
        assert 0 <= measures[name] <= 1, name
    assert "error" in real_measures(make_encoder(), tmp_path / "none", tmp_path)


def test_reproduce_line_names_the_real_corpus():
    from mt2.bench.report import reproduce

    results = {"config": {"models": ["mt2"], "data": "data/bench", "out": "out", "real": "data/real", "real_only": True},
               "datasets": {}, "seeds": {"probe": [0, 1]}}
    assert "--seeds 0 1 --real data/real --real-only`" in reproduce(results)
    results["config"]["real"] = None
    assert "--real" not in reproduce(results)


def test_reference_section_scores_every_system_against_essentia(small_real_corpus, tmp_path, monkeypatch):
    from mt2.evaluation import real_music

    monkeypatch.setattr(real_music, "essentia_key_estimator", lambda: ((lambda audio: "C major"), "fake-edma"))
    settings = bench_real.RealSettings(str(small_real_corpus / "corpus"), resamples=50, probe_steps=30, seconds=4.0, progress=False)
    root, rows = real_music.read_manifest(settings.folder)
    encoder = make_encoder()
    extractors = {name: bench_real.EncoderKeyExtractor(name, encoder) for name in ("first", "again")}
    section = bench_real.reference_section(extractors, root, rows, tmp_path / "work", FeatureCache(tmp_path / "cache"), 0, settings)
    assert section["excerpts"] == 3 * 6 and section["tracks"] == 6 and section["first"] == "first"
    first, again = section["systems"]["first"], section["systems"]["again"]
    assert 0 <= first["mirex"][0] <= 1 and first["mirex"] == again["mirex"] and "verdict" not in first
    assert again["mirex_minus_first"][0] == 0 and again["verdict"] == "undecided"
    lines = "\n".join(real_markdown({**json.loads(json.dumps(_minimal_section())), "reference": section}))
    assert "Key against essentia on longer excerpts" in lines and "fake-edma" in lines


def _minimal_section() -> dict:
    return {"folder": "f", "corpus": {"tracks": 0, "splits": {}, "hours": {}},
            "excerpts": {"seconds": 10, "by_split": {}, "shifted": 0, "shifts": [-5, 6]},
            "identification": {}, "retrieval": {}, "extras": {}, "key": {}}


def test_real_section_reads_external_systems(small_real_corpus, tmp_path):
    """An external system (musicnn, issue 31) gets identification and retrieval rows on its clip vector, and no key row."""
    pytest.importorskip("librosa")
    from mt2.bench.features import load_external

    settings = bench_real.RealSettings(str(small_real_corpus / "corpus"), seeds=[0], resamples=50, probe_steps=30,
                                       seconds=4.0, extras=False, progress=False)
    label = "mt2.bench.musicnn:load_msd"
    section = bench_real.run_real({}, settings, FeatureCache(tmp_path / "cache"), tmp_path / "work", {label: load_external(label)})
    assert 0 <= section["identification"][label]["accuracy"][0] <= 1 and "minus_mfcc" in section["identification"][label]
    assert section["retrieval"][label]["queries"] == 6 and label not in section["key"]
    assert [s["label"] for s in section["systems"]] == [label]


class _LevelStatistics:
    """A stand-in anchor: loudness statistics of the clip."""

    sample_rate = 16000

    def embed(self, audio, sample_rate):
        return np.array([audio.std(), np.abs(audio).max(), np.abs(np.diff(audio)).mean()], np.float32)


def test_anchors_are_paired_against_the_first_system_and_reported_turned_round(small_real_corpus, tmp_path):
    """Each external system is paired with the first encoder's own embedding on the same resamples
    (anchor minus first), and the report shows first minus anchor with the verdict turned round."""
    from mt2.bench.features import ExternalExtractor

    settings = bench_real.RealSettings(str(small_real_corpus / "corpus"), seeds=[0], resamples=50, probe_steps=30,
                                       seconds=4.0, extras=False, progress=False)
    anchor = ExternalExtractor("levels", _LevelStatistics(), "levels-1")
    section = bench_real.run_real({"tiny": make_encoder()}, settings, FeatureCache(tmp_path / "cache"), tmp_path / "work",
                                  {"levels": anchor})
    assert section["anchors"] == {"levels": "tiny average"}
    paired = section["retrieval"]["levels"]["paired"]
    assert paired["against"] == "tiny average"
    value, low, high = paired["top1"]["difference"]
    own = section["retrieval"]["levels"]["top1"][0] - section["retrieval"]["tiny average"]["top1"][0]
    assert value == pytest.approx(own) and low <= value <= high
    assert "paired" in section["identification"]["levels"] and "paired" not in section["retrieval"]["tiny average"]
    lines = real_markdown(json.loads(json.dumps(section)))
    row = next(line for line in lines if line.startswith("| tiny average minus levels"))
    assert f"{-value:.3f} [{-high:.3f}, {-low:.3f}]" in row
