"""The systems and the datasets of a benchmark run (:class:`mt2.bench.config.BenchConfig`;
:mod:`mt2.bench.runner`'s module docstring says what they are): ``--models`` and ``--encoder``
entries loaded, or the reason they are missing; ``--data`` read as the embedded corpus, a
rendered corpus folder (with its cross-font test sets) or a folder of real datasets."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mt2.bench.config import CORPUS, BenchConfig
from mt2.bench.features import EXTERNAL_READOUT, ZERO_SHOT, EncoderExtractor, load_external
from mt2.data.real import LOADERS, Example, load_dataset

RANDOM_PREFIX = "random:"


@dataclass
class System:
    """A model under test, or why it could not be loaded (``error``)."""

    label: str
    kind: str  # "pretrained", "random" or "external"
    roles: tuple[str, ...] = ()
    extractor: object | None = None
    readouts: tuple[str, ...] = ()
    layers: tuple[int | None, ...] = ()
    parameters: int | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "label": self.label, "kind": self.kind, "status": "missing" if self.error else "ok", "error": self.error,
            "roles": list(self.roles), "readouts": list(self.readouts), "parameters": self.parameters,
            "weights_hash": getattr(self.extractor, "weights_hash", None), "notes": self.notes,
        }


def random_encoder(source, seed: int):
    """The network of encoder ``source`` rebuilt with random weights (seeded), same frontend, no calibration."""
    from mt2 import Encoder, build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # every config field is overridden, so the preset and variant named here do not matter
        model = build_model("mt2-mini", "mt2", **source.config.to_dict())
    return Encoder(model, compression=source.compression, offset=source.offset, training={"note": f"random weights, seed {seed}"})


def load_systems(config: BenchConfig) -> list[System]:
    """Every ``--models`` and ``--encoder`` entry, loaded or with the reason it is missing."""
    from mt2 import load

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    systems = []
    for spec in config.models:
        kind = "random" if spec.startswith(RANDOM_PREFIX) else "pretrained"
        try:
            encoder = load(spec.removeprefix(RANDOM_PREFIX))
            if kind == "random":
                encoder = random_encoder(encoder, config.seeds[0])
            encoder = encoder.to(device)
        except (ValueError, OSError) as error:  # CheckpointError is a ValueError
            systems.append(System(spec, kind, error=" ".join(str(error).split())))
            continue
        readouts = [r for r in config.readouts if r in encoder.readouts]
        if ZERO_SHOT in config.readouts and _supports_key(encoder):
            readouts.append(ZERO_SHOT)
        depth = encoder.config.depth
        layers = tuple(layer for layer in config.layers if -depth <= layer < depth)
        notes = [f"layer {layer} left out: the model has {depth} blocks" for layer in config.layers if layer not in layers]
        notes += [f"readout {r!r} left out: " + ("it needs an equivariant class token and a stored calibration"
                  if r == ZERO_SHOT else "the model has no such class token") for r in config.readouts if r not in readouts]
        systems.append(System(
            spec, kind, tuple(encoder.config.roles), EncoderExtractor(spec, encoder, config.batch_size), tuple(readouts), layers,
            sum(p.numel() for p in encoder.parameters()), notes=notes,
        ))
    for spec in config.encoders:
        try:
            extractor = load_external(spec)
        except (ImportError, AttributeError, ValueError, TypeError, OSError) as error:
            systems.append(System(spec, "external", error=f"{type(error).__name__}: {error}"))
            continue
        parameters = sum(p.numel() for p in extractor.model.parameters()) if isinstance(extractor.model, torch.nn.Module) else None
        systems.append(System(spec, "external", (), extractor, (EXTERNAL_READOUT,), (None,), parameters))
    return systems


def _supports_key(encoder) -> bool:
    try:
        encoder.check_key_support()
    except ValueError:
        return False
    return True


def corpus_examples(folder: Path) -> list[Example]:
    """The clips of a rendered corpus as :class:`~mt2.data.real.Example` (labels: the manifest row)."""
    from mt2.corpus import read_manifest

    return [Example(folder / row["path"], row["split"], row) for row in read_manifest(folder)]


@dataclass
class Dataset:
    """A dataset's examples and its further test sets (``<name>/<font>``: test examples only)."""

    name: str
    examples: list[Example]
    cross_tests: dict[str, list[Example]] = field(default_factory=dict)
    corpus: dict | None = None  # a rendered corpus's corpus.json (size, seed, soundfont, counts)


def _corpus(folder: Path) -> Dataset:
    from mt2.corpus.build import CROSS_FONT_FOLDER

    fonts = sorted(p.parent for p in (folder / CROSS_FONT_FOLDER).glob("*/manifest.jsonl"))
    cross = {f"{CORPUS}/{font.name}": [e for e in corpus_examples(font) if e.split == "test"] for font in fonts}
    summary = folder / "corpus.json"
    return Dataset(CORPUS, corpus_examples(folder), cross, json.loads(summary.read_text()) if summary.is_file() else None)


def load_datasets(config: BenchConfig) -> list[Dataset]:
    """The datasets of ``config.data`` (module docstring).

    Raises:
        ValueError: a folder that is neither a corpus nor holds any known dataset folder.
    """
    if config.data == CORPUS:
        from mt2.corpus import render_corpus

        folder = (config.cache or config.out) / f"corpus-{config.corpus_size}-seed{config.corpus_seed}"
        if not (folder / "manifest.jsonl").is_file():
            print(f"rendering the {config.corpus_size} corpus into {folder} (once)", file=sys.stderr)
            render_corpus(folder, config.corpus_size, config.corpus_seed, progress=config.progress)
        return [_corpus(folder)]
    root = Path(config.data)
    if (root / "manifest.jsonl").is_file():
        return [_corpus(root)]
    found = [Dataset(name, load_dataset(name, root / name)) for name in LOADERS if (root / name).is_dir()]
    if not found:
        raise ValueError(f"{root}: neither a corpus folder (manifest.jsonl) nor a folder of datasets ({', '.join(LOADERS)})")
    return found
