"""The benchmark's log-mel spectrogram and MFCCs are librosa's: they equal the former own
implementation (kept here as the reference) within the stated tolerances, so the DSP
baselines' numbers do not move. Tolerances: 1e-9 absolute on the natural-log mel energies
(float64 STFTs of the same frames), float32 rounding (relative 1e-6) on the MFCC statistics,
which are stored as float32."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.fft import dct

from mt2.bench import baselines
from mt2.bench.baselines import MEL_BANDS, MEL_RANGE, N_FFT, N_MFCC, SAMPLE_RATE, STFT_HOP

TOLERANCE = 1e-9


def own_mel_filterbank() -> np.ndarray:
    """``(MEL_BANDS, N_FFT // 2 + 1)`` triangular filters equally spaced on the HTK mel scale, peak 1."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(MEL_RANGE[0]), mel(MEL_RANGE[1]), MEL_BANDS + 2))
    bins = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0.0, np.minimum((bins - lower) / (centre - lower), (upper - bins) / (upper - centre)))


def own_log_mel(audio: np.ndarray) -> np.ndarray:
    padded = np.pad(np.asarray(audio, np.float32), N_FFT // 2, mode="reflect" if len(audio) > N_FFT // 2 else "constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::STFT_HOP] * np.hanning(N_FFT)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    return np.log(power @ own_mel_filterbank().T + 1e-10)


def own_mfcc_statistics(mel: np.ndarray) -> np.ndarray:
    mfcc = dct(mel, type=2, norm="ortho", axis=1)[:, :N_MFCC]
    delta = np.diff(mfcc, axis=0) if len(mfcc) > 1 else np.zeros_like(mfcc)
    return np.concatenate([mfcc.mean(0), mfcc.std(0), delta.mean(0), delta.std(0)]).astype(np.float32)


def test_librosa_filterbank_is_the_htk_triangles():
    import librosa

    ours = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=MEL_BANDS, fmin=MEL_RANGE[0], fmax=MEL_RANGE[1],
                               htk=True, norm=None, dtype=np.float64)
    np.testing.assert_allclose(ours, own_mel_filterbank(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("samples", [300, 512, 513, 1024, 3 * SAMPLE_RATE + 7])
def test_log_mel_and_mfcc_equal_the_own_implementation(samples):
    rng = np.random.default_rng(samples)
    t = np.arange(samples) / SAMPLE_RATE
    audio = (0.1 * rng.standard_normal(samples) + 0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    mel = baselines.log_mel(audio)
    reference = own_log_mel(audio)
    assert mel.shape == reference.shape == (1 + samples // STFT_HOP, MEL_BANDS)
    np.testing.assert_allclose(mel, reference, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(baselines.mfcc_statistics(mel), own_mfcc_statistics(reference), rtol=1e-6, atol=1e-6)
