"""``mt2 study``: the recipe study (train small models for a fixed number of steps, measure)."""
from __future__ import annotations

import argparse
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
    parser.add_argument("--corpus", type=Path, required=True, help="folder written by `mt2 corpus render` (with manifest.jsonl)")
    parser.add_argument("--configs", default="pc", help=f"comma-separated configuration names; overlays of the shipped recipe (mt2.study.OVERLAYS): {', '.join(sorted(OVERLAYS))}")
    parser.add_argument("--steps", type=int, default=PretrainConfig.max_steps,
                        help=f"training steps per configuration (batch {PretrainConfig.batch_size} tracks; default: the recipe's {PretrainConfig.max_steps})")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, batches and evaluation shifts")
    parser.add_argument("--out", type=Path, default=Path("runs/study"), help="output folder (runs.jsonl, table.md, cache/)")
    parser.add_argument("--evaluate", type=Path, nargs="+", metavar="FOLDER", help="instead of training, evaluate exported models (mt2 export folders) and add them to the table")
    parser.add_argument(
        "--transpositions", type=_pieces, default=0, metavar="PIECES",
        help="after each run, render PIECES generated pieces in all 12 transpositions with TimGM6mb and Merlin and measure "
        "whether the key estimate moves with the music (mt2.study.transposition; columns 'transp. TimGM' and 'transp. Merlin', "
        "details under 'transpositions' in runs.jsonl; a trained run uses the calibration fitted by its evaluation); "
        "0 = off (default: 0)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from mt2.study import evaluate_pretrained, run_study

    torch.set_num_threads(args.threads)
    if args.evaluate:
        evaluate_pretrained(args.corpus, args.evaluate, args.out, seed=args.seed, transpositions=args.transpositions)
    else:
        names = [n.strip() for n in args.configs.split(",") if n.strip()]
        run_study(args.corpus, names, args.steps, args.out, args.seed, transpositions=args.transpositions)
    print((args.out / "table.md").read_text())
    return 0
