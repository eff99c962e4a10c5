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
