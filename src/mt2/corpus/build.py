"""Planning and running a corpus render: sizes, splits, jobs, workers, manifest, summary.

A render is planned as one job per piece, entirely from the seed, before any work
starts; each job draws everything else (meter, tempo, transpositions, programs,
velocities) from its own generator seeded by ``(seed, piece_id)``. Results therefore do
not depend on the number of workers or the order in which jobs finish: two renders with
the same seed give a byte-identical manifest and identical audio.

Splits are by piece. A piece's split is a hash of its id with a fixed salt
(:func:`split_of`, about 70/15/15), the same in every size and seed, so a chorale that is
a test piece in one corpus is a test piece in all of them and no transposition of it
reaches training. Generated pieces have the seed in their id (another seed, other
music). Chorales are drawn per split in 70/15/15 proportion. Single notes are split per
program (:func:`mt2.corpus.notes.note_splits`).

The ``bench`` size is the benchmark's corpus: its generated pieces and single notes are cut
40/15/45 (:attr:`SizeSpec.shares`) so that every task has hundreds of test clips, and it is
**disjoint from the pretraining corpus** of the shipped weights (``medium``, seed 7,
:data:`PRETRAINING`): a piece of that corpus's train split never lands in the bench
corpus's valid or test split (:func:`plan` moves it to train). Chorales need no move
(their split is the same in every corpus), generated pieces of another seed are other
pieces, and single notes are the ones moved. Its test split is rendered a second time
with another soundfont (:attr:`SizeSpec.cross_fonts`, ``fonts/<name>/`` beside the
manifest) for a cross-font test.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mt2.corpus import bach
from mt2.corpus.generator import STYLES, generate_piece
from mt2.corpus.instruments import INSTRUMENTS, orchestrate
from mt2.corpus.manifest import SPLITS, write_manifest
from mt2.corpus.modulation import MODULATIONS, generate_modulating_piece
from mt2.corpus.notes import NOTE_CLIP_SECONDS, make_note, note_piece_id, note_pitches, note_splits
from mt2.corpus.render import SAMPLE_RATE, check_soundfont, render_piece, soundfont_path
from mt2.keys import MODES

log = logging.getLogger(__name__)

#: Length of the clips cut from pieces (single notes: NOTE_CLIP_SECONDS).
CLIP_SECONDS = 12.0
#: Length of the one clip of each piece of the ``modulations`` size (seconds).
MODULATION_SECONDS = 36.0
#: Chorale transpositions are drawn from this range (semitones), all 12 offsets.
TRANSPOSITIONS = tuple(range(-5, 7))
_SPLIT_SALT = "mt2-corpus-split"
#: ``(train, valid, test)`` shares of :func:`split_of` (and of chorales in every size).
STANDARD_SHARES = (0.70, 0.15, 0.15)
#: ``(size, seed)`` of the corpus the shipped weights were pretrained on (its train split).
PRETRAINING = ("medium", 7)


@dataclass(frozen=True)
class SizeSpec:
    """How much of each source a size renders (``None``: all of it)."""

    generated: int  # generated pieces
    generated_clips: int  # clips per generated piece
    chorales: int | None  # chorales (before key verification drops some)
    chorale_transpositions: int  # renders of each chorale, at distinct transpositions
    chorale_clips: int | None  # clips per chorale render
    note_programs: int | None  # programs in the single-note subset
    note_pitches: int | None  # pitches per program (evenly spread over its range)
    #: (train, valid, test) shares of generated pieces and of each program's notes.
    shares: tuple[float, float, float] = STANDARD_SHARES
    #: (size, seed) of a corpus whose train pieces must stay out of this one's valid and test.
    disjoint_from: tuple[str, int] | None = None
    #: Soundfonts (names of :data:`mt2.corpus.render.SOUNDFONTS`) the test split is rendered in again.
    cross_fonts: tuple[str, ...] = ()
    #: None: ordinary generated pieces. A number: the generated pieces are rendered whole (one
    #: clip of :data:`MODULATION_SECONDS`) and this share of them changes key once or twice at
    #: bar lines (:func:`mt2.corpus.modulation.generate_modulating_piece`), the others keep one key.
    modulating: float | None = None


#: ``tiny`` is for tests (seconds to render); ``keys`` is one generated piece in each of the
#: 24 keys and nothing else (an acceptance set for key estimation: render it with a seed
#: other than the training corpus's and its pieces were never heard in training); the others
#: are measured in the docs; ``bench`` is the benchmark's (module docstring); ``modulations`` is
#: 72 generated pieces of 36 s, two thirds of them changing key once or twice, with
#: ``key_segments`` in the manifest (the key timeline's test material, ``mt2 study --timeline``).
SIZES = {
    "tiny": SizeSpec(6, 1, 2, 1, 1, 2, 3),
    "keys": SizeSpec(24, 1, 0, 1, 1, 0, 0),
    "small": SizeSpec(72, 1, 24, 1, 2, 8, 6),
    "medium": SizeSpec(400, 1, 120, 1, 4, None, 12),
    "large": SizeSpec(4000, 2, None, 3, None, None, None),
    "bench": SizeSpec(720, 1, 120, 1, 2, None, 24, (0.40, 0.15, 0.45), PRETRAINING, ("merlin",)),
    "modulations": SizeSpec(72, 1, 0, 1, 1, 0, 0, (0.0, 0.0, 1.0), modulating=2 / 3),
}


@dataclass(frozen=True)
class Job:
    """One piece to render; the source-specific fields are set for that source only."""

    source: str
    piece_id: str
    split: str
    seed: int
    max_clips: int | None = None
    chorale: str | None = None  # bach: music21 corpus name
    renders: int = 1  # bach: number of transpositions
    tonic: int | None = None  # generator
    mode: str | None = None  # generator
    style: str | None = None  # generator
    seconds: float = 0.0  # generator: length to compose
    program: int | None = None  # note
    pitch: int | None = None  # note
    changes: tuple[str, ...] | None = None  # generator, modulations size: key changes (None: an ordinary piece)


@dataclass(frozen=True)
class JobResult:
    """Records of a finished job, or why it produced none (``excluded`` or ``failed``)."""

    piece_id: str
    records: list
    status: str = "ok"
    reason: str = ""


def derive_seed(seed: int, *names: object) -> int:
    """A 64-bit seed from ``seed`` and names, stable across processes and platforms."""
    text = ":".join(str(x) for x in (seed, *names))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def split_of(piece_id: str, shares: tuple[float, float, float] = STANDARD_SHARES) -> str:
    """``train``/``valid``/``test`` in proportions ``shares`` from a salted hash of the piece id."""
    u = derive_seed(_SPLIT_SALT, piece_id) / 2**64
    return "train" if u < shares[0] else "valid" if u < shares[0] + shares[1] else "test"


def _proportional(n: int) -> dict[str, int]:
    """``n`` items cut 70/15/15 into the three splits."""
    valid = round(0.15 * n)
    test = round(0.15 * n)
    return {"train": n - valid - test, "valid": valid, "test": test}


def _bach_jobs(spec: SizeSpec, seed: int) -> list[Job]:
    names = list(bach.chorale_names())
    rng = np.random.default_rng(derive_seed(seed, "bach"))
    by_split = {split: [n for n in names if split_of(bach.piece_id_of(n)) == split] for split in SPLITS}
    chosen = []
    for split, names_in_split in by_split.items():
        order = [names_in_split[i] for i in rng.permutation(len(names_in_split))]
        count = len(order) if spec.chorales is None else _proportional(spec.chorales)[split]
        chosen.extend((name, split) for name in order[:count])
    return [
        Job(
            "bach",
            bach.piece_id_of(name),
            split,
            derive_seed(seed, bach.piece_id_of(name)),
            max_clips=spec.chorale_clips,
            chorale=name,
            renders=spec.chorale_transpositions,
        )
        for name, split in sorted(chosen)
    ]


def _generator_jobs(spec: SizeSpec, seed: int) -> list[Job]:
    rng = np.random.default_rng(derive_seed(seed, "keys"))
    keys: list[int] = []
    styles: list[str] = []
    while len(keys) < spec.generated:  # every key once per 24 pieces, every style once per 6
        keys.extend(int(k) for k in rng.permutation(24))
    while len(styles) < spec.generated:
        styles.extend(sorted(STYLES)[int(i)] for i in rng.permutation(len(STYLES)))
    seconds = spec.generated_clips * (CLIP_SECONDS + 4.0) - 4.0  # bars are at most 4 s
    jobs = []
    for i, (key, style) in enumerate(zip(keys[: spec.generated], styles)):
        piece_id = f"gen-{seed}-{i:05d}"
        jobs.append(
            Job(
                "generator",
                piece_id,
                split_of(piece_id, spec.shares),
                derive_seed(seed, piece_id),
                max_clips=spec.generated_clips,
                tonic=key % 12,
                mode=MODES[key // 12],
                style=style,
                seconds=seconds,
            )
        )
    return jobs


def _modulation_jobs(spec: SizeSpec, seed: int) -> list[Job]:
    """Generated pieces rendered whole; a share ``spec.modulating`` of them (spread evenly over
    the list) changes key once or twice, each change drawn from :data:`MODULATIONS`."""
    rng = np.random.default_rng(derive_seed(seed, "modulations"))
    keys = [int(k) for _ in range(-(-spec.generated // 24)) for k in rng.permutation(24)]
    styles = [sorted(STYLES)[int(i)] for _ in range(-(-spec.generated // len(STYLES))) for i in rng.permutation(len(STYLES))]
    kinds = sorted(MODULATIONS)
    jobs = []
    for i in range(spec.generated):
        modulates = int((i + 1) * spec.modulating) > int(i * spec.modulating)
        count = 1 + int(rng.integers(2))
        changes = tuple(kinds[int(k)] for k in rng.integers(len(kinds), size=count)) if modulates else ()
        piece_id = f"mod-{seed}-{i:05d}"
        jobs.append(Job(
            "generator", piece_id, split_of(piece_id, spec.shares), derive_seed(seed, piece_id), max_clips=1,
            tonic=keys[i] % 12, mode=MODES[keys[i] // 12], style=styles[i], seconds=MODULATION_SECONDS, changes=changes,
        ))
    return jobs


def _note_jobs(spec: SizeSpec, seed: int) -> list[Job]:
    rng = np.random.default_rng(derive_seed(seed, "notes"))
    programs = sorted(INSTRUMENTS)
    if spec.note_programs is not None:
        # spread over families: one program from each family in turn
        families: dict[str, list[int]] = {}
        for p in programs:
            families.setdefault(INSTRUMENTS[p].family, []).append(p)
        pools = [[group[i] for i in rng.permutation(len(group))] for group in families.values()]
        pools = [pools[i] for i in rng.permutation(len(pools))]
        picked = []
        while len(picked) < spec.note_programs and any(pools):
            picked.extend(pool.pop() for pool in pools if pool)
        programs = sorted(picked[: spec.note_programs])
    jobs = []
    for program in programs:
        pitches = note_pitches(program, spec.note_pitches)
        split_rng = np.random.default_rng(derive_seed(seed, "note-split", program))
        splits = note_splits(pitches, split_rng) if spec.shares == STANDARD_SHARES else _cut(pitches, spec.shares, split_rng)
        for pitch in pitches:
            piece_id = note_piece_id(program, pitch)
            jobs.append(Job("note", piece_id, splits[pitch], derive_seed(seed, piece_id), program=program, pitch=pitch))
    return jobs


def _cut(items: list, shares: tuple[float, float, float], rng: np.random.Generator) -> dict:
    """Items shuffled and cut into train/valid/test by ``shares`` (rounded counts)."""
    order = [items[i] for i in rng.permutation(len(items))]
    n_valid, n_test = round(shares[1] * len(order)), round(shares[2] * len(order))
    labels = ["train"] * (len(order) - n_valid - n_test) + ["valid"] * n_valid + ["test"] * n_test
    return dict(zip(order, labels))


def plan(size: str, seed: int) -> list[Job]:
    """Every job of a render, chorales first (the slowest), in a fixed order.

    With ``disjoint_from`` set, a valid or test job whose piece is in that corpus's train
    split becomes a train job.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
    spec = SIZES[size]
    generated = _generator_jobs(spec, seed) if spec.modulating is None else _modulation_jobs(spec, seed)
    jobs = _bach_jobs(spec, seed) + generated + _note_jobs(spec, seed)
    if spec.disjoint_from is not None:
        heard = {job.piece_id for job in plan(*spec.disjoint_from) if job.split == "train"}
        jobs = [replace(job, split="train") if job.split != "train" and job.piece_id in heard else job for job in jobs]
    return jobs


