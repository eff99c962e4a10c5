"""The no-key rule (mt2.inference.key_decision): tonal contrast against a naive reference, and the
decision on noise of every colour, level and length, on silence, and on music with drums and noise."""
import numpy as np
import pytest

from mt2.inference import load, shipped_models
from mt2.study.no_key import at_level, coloured_noise
from mt2.inference.key_decision import (
    CONTRAST_WIDTH, LOG_FLOOR, MIN_TONALITY, NOISE_FLOOR, noise_contrast, tonal_contrast, tonality, window_tonality,
)

SR = 16_000
needs_weights = pytest.mark.skipif("mt2" not in shipped_models(), reason="the shipped weights are not in this installation")


def naive_contrast(spectrum: np.ndarray) -> float:
    """tonal_contrast written out bin by bin."""
    log = [np.log(s / np.mean(spectrum) + LOG_FLOOR) for s in spectrum]
    half, n = CONTRAST_WIDTH // 2, len(log)
    residuals = []
    for b in range(n):
        neighbours = []
        for j in range(b - half, b + half + 1):
            j = -j if j < 0 else (2 * (n - 1) - j if j >= n else j)  # reflected edges
            neighbours.append(log[j])
        residuals.append(log[b] - np.mean(neighbours))
    return float(np.sqrt(np.mean(np.square(residuals))))


def test_tonal_contrast_agrees_with_a_naive_loop():
    rng = np.random.default_rng(0)
    spectra = rng.gamma(2.0, size=(5, 84))
    spectra[1, ::12] += 5  # peaks an octave apart
    assert np.allclose(tonal_contrast(spectra), [naive_contrast(s) for s in spectra], atol=1e-12)
    assert tonal_contrast(np.zeros(84)) == 0.0


def test_tonality_ignores_gain_and_reads_peaks():
    rng = np.random.default_rng(1)
    smooth = np.exp(-np.arange(84) / 40) * (1 + 0.02 * rng.standard_normal((3, 84)))
    lengths = np.array([4.0, 4.0, 2.0])
    assert tonality(smooth, lengths) == pytest.approx(tonality(7.5 * smooth, lengths))
    peaked = smooth.copy()
    peaked[:, [10, 14, 17, 22, 26, 29]] *= 3  # a chord's partials
    assert tonality(peaked, lengths) > 3 * tonality(smooth, lengths)
    assert window_tonality(peaked[:1], lengths[:1])[0] == pytest.approx(tonality(peaked[:1], lengths[:1]))


def test_noise_contrast_falls_with_averaging_to_a_floor():
    frames = np.array([15, 125, 1000, 10**6])
    floor = noise_contrast(frames)
    assert np.all(np.diff(floor) < 0) and floor[-1] == pytest.approx(NOISE_FLOOR, abs=1e-4)


def _noise(kind: str, db: float, seconds: float, seed: int) -> np.ndarray:
    return at_level(coloured_noise(kind, int(seconds * SR), np.random.default_rng(seed)), db)


def _music_with_drums(seconds: float, seed: int) -> np.ndarray:
    """I-IV-V-I in D major as harmonic tones (4 partials, decaying), with a kick on every beat
    and a hi-hat (noise bursts) on every half beat, at 120 beats per minute."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    audio = np.zeros_like(t)
    chords = [[50, 54, 57, 62], [55, 59, 62, 67], [57, 61, 64, 69], [50, 54, 57, 62]]
    bar = 2.0
    for start in np.arange(0, seconds, bar):
        span = (t >= start) & (t < start + bar)
        local = t[span] - start
        for midi in chords[int(start / bar) % 4]:
            f0 = 440 * 2 ** ((midi - 69) / 12)
            audio[span] += sum(np.sin(2 * np.pi * h * f0 * local) / h for h in range(1, 5)) * np.exp(-local / 1.5)
    for beat in np.arange(0, seconds, 0.5):
        i = int(beat * SR)
        n = min(int(0.15 * SR), len(t) - i)
        local = np.arange(n) / SR
        audio[i : i + n] += 3 * np.sin(2 * np.pi * (50 + 100 * np.exp(-local / 0.03)) * local) * np.exp(-local / 0.08)
        j = int((beat + 0.25) * SR)
        m = max(0, min(int(0.05 * SR), len(t) - j))
        audio[j : j + m] += 0.8 * rng.standard_normal(m) * np.exp(-np.arange(m) / SR / 0.01)
    return (0.1 * audio / np.sqrt(np.mean(audio**2))).astype(np.float32)


@needs_weights
@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
def test_noise_of_every_level_and_length_has_no_key(kind):
    encoder = load("mt2")
    for db in (-55, -40, -20, -6):
        for seconds in (2.0, 4.0, 10.0):
            estimate = encoder.key(_noise(kind, db, seconds, seed=int(-db * seconds)), SR)
            assert not estimate.has_key and estimate.tonality < MIN_TONALITY, (kind, db, seconds, estimate.tonality)


@needs_weights
@pytest.mark.parametrize("snr_db", [None, 10, 0])
def test_music_with_drums_and_noise_gets_a_key(snr_db):
    encoder = load("mt2")
    music = _music_with_drums(16.0, seed=3)
    if snr_db is not None:
        rms = np.sqrt(np.mean(music**2))
        for seed, kind in enumerate(("white", "pink", "brown")):
            noisy = music + _noise(kind, 20 * np.log10(rms) - snr_db, 16.0, seed)
            estimate = encoder.key(noisy, SR)
            assert estimate.has_key, (kind, snr_db, estimate.tonality)
    else:
        assert encoder.key(music, SR).has_key
