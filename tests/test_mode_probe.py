"""The major/minor probe: canonical tokens, the probe layer, fitting and the keep rule."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from mt2.inference import Encoder
from mt2.inference.calibration import Calibration
from mt2.keys import key_name
from mt2.model import build_model
from mt2.training.mode_probe import fit_mode_probe, probe_layer
from tiny_encoder import make_encoder, one_thread

SR = 16000
single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.mark.parametrize("direction", [1, -1])
def test_bin_of_signature_inverts_signature_of_bin(direction):
    for rotation in range(12):
        calibration = Calibration(rotation=rotation, direction=direction)
        bins = calibration.bin_of_signature(np.arange(12))
        assert sorted(bins.tolist()) == list(range(12))
        np.testing.assert_array_equal(calibration.signature_of_bin(bins), np.arange(12))


def test_canonical_token_does_not_change_under_a_roll():
    encoder = make_encoder()
    c = encoder.config.pc_channels
    token = np.random.default_rng(0).standard_normal(encoder.embedding_size).astype(np.float32)
    reference = encoder.canonical_token(token, 5)
    for k in range(1, 12):
        rolled = np.concatenate([np.roll(token[: 12 * c].reshape(12, c), k, axis=0).ravel(), token[12 * c :]])
        np.testing.assert_array_equal(encoder.canonical_token(rolled, (5 + k) % 12), reference)
    assert not np.array_equal(encoder.canonical_token(token, 6), reference)


def test_plain_layout_takes_no_mode_probe():
    model = build_model("mt2-mini", "mt2", layout="plain")
    with pytest.raises(ValueError, match="pitch-class layout"):
        Encoder(model, mode_probe=torch.nn.Linear(model.layout.token_dim, 2))


def test_probe_layer_decides_like_the_logistic_regression():
    rng = np.random.default_rng(1)
    weight, bias, x = rng.standard_normal(8), 0.3, rng.standard_normal((50, 8))
    layer = probe_layer(weight, bias)
    decisions = layer(torch.as_tensor(x, dtype=torch.float32)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(decisions == 1, x @ weight + bias > 0)  # class 1 = minor


def _triads(folder, keys):
    """One 2-s clip per key name: the tonic triad as three sine tones around C4."""
    from mt2.keys import parse_key

    t = np.arange(2 * SR) / SR
    items = []
    for name in keys:
        tonic, mode = parse_key(name)
        notes = [60 + tonic, 60 + tonic + (3 if mode == "minor" else 4), 60 + tonic + 7]
        audio = sum(np.sin(2 * np.pi * 440 * 2 ** ((m - 69) / 12) * t) for m in notes) * 0.2
        path = folder / f"{name.replace(' ', '_')}.wav"
        sf.write(path, audio.astype(np.float32), SR)
        items.append((path, name))
    return items


def test_fit_keeps_the_probe_only_when_it_beats_the_template(tmp_path):
    train = _triads(tmp_path, [key_name(t, m) for t in range(0, 12, 2) for m in ("major", "minor")])
    valid = _triads(tmp_path, [key_name(t, m) for t in range(1, 12, 3) for m in ("major", "minor")])
    encoder = make_encoder()
    report = fit_mode_probe(encoder, train, valid)
    assert (report.train_clips, report.valid_clips) == (12, 8)
    assert 0 <= report.probe_accuracy <= 1 and 0 <= report.template_accuracy <= 1
    assert report.kept == (report.probe_accuracy > report.template_accuracy)
    assert (encoder.mode_probe is not None) == report.kept
    if report.kept:
        assert encoder.key(np.zeros(SR, np.float32) + 0.01, SR).mode_source == "probe"


def test_fit_needs_both_modes_and_a_calibration(tmp_path):
    items = _triads(tmp_path, ["C major", "D major"])
    with pytest.raises(ValueError, match="both major and minor"):
        fit_mode_probe(make_encoder(), items, items)
    encoder = make_encoder()
    encoder.calibration = None
    with pytest.raises(ValueError, match="calibrate_encoder"):
        fit_mode_probe(encoder, items, items)
