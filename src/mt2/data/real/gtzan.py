"""GTZAN genre (Tzanetakis & Cook, 2002): 1000 thirty-second excerpts, 10 genres x 100.

Expected layout (the original ``genres.tar.gz``; the Kaggle re-distribution's
``genres_original/`` folder of ``.wav`` files is accepted in place of ``genres/``)::

    ROOT/
      genres/<genre>/<genre>.000NN.au      (or .wav), NN = 00..99
      train_filtered.txt                   optional split lists, see below
      valid_filtered.txt
      test_filtered.txt

Labels: ``genre`` (the folder name).

Splits:

* With split lists, in ``ROOT`` or in ``split_dir``: ``{train,valid,test}_filtered.txt`` as
  the fault-filtered split (Kereliuk et al., 2015) is distributed, or ``train.txt``,
  ``valid.txt``, ``test.txt``; one relative path per line, e.g. ``blues/blues.00029.wav``.
  A line is matched to the audio by file stem (``blues.00029``), so the extension and any
  leading folders do not matter. Listed files that are not on disk are skipped with a
  warning; files that no list names are left out on purpose (the fault-filtered split
  drops 70 of the 1000).
* Without split lists (the fault-filtered lists cannot be fetched offline): a documented
  deterministic split stratified by genre, 70/10/20 per genre (:func:`stratified_split`).
  It is NOT the fault-filtered split; numbers on it are not comparable with the literature.
"""
from __future__ import annotations

from pathlib import Path

from mt2.data.real._common import (
    SPLITS,
    AnnotationError,
    DatasetLayoutError,
    Example,
    read_lines,
    sort_examples,
    stratified_split,
    warn_skipped,
)

DATASET = "GTZAN"
GENRE_DIRS = ("genres", "genres_original")
AUDIO_EXTENSIONS = (".au", ".wav")
LIST_NAMES = ("{split}_filtered.txt", "{split}.txt")


def find_audio_files(root: Path) -> dict[str, Path]:
    """``{file stem: path}`` of every excerpt under ``genres/<genre>/``."""
    expected = f"{root}/genres/<genre>/<genre>.000NN.au (or .wav; or genres_original/)"
    folder = next((root / name for name in GENRE_DIRS if (root / name).is_dir()), None)
    if folder is None:
        raise DatasetLayoutError(f"{DATASET}: expected audio at {expected}; folder not found")
    files = [p for p in sorted(folder.glob("*/*")) if p.suffix in AUDIO_EXTENSIONS]
    if not files:
        raise DatasetLayoutError(f"{DATASET}: expected audio at {expected}; found none")
    return {path.stem: path for path in files}


def find_split_lists(folder: Path, required: bool) -> dict[str, Path] | None:
    """``{split: list file}`` in ``folder``; ``None`` if there are none and none are required."""
    found = {}
    for split in SPLITS:
        candidates = [folder / name.format(split=split) for name in LIST_NAMES]
        found[split] = next((path for path in candidates if path.is_file()), None)
    if not required and not any(found.values()):
        return None
    missing = [split for split, path in found.items() if path is None]
    if missing:
        raise DatasetLayoutError(
            f"{DATASET}: expected split lists at {folder}/{{train,valid,test}}_filtered.txt "
            f"(or {{train,valid,test}}.txt); none for {', '.join(missing)}"
        )
    return found


def listed_stem(text: str) -> str:
    """``"blues/blues.00029.wav"`` (or ``.au``, or no extension) -> ``"blues.00029"``."""
    name = Path(text).name
    return name[: -len(Path(name).suffix)] if Path(name).suffix in AUDIO_EXTENSIONS else name


def read_split_lists(lists: dict[str, Path]) -> dict[str, str]:
    """``{file stem: split}`` from the split lists; a file listed twice is an error."""
    splits: dict[str, str] = {}
    for split, path in lists.items():
        for line, text in read_lines(path):
            stem = listed_stem(text)
            if stem in splits:
                raise AnnotationError(path, line, f"{text} is already listed for {splits[stem]}")
            splits[stem] = split
    return splits


def load(root: str | Path, split_dir: str | Path | None = None) -> list[Example]:
    """All excerpts (or those the split lists name), sorted by path.

    ``split_dir``: folder of the split lists; by default they are looked for (optionally)
    in ``root``. When ``split_dir`` is given, the lists must be there.
    """
    root = Path(root)
    audio = find_audio_files(root)
    lists = find_split_lists(Path(split_dir) if split_dir else root, split_dir is not None)
    if lists is None:
        splits = stratified_split({stem: path.parent.name for stem, path in audio.items()})
    else:
        splits = read_split_lists(lists)
        missing = sorted(stem for stem in splits if stem not in audio)
        warn_skipped(DATASET, "listed in a split list, audio missing", missing, len(splits))
    return sort_examples(
        Example(audio[stem], split, {"genre": audio[stem].parent.name})
        for stem, split in splits.items()
        if stem in audio
    )