def run_job(job: Job, out: Path, soundfont: bytes) -> list[dict]:
    """Build the job's piece(s), assign programs and render them; return the records.

    Raises:
        bach.ChoraleRejected: the chorale is left out by design.
        Exception: anything else that went wrong with this piece.
    """
    rng = np.random.default_rng(job.seed)
    if job.source == "bach":
        source = bach.load_chorale(job.chorale, rng)
        offsets = rng.choice(TRANSPOSITIONS, size=job.renders, replace=False)
        pieces = [source.transposed(int(k)) for k in sorted(offsets)]
        clip_seconds = CLIP_SECONDS
    elif job.source == "generator" and job.changes is not None:
        pieces = [generate_modulating_piece(job.piece_id, rng, job.tonic, job.mode, job.style, job.seconds, job.changes)]
        clip_seconds = MODULATION_SECONDS
    elif job.source == "generator":
        pieces = [generate_piece(job.piece_id, rng, job.tonic, job.mode, job.style, job.seconds)]
        clip_seconds = CLIP_SECONDS
    else:
        pieces = [make_note(job.program, job.pitch, rng)]
        clip_seconds = NOTE_CLIP_SECONDS
    records = []
    for piece in pieces:
        if piece.parts[0].program is None:
            piece = orchestrate(piece, rng)
        records.extend(render_piece(piece, out, job.split, soundfont, clip_seconds, job.max_clips))
    return records


