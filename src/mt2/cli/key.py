"""``mt2 key``: the key of each audio file."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mt2.cli._files import add_common_arguments, find_audio_or_report, for_each_file, load_encoder


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "key",
        help="estimate the key of audio files from the equivariant token",
        description="Print one line per file: path<TAB>key<TAB>signature<TAB>confidence. The key signature comes "
        "from the self-supervised equivariant token (calibrated on rendered reference pieces); major versus minor from "
        "the model's mode probe if it stores one, otherwise from Krumhansl-Kessler templates. Silence and noise have "
        "no key: their key is X (mir_eval's no-key label) and their signature 'no key'. A file that cannot "
        "be read is reported on one stderr line and skipped; the exit status is 1 if any file failed.",
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--json", action="store_true",
        help="print one JSON list instead of lines: objects with path, key (X: no key), has_key, tonic, mode, signature (relative-major pitch class, C = 0), signature_name, confidence, profile (12 "
        "signature probabilities), mode_source, level_db (input RMS level, dB full scale; null: digital silence) and tonality (below 1.4: noise, no key)",
    )
    parser.add_argument(
        "--labels", type=Path, default=None, metavar="MANIFEST",
        help="a corpus manifest (manifest.jsonl, or the folder holding it; paths relative to it) with a 'key' per "
        "clip, e.g. from mt2 corpus render: score the estimates against it and print the key metrics on stderr "
        "(key signature, within one fifth, exact key, mode where the signature is right, MIREX weighted; a no-key "
        "estimate counts as wrong); with --json every object gets 'label', the manifest's key",
    )
    parser.add_argument(
        "--split", choices=("train", "valid", "test"), default=None,
        help="with --labels: only the files of this split of the manifest (e.g. the corpus test split)",
    )
    timeline = parser.add_argument_group("key over time (--timeline; mt2.inference.timeline)")
    timeline.add_argument(
        "--timeline", action="store_true",
        help="the local key over time instead of one key per file: segments (start, end, key, confidence), one line "
        "per segment (path, start s, end s, key, confidence); key X: no key (silence, noise). With --json, one object per "
        "file with duration, switch_penalty, hop and segments",
    )
    timeline.add_argument(
        "--switch-penalty", type=float, default=None, metavar="NATS",
        help="with --timeline: log-probability a key change must win by (nats); larger: fewer, surer changes, 0: each "
        "window's own key (default: mt2.inference.timeline.DEFAULT_SWITCH_PENALTY, tuned on rendered modulating pieces)",
    )
    timeline.add_argument(
        "--passes", type=int, default=None,
        help="with --timeline: embedding passes, each shifted by 1/PASSES of the 4-s window; the hop between key "
        "decisions is 4 s / PASSES (default: mt2.inference.timeline.DEFAULT_PASSES)",
    )
    timeline.add_argument("--csv", type=Path, default=None, metavar="FILE.csv",
                          help="with --timeline: also write the segments of every file as CSV (path,start,end,key,confidence)")
    timeline.add_argument(
        "--plot", type=Path, default=None, metavar="FILE.png",
        help="with --timeline: draw the key strip over time with the confidence beneath (needs matplotlib); with several "
        "files, one picture each, named FILE-<file name>.png",
    )
    parser.set_defaults(func=run)


def read_key_labels(manifest: Path, split: str | None = None) -> dict[Path, str | None]:
    """Resolved audio path -> reference key name (None where the clip has no key) for the
    manifest's clips, or those of one split."""
    from mt2.corpus import read_manifest

    folder = manifest if manifest.is_dir() else manifest.parent
    return {(folder / r["path"]).resolve(): r.get("key") for r in read_manifest(manifest) if split in (None, r.get("split"))}


