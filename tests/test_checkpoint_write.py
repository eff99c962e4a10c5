"""write_checkpoint: a frontend left out means the frontend's defaults, and an interrupted write
leaves the folder's previous files whole."""
from __future__ import annotations

import pytest
import torch

from mt2.frontend import DEFAULT_COMPRESSION, DEFAULT_OFFSET
from mt2.inference import checkpoint
from mt2.inference.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_checkpoint, write_checkpoint
from mt2.model import MT2Model, make_config


def small_model(seed: int) -> MT2Model:
    torch.manual_seed(seed)
    return MT2Model(make_config("mt2-mini", "mt2", depth=1))


def test_no_frontend_means_the_frontend_defaults(tmp_path):
    write_checkpoint(tmp_path, small_model(0))
    read = read_checkpoint(tmp_path)
    assert (read["compression"], read["offset"]) == (DEFAULT_COMPRESSION, DEFAULT_OFFSET)


@pytest.mark.parametrize("failing", ["weights", "config"])
def test_an_interrupted_write_keeps_the_previous_folder(tmp_path, monkeypatch, failing):
    write_checkpoint(tmp_path, small_model(0), frontend={"compression": "sqrt", "offset": 3})
    before = {name: (tmp_path / name).read_bytes() for name in (WEIGHTS_FILE, CONFIG_FILE)}

    def crash(path, *args, **kwargs):
        path.write_bytes(b"half a file")
        raise OSError("disk full")

    if failing == "weights":
        monkeypatch.setattr(checkpoint, "save_file", lambda tensors, path, metadata: crash(path))
    else:
        monkeypatch.setattr(checkpoint.Path, "write_text", crash)
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(tmp_path, small_model(1), frontend={"compression": "sqrt", "offset": 3})
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # no temporary file left
    monkeypatch.undo()
    assert read_checkpoint(tmp_path)["offset"] == 3
