import numpy as np
import pytest
import torch

from mt2.frontend import DEFAULT_OFFSET, MIDI_OF_BIN0, SAMPLE_RATE, WINDOW_BINS, CQTFrontend, compress, crop, model_window


def tone(midi: float, seconds: float = 2.0, harmonics: int = 1) -> torch.Tensor:
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    return sum(torch.sin(2 * np.pi * h * f0 * t) / h for h in range(1, harmonics + 1)).float()


class Spectrum:
    """All 99 bins compressed (sqrt) and normalised, as the model window is: what these tests inspect."""

    def __init__(self) -> None:
        self.frontend = CQTFrontend()

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        return compress(self.frontend.magnitude(audio), "sqrt")


@pytest.fixture(scope="module")
def frontend():
    return Spectrum()


@pytest.mark.parametrize("midi", [33, 45, 57, 60, 69, 81, 96])
def test_sine_peaks_at_its_bin(frontend, midi):
    cqt = frontend(tone(midi))[0]
    assert int(cqt[:, 5:-5].mean(dim=1).argmax()) == midi - MIDI_OF_BIN0


@pytest.mark.parametrize("k", [1, 3, 5])
def test_crop_shift_equals_transposition_down(frontend, k):
    """Cropping at o + k shows the tone k semitones lower: same as rendering it k lower at o."""
    offset = 4
    high = crop(frontend(tone(62, harmonics=4)), offset + k)
    low = crop(frontend(tone(62 - k, harmonics=4)), offset)
    profile_high, profile_low = high.mean(dim=2)[0], low.mean(dim=2)[0]
    assert int(profile_high.argmax()) == int(profile_low.argmax())
    cos = torch.nn.functional.cosine_similarity(profile_high, profile_low, dim=0)
    assert cos > 0.98


def test_batch_and_single_agree(frontend):
    batch = torch.stack([tone(60), tone(67)])
    together = frontend(batch)
    alone = torch.cat([frontend(batch[0]), frontend(batch[1])])
    torch.testing.assert_close(together, alone, rtol=1e-3, atol=1e-2)  # values have mean 1


def test_silence_is_zero_and_finite(frontend):
    out = frontend(torch.zeros(SAMPLE_RATE))
    assert torch.isfinite(out).all() and (out == 0).all()


def test_gain_is_normalised_away(frontend):
    x = tone(64, harmonics=3)
    torch.testing.assert_close(frontend(x), frontend(0.1 * x), rtol=1e-3, atol=1e-2)  # values have mean 1


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="compression"):
        CQTFrontend(compression="cube")
    with pytest.raises(ValueError, match=r"offset=16 must lie in \[0, 15\]"):
        CQTFrontend(offset=16).window(torch.zeros(1, 99, 10))
    frontend = Spectrum()
    with pytest.raises(ValueError, match="NaN"):
        frontend(torch.full((1000,), float("nan")))
    with pytest.raises(ValueError, match="shape"):
        frontend(torch.zeros(1, 1, 100))
    with pytest.raises(ValueError, match="offset"):
        crop(torch.zeros(1, 99, 10), 16)


def test_per_example_crop_matches_single_crop():
    cqt = torch.randn(3, 99, 7)
    offsets = torch.tensor([0, 5, 15])
    out = crop(cqt, offsets)
    for i, o in enumerate(offsets.tolist()):
        torch.testing.assert_close(out[i], crop(cqt[i : i + 1], o)[0])


def test_window_is_model_window_at_the_frontends_offset_and_compression():
    """The frontend's window is the one definition of the model input: model_window of the first
    ``frames`` frames at its offset, with its compression; gain does not matter."""
    frontend = CQTFrontend(compression="log", offset=3)
    magnitude = frontend.magnitude(torch.stack([tone(60, harmonics=3), 0.1 * tone(67)]))
    window = frontend.window(magnitude, 40)
    assert window.shape == (2, WINDOW_BINS, 40)
    torch.testing.assert_close(window, model_window(magnitude[..., :40], 3, "log"))
    assert not torch.allclose(window, CQTFrontend().window(magnitude, 40))  # offset 7, sqrt
    torch.testing.assert_close(window.mean(dim=(1, 2)), torch.ones(2))
    assert CQTFrontend().offset == DEFAULT_OFFSET and frontend.window(magnitude).shape[-1] == magnitude.shape[-1]


def test_one_window_length_for_the_model_the_views_and_the_measures():
    """126 frames of 512 samples at 16 kHz, defined once in mt2.frontend and read by the model's
    positions, the training views and the GPU check (no copied literals)."""
    from mt2.data.views import ViewConfig
    from mt2.frontend import HOP_LENGTH, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_SECONDS
    from mt2.model import ModelConfig
    from mt2.perf import gpu

    assert (WINDOW_FRAMES, WINDOW_SECONDS) == (126, 126 * HOP_LENGTH / SAMPLE_RATE)
    assert ModelConfig().max_tokens == ViewConfig().segment_frames == WINDOW_FRAMES
    assert gpu.WINDOW_SECONDS is WINDOW_SECONDS
