"""WebDataset tar shards of audio for pretraining on corpora that do not fit one disk or node.

``mt2 corpus shard IN OUT --shard-size N`` (:func:`write_shards`) writes
``OUT/shard-000000.tar``, ``shard-000001.tar``, ... and an index ``OUT/shards.json``. Each
sample of a shard is two tar members sharing a key (WebDataset's convention):

- ``<key>.flac``: the audio. FLAC sources are copied byte for byte; other formats are
  stored as 24-bit FLAC at their own rate and channel count (lossless for PCM sources of up
  to 24 bits; float and lossy sources are rounded to 24 bits), so decoding a shard sample
  gives the same signal as decoding the file.
- ``<key>.json``: the clip's metadata: its manifest row (labels included) or ``{"path": ...}``
  for a folder; ``path`` is the file relative to the source folder.

Tracks are shuffled once with a fixed seed before they are cut into shards, so that a
reader taking consecutive samples from a shard sees mixed material. Files that cannot be
decoded are left out with a warning and listed under ``skipped`` in the index. Shards are
written to a temporary name and renamed, so a killed writer leaves no half shard.

Readers (:mod:`mt2.data.shard_stream`) use the per-shard sample counts of the index to skip
whole shards without opening them (exact resume); without an index the counts are read
from the tar headers.
"""
from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import webdataset as wds
from tqdm import tqdm
from webdataset.tariterators import base_plus_ext, tarfile_samples

from mt2.audio import AudioError, load_audio
from mt2.data.tracks import list_tracks
from mt2.frontend import SAMPLE_RATE

log = logging.getLogger(__name__)

INDEX_NAME = "shards.json"
INDEX_VERSION = 1
#: Tar member extensions read as audio, in order of preference.
AUDIO_KEYS = ("flac", "wav", "ogg", "mp3")


@dataclass(frozen=True)
class Shard:
    """One tar file and the number of samples it holds."""

    path: Path
    samples: int


def _encode_sample(path: Path) -> bytes:
    """FLAC bytes of an audio file at its own rate and channels; raises AudioError if it cannot be decoded.

    Samples are moved as integers (libsndfile keeps the top 24 bits), so PCM sources of up to
    24 bits decode to exactly the same signal as the original file.
    """
    load_audio(path, SAMPLE_RATE)  # validates every file, FLAC included
    if path.suffix.lower() == ".flac":
        return path.read_bytes()
    data, rate = sf.read(path, dtype="int32", always_2d=True)
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="FLAC", subtype="PCM_24")
    return buffer.getvalue()


