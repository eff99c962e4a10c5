"""What a benchmark run depends on (:class:`BenchConfig`, written to results.json) and its
defaults; :mod:`mt2.bench.runner` runs it, :mod:`mt2.bench.loading` loads its systems and data,
``mt2 bench`` builds it from its flags (the CLI restates no default)."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from mt2.bench import TASKS
from mt2.bench.features import ZERO_SHOT
from mt2.bench.probe import STEPS
from mt2.evaluation.stats import RESAMPLES
from mt2.inference import READOUTS
from mt2.inference.windows import DEFAULT_BATCH_SIZE

#: ``--data`` naming the embedded corpus (rendered once into the cache folder).
CORPUS = "corpus"

#: The systems of a default run, in table order. A new shipped variant is one more name here
#: (the ``masked`` variant's claim in :data:`mt2.bench.claims.CLAIMS` waits for it).
DEFAULT_MODELS = ("mt2", "equivariant", "contrastive", "masked", "random:mt2")
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_READOUTS = (*READOUTS, ZERO_SHOT)
#: The field's key estimators a run can add as zero-shot key rows (:mod:`mt2.bench.key_estimators`).
KEY_ESTIMATORS = ("essentia-edma", "essentia-bgate", "madmom")


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/mt2/bench`` (``~/.cache/mt2/bench``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mt2" / "bench"


@dataclass
class BenchConfig:
    """Everything a run depends on (written to results.json)."""

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    readouts: list[str] = field(default_factory=lambda: list(DEFAULT_READOUTS))
    layers: list[int] = field(default_factory=lambda: [-1])
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    data: str = CORPUS
    out: Path = Path("bench-results")
    cache: Path | None = field(default_factory=default_cache)
    encoders: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    probe_steps: int = STEPS
    resamples: int = RESAMPLES
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str | None = None
    corpus_size: str = "small"
    corpus_seed: int = 0
    progress: bool = True
    real: str | None = None  # a real-music corpus (mt2 corpus real): the real-recordings section (mt2.bench.real)
    real_only: bool = False  # only that section, no corpus tasks
    key_estimators: list[str] = field(default_factory=list)  # zero-shot key rows of KEY_ESTIMATORS (mt2.bench.key_estimators)
    # (candidate, shipped) model pairs of the ship gate (mt2.bench.gate): results.json gets their paired rows
    gate_pairs: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown tasks {unknown}; known: {', '.join(TASKS)}")
        unknown = [r for r in self.readouts if r not in DEFAULT_READOUTS]
        if unknown:
            raise ValueError(f"unknown readouts {unknown}; known: {', '.join(DEFAULT_READOUTS)}")
        unknown = [k for k in self.key_estimators if k not in KEY_ESTIMATORS]
        if unknown:
            raise ValueError(f"unknown key estimators {unknown}; known: {', '.join(KEY_ESTIMATORS)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds}: give one or more distinct probe seeds (three or more for a spread)")
        unpaired = [name for pair in self.gate_pairs for name in pair if name not in self.models]
        if unpaired:
            raise ValueError(f"the gate's models {unpaired} are not among the run's models {self.models}")
        if self.gate_pairs and (self.real is None or self.real_only or "key" not in self.tasks):
            raise ValueError("the ship gate reads the real-music measures and the corpus key task: give --real DIR, "
                             "no --real-only, and the key task")

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}
