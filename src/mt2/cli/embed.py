"""``mt2 embed``: one embedding file per audio file."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mt2.cli._files import add_common_arguments, find_audio_or_report, for_each_file, load_encoder

FORMATS = ("npz", "safetensors")


def register(sub: argparse._SubParsersAction) -> None:
    import inspect

    from mt2.inference import READOUTS, Encoder

    defaults = {name: parameter.default for name, parameter in inspect.signature(Encoder.embed_file).parameters.items()}
    parser = sub.add_parser(
        "embed",
        help="embed audio files: clip, per-window and per-frame embeddings",
        description="Embed each audio file and write OUT/<relative path>.<format> holding the arrays clip (D,), "
        "windows (W, D), class_tokens (W, K, D), frames (F, D), timestamps (F,) in seconds, window_starts and "
        "window_lengths (W,) in seconds, and a JSON string 'metadata'. A file that cannot be read is reported "
        "on one stderr line and skipped; the exit status is 1 if any file failed.",
    )
    add_common_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder; the folder structure of each input folder is kept")
    parser.add_argument(
        "--readout", default=defaults["readout"], choices=READOUTS,
        help="embedding of the clip and of each window: a class token by role, the mean of the class tokens "
        f"(average) or the mean of the frame tokens (frames) (default: {defaults['readout']})",
    )
    parser.add_argument("--layer", type=int, default=defaults["layer"],
                        help=f"transformer block whose tokens are read; negative counts from the end (default: {defaults['layer']})")
    parser.add_argument("--format", default="npz", choices=FORMATS, help="output file format (default: npz; neither needs pickle to read)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    files = find_audio_or_report(args.paths)
    if not files:
        return 2
    encoder = load_encoder(args, lambda e: e.check_readout(args.readout, args.layer))
    if encoder is None:
        return 2
    written: dict[Path, Path] = {}

    def embed_one(path: Path, relative: Path) -> None:
        target = args.out / relative.parent / f"{relative.name}.{args.format}"
        if target in written:
            raise ValueError(f"its output {target} was already written for {written[target]}")
        embedding = encoder.embed_file(path, readout=args.readout, layer=args.layer, batch_size=args.batch_size)
        metadata = {"source": str(path), "model": args.model, "readout": args.readout, "layer": args.layer, "roles": list(embedding.roles)}
        target.parent.mkdir(parents=True, exist_ok=True)
        save(target, embedding.arrays(), metadata, args.format)
        written[target] = path

    return for_each_file(files, embed_one, "embed")


def save(target: Path, arrays: dict, metadata: dict, fmt: str) -> None:
    """Write ``arrays`` and a JSON ``metadata`` string as npz (a 0-d string array) or safetensors (header metadata)."""
    import numpy as np

    if fmt == "npz":
        with open(target, "wb") as handle:  # np.savez would append .npz to a str path
            np.savez(handle, **arrays, metadata=np.array(json.dumps(metadata)))
    else:
        from safetensors.numpy import save_file

        save_file({name: np.ascontiguousarray(value) for name, value in arrays.items()}, target, metadata={"metadata": json.dumps(metadata)})
