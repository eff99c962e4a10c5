"""mt2.inference: save/load, pickle refusal, embed, embed_file, key, calibration."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from safetensors import safe_open

import mt2
from mt2.audio import load_audio
from mt2.frontend import FRAME_RATE, HOP_LENGTH
from mt2.inference import key_decision
from mt2.inference.calibration import Calibration
from mt2.inference import (
    READOUTS,
    SHIPPED_MODELS,
    CheckpointError,
    Encoder,
    load,
    shipped_models,
)
from mt2.inference.windows import cut_windows
from tiny_encoder import chord, make_encoder, one_thread

SR = 16000
single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return make_encoder(mode_probe=False)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    """2.5 windows of noise at 16 kHz (3 windows, the last one half padded)."""
    return (0.3 * np.random.default_rng(0).standard_normal(int(2.5 * 124 * HOP_LENGTH))).astype(np.float32)


def _assert_same_embedding(a, b, atol=1e-5):
    for name, value in a.arrays().items():
        np.testing.assert_allclose(value, b.arrays()[name], atol=atol, err_msg=name)


# -- persistence ---------------------------------------------------------------------------
def test_save_load_round_trip_gives_identical_outputs(tmp_path, noise):
    original = make_encoder(mode_probe=True)
    original.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["format"] == 1 and config["mt2_version"] == mt2.__version__
    assert config["model"] == original.config.to_dict() | {"roles": list(original.config.roles)}
    assert config["frontend"] == {"compression": "sqrt", "offset": 7}
    assert config["calibration"]["rotation"] == 0 and config["mode_probe"] is not None
    assert config["training"] == {"note": "random weights, for tests"}
    with safe_open(tmp_path / "model" / "model.safetensors", "pt") as handle:
        assert {"mode_probe.weight", "mode_probe.bias"} <= set(handle.keys())

    loaded = load(tmp_path / "model")
    original.min_tonality = loaded.min_tonality = 0.0  # noise input: name a key anyway
    _assert_same_embedding(original.embed(noise, SR), loaded.embed(noise, SR), atol=0)
    assert original.key(noise, SR).to_dict() == loaded.key(noise, SR).to_dict()
    assert loaded.key(noise, SR).mode_source == "probe x template"
    assert loaded.calibration == original.calibration and loaded.training_info == original.training_info


def test_pickled_checkpoints_are_refused_without_unpickling(tmp_path, monkeypatch):
    checkpoint = tmp_path / "ckpt" / "last.ckpt"
    checkpoint.parent.mkdir()
    torch.save(make_encoder().model.state_dict(), checkpoint)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must never be called"))
    for target in (checkpoint, checkpoint.parent):
        with pytest.raises(CheckpointError, match=r"refusing .*pickle.*mt2 export .*last\.ckpt OUT"):
            load(target)
    with pytest.raises(CheckpointError, match="mt2 export"):
        Encoder.from_pretrained(checkpoint.parent)


def test_missing_models_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a shipped model name"):
        load("no-such-model")
    with pytest.raises(CheckpointError, match="not an mt2 model folder"):
        load(tmp_path)
    absent = [name for name in SHIPPED_MODELS if name not in shipped_models()]
    if absent:
        with pytest.raises(CheckpointError, match=rf"shipped model '{absent[0]}' is not in this installation \(shipped models: "):
            load(absent[0])


# -- embed -----------------------------------------------------------------------------------
@pytest.mark.parametrize("readout", READOUTS)
def test_embed_shapes_for_every_readout(encoder, noise, readout):
    emb = encoder.embed(noise, SR, readout=readout)
    d, per_token = encoder.embedding_size, encoder.config.frames_per_token
    if readout == "concat":  # the class tokens side by side: 2 D values; the mean of each half is each token's clip
        assert emb.clip.shape == (2 * d,) and emb.windows.shape == (3, 2 * d)
        np.testing.assert_array_equal(emb.windows, emb.class_tokens.reshape(3, 2 * d))
        for role in encoder.config.roles:
            half = slice(d * encoder.model.role_index(role), d * (encoder.model.role_index(role) + 1))
            np.testing.assert_allclose(emb.clip[half], emb.readout(role).clip, atol=1e-6)
        return
    valid_frames = int(np.ceil(len(noise) / HOP_LENGTH))
    tokens = 2 * 124 // per_token + int(np.ceil((valid_frames - 2 * 124) / per_token))
    assert emb.clip.shape == (d,) and emb.windows.shape == (3, d) and emb.class_tokens.shape == (3, 2, d)
    assert emb.frames.shape == (tokens, d) and emb.timestamps.shape == (tokens,)
    assert np.all(np.diff(emb.timestamps) == pytest.approx(per_token / FRAME_RATE))
    np.testing.assert_allclose(emb.window_starts, [0, 3.968, 7.936], atol=1e-9)
    weights = emb.window_lengths / emb.window_lengths.sum()
    np.testing.assert_allclose(emb.clip, weights @ emb.windows, atol=1e-5)
    if readout == "average":
        np.testing.assert_allclose(emb.windows, emb.class_tokens.mean(axis=1), atol=1e-6)
    elif readout == "frames":
        np.testing.assert_allclose(emb.windows[0], emb.frames[: 124 // per_token].mean(axis=0), atol=1e-5)
    else:
        np.testing.assert_array_equal(emb.windows, emb.class_tokens[:, encoder.model.role_index(readout)])


def test_unavailable_readout_and_key_name_what_the_model_has():
    contrastive = make_encoder("contrastive")
    with pytest.raises(ValueError, match=r"'equivariant' is not available.*\('contrastive',\).*contrastive, average, frames"):
        contrastive.embed(np.zeros(SR, np.float32), SR, readout="equivariant")
    with pytest.raises(ValueError, match="needs an equivariant class token"):
        contrastive.key(np.zeros(SR, np.float32), SR)


def test_layers_are_selectable(encoder):
    audio = chord(1.0)
    first, last = encoder.embed(audio, SR, layer=0), encoder.embed(audio, SR, layer=-1)
    assert first.frames.shape == last.frames.shape and not np.allclose(first.frames, last.frames)
    _assert_same_embedding(first, encoder.embed(audio, SR, layer=-encoder.config.depth), atol=0)
    with pytest.raises(ValueError, match="layer 4 is out of range"):
        encoder.embed(audio, SR, layer=4)


def test_channels_rates_and_lengths(encoder):
    mono = chord(1.0)
    stereo = np.stack([mono, 0.5 * mono])
    expected = encoder.embed(stereo.mean(axis=0), SR)
    for variant in (stereo, stereo.T, torch.from_numpy(stereo)):
        _assert_same_embedding(encoder.embed(variant, SR), expected)

    at_8k = chord(1.0, sample_rate=8000)
    _assert_same_embedding(encoder.embed(at_8k, 8000), encoder.embed(soxr.resample(at_8k, 8000, SR, quality="HQ"), SR))

    short = encoder.embed(chord(0.5), SR)  # 8000 samples: 16 valid frames, 4 tokens of 4 frames
    assert short.windows.shape[0] == 1 and short.frames.shape[0] == 4
    assert short.window_lengths[0] == pytest.approx(16 / FRAME_RATE) and short.timestamps[-1] < 0.5

    silence = encoder.embed(np.zeros(3 * SR, np.float32), SR)
    assert all(np.isfinite(value).all() for value in silence.arrays().values())
    for bad, message in ((np.zeros(0, np.float32), "no samples"), (np.full(100, np.nan, np.float32), "NaN"), (np.zeros((2, 2, 2)), "shape")):
        with pytest.raises(ValueError, match=message):
            encoder.embed(bad, SR)


def test_long_input_is_the_concatenation_of_its_windows(encoder, noise):
    whole = encoder.embed(noise, SR, readout="frames")
    size = encoder.window_samples
    parts = [encoder.embed(noise[i : i + size], SR, readout="frames") for i in range(0, len(noise), size)]
    np.testing.assert_allclose(whole.class_tokens, np.concatenate([p.class_tokens for p in parts]), atol=1e-5)
    np.testing.assert_allclose(whole.windows, np.concatenate([p.windows for p in parts]), atol=1e-5)
    np.testing.assert_allclose(whole.frames, np.concatenate([p.frames for p in parts]), atol=1e-5)
    offsets = [p.timestamps + i * size / SR for i, p in enumerate(parts)]
    np.testing.assert_allclose(whole.timestamps, np.concatenate(offsets), atol=1e-9)


def test_cut_windows_pads_only_the_last_window():
    blocks = [np.arange(n, dtype=np.float32) for n in (7, 1, 12)]  # 20 samples, windows of 6
    batches = list(cut_windows(blocks, size=6, batch_size=2))
    windows = np.concatenate([w for w, _ in batches])
    valid = np.concatenate([v for _, v in batches])
    assert [len(w) for w, _ in batches] == [2, 2] and valid.tolist() == [6, 6, 6, 2]
    np.testing.assert_array_equal(windows.ravel()[:20], np.concatenate(blocks))
    assert not windows.ravel()[20:].any()
    with pytest.raises(ValueError, match="no samples"):
        list(cut_windows([np.zeros(0, np.float32)], size=6, batch_size=2))


def test_embed_file_equals_embed_of_the_loaded_file(encoder, tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "stereo44k.flac"
    sf.write(path, (0.3 * rng.standard_normal((int(44100 * 9.3), 2))).astype(np.float32), 44100)
    streamed = encoder.embed_file(path, readout="frames", block_seconds=1.7)
    _assert_same_embedding(streamed, encoder.embed(load_audio(path), SR, readout="frames"), atol=1e-4)


# -- keys ----------------------------------------------------------------------------------
def test_key_estimate_follows_the_calibration(noise):
    encoder = make_encoder()
    raw = encoder.bin_probabilities(noise, SR)
    assert raw.shape == (12,) and raw.sum() == pytest.approx(1, abs=1e-5)
    encoder.calibration = Calibration(rotation=5, direction=-1)
    encoder.min_tonality = 0.0  # noise input: name a key anyway
    estimate = encoder.key(noise, SR)
    stats = encoder.key_statistics(noise, SR)
    signatures = encoder.calibration.signature_probabilities(stats.window_probabilities)  # windows' profiles by signature
    pooled = key_decision.pooled_key(key_decision.key_probabilities(
        signatures, key_decision.mode_given_signature(stats.window_chroma)), stats.window_weights)
    assert estimate.key == key_decision.KEYS[int(np.argmax(pooled))] and estimate.confidence == pytest.approx(pooled.max())
    assert estimate.profile.sum() == pytest.approx(1) and estimate.profile[estimate.signature] >= estimate.confidence - 1e-12
    assert estimate.mode_source == "template"
    relative = estimate.signature if estimate.mode == "major" else (estimate.signature - 3) % 12
    assert estimate.tonic == relative and estimate.key.endswith(estimate.mode)
    assert estimate.signature_name.startswith(mt2.keys.key_name(estimate.signature, "major"))


def test_mode_probe_decides_the_mode(noise):
    encoder = make_encoder(mode_probe=True)
    with torch.no_grad():
        encoder.mode_probe.weight.zero_()
        encoder.mode_probe.bias.copy_(torch.tensor([0.0, 50.0]))  # sure of minor: outweighs the template rule
    encoder.min_tonality = 0.0  # noise input: name a key anyway
    estimate = encoder.key(noise, SR)
    assert estimate.mode == "minor" and estimate.mode_source == "probe x template"
    assert estimate.tonic == (estimate.signature - 3) % 12


def test_key_without_calibration_says_how_to_calibrate():
    encoder = make_encoder()
    encoder.calibration = None
    with pytest.raises(ValueError, match="calibrate_encoder"):
        encoder.key(chord(1.0), SR)


@pytest.mark.parametrize("k", [1, 2, -1])
def test_transposition_rolls_the_raw_profile(encoder, k):
    """The pitch-class layout commutes with a roll of the folded input: transposing a clip by
    ``k`` semitones (content kept inside the window) rolls the 12 outputs by ``k``, up to the
    CQT's deviations from an exact shift."""
    reference = encoder.bin_probabilities(chord(2.0), SR)
    transposed = encoder.bin_probabilities(chord(2.0, shift=k), SR)
    errors = [np.abs(np.roll(reference, j) - transposed).max() for j in range(12)]
    assert int(np.argmin(errors)) == k % 12
    assert errors[k % 12] < 0.2 * np.ptp(reference)


