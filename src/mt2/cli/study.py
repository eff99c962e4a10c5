"""``mt2 study``: the recipe study (train small models for a fixed number of steps, measure)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _pieces(text: str) -> int:
    """A count of pieces for ``--transpositions``: 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} pieces: give 1 or more pieces to measure, or 0 for no measure")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from mt2.study import OVERLAYS
    from mt2.training.config import PretrainConfig

    parser = sub.add_parser(
        "study",
        help="recipe study: train named configurations on the corpus and report key and instrument probes",
        description="Train each named configuration for --steps steps on the corpus train split, evaluate on "
        "its test split, append a JSON line per run to OUT/runs.jsonl and rewrite OUT/table.md.",
    )
    parser.add_argument("--corpus", type=Path, default=None, help="folder written by `mt2 corpus render` (with manifest.jsonl); required unless --timeline")
    parser.add_argument("--configs", default="pc", help=f"comma-separated configuration names; overlays of the shipped recipe (mt2.study.OVERLAYS): {', '.join(sorted(OVERLAYS))}")
    parser.add_argument("--steps", type=int, default=PretrainConfig.max_steps,
                        help=f"training steps per configuration (batch {PretrainConfig.batch_size} tracks; default: the recipe's {PretrainConfig.max_steps})")
    parser.add_argument("--seed", type=int, default=PretrainConfig.seed, help=f"seed of initialisation, batches and evaluation shifts (default: the recipe's {PretrainConfig.seed})")
    parser.add_argument("--out", type=Path, default=Path("runs/study"), help="output folder (runs.jsonl, table.md, cache/)")
    parser.add_argument("--evaluate", type=Path, nargs="+", metavar="FOLDER", help="instead of training, evaluate exported models (mt2 export folders) and add them to the table")
    parser.add_argument(
        "--transpositions", type=_pieces, default=0, metavar="PIECES",
        help="after each run, render PIECES generated pieces in all 12 transpositions with TimGM6mb and Merlin and measure "
        "whether the key estimate moves with the music (mt2.study.transposition; columns 'transp. TimGM' and 'transp. Merlin', "
        "details under 'transpositions' in runs.jsonl; a trained run uses the calibration fitted by its evaluation); "
        "0 = off (default: 0)",
    )
    parser.add_argument(
        "--timeline", type=Path, default=None, metavar="FOLDER",
        help="instead of training: measure the key timeline (mt2.study.timeline) on FOLDER, rendered with `mt2 corpus "
        "render FOLDER --size modulations --seed S`: MIREX-weighted share of time with the right local key, boundaries "
        "found within 2 s, boundary error, spurious switches on pieces in one key, for MT2 (--model) and a template "
        "baseline on the same windows, with paired bootstrap intervals; writes OUT/timeline.md and OUT/timeline.json",
    )
    parser.add_argument("--timeline-valid", type=Path, default=None, metavar="FOLDER",
                        help="with --timeline: a modulations corpus of another seed on which each system's switch penalty is tuned "
                        "(default: no tuning, the default penalty for both)")
    parser.add_argument(
        "--no-key", action="store_true",
        help="instead of training: measure the no-key rule (mt2.study.no_key) on generated noise and silence, on excerpts of "
        "the --real corpus's --real-splits tracks (alone and with 0 dB noise) and on the --corpus clips (alone and with 10 and "
        "0 dB noise), with --model; writes OUT/no_key.md (the table of mt2.inference.key_decision) and OUT/no_key.jsonl",
    )
    parser.add_argument("--real", type=Path, default=None, metavar="FOLDER",
                        help="a real-music corpus written by `mt2 corpus real`; with training or --evaluate, each row also gets the "
                        "real-music measures (transpositions followed, no key, same-track top-1, soundtrack kNN; "
                        "mt2.evaluation.real_music); the rows with a real share (pc-real25, pc-real50, pc-real100) also train on "
                        "crops of its training tracks, as `mt2 pretrain` with real_data does")
    parser.add_argument("--real-splits", default="train,valid,test", help="with --no-key: comma-separated splits of --real to measure (default: all)")
    parser.add_argument("--model", default="mt2", help="with --timeline or --no-key: shipped model name or saved folder (default: mt2)")
    parser.add_argument("--passes", type=int, default=None, help="with --timeline: embedding passes (default: mt2.inference.timeline.DEFAULT_PASSES)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice, as mt2 bench and mt2 pretrain)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from mt2.study import evaluate_pretrained, run_study

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.timeline is not None:
        from mt2.inference import load
        from mt2.inference.timeline import DEFAULT_PASSES
        from mt2.study.timeline import report_lines, run_timeline_study

        result = run_timeline_study(load(args.model), args.timeline, args.timeline_valid, args.out, args.passes or DEFAULT_PASSES)
        print("\n".join(report_lines(result)))
        return 0
    if args.no_key:
        from mt2.inference import load
        from mt2.study.no_key import fit_noise_model, measure, write

        encoder = load(args.model)
        splits = tuple(name.strip() for name in args.real_splits.split(",") if name.strip())
        rows = measure(encoder, args.real, args.corpus, splits, seed=args.seed, warn=lambda m: print(m, file=sys.stderr))
        write(rows, args.out, fit_noise_model(encoder))
        print((args.out / "no_key.md").read_text())
        return 0
    if args.corpus is None:
        print("error: --corpus is required (unless --timeline or --no-key)", file=sys.stderr)
        return 2
    if args.evaluate:
        evaluate_pretrained(args.corpus, args.evaluate, args.out, seed=args.seed, transpositions=args.transpositions, real=args.real)
    else:
        names = [n.strip() for n in args.configs.split(",") if n.strip()]
        run_study(args.corpus, names, args.steps, args.out, args.seed, transpositions=args.transpositions, real=args.real)
    print((args.out / "table.md").read_text())
    return 0