def write_shards(source: str | os.PathLike, out_dir: str | os.PathLike, shard_size: int = 1000, seed: int = 0, progress: bool = True) -> list[Shard]:
    """Write the tracks of ``source`` (an audio folder or a manifest) as tar shards in ``out_dir``.

    Args:
        source: a folder of audio (recursive), a corpus folder (with ``manifest.jsonl``) or
            a manifest file (jsonl or csv with a ``path`` column); see
            :func:`mt2.data.tracks.list_tracks`.
        out_dir: folder for the shards and ``shards.json``.
        shard_size: samples per shard (the last shard may hold fewer).
        seed: seed of the shuffle of the tracks before sharding.

    Returns:
        The shards written. Unreadable files are skipped with a warning and listed in the index.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size={shard_size} must be >= 1")
    tracks = list_tracks(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(tracks.rows))
    shards: list[Shard] = []
    skipped: dict[str, str] = {}
    writer, tmp, count = None, None, 0

    def close() -> None:
        writer.close()
        final = out / f"shard-{len(shards):06d}.tar"
        os.replace(tmp, final)
        shards.append(Shard(final, count))

    for position in tqdm(order, desc="shards", unit="clip", disable=not progress):
        row = tracks.rows[position]
        try:
            data = _encode_sample(tracks.root / row["path"])
        except AudioError as error:
            log.warning("skipping %s", error)
            skipped[row["path"]] = str(error)
            continue
        if writer is None:
            tmp = out / f"shard-{len(shards):06d}.tar.tmp"
            writer, count = wds.TarWriter(str(tmp), encoder=False), 0
        key = f"{sum(s.samples for s in shards) + count:09d}"
        writer.write({"__key__": key, "flac": data, "json": json.dumps(row).encode()})
        count += 1
        if count == shard_size:
            close()
            writer = None
    if writer is not None:
        close()
    index = {
        "version": INDEX_VERSION,
        "source": str(source),
        "shard_size": shard_size,
        "seed": seed,
        "samples": sum(s.samples for s in shards),
        "shards": [{"name": s.path.name, "samples": s.samples} for s in shards],
        "skipped": skipped,
    }
    tmp_index = out / f"{INDEX_NAME}.tmp"
    tmp_index.write_text(json.dumps(index, indent=1))
    os.replace(tmp_index, out / INDEX_NAME)
    if skipped:
        log.warning("%d unreadable file(s) left out of the shards (listed in %s)", len(skipped), out / INDEX_NAME)
    return shards


def _count_samples(path: Path) -> int:
    """Number of distinct sample keys in a tar, from its headers."""
    with tarfile.open(path) as archive:
        return len({base_plus_ext(name)[0] for name in archive.getnames()} - {None})


def find_shards(path: str | os.PathLike) -> list[Shard]:
    """The shards of a folder (``shards.json``, else every ``*.tar`` in it) or one ``.tar`` file."""
    path = Path(path)
    if path.is_file():
        return [Shard(path, _count_samples(path))]
    index = path / INDEX_NAME
    if index.exists():
        data = json.loads(index.read_text())
        return [Shard(path / s["name"], int(s["samples"])) for s in data["shards"]]
    shards = [Shard(p, _count_samples(p)) for p in sorted(path.glob("*.tar"))]
    if not shards:
        raise FileNotFoundError(f"{path}: no {INDEX_NAME} and no *.tar shards")
    return shards


def read_shard(shard: Shard, skip: int = 0) -> Iterator[dict | None]:
    """The raw samples of ``shard`` from the ``skip``-th on: exactly ``shard.samples - skip`` items.

    Each item is WebDataset's sample dict (``__key__`` and bytes per extension). If the tar
    is unreadable or ends early, the missing samples come out as ``None`` after a warning,
    so that positions in the stream stay exact.
    """
    produced = 0
    try:
        for index, sample in enumerate(tarfile_samples([{"url": str(shard.path)}])):
            if produced >= shard.samples - skip:
                break
            if index >= skip:
                produced += 1
                yield sample
    except (OSError, tarfile.TarError, ValueError) as error:
        log.warning("shard %s is unreadable after %d samples (%s)", shard.path, skip + produced, error)
    missing = shard.samples - skip - produced
    if missing > 0:
        log.warning("shard %s: %d sample(s) missing; counted as unreadable", shard.path, missing)
        yield from [None] * missing


def decode_sample(sample: dict | None) -> tuple[str, np.ndarray]:
    """``(path, 16 kHz mono audio)`` of a raw shard sample; raises AudioError if it is unusable.

    The bytes go through a temporary file so that :func:`mt2.audio.load_audio` applies the
    same checks and resampling as for files on disk.
    """
    if sample is None:
        raise AudioError("<missing shard sample>", "unreadable shard")
    meta = json.loads(sample["json"]) if "json" in sample else {}
    name = meta.get("path", sample.get("__key__", "?"))
    ext = next((k for k in AUDIO_KEYS if k in sample), None)
    if ext is None:
        raise AudioError(name, f"shard sample has no audio member (one of {AUDIO_KEYS})")
    with tempfile.NamedTemporaryFile(suffix=f".{ext}") as handle:
        handle.write(sample[ext])
        handle.flush()
        try:
            return name, load_audio(handle.name, SAMPLE_RATE)
        except AudioError as error:
            raise AudioError(name, error.reason) from None
