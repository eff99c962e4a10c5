"""``mt2 perf``: measure embedding speed, memory, training speed and the data pipeline."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _minutes(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated minutes, e.g. 10,30,60; got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"durations must be positive, got {text!r}")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    from mt2.perf import SECTIONS
    from mt2.perf.run import PerfOptions

    defaults = PerfOptions()
    parser = sub.add_parser(
        "perf",
        help="measure speed and memory: MT2 against a MERT-95M-shaped network, long files, training",
        description="Measure, in one process with one thread count and on the same decoded audio: the realtime "
        "factor, parameters and FLOPs of Encoder.embed for mt2-tiny (its preset shape, the plain layout, and 4 "
        "frames per token) with each CQT backend, and of a MERT-95M-shaped network with random weights; the fast "
        "CQT backend's agreement with nnAudio; peak memory and time of Encoder.embed_file on long generated files "
        "(one child process each); training steps per second and data-pipeline throughput. Writes a Markdown "
        "report with a figure and a JSON file. Timings on a machine shared with other work are slower: the report "
        "records the load average.",
    )
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help=f"seconds of music for the speed measurements (default: {defaults.seconds:g})")
    parser.add_argument("--json", type=Path, default=Path("docs/perf/perf.json"), help="JSON output (default: docs/perf/perf.json)")
    parser.add_argument(
        "--report", type=Path, default=Path("docs/perf/perf.md"),
        help="Markdown report; its figure is written beside it with the suffix .png (default: docs/perf/perf.md)",
    )
    parser.add_argument("--threads", type=int, default=defaults.threads, help=f"torch threads for every measurement (default: {defaults.threads})")
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help=f"timed repetitions; the best is kept (default: {defaults.repeats})")
    parser.add_argument(
        "--audio", type=Path, default=None,
        help="music file or folder (searched recursively) to measure on; default: synthetic scales and cadences. "
        "Real music makes the CQT agreement check meaningful",
    )
    parser.add_argument("--minutes", type=_minutes, default=defaults.minutes,
                        help=f"durations of the long files, comma-separated (default: {','.join(f'{m:g}' for m in defaults.minutes)})")
    parser.add_argument("--train-steps", type=int, default=defaults.train_steps, help=f"timed training steps per preset (default: {defaults.train_steps})")
    parser.add_argument("--train-batch", type=int, default=defaults.train_batch, help=f"tracks per training batch (default: {defaults.train_batch})")
    parser.add_argument("--compile", action="store_true", help="also try torch.compile on the model (compilation takes minutes)")
    parser.add_argument(
        "--only", default=",".join(SECTIONS),
        help=f"comma-separated sections to run, from {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke test: mt2-mini instead of mt2-tiny, a small MERT-shaped network, mt2-mini training only; "
        "pair with small --seconds, --minutes and --train-batch",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mt2.perf.report import write_report
    from mt2.perf.run import PerfOptions, run_perf

    try:
        options = PerfOptions(
            seconds=args.seconds, threads=args.threads, repeats=args.repeats, audio=args.audio, minutes=args.minutes,
            train_steps=args.train_steps, train_batch=args.train_batch, compile_model=args.compile, quick=args.quick,
            sections=tuple(s for s in args.only.split(",") if s),
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results = run_perf(options, log=lambda message: print(message, file=sys.stderr, flush=True))
    write_report(results, args.report, args.json)
    print(f"wrote {args.report} and {args.json}")
    return 0
