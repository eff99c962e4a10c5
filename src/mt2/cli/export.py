"""``mt2 export``: a pretraining checkpoint -> ``model.safetensors`` + ``config.json``."""
from __future__ import annotations

import argparse
import sys
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
    parser.add_argument(
        "--mode-probe", type=Path, default=None, metavar="CORPUS",
        help="also fit the major/minor probe (supervised) on a rendered corpus's train clips and keep it if it beats "
        "the template rule on its valid clips (mt2.training.mode_probe); the report is stored under training.mode_probe",
    )
    parser.add_argument("--float16", action="store_true",
                        help="store the weights as float16 (half the file; read back as float32; the shipped mt2-tiny)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mt2.training.export import export_checkpoint

    try:
        encoder = export_checkpoint(args.checkpoint, args.out, not args.no_calibrate, args.mode_probe, progress=True,
                                    storage="float16" if args.float16 else "float32")
    except ValueError as error:
        print(f"mt2 export: error: {error}", file=sys.stderr)
        return 2
    calibration = "calibrated" if encoder.calibration is not None else "not calibrated"
    print(f"exported {encoder.training_info['variant']} step {encoder.training_info['step']} to {args.out} ({calibration})")
    if args.mode_probe is not None:
        report = encoder.training_info["mode_probe"]
        rule = "probe kept" if report["kept"] else "template kept"
        print(f"mode on {report['valid_clips']} valid clips: probe {report['probe_accuracy']:.3f} (C={report['c']}), "
              f"template {report['template_accuracy']:.3f}: {rule}")
    return 0