_WORKER: dict = {}


def _init_worker(out: Path, soundfont: bytes) -> None:
    _WORKER.update(out=out, soundfont=soundfont)


def _run_safely(job: Job) -> JobResult:
    """run_job in a worker, turning any failure into a reported, skipped piece."""
    try:
        return JobResult(job.piece_id, run_job(job, _WORKER["out"], _WORKER["soundfont"]))
    except bach.ChoraleRejected as error:
        return JobResult(job.piece_id, [], "excluded", str(error))
    except Exception as error:  # noqa: BLE001 - one bad piece must not stop the run
        return JobResult(job.piece_id, [], "failed", f"{type(error).__name__}: {error}")


def _outcomes(jobs: list[Job], out: Path, soundfont: bytes, workers: int):
    """Job results, in this process (one worker) or from a pool, in completion order."""
    if workers == 1:
        _init_worker(out, soundfont)
        yield from map(_run_safely, jobs)
        return
    with multiprocessing.get_context().Pool(workers, initializer=_init_worker, initargs=(out, soundfont)) as pool:
        yield from pool.imap_unordered(_run_safely, jobs)


def default_soundfont() -> Path:
    """TimGM6mb.sf2, the General MIDI font that ships inside pretty_midi (the pretraining font)."""
    return soundfont_path("timgm6mb")


