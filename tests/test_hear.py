"""mt2.hear: the HEAR 2021 API contract, and the official validator when it is installed."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from mt2 import hear
from mt2.frontend import FRAME_RATE
from mt2.inference import CheckpointError, shipped_models
from tiny_encoder import one_thread, save_encoder

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_encoder(tmp_path_factory.mktemp("hear") / "model")


def test_load_model_exposes_the_hear_attributes(model_dir):
    model = hear.load_model(str(model_dir))
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate == 16000
    assert model.scene_embedding_size == model.timestamp_embedding_size == 256


def test_embeddings_follow_the_contract(model_dir):
    model = hear.load_model(str(model_dir))
    audio = 2 * torch.rand(3, int(5.5 * 16000)) - 1  # longer than one window
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, 256) and scene.dtype == torch.float32
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.dtype == torch.float32 and embeddings.shape[0] == 3 and embeddings.shape[2] == 256
    assert timestamps.shape == embeddings.shape[:2] and timestamps.dtype == torch.float32
    steps = torch.diff(timestamps, dim=1)
    assert torch.allclose(steps, torch.full_like(steps, 4 * 1000 / FRAME_RATE))  # 128 ms: 4 frames a token
    assert 0 < timestamps[0, 0] < 100 and timestamps[0, -1] < 5.5 * 1000 + 128
    np.testing.assert_allclose(scene[1].numpy(), model.embed(audio[1], 16000).clip, atol=1e-6)
    with pytest.raises(ValueError, match="n_sounds"):
        hear.get_scene_embeddings(audio[0], model)


def test_default_model_is_the_shipped_one():
    if "mt2" in shipped_models():
        assert hear.load_model().scene_embedding_size > 0
    else:
        with pytest.raises(CheckpointError, match="shipped model 'mt2'"):
            hear.load_model()


@pytest.mark.filterwarnings("ignore:We suggest a interval")  # 128 ms: the test model has 4 frames a token
def test_official_validator_passes(model_dir, monkeypatch):
    """hearvalidator imports tensorflow only to recognise TF models: a stub stands in for it."""
    fake_tf = types.ModuleType("tensorflow")
    fake_tf.Module = type("Module", (), {})
    monkeypatch.setitem(sys.modules, "tensorflow", fake_tf)
    validate = pytest.importorskip("hearvalidator.validate", reason="hearvalidator is not installed (pip install --no-deps hearvalidator)")
    validate.ValidateModel("mt2.hear", str(model_dir), device="cpu")()
