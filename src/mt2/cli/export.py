"""``mt2 export``: a pretraining checkpoint -> ``model.safetensors`` + ``config.json``."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="export a pretraining checkpoint as safetensors weights + JSON config",
        description="Read a checkpoint written by `mt2 pretrain` (last.ckpt or best.ckpt) and write OUT/model.safetensors "
        "and OUT/config.json (model config, input compression, calibration of the equivariant output, training record), "
        "the folder format that mt2.load and `mt2 embed` read. The exported folder holds no pickle.",
    )
    parser.add_argument("checkpoint", type=Path, help="a .ckpt file written by mt2 pretrain")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="skip the calibration of the equivariant output on rendered references (about a minute on CPU)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mt2.training.export import export_checkpoint

    encoder = export_checkpoint(args.checkpoint, args.out, calibrate=not args.no_calibrate)
    calibration = "calibrated" if encoder.calibration is not None else "not calibrated"
    print(f"exported {encoder.training_info['variant']} step {encoder.training_info['step']} to {args.out} ({calibration})")
    return 0