#: Sub-folder of a corpus that holds its test split rendered in other soundfonts: ``fonts/<name>/``.
CROSS_FONT_FOLDER = "fonts"


def render_corpus(
    out: str | os.PathLike,
    size: str = "small",
    seed: int = 0,
    soundfont: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = False,
    splits: tuple[str, ...] | None = None,
) -> Path:
    """Render the embedded labelled corpus into ``out`` and return its manifest's path.

    Writes ``audio/<source>/<clip_id>.flac`` (16 kHz mono), ``midi/<source>/<clip_id>.mid``
    (the notes of each clip), ``manifest.jsonl`` (see :mod:`mt2.corpus.manifest`) and
    ``corpus.json`` (counts, excluded and failed pieces with their reasons). A piece that
    fails is logged with its id and skipped; the run goes on (clips it wrote before
    failing stay on disk but are not in the manifest). A size with ``cross_fonts`` also
    renders its test split in each of them into ``out/fonts/<name>/`` (same layout).

    Args:
        out: output folder (created; files of the same names are overwritten).
        size: a key of :data:`SIZES` (``tiny``, ``keys``, ``small``, ``medium``, ``large``, ``bench``).
        seed: everything random is drawn from it.
        soundfont: a name of :data:`mt2.corpus.render.SOUNDFONTS` or a .sf2 file; default TimGM6mb.
        workers: processes; default ``min(4, cpu count)``.
        progress: show a tqdm progress bar.
        splits: render only the pieces of these splits (default: all).

    Raises:
        FileNotFoundError: a soundfont does not exist (or its package is not installed).
        RenderError: a soundfont cannot be loaded.
        ValueError: unknown size or split.
    """
    out = Path(out)
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
    unknown = sorted(set(splits or ()) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; choose from {SPLITS}")
    fonts = {None: load_font(soundfont)} | {name: load_font(name) for name in SIZES[size].cross_fonts}
    jobs = [job for job in plan(size, seed) if splits is None or job.split in splits]
    workers = max(1, workers or min(4, os.cpu_count() or 1))
    manifest = _render_jobs(jobs, out, fonts.pop(None), workers, progress, size, seed)
    for name, font in fonts.items():
        tests = [job for job in jobs if job.split == "test"]
        _render_jobs(tests, out / CROSS_FONT_FOLDER / name, font, workers, progress, size, seed)
    return manifest


def load_font(soundfont: str | os.PathLike | None) -> tuple[Path, bytes]:
    """The file and bytes of a soundfont: a name of :data:`mt2.corpus.render.SOUNDFONTS`, a .sf2
    path, or None (TimGM6mb).

    Raises:
        FileNotFoundError: the soundfont does not exist (or its package is not installed).
        RenderError: it cannot be loaded.
    """
    path = soundfont_path(soundfont)
    font = path.read_bytes()
    check_soundfont(font, str(path))
    return path, font


def _render_jobs(jobs: list[Job], out: Path, font: tuple[Path, bytes], workers: int, progress: bool, size: str, seed: int) -> Path:
    """Run ``jobs`` with one soundfont into ``out``; write manifest.jsonl and corpus.json."""
    font_path, font_bytes = font
    out.mkdir(parents=True, exist_ok=True)
    results: list[JobResult] = []
    with tqdm(total=len(jobs), unit="piece", desc=f"corpus {size} ({font_path.name})", disable=not progress) as bar:
        for result in _outcomes(jobs, out, font_bytes, workers):
            if result.status == "failed":
                log.warning("skipped %s: %s", result.piece_id, result.reason)
            results.append(result)
            bar.update()
    records = [r for result in results for r in result.records]
    manifest = write_manifest(records, out / "manifest.jsonl")
    summary = _summary(size, seed, font_path, font_bytes, records, results)
    (out / "corpus.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _summary(size, seed, font_path, font, records, results) -> dict:
    seconds = sum(r["duration"] for r in records)
    return {
        "size": size,
        "seed": seed,
        "soundfont": font_path.name,
        "soundfont_sha256": hashlib.sha256(font).hexdigest(),
        "sample_rate": SAMPLE_RATE,
        "clips": len(records),
        "hours": round(seconds / 3600, 3),
        "pieces": sum(r.status == "ok" for r in results),
        "clips_per_source": dict(Counter(r["source"] for r in records)),
        "clips_per_split": dict(Counter(r["split"] for r in records)),
        "excluded": {r.piece_id: r.reason for r in results if r.status == "excluded"},
        "failed": {r.piece_id: r.reason for r in results if r.status == "failed"},
    }
