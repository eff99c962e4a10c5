"""``mt2 embed`` and ``mt2 key``: outputs, bad files, exit status, help."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from bad_inputs import BAD, VALID, make_bad_folder
from mt2.cli import build_parser, main
from tiny_encoder import one_thread, save_encoder

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)
#: Bad inputs that are files; ``dir.wav`` is a folder, which a folder walk enters.
BAD_FILES = [name for name in BAD if name != "dir.wav"]
ARRAYS = {"clip", "windows", "class_tokens", "frames", "timestamps", "window_starts", "window_lengths"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_encoder(tmp_path_factory.mktemp("model") / "mt2-mini")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    make_bad_folder(root / "sub")
    return root


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def _check_one_line_per_bad_file(stderr: str) -> None:
    lines = _error_lines(stderr)
    assert len(lines) == len(BAD_FILES), stderr
    for name in BAD_FILES:
        assert sum(name in line for line in lines) == 1, (name, stderr)
    assert "Traceback" not in stderr


def test_embed_writes_one_file_per_good_input_and_reports_bad_ones(model_dir, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["embed", str(inputs), "--out", str(out), "--model", str(model_dir), "--readout", "frames"])
    _check_one_line_per_bad_file(capsys.readouterr().err)
    assert status == 1
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npz")) == sorted(f"sub/{n}.npz" for n in VALID)
    with np.load(out / "sub" / "good.flac.npz", allow_pickle=False) as data:
        assert set(data.files) == ARRAYS | {"metadata"}
        assert data["clip"].shape == (256,) and data["frames"].shape[1] == 256
        assert json.loads(str(data["metadata"]))["readout"] == "frames"


def test_embed_safetensors_for_a_single_file(model_dir, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["embed", str(inputs / "sub" / "stereo8k.wav"), "--out", str(out), "--model", str(model_dir), "--format", "safetensors", "--layer", "0"])
    assert status == 0 and capsys.readouterr().err == ""
    arrays = load_file(out / "stereo8k.wav.safetensors")
    assert set(arrays) == ARRAYS and arrays["windows"].shape == (1, 256)


def test_key_prints_a_line_per_good_file_and_reports_bad_ones(model_dir, inputs, capsys):
    status = main(["key", str(inputs), "--model", str(model_dir)])
    captured = capsys.readouterr()
    _check_one_line_per_bad_file(captured.err)
    assert status == 1
    rows = [line.split("\t") for line in captured.out.splitlines()]
    assert sorted(r[0].rsplit("/", 1)[1] for r in rows) == sorted(VALID)
    for path, key, signature, confidence in rows:
        assert key.split()[1] in ("major", "minor") and "major /" in signature and 0 < float(confidence) <= 1


def test_key_json(model_dir, inputs, capsys):
    status = main(["key", str(inputs / "sub" / "good.flac"), str(inputs / "sub" / "short.wav"), "--model", str(model_dir), "--json"])
    results = json.loads(capsys.readouterr().out)
    assert status == 0 and len(results) == 2
    assert {"path", "key", "signature", "signature_name", "confidence", "profile"} <= set(results[0])


def test_unusable_model_or_inputs_fail_in_one_line(model_dir, inputs, tmp_path, capsys):
    good = str(inputs / "sub" / "good.flac")
    assert main(["key", good, "--model", str(tmp_path / "missing")]) == 2
    assert main(["embed", good, "--out", str(tmp_path), "--model", str(model_dir), "--layer", "9"]) == 2
    contrastive = save_encoder(tmp_path / "contrastive", variant="contrastive")
    assert main(["key", good, "--model", str(contrastive)]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["embed", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--model", str(model_dir)]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 4 and all(line.startswith("error: ") for line in lines)
    assert "layer 9 is out of range" in lines[1] and "equivariant class token" in lines[2] and "no audio files" in lines[3]


@pytest.mark.parametrize("command", ["embed", "key"])
def test_every_flag_has_help(command):
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for action in subparsers.choices[command]._actions:
        assert action.help, f"mt2 {command}: {action.dest} has no help"
