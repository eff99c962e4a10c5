"""``mt2 key``: the key of each audio file."""
from __future__ import annotations

import argparse
import json
import sys

from mt2.cli._files import add_common_arguments, find_audio_or_report, for_each_file, load_encoder


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "key",
        help="estimate the key of audio files from the equivariant token",
        description="Print one line per file: path<TAB>key<TAB>signature<TAB>confidence. The key signature comes "
        "from the self-supervised equivariant token (calibrated on rendered reference pieces); major versus minor from "
        "the model's mode probe if it stores one, otherwise from Krumhansl-Kessler templates. A file that cannot "
        "be read is reported on one stderr line and skipped; the exit status is 1 if any file failed.",
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--json", action="store_true",
        help="print one JSON list instead of lines: objects with path, key, tonic, mode, signature (relative-major "
        "pitch class, C = 0), signature_name, confidence, profile (12 signature probabilities) and mode_source",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    files = find_audio_or_report(args.paths)
    if not files:
        return 2
    encoder = load_encoder(args, lambda e: e.check_key_support())
    if encoder is None:
        return 2
    results = []

    def key_one(path, relative) -> None:
        estimate = encoder.key_file(path, batch_size=args.batch_size)
        if args.json:
            results.append({"path": str(path), **estimate.to_dict()})
        else:
            tqdm.write(f"{path}\t{estimate.key}\t{estimate.signature_name}\t{estimate.confidence:.3f}", file=sys.stdout)

    status = for_each_file(files, key_one, "key")
    if args.json:
        print(json.dumps(results, indent=2))
    return status
