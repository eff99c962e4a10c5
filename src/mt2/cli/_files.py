"""Shared by the per-file subcommands (``mt2 embed``, ``mt2 key``): finding audio files,
loading the encoder, and the loop that reports a bad file in one line and goes on."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

#: Extensions picked up when walking a folder (formats libsndfile decodes).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".snd")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Inputs, model and compute flags that every per-file subcommand takes."""
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH",
        help="audio files, or folders searched recursively for " + ", ".join(AUDIO_EXTENSIONS),
    )
    from mt2.inference.checkpoint import SHIPPED_MODELS
    from mt2.inference.windows import DEFAULT_BATCH_SIZE

    parser.add_argument(
        "--model", default="mt2",
        help=f"shipped model name ({', '.join(SHIPPED_MODELS)}) or folder written by save_pretrained (default: mt2)",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"4-s windows per forward pass (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available, else cpu)")


def find_audio(paths: list[Path]) -> list[tuple[Path, Path]]:
    """``(file, name relative to its input)`` for every input: a file stands for itself
    (whatever its extension), a folder for its audio files at any depth, in sorted order."""
    found = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            found += [(p, p.relative_to(path)) for p in files]
        else:
            found.append((path, Path(path.name)))
    return found


def find_audio_or_report(paths: list[Path]) -> list[tuple[Path, Path]]:
    """:func:`find_audio`, printing one error line on stderr when nothing is found (then ``[]``)."""
    found = find_audio(paths)
    if not found:
        print(f"error: no audio files found in {', '.join(map(str, paths))}", file=sys.stderr)
    return found


def load_encoder(args: argparse.Namespace, check: Callable | None = None):
    """The encoder named by ``--model`` on ``--device``, or None after a one-line error.

    ``check(encoder)`` may raise ValueError to refuse a model unfit for the command."""
    import torch

    from mt2.inference import load

    try:
        encoder = load(args.model)
        if check is not None:
            check(encoder)
    except (ValueError, OSError) as error:
        print(f"error: model {args.model}: {_one_line(error)}", file=sys.stderr)
        return None
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return encoder.to(device)


def for_each_file(files: list[tuple[Path, Path]], work: Callable[[Path, Path], None], desc: str) -> int:
    """Call ``work(file, relative)`` for each file under a progress bar.

    A file that fails (unreadable or damaged audio, bad values) prints one line on stderr
    naming it and the reason, and the loop goes on. Returns the exit status: 0 if every
    file succeeded, 1 otherwise.
    """
    from tqdm import tqdm

    from mt2.audio import AudioError

    failed = 0
    for path, relative in tqdm(files, desc=desc, unit="file", disable=None):
        try:
            work(path, relative)
        except AudioError as error:  # its message already names the file
            failed += 1
            tqdm.write(f"error: {_one_line(error)}", file=sys.stderr)
        except (ValueError, OSError) as error:
            failed += 1
            tqdm.write(f"error: {path}: {_one_line(error)}", file=sys.stderr)
    return int(failed > 0)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