def report_scores(results: list[dict]) -> None:
    """Print the key metrics of the results that have a ``label`` on stderr (one line per metric)."""
    from mt2.inference import NO_KEY
    from mt2.keys import key_scores

    scored = [(r["label"], r["key"]) for r in results if r["label"]]
    if not scored:
        print("labels: none of the files has a key in the manifest; nothing scored", file=sys.stderr)
        return
    scores = key_scores([ref for ref, _ in scored], [est for _, est in scored])
    print(f"scored {len(scored)} of {len(results)} files against their labels:", file=sys.stderr)
    for name, title in (("signature", "key signature"), ("within_fifth", "signature within one fifth"),
                        ("accuracy", "exact key"), ("mode", "mode where signature right"), ("weighted", "MIREX weighted")):
        print(f"  {title:28s} {scores[name]:.3f}", file=sys.stderr)
    print(f"  {'no key (X) estimated':28s} {sum(est == NO_KEY for _, est in scored)} files", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if not args.timeline and (args.csv or args.plot or args.switch_penalty is not None or args.passes is not None):
        print("error: --csv, --plot, --switch-penalty and --passes go with --timeline", file=sys.stderr)
        return 2
    if args.timeline and args.labels is not None:
        print("error: --labels scores one key per file; for timelines use mt2 study --timeline", file=sys.stderr)
        return 2
    if args.split is not None and args.labels is None:
        print("error: --split needs --labels (the manifest that says which file is in which split)", file=sys.stderr)
        return 2
    try:
        labels = read_key_labels(args.labels, args.split) if args.labels is not None else {}
    except (OSError, ValueError, KeyError) as error:
        print(f"error: labels {args.labels}: cannot read a manifest ({error})", file=sys.stderr)
        return 2
    files = find_audio_or_report(args.paths)
    if args.split is not None:
        files = [(path, relative) for path, relative in files if path.resolve() in labels]
        if not files:
            print(f"error: none of the files is in the {args.split} split of {args.labels}", file=sys.stderr)
            return 2
    if not files:
        return 2
    encoder = load_encoder(args, lambda e: e.check_key_support())
    if encoder is None:
        return 2
    if args.timeline:
        return run_timeline(args, encoder, files)
    results = []

    def key_one(path, relative) -> None:
        estimate = encoder.key_file(path, batch_size=args.batch_size)
        result = {"path": str(path), **estimate.to_dict()}
        if args.labels is not None:
            result["label"] = labels.get(path.resolve())
        results.append(result)
        if not args.json:
            signature = estimate.signature_name if estimate.has_key else "no key"
            tqdm.write(f"{path}\t{estimate.label}\t{signature}\t{estimate.confidence:.3f}", file=sys.stdout)

    status = for_each_file(files, key_one, "key")
    if args.json:
        print(json.dumps(results, indent=2))
    if args.labels is not None:
        report_scores(results)
    return status


def run_timeline(args: argparse.Namespace, encoder, files) -> int:
    """``mt2 key --timeline``: segments per file on stdout (lines or JSON), optional CSV and pictures."""
    import csv

    from tqdm import tqdm

    from mt2.inference.timeline import DEFAULT_PASSES, DEFAULT_SWITCH_PENALTY

    options = {"switch_penalty": DEFAULT_SWITCH_PENALTY if args.switch_penalty is None else args.switch_penalty,
               "passes": DEFAULT_PASSES if args.passes is None else args.passes, "batch_size": args.batch_size}
    if options["switch_penalty"] < 0 or options["passes"] < 1:
        print("error: --switch-penalty must be >= 0 and --passes >= 1", file=sys.stderr)
        return 2
    if args.plot is not None:
        from mt2.cli._timeline import plot_paths, plot_timeline

        pictures = dict(zip((p for p, _ in files), plot_paths(args.plot, [p for p, _ in files])))
    results, rows = [], []

    def timeline_one(path, relative) -> None:
        timeline = encoder.key_timeline_file(path, **options)
        results.append({"path": str(path), **timeline.to_dict()})
        from mt2.cli._timeline import csv_rows

        rows.extend(csv_rows(path, timeline))
        if not args.json:
            for s in timeline.segments:
                tqdm.write(f"{path}\t{s.start:.2f}\t{s.end:.2f}\t{s.label}\t{s.confidence:.3f}", file=sys.stdout)
        if args.plot is not None:
            plot_timeline(timeline, pictures[path], f"{path.name}: local key (switch penalty {timeline.switch_penalty:g})")

    status = for_each_file(files, timeline_one, "key timeline")
    if args.json:
        print(json.dumps(results, indent=2))
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "start", "end", "key", "confidence"])
            writer.writerows(rows)
    return status
