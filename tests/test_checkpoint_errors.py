"""A damaged model folder gets one CheckpointError naming the file and the fault (issue 24)."""
import json
import pickle
import shutil

import pytest
import torch

import mt2
from mt2.inference import CheckpointError
from mt2.inference.checkpoint import CONFIG_FILE, WEIGHTS_FILE, resolve


@pytest.fixture
def folder(tmp_path):
    """A copy of the shipped mt2 folder that each test damages."""
    out = tmp_path / "model"
    source = resolve("mt2")
    out.mkdir()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        (out / name).write_bytes((source / name).read_bytes())
    return out


def load_error(folder) -> str:
    with pytest.raises(CheckpointError) as error:
        mt2.load(folder)
    return str(error.value)


def edit_config(folder, edit) -> None:
    config = json.loads((folder / CONFIG_FILE).read_text())
    edit(config)
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def test_intact_copy_loads(folder):
    assert mt2.load(folder).config == mt2.load("mt2").config


def test_truncated_weights(folder):
    weights = folder / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:1000])
    message = load_error(folder)
    assert str(weights) in message and "truncated or damaged" in message


def test_pickle_under_the_safetensors_name(folder):
    weights = folder / WEIGHTS_FILE
    torch.save({"w": torch.zeros(3)}, weights)  # a zip archive
    assert "pickled file" in load_error(folder) and str(weights) in load_error(folder)
    weights.write_bytes(pickle.dumps({"w": [0.0] * 3}))  # a bare pickle
    assert "pickled file" in load_error(folder)


def test_empty_weights_file(folder):
    (folder / WEIGHTS_FILE).write_bytes(b"")
    assert "truncated or damaged" in load_error(folder)


@pytest.mark.parametrize(
    ("edit", "fault"),
    [
        (lambda c: c.pop("model"), "the key 'model' is missing"),
        (lambda c: c.pop("frontend"), "the key 'frontend' is missing"),
        (lambda c: c["frontend"].pop("offset"), "the key 'frontend.offset' is missing"),
        (lambda c: c["model"].pop("depth"), "the key 'model.depth' is missing"),
        (lambda c: c["model"].update(depth="4"), "'model.depth' is '4' (str), expected int"),
        (lambda c: c["model"].update(detach_summaries=1), "'model.detach_summaries' is 1 (int), expected bool"),
        (lambda c: c["model"].update(layout="square"), "'model' does not describe a model"),
        (lambda c: c["model"].update(colour="red"), "unknown keys ['model.colour']"),
        (lambda c: c["frontend"].update(compression="cubic"), "'frontend.compression' is 'cubic', not a valid value"),
        (lambda c: c["frontend"].update(offset="7"), "'frontend.offset' is '7', not a valid value"),
        (lambda c: c["calibration"].update(direction=2), "a direction of 1 or -1"),
        (lambda c: c["calibration"].pop("rotation"), "the key 'calibration.rotation' is missing"),
    ],
)
def test_config_with_missing_keys_or_wrong_types(folder, edit, fault):
    edit_config(folder, edit)
    message = load_error(folder)
    assert str(folder / CONFIG_FILE) in message and fault in message


def test_config_that_is_not_json(folder):
    (folder / CONFIG_FILE).write_text("{model: ")
    assert "not valid JSON" in load_error(folder)


def test_weights_that_do_not_fit_the_config(folder):
    edit_config(folder, lambda c: c["model"].update(pc_channels=8))
    message = load_error(folder)
    assert str(folder / WEIGHTS_FILE) in message and "do not fit the model" in message and "size mismatch" in message


def test_weights_of_another_file(folder, tmp_path):
    shutil.copy(resolve("contrastive") / WEIGHTS_FILE, folder / WEIGHTS_FILE)
    assert "do not fit the model" in load_error(folder)
