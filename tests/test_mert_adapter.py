"""The MERT adapter of ``mt2 bench --encoder`` (issue 17), on a tiny randomly initialised
HuBERT-shaped stand-in saved like a MERT-v1 folder (24 kHz feature extractor)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from mt2.bench.features import Request, load_external, state_hash  # noqa: E402
from mt2.bench.mert import MERTEncoder, load_mert  # noqa: E402


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A 2-layer, width-32 HuBERT with MERT-v1's conv stack (hop 320) and a 24 kHz extractor."""
    folder = tmp_path_factory.mktemp("mert-standin")
    torch.manual_seed(0)
    config = transformers.HubertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[16] * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )
    transformers.HubertModel(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=True).save_pretrained(folder)
    return folder


def reference_states(folder, audio: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Hidden states of the stand-in on the normalised signal, straight from transformers."""
    model = transformers.HubertModel.from_pretrained(folder).eval()
    x = torch.from_numpy(audio)[None].double()
    x = ((x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)).float()
    with torch.inference_mode():
        return model(x, output_hidden_states=True).hidden_states


def test_bench_loads_the_adapter_and_reads_mean_pooled_layers(standin, monkeypatch):
    monkeypatch.setenv("MT2_MERT_PATH", str(standin))
    audio = np.random.default_rng(0).normal(size=24000 * 2).astype(np.float32) * 0.1
    extractor = load_external("mt2.bench.mert:load_mert")
    assert extractor.sample_rate == 24000
    out = extractor.compute(audio, Request("default"), frames=True)
    states = reference_states(standin, audio)
    assert len(states) == 3  # the input of the first layer, then each of the 2 layers
    expected = torch.stack(states).mean(dim=0)[0]
    assert out["frames"].shape == (len(expected), 32) and len(expected) == 24000 * 2 // 320 - 1
    np.testing.assert_allclose(out["frames"], expected.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out["clip"], expected.mean(dim=0).numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.diff(out["timestamps"]), 320 / 24000, rtol=1e-4)
    assert out["timestamps"][0] == pytest.approx(200 / 24000)  # centre of the first 400-sample frame

    monkeypatch.setenv("MT2_MERT_LAYER", "1")
    layer_one = load_external("mt2.bench.mert:load_mert")
    np.testing.assert_allclose(layer_one.compute(audio, Request("default"), False)["clip"], states[1][0].mean(dim=0).numpy(), atol=1e-4, rtol=1e-4)
    assert layer_one.weights_hash != extractor.weights_hash  # one feature cache per layer


def test_long_clips_go_in_windows_and_other_rates_are_resampled(standin):
    encoder = MERTEncoder(standin, layer=2, window_seconds=1.0)
    audio = np.random.default_rng(1).normal(size=int(24000 * 2.5)).astype(np.float32)
    embedding = encoder.embed(audio, 24000)
    assert len(embedding.frames) == 74 + 74 + 37  # three windows: 1 s, 1 s, 0.5 s
    assert np.all(np.diff(embedding.timestamps) > 0) and embedding.timestamps[-1] < 2.5
    np.testing.assert_allclose(embedding.clip, embedding.frames.mean(axis=0), rtol=1e-5)
    first = reference_states(standin, audio[:24000])[2][0].numpy()
    np.testing.assert_allclose(embedding.frames[:74], first, atol=1e-4, rtol=1e-4)
    at_16k = encoder.embed(audio[: 16000 * 1], 16000)  # 1 s at 16 kHz -> 1 s at 24 kHz
    assert len(at_16k.frames) == 74
    with pytest.raises(ValueError, match="mono"):
        encoder.embed(np.zeros((2, 100), np.float32), 24000)


def test_errors_name_the_setting_and_the_fix(standin, tmp_path, monkeypatch):
    monkeypatch.delenv("MT2_MERT_PATH", raising=False)
    with pytest.raises(ValueError, match="MT2_MERT_PATH"):
        load_mert()
    with pytest.raises(ValueError, match=r"'mean' or a hidden state index 0\.\.2"):
        MERTEncoder(standin, layer=3)
    with pytest.raises(FileNotFoundError, match="config.json"):
        MERTEncoder(tmp_path)
    # a MERT-like folder whose model class is code in the folder: refused unless trusted
    remote = tmp_path / "remote"
    remote.mkdir()
    config = json.loads((standin / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "modeling_MERT.MERTModel"}}))
    (remote / "modeling_MERT.py").write_text("")
    with pytest.raises(ValueError, match="modeling_MERT.py.*MT2_MERT_TRUST_REMOTE_CODE=1"):
        MERTEncoder(remote)
    assert state_hash(MERTEncoder(standin, layer=0)) != state_hash(MERTEncoder(standin, layer="mean"))
