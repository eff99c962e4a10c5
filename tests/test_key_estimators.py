"""The field's key estimators as zero-shot key rows of ``mt2 bench`` (issue 31): essentia's
KeyExtractor (edma, bgate) and madmom's key CNN, on a fixture when the ``[real]`` extra is
installed (skipped otherwise)."""
from __future__ import annotations

import numpy as np
import pytest

from mt2.bench import key_estimators
from mt2.bench.features import ZERO_SHOT, Request
from mt2.evaluation.real_music import REFERENCE_RATE, import_madmom


def _cadence(seconds: float = 8.0) -> np.ndarray:
    """I-IV-V-I in C major, 2 s a chord, three partials a note, at 44.1 kHz."""
    chords = ([60, 64, 67], [65, 69, 72], [67, 71, 74], [60, 64, 67])
    t = np.arange(int(seconds / len(chords) * REFERENCE_RATE)) / REFERENCE_RATE
    parts = []
    for chord in chords:
        freqs = [440.0 * 2 ** ((m - 69) / 12) for m in chord]
        tone = sum(np.sin(2 * np.pi * f * k * t) / k for f in freqs for k in (1, 2, 3))
        parts.append(tone * np.minimum(1.0, 20 * t) * np.exp(-0.4 * t))
    return (0.1 * np.concatenate(parts)).astype(np.float32)


def _installed(name: str) -> bool:
    if name.startswith("essentia"):
        try:
            import essentia  # noqa: F401
        except ImportError:
            return False
        return True
    return import_madmom() is not None


@pytest.mark.parametrize("name", list(key_estimators.ESTIMATORS))
def test_estimator_reads_the_key_of_a_cadence(name):
    if not _installed(name):
        pytest.skip(f"{name}: the [real] extra is not installed")
    (system,) = key_estimators.load_key_estimators([name])
    assert system.error is None and system.readouts == (ZERO_SHOT,) and system.kind == "reference"
    assert system.extractor.sample_rate == REFERENCE_RATE
    entry = system.extractor.compute(_cadence(), Request(ZERO_SHOT), frames=False)
    assert int(entry["tonic"][0]) == 0 and not bool(entry["minor"][0])  # C major
    assert name.split("-")[-1] in system.extractor.weights_hash  # the cache key names the estimator and its version


def test_missing_estimator_is_a_missing_system(monkeypatch):
    def absent():
        raise ImportError("no module named essentia")

    monkeypatch.setitem(key_estimators.ESTIMATORS, "essentia-edma", ("essentia KeyExtractor (edma)", absent))
    (system,) = key_estimators.load_key_estimators(["essentia-edma"])
    assert system.extractor is None and "[real]" in system.error and system.summary()["status"] == "missing"
    with pytest.raises(ValueError, match="known: essentia-edma"):
        key_estimators.load_key_estimators(["qm-key"])



def test_bench_adds_zero_shot_key_rows_read_on_the_key_test_clips_only(tmp_path, monkeypatch):
    """``mt2 bench --key-estimators`` on the tiny corpus: one zero-shot key row per estimator, on the test split only."""
    from mt2.bench import runner
    from mt2.bench.config import KEY_ESTIMATORS, BenchConfig
    from mt2.corpus import render_corpus

    assert KEY_ESTIMATORS == tuple(key_estimators.ESTIMATORS)
    clips = []  # the clips the stand-in estimator reads
    stand_in = ("stand-in (always C major)", lambda: ((lambda audio: clips.append(len(audio)) or "C major"), "fixed-1"))
    monkeypatch.setitem(key_estimators.ESTIMATORS, "essentia-edma", stand_in)
    corpus = render_corpus(tmp_path / "corpus", size="tiny", seed=11).parent
    config = BenchConfig(models=[], tasks=["key"], data=str(corpus), out=tmp_path / "out", cache=tmp_path / "cache", seeds=[0],
                         resamples=50, probe_steps=20, key_estimators=["essentia-edma"], progress=False)
    results = runner.run_benchmark(config)
    rows = [e for e in results["results"] if e["system"] == stand_in[0]]
    assert [(r["task"], r["readout"], r["kind"]) for r in rows] == [("key", "zero-shot", "zero-shot")]
    assert len(clips) == rows[0]["counts"]["test"] > 0  # the key test clips alone
    assert "--key-estimators essentia-edma" in (tmp_path / "out" / "results.md").read_text()
    with pytest.raises(ValueError, match="unknown key estimators"):
        BenchConfig(key_estimators=["qm-key"])
