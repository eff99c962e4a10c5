"""musicnn in PyTorch (issue 31) against the original: TensorFlow 2.21 running the ``musicnn``
0.1.0 package's own graph and checkpoints, recorded once by scripts/record_musicnn_reference.py
into tests/data/musicnn_reference.npz on a synthetic 6.5-s fixture (two 3-s patches and a
33-frame tail). Neither TensorFlow nor the package is needed here.

Tolerance: the largest difference of each recorded array, relative to that array's largest
magnitude, at most ``TOLERANCE`` = 1e-4; measured when recorded: at most 7.3e-6 (MTT tail
penultimate), log-mel 3.6e-6 absolute (values up to 5.3).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("librosa")

from mt2.bench import musicnn_convert  # noqa: E402
from mt2.bench.features import Request, load_external  # noqa: E402
from mt2.bench.musicnn import (  # noqa: E402
    MIDEND_CHANNELS, MODELS, LogMel, MusicnnEncoder, MusicnnError, load_network, patch_starts, shipped_weights,
)

TOLERANCE = 1e-4
ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data" / "musicnn_reference.npz"
RECORDER = ROOT / "scripts" / "record_musicnn_reference.py"


def _recorder():
    spec = importlib.util.spec_from_file_location("record_musicnn_reference", RECORDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def recorded():
    recorder = _recorder()
    with np.load(REFERENCE, allow_pickle=False) as stored:
        return recorder, dict(stored)


def _relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def test_front_end_matches_the_package_in_float32(recorded):
    recorder, reference = recorded
    spectrogram = LogMel()(torch.from_numpy(recorder.fixture_signal())).numpy()
    assert spectrogram.shape == (int(reference["frames"]), 96)
    np.testing.assert_allclose(spectrogram[recorder.MEL_ROWS, recorder.MEL_COLUMNS], reference["log_mel"], atol=1e-4)
    # the package's float16 product overflows on this fixture; ours stays finite
    assert int(reference["float16_overflow"]) > 0 and np.isfinite(spectrogram).all()


@pytest.mark.parametrize("model", list(MODELS))
def test_network_matches_the_tensorflow_graph(recorded, model):
    recorder, reference = recorded
    full, tail, frames = MusicnnEncoder(model).run(recorder.fixture_signal(), recorder.SAMPLE_RATE)
    assert frames == int(reference["frames"]) and len(full.taggram) == 2 and tail.midend.shape[2] == 33
    for part, output in (("full", full), ("tail", tail)):
        for name in ("taggram", "penultimate", "max_pool", "mean_pool"):
            ours = getattr(output, name).numpy()
            if name.endswith("pool"):
                ours = ours[:, ::recorder.POOL_STRIDE]
            error = _relative_error(ours, reference[f"{model}/{part}/{name}"])
            assert error <= TOLERANCE, f"{model} {part} {name}: relative error {error:.2e}"
    # patches differ: the package's extractor (0.1.0) returns the first patch's penultimate for all
    assert not torch.allclose(full.penultimate[0], full.penultimate[1])


def test_embed_readouts_and_frames(recorded):
    recorder, _ = recorded
    audio = recorder.fixture_signal()
    pooled, penultimate = MusicnnEncoder("MSD_musicnn", "pooled"), MusicnnEncoder("MSD_musicnn", "penultimate")
    full, _, _ = pooled.run(audio, 16000)
    a, b = pooled.embed(audio, 16000), penultimate.embed(audio, 16000)
    np.testing.assert_allclose(a.clip, full.max_pool.mean(dim=0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.clip, full.penultimate.mean(dim=0).numpy(), rtol=1e-6)
    assert a.clip.shape == (MIDEND_CHANNELS,) and b.clip.shape == (200,)
    # frames: pairs of spectrogram frames averaged (407 frames -> 204, the last one alone), 31.25 Hz like MT2's
    assert a.frames.shape == (204, MIDEND_CHANNELS) and np.isfinite(a.frames).all()
    midend = full.midend[0].T.numpy()
    np.testing.assert_allclose(a.frames[:93], (midend[0:186:2] + midend[1:186:2]) / 2, rtol=1e-5, atol=1e-6)
    assert a.timestamps[0] == pytest.approx(0.5 * 256 / 16000) and a.timestamps[1] == pytest.approx(2.5 * 256 / 16000)
    assert a.timestamps[-1] == pytest.approx(406 * 256 / 16000) and len(a.timestamps) == 204
    # another rate is resampled to 16 kHz first
    import soxr

    resampled = pooled.embed(soxr.resample(audio, 16000, 44100).astype(np.float32), 44100)
    assert resampled.clip.shape == a.clip.shape and np.corrcoef(resampled.clip, a.clip)[0, 1] > 0.99
    # a clip shorter than one patch is one shorter patch
    short = pooled.embed(audio[:16000], 16000)
    assert short.frames.shape == (32, MIDEND_CHANNELS) and np.isfinite(short.clip).all()
    assert pooled.embed(audio[:100], 16000).frames.shape == (2, MIDEND_CHANNELS)  # padded to one 512-sample window
    tags = pooled.tag(audio, 16000)
    assert len(tags) == 50 and all(0.0 <= v <= 1.0 for v in tags.values())


def test_patches_follow_the_package():
    assert patch_starts(407) == [0, 187] and patch_starts(374) == [0, 187] and patch_starts(100) == [0]


def test_bench_loads_musicnn_as_an_external_encoder():
    msd = load_external("mt2.bench.musicnn:load_msd")
    penultimate = load_external("mt2.bench.musicnn:load_msd_penultimate")
    assert msd.sample_rate == 16000 and msd.weights_hash != penultimate.weights_hash
    audio = np.sin(2 * np.pi * 440 * np.arange(16000 * 4) / 16000).astype(np.float32) * 0.5
    out = msd.compute(audio, Request("default"), frames=True)
    assert out["clip"].shape == (MIDEND_CHANNELS,) and out["frames"].shape[1] == MIDEND_CHANNELS
    assert penultimate.compute(audio, Request("default"), frames=False)["clip"].shape == (200,)


def test_shipped_weights_carry_their_source_and_licence():
    folder = shipped_weights()
    assert "Permission to use, copy, modify" in (folder / "LICENSE-musicnn.md").read_text()
    for model, stem in MODELS.items():
        record = json.loads((folder / f"{stem}.json").read_text())
        assert record["model"] == model and len(record["checkpoint_sha256"]) == 64
        assert set(record["tensors"]) == set(musicnn_convert.tensor_names())


def test_missing_weights_name_the_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("MT2_MUSICNN_WEIGHTS", str(tmp_path))
    with pytest.raises(MusicnnError, match="musicnn_convert"):
        load_network("MSD_musicnn")
    with pytest.raises(MusicnnError, match="known"):
        MusicnnEncoder("MSD_musicnn", "taggram")


def test_checkpoint_reader_parts(tmp_path):
    assert musicnn_convert.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    bad = tmp_path / ".index"
    bad.write_bytes(b"not a table" * 10)
    (tmp_path / ".data-00000-of-00001").write_bytes(b"")
    with pytest.raises(musicnn_convert.CheckpointFormatError, match=r"\.index: not a TensorFlow checkpoint"):
        musicnn_convert.read_checkpoint(f"{tmp_path}/")


def test_anchor_rows_compare_mt2_with_musicnn_per_task():
    from mt2.bench.claims import assess_claims
    from mt2.evaluation.stats import Ratio, resample_counts

    label = "mt2.bench.musicnn:load_msd"
    systems = [{"label": "mt2", "kind": "pretrained", "status": "ok", "roles": ["equivariant", "contrastive"]},
               {"label": label, "kind": "external", "status": "ok", "roles": []}]
    results = {"systems": systems, "config": {"layers": [-1]}, "datasets": {"corpus": {"cross_font": False}},
               "tasks": {"key": {"level": "clip", "metrics": ["weighted"]}}}
    paths = tuple(f"clip{i}" for i in range(40))
    counts = resample_counts(len(paths), 200, 0)
    right = np.arange(40) % 4 != 0  # MT2 right on 30 clips, musicnn on the 9 of them below 13
    statistics = {("key", "corpus", ("mt2", "average", -1)): (paths, {"weighted": Ratio.mean(right)}, counts),
                  ("key", "corpus", (label, "default", None)): (paths, {"weighted": Ratio.mean(right & (np.arange(40) < 13))}, counts)}
    claims = {c["claim"]: c for c in assess_claims(results, statistics)}
    msd = next(c for text, c in claims.items() if text.startswith("anchor, not a paper claim: MT2 vs musicnn MSD"))
    assert msd["status"] == "held" and msd["comparisons"][0]["difference"][0] == pytest.approx(21 / 40)
    assert msd["b"] == f"{label} (default)"
    mtt = next(c for text, c in claims.items() if "musicnn MTT" in text)
    assert mtt["status"] == "not tested"  # not in this run; never matched to the MSD system


def test_anchors_extra_never_pulls_tensorflow():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def requirements(extra: str) -> set[str]:
        out = set()
        for requirement in extras[extra]:
            if requirement.startswith("mt2-mir["):
                for inner in requirement[len("mt2-mir["):-1].split(","):
                    out |= requirements(inner)
            else:
                out.add(requirement.lower())
        return out

    pulled = requirements("anchors")
    assert "librosa>=0.10" in pulled and not [r for r in pulled if "tensorflow" in r or "musicnn" in r or "keras" in r]
    assert "anchors" in extras["all"][0]


# ----------------------------------------------------------------------------- a checkpoint written in TensorFlow's format


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | int, wire: int) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        return key + _varint(payload)
    if wire == 5:
        return key + payload.to_bytes(4, "little")
    return key + _varint(len(payload)) + payload


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    """An SSTable block without prefix compression: one restart point at 0."""
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    return body + (0).to_bytes(4, "little") + (1).to_bytes(4, "little")


def write_tf_checkpoint(folder: Path, tensors: dict[str, np.ndarray]) -> None:
    """``folder/.index`` and ``folder/.data-00000-of-00001`` as TensorFlow's BundleWriter lays them out."""
    data, entries = bytearray(), [(b"", _field(1, 1, 0))]  # BundleHeaderProto: one shard
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        shape = b"".join(_field(2, _field(1, d, 0), 2) for d in tensors[name].shape)
        entry = (_field(1, 1, 0) + _field(2, shape, 2) + _field(4, len(data), 0) + _field(5, len(raw), 0)
                 + _field(6, musicnn_convert.masked(musicnn_convert.crc32c(raw)), 5))
        entries.append((name.encode(), entry))
        data += raw
    table = bytearray()

    def add(block: bytes) -> bytes:
        handle = _varint(len(table)) + _varint(len(block))
        table.extend(block + b"\x00" + b"\x00" * 4)  # uncompressed; the block CRC is not read
        return handle

    data_handle = add(_block(entries))
    meta_handle = add(_block([]))
    index_handle = add(_block([(entries[-1][0], data_handle)]))
    footer = (meta_handle + index_handle).ljust(40, b"\x00") + musicnn_convert.TABLE_MAGIC.to_bytes(8, "little")
    folder.mkdir(parents=True)
    (folder / ".index").write_bytes(bytes(table) + footer)
    (folder / ".data-00000-of-00001").write_bytes(bytes(data))


