"""Key inference (issue 30, issue 29 item 3): the transposition-averaged key path, its range,
and the one key decision that ``mt2 key``, the timeline and the study read."""
import numpy as np
import pytest
import torch

from mt2.frontend import MAX_OFFSET, N_BINS
from mt2.inference.key_path import check_shifts
from tiny_encoder import chord, make_encoder, one_thread

SR = 16000
_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


def banded_magnitude(frontend, low: int = 30, high: int = 60):
    """A stand-in for ``frontend.magnitude``: CQT magnitudes that are exactly zero outside bins
    ``low..high`` of the 99 (seeded random content inside), so that every crop of the 84-bin
    window between offsets ``high - 83`` and ``low`` holds all of it: cutting ``k`` bins higher
    is then an exact circular roll of the window by ``-k`` bins."""

    def magnitude(audio: torch.Tensor) -> torch.Tensor:
        audio = audio.unsqueeze(0) if audio.dim() == 1 else audio
        frames = 1 + audio.shape[-1] // frontend.hop_length
        generator = torch.Generator().manual_seed(int(audio.shape[-1]))
        out = torch.zeros(audio.shape[0], N_BINS, frames)
        out[:, low : high + 1] = torch.rand(audio.shape[0], high + 1 - low, frames, generator=generator) ** 4
        return out * (audio.abs().amax(dim=-1) > 0)[:, None, None]

    return magnitude


@pytest.mark.parametrize("shifts", [(0,), (-2, -1, 0, 1, 2), (-3, 0, 2)])
@pytest.mark.parametrize("k", [1, -1, 3])
def test_averaged_profile_of_a_window_cut_k_bins_higher_is_its_roll(shifts, k, monkeypatch):
    """Within the range (content inside every crop used), the group-averaged profile of each
    window cut ``k`` bins higher is the unshifted one rolled by ``-k``, and so is the averaged
    equivariant token's pitch-class axis."""
    encoder = make_encoder(mode_probe=True)
    monkeypatch.setattr(encoder.frontend, "magnitude", banded_magnitude(encoder.frontend))
    encoder.shifts = shifts
    audio = chord(9.0)
    reference = encoder.window_profiles(audio, SR)
    cut = encoder.window_profiles(audio, SR, shift=k)
    assert reference.shape == (3, 12)
    np.testing.assert_allclose(cut, np.roll(reference, -k, axis=1), atol=2e-6)
    assert not np.allclose(cut, reference, atol=1e-3)  # the roll is not trivial


def test_averaged_key_outputs_are_the_mean_of_the_rolled_back_cuts():
    """``Embedding.key_probabilities`` and ``key_tokens`` with shifts S are ``mean_s roll(x_s, s)``
    of the single-cut outputs, and the readouts are those of the unshifted windows."""
    encoder = make_encoder()
    encoder.shifts = (0,)
    audio = chord(6.0)
    single = {s: encoder.window_profiles(audio, SR, shift=s) for s in (-1, 0, 2)}
    emb = encoder.embed(audio, SR, shifts=(-1, 0, 2))
    expected = np.mean([np.roll(single[s], s, axis=1) for s in (-1, 0, 2)], axis=0)
    np.testing.assert_allclose(emb.key_probabilities, expected, atol=2e-6)
    plain = encoder.embed(audio, SR)
    np.testing.assert_allclose(emb.clip, plain.clip, atol=1e-6)
    assert emb.shifts == (-1, 0, 2) and plain.shifts == (0,)


