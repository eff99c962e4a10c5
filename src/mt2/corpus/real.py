"""The real-music corpus: freely licensed game soundtracks that Debian ships as packages
(docs/design.md section 4), or a folder of one's own recordings, as audio files and a manifest.

``mt2 corpus real OUT`` takes the music of the fixed list :data:`PACKAGES`: each package is
fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into a package cache
(:func:`mt2.corpus.debian.fetch_package`; no root, the game is never installed), or read where
it is installed already (``--no-install``: installed packages only). It writes under ``OUT``:

* ``audio/<soundtrack>/<track>.<ext>``: Ogg Vorbis and MP3 tracks are copied as they are
  (ufoai and nexuiz keep theirs in ``.pk3`` zip files and 0 A.D. in ``public.zip``, which are
  read as zip files: only their music entries); xblast-tnt's raw songs (unsigned 8-bit stereo
  PCM at 22,050 Hz, the format its sound server plays) and tracker modules (frozen-bubble's
  ``.xm``, pingus's ``.it`` and ``.s3m``, rendered by ``openmpt123`` at 44.1 kHz) become FLAC;
* ``manifest.jsonl``: one row per track (fields :data:`FIELDS`): ``path`` (relative to
  ``OUT``), ``track_id``, ``soundtrack``, ``package``, ``split``, ``duration`` (s),
  ``sample_rate``, ``channels``, ``license`` (read from the package's
  ``/usr/share/doc/<package>/copyright``), ``license_file``, ``origin`` (the packaged path,
  or ``archive:member``), ``score`` (the track's MIDI file when a package ships one of
  the same name: planetblupi), ``sha256`` of the audio. :func:`mt2.data.tracks.list_tracks`
  and :func:`mt2.corpus.read_manifest` read it as any corpus manifest;
* ``real.json``: hours and tracks per soundtrack, split counts, skipped files and packages.

Rules:

* **Splits by track**, per soundtrack (so that every soundtrack with three or more tracks has
  train, valid and test tracks): the soundtrack's tracks sorted by name, shuffled by
  ``numpy.random.default_rng([seed, crc32(soundtrack)])``, then about 70 / 15 / 15 %
  (:func:`assign_splits`). The same tracks and seed give the same splits, and adding a
  soundtrack leaves the others' splits as they were.
* **One whole soundtrack held out** (:data:`HOLDOUT`): every track of it has split
  ``holdout``; nothing trains on it, and the benchmark's real section measures same-track
  retrieval on it (music from a game no run has heard).
* **Only music**: the packages' music folders only (sound effects are left out), tracks of at
  least :attr:`Soundtrack.min_seconds` (30 s; the nine soundtracks of the first list keep
  their 5 s so that their splits stay those of earlier rounds).
* **Duplicates** (drascula ships the same 31 tracks in six language folders) are kept once,
  by the SHA-256 of their bytes; the first path in sorted order wins.
* A track that does not decode (header, first, middle and last second read through
  libsndfile, :func:`check_decodes`) is named and skipped; a package that cannot be fetched
  is skipped with a message; neither stops the run.
* **Reserved**: ``wesnoth-*-music``, ``warzone2100-music``, ``fretsonfire-songs-*`` and the
  FluidR3 and MuseScore soundfonts are kept for outside evaluation (:data:`RESERVED`): they are
  refused by name, never fetched, read or listed.
* ``--folder DIR`` instead lists one's own recordings (recursive; each sub-folder is a
  ``soundtrack``); files are copied or, when libsndfile cannot read them, skipped.

The manifest and ``real.json`` are written to temporary names and renamed.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from mt2.corpus.debian import (
    apt_status, fetch_package, install_packages, installed_files, license_of, refuse_reserved, unpacked_files,
)
from mt2.corpus.soundtracks import FIRST_LIST_MIN_SECONDS, HOLDOUT, PACKAGES, Soundtrack

#: Manifest fields, in this order.
FIELDS = ("path", "track_id", "soundtrack", "package", "source", "split", "duration", "sample_rate", "channels",
          "license", "license_file", "origin", "score", "sha256")
SPLITS = ("train", "valid", "test", "holdout")
#: Shares of a soundtrack's tracks in valid and test (the rest is train).
VALID_SHARE, TEST_SHARE = 0.15, 0.15
MANIFEST = "manifest.jsonl"
SUMMARY = "real.json"
AUDIO_DIR = "audio"
#: Where fetched packages are kept (``apt-get download`` and ``dpkg-deb -x``), unless given.
DEFAULT_PACKAGE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mt2" / "debian"
#: Suffixes of zip archives whose music members are read (``Soundtrack.members``).
ARCHIVE_SUFFIXES = (".pk3", ".zip")
#: Debian tools the command installs beside the packages: openmpt123 renders tracker modules.
TOOLS = ("openmpt123",)
SOURCE = "real"
#: Files of one's own folder that are read (the formats libsndfile decodes).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".opus")


#: xblast-tnt's songs: unsigned 8-bit PCM, interleaved stereo, 22,050 Hz (its sound server's
#: SAMPLE_RATE, SAMPLE_SIZE; the songs are its only samples not flagged mono).
RAW_RATE, RAW_CHANNELS = 22050, 2
MODULE_RATE = 44100


# ----------------------------------------------------------------------------- tracks


@dataclass
class Candidate:
    """One track to write: where it comes from and how it becomes a file under OUT."""

    soundtrack: str
    package: str
    name: str  # file stem under audio/<soundtrack>/
    origin: str  # packaged path, or "archive.pk3:member"
    license_path: str  # the path the copyright file's patterns are matched against
    kind: str  # copy, raw, module
    read: Callable[[], bytes]
    suffix: str
    score: str | None = None


def _matches(path: Path, patterns, exclude) -> bool:
    text = str(path)
    return any(fnmatch.fnmatch(text, p) for p in patterns) and not any(fnmatch.fnmatch(text, p) for p in exclude)


def package_candidates(spec: Soundtrack, files: list[Path], root: Path = Path("/"),
                       scores: dict[str, str] | None = None) -> list[Candidate]:
    """The music files of one package whose files lie under ``root`` (``/`` where it is installed,
    or where :func:`~mt2.corpus.debian.fetch_package` unpacked it), zip members of its archives
    included; origins are the packaged paths (``/usr/...``), wherever the files lie.
    ``scores``: MIDI scores by file stem (:func:`midi_scores`), matched to tracks by name."""
    scores = scores or {}
    found = []
    for path in files:
        packaged = _packaged(path, root)
        if not _matches(Path(packaged), spec.patterns, spec.exclude):
            continue
        if path.suffix.lower() in ARCHIVE_SUFFIXES:
            with zipfile.ZipFile(path) as archive:
                members = sorted(m for m in archive.namelist()
                                 if not m.endswith("/") and any(fnmatch.fnmatch(m, p) for p in spec.members))
            for member in members:
                found.append(Candidate(
                    spec.name, spec.package, Path(member).stem, f"{packaged}:{member}",
                    f"{Path(packaged).parent}/{member}", "copy",
                    lambda path=path, member=member: zipfile.ZipFile(path).read(member), Path(member).suffix.lower()))
            continue
        suffix = ".flac" if spec.kind in ("raw", "module") else path.suffix.lower()
        found.append(Candidate(spec.name, spec.package, path.stem, packaged, packaged, spec.kind,
                               lambda path=path: path.read_bytes(), suffix, scores.get(path.stem)))
    return found


def midi_scores(files: list[Path], root: Path = Path("/")) -> dict[str, str]:
    """The packaged paths of the MIDI files among ``files`` (lying under ``root``), by stem."""
    return {p.stem: _packaged(p, root) for p in files if p.suffix.lower() in (".mid", ".midi")}


def _packaged(path: Path, root: Path) -> str:
    """The path a file has in its package (``/usr/...``) when the package lies under ``root``."""
    return str(path) if root == Path("/") else "/" + path.relative_to(root).as_posix()


def folder_candidates(folder: Path) -> list[Candidate]:
    """The audio files of one's own folder (recursive); the first sub-folder names the soundtrack."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
        relative = path.relative_to(folder)
        soundtrack = relative.parts[0] if len(relative.parts) > 1 else folder.name
        stem = "_".join(relative.with_suffix("").parts[1:] or relative.with_suffix("").parts)
        found.append(Candidate(soundtrack, "folder", stem, str(path), str(path), "copy",
                               lambda path=path: path.read_bytes(), path.suffix.lower()))
    return found