def test_conversion_reads_a_tensorflow_bundle_back_into_the_shipped_weights(tmp_path):
    """The shipped weights laid out back as TensorFlow variables (with an Adam slot to skip) and
    converted again: the same tensors, and a second run finds the cached folder."""
    from safetensors.numpy import load_file

    package = tmp_path / "musicnn"
    for model, stem in MODELS.items():
        shipped = load_file(str(shipped_weights() / f"{stem}.safetensors"))
        tensors = {}
        for name, (theirs, layout) in musicnn_convert.tensor_names().items():
            value = shipped[name]
            if layout == "conv2d":
                value = value.transpose(2, 3, 1, 0)
            elif layout == "conv1d":
                value = value.transpose(2, 1, 0)[:, :, None, :]
            elif layout == "dense":
                value = value.T
            tensors[theirs] = value
        tensors["dense/kernel/Adam"] = np.zeros((2, 2), np.float32)
        write_tf_checkpoint(package / model, tensors)
    labels = {m: json.loads((shipped_weights() / f"{s}.json").read_text())["tags"] for m, s in MODELS.items()}
    (package / "configuration.py").write_text(f"MSD_LABELS = {labels['MSD_musicnn']!r}\nMTT_LABELS = {labels['MTT_musicnn']!r}\n")
    target = musicnn_convert.convert(package, tmp_path / "out")
    for stem in MODELS.values():
        ours, shipped = load_file(str(target / f"{stem}.safetensors")), load_file(str(shipped_weights() / f"{stem}.safetensors"))
        assert ours.keys() == shipped.keys() and all(np.array_equal(ours[k], shipped[k]) for k in ours)
    assert musicnn_convert.convert(package, tmp_path / "out") == target
    network, record = load_network("MSD_musicnn", target)
    assert len(record["tags"]) == 50 and record["checkpoint_sha256"] == musicnn_convert.checkpoint_hash(package / "MSD_musicnn")
    # a damaged tensor is named
    data = package / "MTT_musicnn" / ".data-00000-of-00001"
    data.write_bytes(b"\xff" + data.read_bytes()[1:])
    with pytest.raises(musicnn_convert.CheckpointFormatError, match="damaged"):
        musicnn_convert.read_checkpoint(f"{package / 'MTT_musicnn'}/")
