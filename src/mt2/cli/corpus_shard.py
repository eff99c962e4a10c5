"""``mt2 corpus shard IN OUT --shard-size N``: write WebDataset tar shards for pretraining.

An action of ``mt2 corpus`` (listed in :data:`mt2.cli.corpus.ACTIONS`).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_shard(actions) -> None:
    parser = actions.add_parser(
        "shard",
        help="write a folder of audio or a manifest as WebDataset tar shards (FLAC + JSON metadata) for pretraining",
        description="Write the tracks of IN (a folder of audio, searched recursively, a corpus folder or a manifest) as "
        "OUT/shard-NNNNNN.tar (each sample: <key>.flac and <key>.json, its manifest row) and OUT/shards.json (sample "
        "counts). Tracks are shuffled once (--seed) before sharding; unreadable files are skipped and listed in the index. "
        "Train on them with `mt2 pretrain --data OUT`.",
    )
    parser.add_argument("input", type=Path, help="folder of audio, corpus folder (with manifest.jsonl) or manifest (.jsonl/.csv)")
    parser.add_argument("out", type=Path, help="output folder for the shards")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffle before sharding (default: 0)")
    parser.set_defaults(func=_shard)


def _shard(args: argparse.Namespace) -> int:
    import json
    import logging

    from mt2.data.shards import INDEX_NAME, write_shards

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    shards = write_shards(args.input, args.out, args.shard_size, args.seed)
    index = json.loads((args.out / INDEX_NAME).read_text())
    print(f"{index['samples']} samples in {len(shards)} shards -> {args.out} ({len(index['skipped'])} unreadable files skipped)")
    return 0 if shards else 1
