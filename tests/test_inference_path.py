"""The one inference path (issue 24): shipped outputs pinned, the study's and calibration's input
equal to the Encoder's, key outputs computed only when asked for, the no-key rule in one place."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

import mt2
from mt2.frontend import SAMPLE_RATE
from mt2.inference import key_decision
from mt2.inference.checkpoint import resolve, shipped_models

REFERENCE = Path(__file__).parent / "data" / "shipped_reference.npz"
#: The shipped models of the ``mt2-mini`` shape, pinned by the reference.
MINI_MODELS = ("mt2", "equivariant", "contrastive", "masked")


def fixed_clip() -> tuple[np.ndarray, int]:
    """9.5 s of an A major triad with a little noise at 22.05 kHz (three windows, the last padded)."""
    sr = 22050
    t = np.arange(int(9.5 * sr)) / sr
    clip = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)) * 0.2
    clip = clip + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    return clip.astype(np.float32), sr


@pytest.mark.parametrize("name", MINI_MODELS)
def test_shipped_weights_give_the_reference_outputs(name):
    """Outputs recorded from the shipped weights (tests/data/shipped_reference.npz, written by
    scripts/record_shipped_reference.py with each weights file's SHA-256): every change to the
    path or the model must keep them within 1e-6 (relative above 1: float32 keeps about 7
    digits, and another thread count or BLAS build moves the last one of values near 10)."""
    if name not in shipped_models():
        pytest.skip(f"{name} is not shipped in this installation")
    reference = np.load(REFERENCE)
    digest = hashlib.sha256((resolve(name) / "model.safetensors").read_bytes()).hexdigest()
    assert str(reference[f"{name}/sha256"]) == digest, (
        f"the shipped {name} weights are not the ones the reference was recorded from: after a training round, "
        "re-record with `python scripts/record_shipped_reference.py`")
    encoder = mt2.load(name)
    clip, sr = fixed_clip()
    emb = encoder.embed(clip, sr, layers=[0])
    np.testing.assert_allclose(emb.class_tokens_at(-1), reference[f"{name}/class_tokens"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(emb.class_tokens_at(0), reference[f"{name}/class_tokens_0"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(emb.frames.mean(axis=0), reference[f"{name}/frames_mean"], rtol=1e-6, atol=1e-6)
    if f"{name}/profile" in reference:
        np.testing.assert_allclose(emb.key_probabilities, reference[f"{name}/key_probabilities"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(encoder.key(clip, sr).profile, reference[f"{name}/profile"], rtol=1e-6, atol=1e-6)
        assert encoder.key(clip, sr).key == str(reference[f"{name}/key"])


def recorded_inputs(model, call) -> list[torch.Tensor]:
    """The windows ``call()`` feeds ``model`` (every forward_intermediates input)."""
    seen, original = [], model.forward_intermediates

    def record(x, *args, **kwargs):
        seen.append(x.detach().clone())
        return original(x, *args, **kwargs)

    model.forward_intermediates = record
    try:
        call()
    finally:
        del model.forward_intermediates
    return seen


def test_study_inputs_are_the_encoders():
    """The study's calibration votes and its metrics read the arrays ``mt2 key`` feeds the model:
    its key path (every window cut at each of ``encoder.shifts``, overlapping windows) for the
    calibration, and with one cut and one pass, the embedding's windows for the metrics."""
    from mt2.evaluation.model_metrics import clip_input
    from mt2.training.calibrate import encoder_bin_predictor

    encoder = mt2.load("mt2")
    clip, sr = fixed_clip()
    audio = mt2.inference.to_model_rate(clip, sr)
    predict = encoder_bin_predictor(encoder)
    study = recorded_inputs(encoder.model, lambda: predict(audio))
    served = recorded_inputs(encoder.model, lambda: encoder.key(audio, SAMPLE_RATE))
    assert len(study) == len(served) == 1 and torch.equal(study[0], served[0])
    assert len(served[0]) == len(encoder.shifts) * len(encoder.key_embedding(audio, SAMPLE_RATE).window_starts)
    encoder.shifts, encoder.passes = (0,), 1
    study = recorded_inputs(encoder.model, lambda: predict(audio))
    served = recorded_inputs(encoder.model, lambda: encoder.key(audio, SAMPLE_RATE))
    assert len(study) == len(served) == 1
    assert torch.equal(study[0], served[0])
    assert torch.equal(study[0], encoder.model_inputs(audio, SAMPLE_RATE))
    assert torch.equal(clip_input(encoder, audio)[0], served[0])
    assert predict(audio) == int(np.argmax(encoder.bin_probabilities(audio, SAMPLE_RATE)))


def test_study_shifted_input_is_a_higher_cut():
    """The equivariance metric's window cut k bins higher equals an encoder whose offset is k higher."""
    from mt2.evaluation.model_metrics import clip_input

    encoder = mt2.load("mt2")
    audio = mt2.inference.to_model_rate(*fixed_clip())
    for k in (-encoder.offset, 5):
        higher = mt2.Encoder(encoder.model, compression=encoder.compression, offset=encoder.offset + k)
        assert torch.equal(clip_input(encoder, audio, shift=k)[0], higher.model_inputs(audio, SAMPLE_RATE))
    with pytest.raises(ValueError, match="offset"):
        clip_input(encoder, audio, shift=16 - encoder.offset)


def test_embed_computes_key_outputs_only_when_asked(monkeypatch):
    encoder = mt2.load("mt2")
    clip, sr = fixed_clip()
    calls = []
    original = encoder.model.equivariant_head.forward
    monkeypatch.setattr(encoder.model.equivariant_head, "forward", lambda x: calls.append(len(x)) or original(x))
    emb = encoder.embed(clip, sr)
    assert calls == []  # embedding alone runs no key head
    encoder.shifts, encoder.passes = (0,), 1  # the key path of the embedding's own windows
    assert encoder.key_of(emb).key == encoder.key(clip, sr).key
    assert calls and calls[0] == len(emb.window_starts)  # one call over the held tokens of every window


def test_no_key_rule_is_one_replaceable_function(monkeypatch):
    encoder = mt2.load("mt2")
    clip, sr = fixed_clip()
    assert encoder.key(clip, sr).has_key
    monkeypatch.setattr(key_decision, "is_keyless", lambda stats, silence_db, min_tonality: True)
    estimate = encoder.key(clip, sr)
    assert not estimate.has_key and estimate.label == "X"


def test_the_package_names_its_public_api_from_their_homes():
    import mt2.inference as inference

    missing = [name for name in inference.__all__ if not hasattr(inference, name)]
    assert not missing, missing
    assert inference.MIN_TONALITY is key_decision.MIN_TONALITY and inference.tonality is key_decision.tonality


def test_readout_and_layer_checked_once_with_one_message():
    encoder = mt2.load("contrastive")
    with pytest.raises(ValueError, match="readouts are contrastive, average, frames"):
        encoder.embed(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE, readout="equivariant")
    emb = encoder.embed(fixed_clip()[0], fixed_clip()[1])
    with pytest.raises(ValueError, match="readouts are contrastive, average, frames"):
        emb.readout("equivariant")
    for call in (lambda: encoder.embed(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE, layer=9), lambda: emb.readout(layer=9)):
        with pytest.raises(ValueError, match=r"layer 9 is out of range for a model with 4 blocks \(use -4..3\)"):
            call()
