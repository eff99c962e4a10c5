"""The ``fast`` CQT backend computes nnAudio's CQT2010v2 (issue "Performance")."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mt2.fast_cqt import FastCQT2010v2, fft_decimate
from mt2.frontend import WINDOW_SECONDS, CQTFrontend
from mt2.perf.cqt_check import TOLERANCE_MAX_ABS, TOLERANCE_MEAN_ABS, compare_backends
from mt2.perf.signals import harmonic_tone


@pytest.mark.parametrize("midi", [60, 96, [48, 64, 67, 72]], ids=["tone C4", "tone C7", "chord C3 E4 G4 C5"])
def test_model_windows_agree_within_tolerance(midi):
    """What the model sees (84 bins, sqrt, normalised to mean 1) is within the stated tolerance of
    nnAudio, and no farther from the exact (float64) transform than nnAudio's float32 output."""
    (row,) = compare_backends({"signal": harmonic_tone(midi, 2 * WINDOW_SECONDS)})
    assert row["max_abs"] <= TOLERANCE_MAX_ABS and row["mean_abs"] <= TOLERANCE_MEAN_ABS, row
    assert row["fast_vs_exact"] <= row["nnaudio_vs_exact"], row
    assert row["within_tolerance"]


def test_half_silent_window_stays_exact():
    """The zero-padded last window of a file: FFT rounding must not lift the silent half."""
    audio = np.zeros(int(WINDOW_SECONDS * 16_000), np.float32)
    audio[:16_000] = harmonic_tone([48, 64, 67, 72], 1.0)
    (row,) = compare_backends({"signal": audio})
    assert row["fast_vs_exact"] < 1e-4 and row["within_tolerance"], row


@pytest.mark.filterwarnings("ignore::UserWarning:nnAudio.utils")  # reflect padding of short octaves
@pytest.mark.parametrize("samples", [64_512, 12_345, 1_000], ids=["window", "odd length", "too short to reflect"])
@pytest.mark.parametrize("n_bins", [99, 60], ids=["99 bins", "60 bins (early downsampling)"])
def test_raw_magnitudes_agree_to_float32_rounding(samples, n_bins):
    """Same shapes, and values equal up to float32 rounding (relative to the largest magnitude)."""
    nnaudio, fast = CQTFrontend(n_bins=n_bins, backend="nnaudio"), CQTFrontend(n_bins=n_bins, backend="fast")
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal((2, samples)).astype(np.float32))
    expected, got = nnaudio.magnitude(audio), fast.magnitude(audio)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max() / expected.max()) < 1e-5


def test_fft_decimate_equals_strided_convolution():
    x = torch.randn(3, 1001, dtype=torch.float64)
    taps = torch.randn(256, dtype=torch.float64)
    for factor in (2, 4):
        expected = torch.nn.functional.conv1d(x[:, None], taps[None, None], stride=factor, padding=127)[:, 0]
        torch.testing.assert_close(fft_decimate(x, taps, factor), expected)


def test_backend_is_an_option_and_fast_the_default():
    assert CQTFrontend().backend == "fast" and isinstance(CQTFrontend().cqt, FastCQT2010v2)
    assert not isinstance(CQTFrontend(backend="nnaudio").cqt, FastCQT2010v2)
    with pytest.raises(ValueError, match="backend"):
        CQTFrontend(backend="librosa")
    with pytest.raises(ValueError, match="too few"):
        CQTFrontend(backend="fast").magnitude(torch.zeros(1, 100))


def test_cached_filter_spectra_change_nothing_and_stay_bounded():
    """The decimation filters' spectra are cached per FFT size: outputs are bit-identical to a
    fresh transform, and the cache keeps at most CACHED_SPECTRA entries over many lengths."""
    frontend = CQTFrontend(backend="fast")
    fast = next(m for m in frontend.modules() if isinstance(m, FastCQT2010v2))
    rng = np.random.default_rng(0)
    for samples in range(16000, 16000 + 40 * 997, 997):  # many FFT sizes
        x = torch.from_numpy(rng.standard_normal(samples).astype(np.float32))
        first, cached = frontend.magnitude(x), frontend.magnitude(x)
        assert torch.equal(first, cached)
    assert len(fast._spectra) == FastCQT2010v2.CACHED_SPECTRA
    fast._spectra.clear()
    assert torch.equal(cached, frontend.magnitude(x))
    taps = fast.lowpass.double()
    x = torch.from_numpy(rng.standard_normal((2, 5000)))
    assert torch.equal(fft_decimate(x, taps, 2, fast._spectrum_of("lowpass")), fft_decimate(x, taps, 2))
