"""mt2.study.no_key: the measurement behind the no-key rule's table."""
import json

import numpy as np
import pytest
import soundfile as sf

from mt2.inference import load, shipped_models
from mt2.study.no_key import coloured_noise, fit_noise_model, measure, table, with_noise, write

pytestmark = pytest.mark.skipif("mt2" not in shipped_models(), reason="the shipped weights are not in this installation")


def test_coloured_noise_has_unit_rms_and_its_slope():
    rng = np.random.default_rng(0)
    for kind, slope in (("white", 0.0), ("pink", -1.0), ("brown", -2.0)):
        noise = coloured_noise(kind, 2**16, rng)
        assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0)
        power = np.abs(np.fft.rfft(noise)) ** 2
        f = np.arange(len(power))
        band = (f > 100) & (f < 10000)
        fitted = np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0]
        assert fitted == pytest.approx(slope, abs=0.15), kind


def test_with_noise_sets_the_snr():
    rng = np.random.default_rng(1)
    music = np.sin(np.arange(16000) / 5).astype(np.float32)
    noisy = with_noise(music, 6.0, "pink", rng)
    snr = 10 * np.log10(np.mean(music**2) / np.mean((noisy - music) ** 2))
    assert snr == pytest.approx(6.0, abs=0.01)


def test_measure_names_noise_keyless_and_music_keyed(tmp_path):
    sr = 16000
    t = np.arange(12 * sr) / sr
    chord = sum(np.sin(2 * np.pi * 440 * 2 ** (m / 12) * t) for m in (0, 4, 7)) / 3
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.flac", (0.3 * chord).astype(np.float32), sr)
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"path": "audio/a.flac", "split": "test", "source": "real", "soundtrack": "fixture"}) + "\n")
    rows = measure(load("mt2"), real=tmp_path, rendered=tmp_path, splits=("test",))
    groups = {row.group for row in rows}
    assert {"white noise", "pink noise", "brown noise", "silence", "real music, 30 s", "rendered + 0 dB noise"} <= groups
    assert not any(row.has_key for row in rows if row.group.endswith("noise") and "music" not in row.group and "rendered" not in row.group)
    assert all(row.has_key for row in rows if row.group in ("real music, 30 s", "rendered"))
    write(rows, tmp_path / "out")
    assert "| white noise | 21 |" in (tmp_path / "out" / "no_key.md").read_text() and table(rows).count("\n") == len(groups) + 1


def test_noise_model_fit_recovers_the_shipped_constants():
    from mt2.inference.key_decision import NOISE_FLOOR, NOISE_SPREAD

    fit = fit_noise_model(load("mt2"), seed=5)  # another seed than the shipped fit's
    assert fit["floor"] == pytest.approx(NOISE_FLOOR, rel=0.1) and fit["spread"] == pytest.approx(NOISE_SPREAD, rel=0.1)
    medians = [row["median"] for row in fit["lengths"]]
    assert medians[0] > medians[-1]