def check_decodes(path: Path) -> tuple[int, int, float]:
    """``(sample_rate, channels, duration)`` of a file whose header and first, middle and last
    second decode; raises ValueError (with libsndfile's reason) otherwise."""
    try:
        with sf.SoundFile(path) as handle:
            rate, channels, frames = handle.samplerate, handle.channels, handle.frames
            if frames <= 0 or rate <= 0:
                raise ValueError("no audio samples")
            for start in (0, max(0, frames // 2 - rate // 2), max(0, frames - rate)):
                handle.seek(start)
                block = handle.read(min(rate, frames - start), dtype="float32", always_2d=True)
                if not len(block) or not np.isfinite(block).all():
                    raise ValueError(f"no finite samples decoded at frame {start}")
    except (sf.LibsndfileError, RuntimeError) as error:
        raise ValueError(str(error)) from None
    return rate, channels, frames / rate


def decode_raw(data: bytes) -> np.ndarray:
    """xblast-tnt's raw songs: unsigned 8-bit interleaved stereo -> float32 ``(frames, 2)``."""
    samples = np.frombuffer(data[: len(data) - len(data) % RAW_CHANNELS], np.uint8)
    return ((samples.astype(np.float32) - 128.0) / 128.0).reshape(-1, RAW_CHANNELS)


def render_module(data: bytes, suffix: str = ".xm") -> np.ndarray:
    """A tracker module rendered by ``openmpt123`` at :data:`MODULE_RATE` (stereo float32, played once).

    Raises:
        ValueError: openmpt123 is not installed or fails.
    """
    if shutil.which("openmpt123") is None:
        raise ValueError("openmpt123 is not installed (apt-get install openmpt123) to render tracker modules")
    with tempfile.TemporaryDirectory() as tmp:
        module = Path(tmp) / f"module{suffix}"
        module.write_bytes(data)
        done = subprocess.run(["openmpt123", "--quiet", "--render", "--samplerate", str(MODULE_RATE), "--no-float",
                               "--repeat", "0", str(module)], capture_output=True, text=True, timeout=600)
        rendered = Path(f"{module}.wav")
        if done.returncode or not rendered.is_file():
            raise ValueError(f"openmpt123 failed ({(done.stderr or done.stdout).strip()[-200:]})")
        audio, _ = sf.read(rendered, dtype="float32", always_2d=True)
    return audio


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def track_path(out: Path, candidate: Candidate) -> Path:
    """Where a candidate's audio goes: ``out/audio/<soundtrack>/<name><suffix>``."""
    return out / AUDIO_DIR / _slug(candidate.soundtrack) / f"{_slug(candidate.name)}{candidate.suffix}"


def materialise(candidate: Candidate, out: Path) -> tuple[Path, bytes]:
    """Write one candidate under ``out/audio/<soundtrack>/``; returns its path and source bytes."""
    data = candidate.read()
    target = track_path(out, candidate)
    target.parent.mkdir(parents=True, exist_ok=True)
    if candidate.kind == "copy":
        _write_atomic(target, lambda tmp: tmp.write_bytes(data))
    else:
        audio, rate = (decode_raw(data), RAW_RATE) if candidate.kind == "raw" else (
            render_module(data, Path(candidate.origin).suffix.lower() or ".xm"), MODULE_RATE)
        _write_atomic(target, lambda tmp: sf.write(tmp, audio, rate, format="FLAC", subtype="PCM_16"))
    return target, data


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "track"


def assign_splits(rows: list[dict], seed: int, holdout: str | None = HOLDOUT) -> None:
    """Set ``split`` of every row, by track within each soundtrack (module docstring); every
    track of the soundtrack ``holdout`` gets ``holdout``."""
    by_soundtrack: dict[str, list[dict]] = {}
    for row in rows:
        by_soundtrack.setdefault(row["soundtrack"], []).append(row)
    for soundtrack, tracks in by_soundtrack.items():
        if soundtrack == holdout:
            for row in tracks:
                row["split"] = "holdout"
            continue
        tracks.sort(key=lambda r: r["path"])
        order = np.random.default_rng([seed, zlib.crc32(soundtrack.encode())]).permutation(len(tracks))
        n = len(tracks)
        n_test = max(1, round(n * TEST_SHARE)) if n >= 3 else 0
        n_valid = max(1, round(n * VALID_SHARE)) if n >= 3 else 0
        for rank, i in enumerate(order):
            tracks[i]["split"] = "test" if rank < n_test else "valid" if rank < n_test + n_valid else "train"


# ----------------------------------------------------------------------------- the command


@dataclass
class RealCorpus:
    """What :func:`build_real_corpus` wrote and skipped."""

    out: Path
    rows: list[dict]
    skipped_files: dict[str, str] = field(default_factory=dict)
    skipped_packages: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0

    def summary(self) -> dict:
        """``real.json``: hours, tracks and split counts per soundtrack, and what was skipped."""
        per = {}
        for row in self.rows:
            entry = per.setdefault(row["soundtrack"], {"package": row["package"], "license": "", "tracks": 0,
                                                       "hours": 0.0, "splits": dict.fromkeys(SPLITS, 0)})
            if row["license"] not in entry["license"].split(", "):
                entry["license"] = ", ".join(filter(None, [entry["license"], row["license"]]))
            entry["tracks"] += 1
            entry["hours"] += row["duration"] / 3600
            entry["splits"][row["split"]] += 1
        for entry in per.values():
            entry["hours"] = round(entry["hours"], 4)
        return {"tracks": len(self.rows), "hours": round(sum(r["duration"] for r in self.rows) / 3600, 4),
                "splits": {s: sum(r["split"] == s for r in self.rows) for s in SPLITS}, "soundtracks": per,
                "duplicates_dropped": self.duplicates, "skipped_files": self.skipped_files,
                "skipped_packages": self.skipped_packages}


def package_sources(packages: list[Soundtrack], cache: Path | None, log: Callable[[str], None]
                    ) -> tuple[list[Candidate], dict[str, str], dict[str, Path]]:
    """The music files of ``packages``, the packages skipped (with why), and where each package's
    copyright file lies. An installed package is read in place; otherwise, with a ``cache``,
    it is fetched and unpacked there (:func:`~mt2.corpus.debian.fetch_package`)."""
    found, skipped, copyright_files = [], {}, {}
    for spec in packages:
        files, root = installed_files(spec.package), Path("/")
        scores = midi_scores(installed_files(spec.score_package)) if spec.score_package else {}
        if not files and cache is not None:
            unpacked = fetch_package(spec.package, cache, log)
            if unpacked is not None:
                files, root = unpacked_files(unpacked), unpacked
            if spec.score_package and not scores:
                score_root = fetch_package(spec.score_package, cache, log)
                scores = midi_scores(unpacked_files(score_root), score_root) if score_root is not None else {}
        tracks = package_candidates(spec, files, root, scores) if files else []
        if not tracks:
            skipped[spec.package] = ("not installed" if cache is None else "could not be fetched") if not files else \
                "no music files where expected"
            log(f"{spec.package}: {skipped[spec.package]}; skipped")
        copyright_files[spec.package] = root / "usr/share/doc" / spec.package / "copyright"
        found += tracks
    return found, skipped, copyright_files


def build_real_corpus(
    out: str | os.PathLike, *, install: bool = True, folder: str | os.PathLike | None = None, seed: int = 0,
    packages: list[str] | None = None, cache: str | os.PathLike | None = None, log: Callable[[str], None] = print,
) -> RealCorpus:
    """Write the real-music corpus into ``out`` (module docstring); returns what was written.

    Args:
        install: fetch the packages that are not installed (``apt-get download`` and ``dpkg-deb
            -x`` into ``cache``, no root) and, as root, install :data:`TOOLS`; False reads the
            installed packages only.
        folder: one's own recordings instead of the packages.
        packages: a subset of :data:`PACKAGES` by package or soundtrack name (default: all).
        cache: where fetched packages are kept (default :data:`DEFAULT_PACKAGE_CACHE`).

    Raises:
        ValueError: a reserved package is named, or an unknown package.
    """
    out = Path(out)
    corpus = RealCorpus(out, [])
    copyright_files: dict[str, Path] = {}
    min_seconds: dict[str, float] = {}
    if folder is not None:
        candidates = folder_candidates(Path(folder))
        if not candidates:
            raise ValueError(f"{folder}: no audio files ({', '.join(('.wav', '.flac', '.ogg', '.mp3'))}, ...)")
    else:
        names = packages or [s.package for s in PACKAGES]
        refuse_reserved(names)
        chosen = [s for s in PACKAGES if s.package in names or s.name in names]
        unknown = set(names) - {s.package for s in chosen} - {s.name for s in chosen}
        if unknown:
            raise ValueError(f"unknown packages {sorted(unknown)}; the real-music corpus reads {', '.join(s.package for s in PACKAGES)}")
        if install and any(s.kind == "module" for s in chosen) and shutil.which("openmpt123") is None:
            ok, why = apt_status()
            if ok:
                for package in install_packages(list(TOOLS), log):
                    corpus.skipped_packages[package] = "apt-get install failed"
            else:
                log(f"openmpt123 is not installed and cannot be here ({why}): tracker modules are skipped")
        candidates, skipped, copyright_files = package_sources(
            chosen, Path(cache or DEFAULT_PACKAGE_CACHE) if install else None, log)
        corpus.skipped_packages = {**skipped, **corpus.skipped_packages}
        min_seconds = {s.name: s.min_seconds for s in chosen}
        if not candidates:
            log("no package could be read: pass --folder DIR with recordings of your own (sub-folders name the "
                "soundtracks) instead")
    out.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = {}
    used_names: set[tuple[str, str]] = set()
    for candidate in sorted(candidates, key=lambda c: (c.soundtrack, c.origin)):
        try:
            data = candidate.read()
        except (OSError, zipfile.BadZipFile, KeyError) as error:
            corpus.skipped_files[candidate.origin] = f"cannot be read ({error})"
            log(f"skipped {candidate.origin}: cannot be read ({error})")
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            corpus.duplicates += 1
            continue
        seen[digest] = candidate.origin
        name = candidate.name
        while (candidate.soundtrack, name) in used_names:  # two files of one name in different folders
            name += "_"
        used_names.add((candidate.soundtrack, name))
        candidate.name = name
        candidate.read = lambda data=data: data
        target = track_path(out, candidate)
        try:
            materialise(candidate, out)
            rate, channels, duration = check_decodes(target)
        except ValueError as error:
            corpus.skipped_files[candidate.origin] = f"does not decode ({error})"
            log(f"skipped {candidate.origin}: does not decode ({error})")
            target.unlink(missing_ok=True)
            continue
        shortest = min_seconds.get(candidate.soundtrack, FIRST_LIST_MIN_SECONDS)
        if duration < shortest:
            corpus.skipped_files[candidate.origin] = f"shorter than {shortest:g} s ({duration:.1f} s)"
            log(f"skipped {candidate.origin}: shorter than {shortest:g} s ({duration:.1f} s)")
            target.unlink()
            continue
        copyright_file = Path("/usr/share/doc") / candidate.package / "copyright"
        license_ = license_of(copyright_files.get(candidate.package, copyright_file), candidate.license_path) \
            if candidate.package != "folder" else "own recording"
        relative = target.relative_to(out).as_posix()
        corpus.rows.append({
            "path": relative, "track_id": f"{candidate.soundtrack}/{Path(relative).stem}",
            "soundtrack": candidate.soundtrack, "package": candidate.package, "source": SOURCE, "split": None,
            "duration": round(duration, 3), "sample_rate": rate, "channels": channels, "license": license_,
            "license_file": str(copyright_file) if candidate.package != "folder" else None,
            "origin": candidate.origin, "score": candidate.score,
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest() if candidate.kind != "copy" else digest,
        })
    assign_splits(corpus.rows, seed, HOLDOUT if folder is None else None)
    corpus.rows.sort(key=lambda r: r["path"])
    write_real_manifest(corpus.rows, out / MANIFEST)
    summary = json.dumps({"seed": seed, **corpus.summary()}, indent=1)
    _write_atomic(out / SUMMARY, lambda tmp: tmp.write_text(summary + "\n"))
    return corpus


def write_real_manifest(rows: list[dict], path: Path) -> Path:
    """One JSON object per row, keys in :data:`FIELDS` order, written to a temporary name and renamed."""
    text = "".join(json.dumps({k: row.get(k) for k in FIELDS}, ensure_ascii=False) + "\n" for row in rows)
    _write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def is_real_manifest(rows: list[dict]) -> bool:
    """Whether manifest rows describe long real recordings (written by :func:`build_real_corpus`)."""
    return bool(rows) and all(r.get("source") == SOURCE for r in rows)


def hours_table(summary: dict) -> str:
    """The per-soundtrack lines ``mt2 corpus real`` prints."""
    lines = [f"{'soundtrack':<14} {'package':<22} {'tracks':>6} {'hours':>6}  train/valid/test  license"]
    for name, entry in sorted(summary["soundtracks"].items()):
        s = entry["splits"]
        lines.append(f"{name:<14} {entry['package']:<22} {entry['tracks']:>6} {entry['hours']:>6.2f}  "
                     f"{s['train']:>5}/{s['valid']}/{s['test']:<6}  {entry['license']}")
    s = summary["splits"]
    lines.append(f"{'total':<14} {'':<22} {summary['tracks']:>6} {summary['hours']:>6.2f}  {s['train']:>5}/{s['valid']}/{s['test']}")
    return "\n".join(lines)