# -- memory --------------------------------------------------------------------------------
@pytest.mark.slow
def test_embed_file_memory_is_bounded(tmp_path):
    """20 minutes of 44.1 kHz stereo embedded in a fresh process: peak RSS under 1 GB, and
    within 150 MiB of the peak for 2 minutes. Decoding the whole file instead peaks near
    900 MiB, about 480 MiB above the 2-minute run.

    The child reads its own high-water mark (``VmHWM``, :func:`mt2.perf.memory.peak_rss_mb`):
    ``ru_maxrss`` survives ``exec`` and reported pytest's own peak whenever pytest was larger."""
    model_dir = tmp_path / "model"
    make_encoder().save_pretrained(model_dir)
    rate, rng = 44100, np.random.default_rng(0)
    minute = (0.2 * rng.standard_normal((60 * rate, 2))).astype(np.float32)
    peaks = {}
    for minutes in (2, 20):
        path = tmp_path / f"long{minutes}.wav"
        with sf.SoundFile(path, "w", samplerate=rate, channels=2, subtype="PCM_16") as handle:
            for _ in range(minutes):
                handle.write(minute)
        script = textwrap.dedent(
            f"""
            import torch, mt2
            from mt2.perf.memory import peak_rss_mb
            torch.set_num_threads(1)
            emb = mt2.load({str(model_dir)!r}).embed_file({str(path)!r}, batch_size=8)
            print(emb.frames.shape[0], round(peak_rss_mb()))
            """
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        frames, peaks[minutes] = map(int, result.stdout.split())
        assert frames == pytest.approx(minutes * 60 * FRAME_RATE / 4, abs=2)
        path.unlink()
    assert peaks[20] < 1024, f"peak RSS {peaks[20]} MiB"
    assert peaks[20] - peaks[2] < 150, f"peak RSS grew from {peaks[2]} to {peaks[20]} MiB"


@pytest.mark.skipif("mt2" not in shipped_models(), reason="the shipped weights are not in this installation")
def test_shipped_class_tokens_stay_distinct_after_training():
    """The prototype's two class tokens came out as one (cosine 0.999 on every input); the shipped
    mt2's must not. On music windows they stay correlated (cosine about 0.7-0.9, docs/recipe.md)."""
    encoder = load("mt2")
    tokens = encoder.embed(chord(8.0), SR).class_tokens  # (windows, 2, D)
    cosine = torch.nn.functional.cosine_similarity(torch.from_numpy(tokens[:, 0]), torch.from_numpy(tokens[:, 1]), dim=-1)
    assert cosine.abs().max() < 0.95, cosine


# -- one pass --------------------------------------------------------------------------------
def test_one_pass_yields_every_readout_and_layer(encoder, noise, monkeypatch):
    """One forward pass per batch of windows gives every readout of every block asked for, each
    equal to what embed gives when asked for that readout and block alone."""
    calls = []
    forward = encoder.model.forward_intermediates
    monkeypatch.setattr(encoder.model, "forward_intermediates", lambda *a, **k: calls.append(a[1]) or forward(*a, **k))
    emb = encoder.embed(noise, SR, layers=[0, 2], batch_size=2)  # 3 windows: 2 batches
    assert len(calls) == 2 and emb.layers == (0, 2, 3) and emb.layer == 3
    monkeypatch.undo()
    for layer in (0, 2, -1):
        for name in encoder.readouts:
            alone = encoder.embed(noise, SR, readout=name, layer=layer)
            got = emb.readout(name, layer)
            np.testing.assert_allclose(got.windows, alone.windows, atol=1e-5, err_msg=f"{name}@{layer}")
            np.testing.assert_allclose(got.clip, alone.clip, atol=1e-5, err_msg=f"{name}@{layer}")
        np.testing.assert_allclose(emb.frames_at(layer), encoder.embed(noise, SR, layer=layer).frames, atol=1e-5)
    assert not np.allclose(emb.readout("contrastive").clip, emb.readout("equivariant").clip)
    with pytest.raises(ValueError, match=r"layer 1 was not embedded \(held: \[0, 2, 3\]\).*layers=\[\.\.\.\]"):
        emb.readout("average", 1)
    with pytest.raises(ValueError, match="readout 'tempo' is not available"):
        emb.readout("tempo")
    with pytest.raises(ValueError, match="layer 4 is out of range"):
        encoder.embed(noise, SR, layers=[4])


def test_key_of_an_embedding_is_the_key_of_the_audio(noise):
    encoder = make_encoder(mode_probe=True)
    encoder.min_tonality = 0.0  # noise input: name a key anyway
    encoder.shifts, encoder.passes = (0,), 1  # the key path of the embedding's own windows
    from_embedding = encoder.key_of(encoder.embed(noise, SR, readout="frames", layers=[0]))
    direct = encoder.key(noise, SR)
    assert (from_embedding.key, from_embedding.mode_source) == (direct.key, "probe x template") and from_embedding.has_key
    np.testing.assert_allclose(from_embedding.profile, direct.profile, atol=1e-6)
    assert from_embedding.level_db == pytest.approx(direct.level_db)


def test_embed_file_writes_frames_once_into_one_array(encoder, tmp_path):
    """The frame tokens of a streamed file live in one array allocated from the file's duration:
    no list of pieces, no concatenated copy; its spare capacity is under two windows of tokens."""
    path = tmp_path / "long.wav"
    sf.write(path, (0.1 * np.random.default_rng(3).standard_normal(int(44100 * 41.3))).astype(np.float32), 44100)
    emb = encoder.embed_file(path, readout="frames", block_seconds=7.0)
    per_window = encoder.window_frames // encoder.config.frames_per_token
    buffer = emb.frames.base
    assert buffer is not None and buffer.shape[1:] == emb.frames.shape[1:]
    assert 0 <= buffer.shape[0] - emb.frames.shape[0] < 2 * per_window
    assert emb.frames.shape[0] == emb.frame_counts.sum() == len(emb.timestamps)


# -- no key ----------------------------------------------------------------------------------
def test_silence_has_no_key_whatever_the_model_says():
    encoder = make_encoder()
    encoder.min_tonality = 0.0  # only the level decides
    for audio in (np.zeros(3 * SR, np.float32), np.full(2 * SR, 1e-5, np.float32) * np.sign(np.random.default_rng(0).standard_normal(2 * SR))):
        estimate = encoder.key(audio, SR)
        assert not estimate.has_key and estimate.key is None and estimate.label == mt2.inference.NO_KEY == "X"
        assert estimate.signature is None and estimate.mode is None and estimate.level_db < encoder.silence_db
        assert estimate.to_dict()["key"] == "X" and estimate.confidence == pytest.approx(estimate.profile.max())
    assert encoder.key(chord(2.0), SR).has_key


def _noise(kind: str, db: float, seconds: float = 8.0, seed: int = 0) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2 power) noise at an RMS level of ``db`` dB full scale."""
    n = int(seconds * SR)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.maximum(np.arange(len(spectrum)), 1)
    spectrum /= {"white": 1, "pink": np.sqrt(f), "brown": f}[kind]
    x = np.fft.irfft(spectrum, n)
    return (10 ** (db / 20) * x / np.sqrt(np.mean(x**2))).astype(np.float32)


@pytest.mark.skipif("mt2" not in shipped_models(), reason="the shipped weights are not in this installation")
@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
def test_shipped_model_finds_no_key_in_noise(kind):
    encoder = load("mt2")
    for db in (-40, -20):
        estimate = encoder.key(_noise(kind, db, seed=-db), SR)
        assert not estimate.has_key, (kind, db, estimate)
        assert estimate.level_db == pytest.approx(db, abs=0.5)


def test_float16_storage_halves_the_file_and_reads_back_as_float32(tmp_path, noise):
    """The shipped mt2-tiny is stored in float16: the file halves, loading casts back to float32,
    and the outputs stay within float16 rounding of the float32 folder's."""
    original = load("mt2")
    original.save_pretrained(tmp_path / "f32")
    original.save_pretrained(tmp_path / "f16", storage="float16")
    size32, size16 = ((tmp_path / name / "model.safetensors").stat().st_size for name in ("f32", "f16"))
    assert 0.45 < size16 / size32 < 0.55
    half = Encoder.from_pretrained(tmp_path / "f16")
    assert all(p.dtype == torch.float32 for p in half.model.parameters())
    assert half.training_info["weights_storage"] == "float16"
    a, b = original.embed(noise, SR), half.embed(noise, SR)
    scale = np.abs(a.class_tokens).max()
    assert np.abs(a.class_tokens - b.class_tokens).max() < 5e-3 * scale
    assert np.abs(a.class_tokens - b.class_tokens).max() > 0  # it did round
    with pytest.raises(ValueError, match="storage"):
        original.save_pretrained(tmp_path / "bad", storage="int8")