def test_shifts_are_checked_against_the_range():
    """A cut must stay inside the 99 CQT bins: offset 7 of 0..15 allows shifts -7..8; 0 is required."""
    assert check_shifts([2, 0, -2, 0], 7) == (-2, 0, 2)
    assert check_shifts(range(-7, 9), 7) == tuple(range(-7, MAX_OFFSET - 7 + 1))
    with pytest.raises(ValueError, match=r"shifts \[9\] fall outside the range.*\[-7, 8\]"):
        check_shifts((0, 9), 7)
    with pytest.raises(ValueError, match="must include 0"):
        check_shifts((-1, 1), 7)
    encoder = make_encoder()
    with pytest.raises(ValueError, match="outside the range"):
        encoder.shifts = (-8, 0)
    encoder.shifts = (-2, 0, 2)
    with pytest.raises(ValueError, match="outside the range"):  # a measure's cut plus the shifts
        encoder.window_profiles(chord(2.0), SR, shift=7)


def test_key_of_an_embedding_needs_the_key_paths_shifts():
    encoder = make_encoder()
    encoder.min_tonality = 0.0
    encoder.shifts, encoder.passes = (-1, 0, 1), 1
    audio = chord(5.0)
    with pytest.raises(ValueError, match=r"call encoder.key\(audio, sr\)"):
        encoder.key_of(encoder.embed(audio, SR))
    from_embedding = encoder.key_of(encoder.embed(audio, SR, shifts=encoder.shifts))
    np.testing.assert_allclose(from_embedding.profile, encoder.key(audio, SR).profile, atol=1e-6)


def test_mt2_key_and_the_timeline_read_one_decision():
    """On a clip in one key, the timeline without a switch keeps the key that ``mt2 key`` pools from
    the same windows (the one decision: per-window key probabilities, coverage weights)."""
    from mt2.inference import key_decision
    from mt2.inference.timeline import DEFAULT_PASSES

    encoder = make_encoder(mode_probe=True)
    encoder.min_tonality = 0.0  # random weights on a chord: name a key anyway
    audio = chord(13.0) + 0.05 * np.random.default_rng(1).standard_normal(13 * SR).astype(np.float32)
    encoder.passes = DEFAULT_PASSES
    timeline = encoder.key_timeline(audio, SR, switch_penalty=1e9)
    assert len(timeline.segments) == 1
    estimate = encoder.key(audio, SR)
    assert timeline.segments[0].key == estimate.key
    # and the evidence is the function the clip decision pools
    stats = encoder.key_statistics(audio, SR)
    windows = key_decision.key_probabilities(
        encoder.calibration.signature_probabilities(stats.window_probabilities),
        key_decision.mode_given_signature(stats.window_chroma, encoder.signature_probe(stats.window_tokens)))
    assert key_decision.KEYS[int(np.argmax(key_decision.pooled_key(windows, stats.window_weights)))] == estimate.key


def test_evidence_windows_and_coverage_weights():
    """Padded windows are left out when full ones exist; every instant weighs the same in total."""
    from mt2.inference.key_decision import coverage_weights, evidence_windows

    assert evidence_windows(np.array([4.0, 4.0, 1.5])).tolist() == [True, True, False]
    assert evidence_windows(np.array([2.5])).tolist() == [True]
    starts = np.arange(8) * 1.0  # 4 passes of 4-s windows, hop 1 s
    weights = coverage_weights(starts, np.full(8, 4.0), passes=4)
    assert weights.sum() * 4.0 / 4 == pytest.approx(11.0)  # the 11 s covered, passes / L per second
    assert weights[3] == pytest.approx(1.0) and weights[0] > weights[3]  # the first second has one window
    np.testing.assert_allclose(coverage_weights(np.array([0.0, 4.0]), np.array([4.0, 2.0])), [1.0, 0.5])


def test_default_shifts_are_cut_at_the_range_edges_on_purpose():
    from mt2.inference.key_path import DEFAULT_SHIFTS, default_shifts

    assert default_shifts(7) == DEFAULT_SHIFTS == (-2, -1, 0, 1, 2)
    assert default_shifts(0) == (0, 1, 2) and default_shifts(MAX_OFFSET) == (-2, -1, 0)
    model = make_encoder().model
    from mt2.inference import Encoder

    assert Encoder(model, offset=0).shifts == (0, 1, 2)
