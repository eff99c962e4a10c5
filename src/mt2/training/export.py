"""Export a pretraining checkpoint as a user-facing model folder (``model.safetensors`` +
``config.json``, the format of :mod:`mt2.inference.checkpoint`, loadable with ``mt2.load``).

Lightning checkpoints (``last.ckpt``, ``best.ckpt``) are this project's own files, read here
with ``torch.load(weights_only=True)``; users load only the exported folder, which holds no
pickle. The export builds an :class:`~mt2.inference.Encoder` from the checkpoint's model and
pretraining config (input compression; ``training``: preset, variant, step, the config, and
``data``: the run's record and the hours it trained on, :func:`training_data`),
calibrates its equivariant output on the rendered references
(:func:`~mt2.training.calibrate.calibrate_encoder`), optionally fits the supervised mode probe
(:mod:`mt2.training.mode_probe`), and saves it once with ``save_pretrained``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

import mt2
from mt2.corpus.manifest import read_manifest
from mt2.inference import Encoder
from mt2.model import MT2Model
from mt2.training.calibrate import CalibrationError, calibrate_encoder
from mt2.training.config import PretrainConfig, read_saved_config

log = logging.getLogger(__name__)


def load_checkpoint_model(checkpoint_path: str | os.PathLike) -> tuple[MT2Model, PretrainConfig, dict]:
    """The model of a pretraining checkpoint (eval mode, CPU), its config and the raw checkpoint."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    config = PretrainConfig.from_dict(checkpoint["hyper_parameters"]["config"])
    model = MT2Model(config.model_config())
    prefix = "model."
    model.load_state_dict({k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)})
    return model.eval(), config, checkpoint


def _train_split(folder: str | os.PathLike | None) -> dict | None:
    """Tracks and hours of the ``train`` split of the manifest in ``folder`` (None: no readable manifest)."""
    if folder is None:
        return None
    try:
        rows = [r for r in read_manifest(folder) if r.get("split", "train") == "train"]
    except (OSError, ValueError):
        return None
    return {"folder": str(folder), "train_items": len(rows), "train_hours": round(sum(float(r.get("duration", 0.0)) for r in rows) / 3600, 3)}


def training_data(checkpoint_path: str | os.PathLike, config: PretrainConfig) -> dict:
    """What a model was trained on, for its ``config.json``: the run's record beside the
    checkpoint (``config.yaml``'s ``run``: data path, kind and hash, the branch it was finished
    from) and, where the manifests are still readable, the training split of the rendered
    corpus and of the real recordings (items, hours) with ``real_share``, the part of every
    batch drawn from real recordings (0 without them). Hours are ``null`` where a manifest cannot be read."""
    saved = Path(checkpoint_path).with_name("config.yaml")
    record = read_saved_config(saved)[1] if saved.is_file() else {}
    return {**record, "rendered": _train_split(record.get("data")), "real": _train_split(config.real_data),
            "real_share": config.real_share if config.real_data else 0.0}


def export_checkpoint(
    checkpoint_path: str | os.PathLike,
    out: str | os.PathLike,
    calibrate: bool = True,
    mode_probe_corpus: str | os.PathLike | None = None,
    progress: bool = False,
    storage: str = "float32",
) -> Encoder:
    """Write the model folder ``out`` from a pretraining checkpoint; return the encoder.

    With ``calibrate`` (and an equivariant token) the calibration is stored; when the
    reference timbres disagree, the folder is written without one and the reason is kept
    under ``training.calibration_error``. With ``mode_probe_corpus`` the mode probe is fitted
    on that rendered corpus (:func:`~mt2.training.mode_probe.fit_mode_probe_on_corpus`) and
    its report kept under ``training.mode_probe``. ``storage``: the weights' dtype in the folder
    (``float32``, or ``float16`` for half the size: :func:`mt2.inference.checkpoint.write_checkpoint`).

    Raises:
        ValueError: the mode probe cannot be fitted (the message names the corpus; nothing is
            written then).
    """
    model, config, checkpoint = load_checkpoint_model(checkpoint_path)
    training = {
        "preset": config.preset,
        "variant": config.variant,
        "step": int(checkpoint.get("global_step", 0)),
        "mt2_version": mt2.__version__,
        "pretrain_config": config.to_dict(),
        "data": training_data(checkpoint_path, config),
    }
    encoder = Encoder(model, compression=config.view_config().compression, training=training)
    if calibrate and model.equivariant_head is not None:
        try:
            calibrate_encoder(encoder)
        except CalibrationError as error:
            log.warning("exported without calibration: %s", error)
            encoder.training_info["calibration_error"] = str(error)
    if mode_probe_corpus is not None:
        from mt2.training.mode_probe import fit_mode_probe_on_corpus

        try:
            report = fit_mode_probe_on_corpus(encoder, mode_probe_corpus, progress)
        except (ValueError, OSError) as error:
            raise ValueError(f"mode probe on {mode_probe_corpus}: {error}") from error
        encoder.training_info["mode_probe"] = report.to_dict()
    encoder.save_pretrained(Path(out), storage)
    return encoder
