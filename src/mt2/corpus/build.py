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
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mt2.corpus import bach
from mt2.corpus.generator import STYLES, generate_piece
from mt2.corpus.instruments import INSTRUMENTS, orchestrate
from mt2.corpus.manifest import SPLITS, write_manifest
from mt2.corpus.notes import NOTE_CLIP_SECONDS, make_note, note_piece_id, note_pitches, note_splits
from mt2.corpus.render import SAMPLE_RATE, check_soundfont, render_piece
from mt2.keys import MODES

log = logging.getLogger(__name__)

#: Length of the clips cut from pieces (single notes: NOTE_CLIP_SECONDS).
CLIP_SECONDS = 12.0
#: Chorale transpositions are drawn from this range (semitones), all 12 offsets.
TRANSPOSITIONS = tuple(range(-5, 7))
_SPLIT_SALT = "mt2-corpus-split"


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


#: ``tiny`` is for tests (seconds to render); ``keys`` is one generated piece in each of the
#: 24 keys and nothing else (an acceptance set for key estimation: render it with a seed
#: other than the training corpus's and its pieces were never heard in training); the others
#: are measured in the docs.
SIZES = {
    "tiny": SizeSpec(6, 1, 2, 1, 1, 2, 3),
    "keys": SizeSpec(24, 1, 0, 1, 1, 0, 0),
    "small": SizeSpec(72, 1, 24, 1, 2, 8, 6),
    "medium": SizeSpec(400, 1, 120, 1, 4, None, 12),
    "large": SizeSpec(4000, 2, None, 3, None, None, None),
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


def split_of(piece_id: str) -> str:
    """``train``/``valid``/``test`` (about 70/15/15) from a salted hash of the piece id."""
    u = derive_seed(_SPLIT_SALT, piece_id) / 2**64
    return "train" if u < 0.70 else "valid" if u < 0.85 else "test"


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
                split_of(piece_id),
                derive_seed(seed, piece_id),
                max_clips=spec.generated_clips,
                tonic=key % 12,
                mode=MODES[key // 12],
                style=style,
                seconds=seconds,
            )
        )
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
        splits = note_splits(pitches, np.random.default_rng(derive_seed(seed, "note-split", program)))
        for pitch in pitches:
            piece_id = note_piece_id(program, pitch)
            jobs.append(Job("note", piece_id, splits[pitch], derive_seed(seed, piece_id), program=program, pitch=pitch))
    return jobs


def plan(size: str, seed: int) -> list[Job]:
    """Every job of a render, chorales first (the slowest), in a fixed order."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
    spec = SIZES[size]
    return _bach_jobs(spec, seed) + _generator_jobs(spec, seed) + _note_jobs(spec, seed)


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
    """TimGM6mb.sf2, the General MIDI font that ships inside pretty_midi."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def render_corpus(
    out: str | os.PathLike,
    size: str = "small",
    seed: int = 0,
    soundfont: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Render the embedded labelled corpus into ``out`` and return its manifest's path.

    Writes ``audio/<source>/<clip_id>.flac`` (16 kHz mono), ``midi/<source>/<clip_id>.mid``
    (the notes of each clip), ``manifest.jsonl`` (see :mod:`mt2.corpus.manifest`) and
    ``corpus.json`` (counts, excluded and failed pieces with their reasons). A piece that
    fails is logged with its id and skipped; the run goes on (clips it wrote before
    failing stay on disk but are not in the manifest).

    Args:
        out: output folder (created; files of the same names are overwritten).
        size: ``tiny``, ``keys``, ``small``, ``medium`` or ``large`` (see :data:`SIZES`).
        seed: everything random is drawn from it.
        soundfont: a .sf2 file; default TimGM6mb from pretty_midi.
        workers: processes; default ``min(4, cpu count)``.
        progress: show a tqdm progress bar.

    Raises:
        FileNotFoundError: the soundfont does not exist.
        RenderError: the soundfont cannot be loaded.
        ValueError: unknown size.
    """
    out = Path(out)
    font_path = Path(soundfont) if soundfont is not None else default_soundfont()
    if not font_path.is_file():
        raise FileNotFoundError(f"soundfont not found: {font_path}")
    font = font_path.read_bytes()
    check_soundfont(font, str(font_path))
    jobs = plan(size, seed)
    out.mkdir(parents=True, exist_ok=True)
    workers = max(1, workers or min(4, os.cpu_count() or 1))
    results: list[JobResult] = []
    with tqdm(total=len(jobs), unit="piece", desc=f"corpus {size}", disable=not progress) as bar:
        for result in _outcomes(jobs, out, font, workers):
            if result.status == "failed":
                log.warning("skipped %s: %s", result.piece_id, result.reason)
            results.append(result)
            bar.update()
    records = [r for result in results for r in result.records]
    manifest = write_manifest(records, out / "manifest.jsonl")
    summary = _summary(size, seed, font_path, font, records, results)
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
