"""Real-dataset loaders on tiny fixture folders built in each dataset's published layout.

Loaders never decode audio, so the audio files here are empty placeholders.
"""
from __future__ import annotations

import json
from pathlib import Path

import mir_eval
import pytest

from mt2.data.real import (
    LOADERS,
    AnnotationError,
    DatasetLayoutError,
    SkippedExamplesWarning,
    load_dataset,
    normalize_key,
    stratified_split,
)
from mt2.data.real import (
    ballroom,
    giantsteps_key,
    giantsteps_tempo,
    gtzan,
    magnatagatune,
    nsynth,
    tinysol,
)


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def by_name(examples):
    return {example.path.name: example for example in examples}


def assert_sorted(examples):
    paths = [str(example.path) for example in examples]
    assert paths == sorted(paths)


# --------------------------------------------------------------------------- shared helpers


@pytest.mark.parametrize(
    "text, expected",
    [
        ("C# minor", "C# minor"),
        ("Db minor", "C# minor"),
        ("Eb major", "Eb major"),
        ("D# major", "Eb major"),
        ("E# major", "F major"),
        ("Cb minor", "B minor"),
        ("bb MAJ", "Bb major"),
        ("a min", "A minor"),
        ("F## major", "G major"),
    ],
)
def test_normalize_key_gives_one_mir_eval_spelling(text, expected):
    assert normalize_key(text) == expected
    mir_eval.key.validate_key(expected)


@pytest.mark.parametrize("text", ["H major", "C dorian", "C", "C# minor extra", "C#x major"])
def test_normalize_key_rejects_malformed(text):
    with pytest.raises(ValueError):
        normalize_key(text)


def test_stratified_split_is_deterministic_and_proportional():
    strata = {f"{genre}.{i:05d}": genre for genre in ("blues", "jazz") for i in range(100)}
    splits = stratified_split(strata)
    assert splits == stratified_split(dict(reversed(list(strata.items()))))
    for genre in ("blues", "jazz"):
        counts = [
            sum(1 for i, s in splits.items() if i.startswith(genre) and s == split)
            for split in ("train", "valid", "test")
        ]
        assert counts == [70, 10, 20]


def test_registry_and_load_dataset(tmp_path):
    assert set(LOADERS) == {
        "giantsteps-key", "giantsteps-tempo", "gtzan", "magnatagatune", "nsynth", "tinysol",
        "ballroom",
    }
    with pytest.raises(ValueError, match="unknown dataset 'mtt'"):
        load_dataset("mtt", tmp_path)
    write(tmp_path / "audio" / "1.LOFI.mp3")
    write(tmp_path / "annotations" / "key" / "1.LOFI.key", "A minor")
    [example] = load_dataset("giantsteps-key", tmp_path)
    assert example.labels == {"key": "A minor"}


# --------------------------------------------------------------------------- GiantSteps key


@pytest.fixture
def giantsteps_key_root(tmp_path):
    keys = {"10089": "Bb major", "1164898": "Db minor", "2007977": "e minor", "272788": "G major"}
    for track, key in keys.items():
        write(tmp_path / "annotations" / "key" / f"{track}.LOFI.key", key)
        write(tmp_path / "audio" / f"{track}.LOFI.mp3")
    return tmp_path


def test_giantsteps_key_labels_splits_sorting(giantsteps_key_root):
    examples = giantsteps_key.load(giantsteps_key_root)
    assert_sorted(examples)
    keys = {name: e.labels["key"] for name, e in by_name(examples).items()}
    assert keys == {
        "10089.LOFI.mp3": "Bb major",
        "1164898.LOFI.mp3": "C# minor",
        "2007977.LOFI.mp3": "E minor",
        "272788.LOFI.mp3": "G major",
    }
    assert {e.split for e in examples} <= {"train", "valid", "test"}
    assert examples == giantsteps_key.load(giantsteps_key_root)


def test_giantsteps_key_accepts_wav_and_skips_missing_audio(giantsteps_key_root):
    (giantsteps_key_root / "audio" / "10089.LOFI.mp3").rename(
        giantsteps_key_root / "audio" / "10089.LOFI.wav"
    )
    (giantsteps_key_root / "audio" / "272788.LOFI.mp3").unlink()
    with pytest.warns(SkippedExamplesWarning, match=r"skipped 1 of 4 .*272788\.LOFI"):
        examples = giantsteps_key.load(giantsteps_key_root)
    assert sorted(by_name(examples)) == ["10089.LOFI.wav", "1164898.LOFI.mp3", "2007977.LOFI.mp3"]


def test_giantsteps_key_missing_annotations(tmp_path):
    write(tmp_path / "audio" / "1.LOFI.mp3")
    with pytest.raises(DatasetLayoutError) as error:
        giantsteps_key.load(tmp_path)
    assert str(error.value) == (
        f"GiantSteps key: expected annotations at {tmp_path}/annotations/key/*.key; found none"
    )
    assert isinstance(error.value, FileNotFoundError)


def test_giantsteps_key_malformed_annotation(giantsteps_key_root):
    bad = write(giantsteps_key_root / "annotations" / "key" / "272788.LOFI.key", "\nG lydian\n")
    with pytest.raises(AnnotationError, match=rf"{bad}:2: .*'G lydian'"):
        giantsteps_key.load(giantsteps_key_root)


# --------------------------------------------------------------------------- GiantSteps tempo


@pytest.fixture
def giantsteps_tempo_root(tmp_path):
    tempos = {"1": ("171.419", "85.7"), "2": ("128", "128"), "3": ("140", "0.0"), "4": ("95", "95")}
    for track, (v1, v2) in tempos.items():
        write(tmp_path / "annotations" / "tempo" / f"{track}.LOFI.bpm", v1)
        write(tmp_path / "annotations_v2" / "tempo" / f"{track}.LOFI.bpm", v2)
        write(tmp_path / "audio" / f"{track}.LOFI.mp3")
    write(tmp_path / "splits" / "fold01.txt", "1.LOFI.mp3\n")
    write(tmp_path / "splits" / "fold02.txt", "2.LOFI.mp3\n")
    write(tmp_path / "splits" / "fold03.txt", "3.LOFI.mp3\n4.LOFI.mp3\n")
    return tmp_path


def test_giantsteps_tempo_labels_and_fold_splits(giantsteps_tempo_root):
    examples = giantsteps_tempo.load(giantsteps_tempo_root)
    assert_sorted(examples)
    got = {name: (e.split, e.labels["tempo"]) for name, e in by_name(examples).items()}
    assert got == {
        "1.LOFI.mp3": ("test", 171.419),
        "2.LOFI.mp3": ("valid", 128.0),
        "3.LOFI.mp3": ("train", 140.0),
        "4.LOFI.mp3": ("train", 95.0),
    }
    rotated = by_name(giantsteps_tempo.load(giantsteps_tempo_root, test_fold=3))
    assert [rotated[f"{t}.LOFI.mp3"].split for t in "1234"] == ["valid", "train", "test", "test"]


def test_giantsteps_tempo_v2_skips_tracks_without_tempo(giantsteps_tempo_root):
    with pytest.warns(SkippedExamplesWarning, match=r"skipped 1 of 4 .*tempo 0\.0"):
        examples = giantsteps_tempo.load(giantsteps_tempo_root, version="v2")
    assert {n: e.labels["tempo"] for n, e in by_name(examples).items()} == {
        "1.LOFI.mp3": 85.7, "2.LOFI.mp3": 128.0, "4.LOFI.mp3": 95.0,
    }


def test_giantsteps_tempo_missing_layout(giantsteps_tempo_root, tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DatasetLayoutError, match=r"annotations at .*annotations/tempo/\*\.bpm"):
        giantsteps_tempo.load(empty)
    for fold in (giantsteps_tempo_root / "splits").iterdir():
        fold.unlink()
    with pytest.raises(DatasetLayoutError, match=r"expected fold lists at .*splits/fold\*\.txt"):
        giantsteps_tempo.load(giantsteps_tempo_root)


def test_giantsteps_tempo_malformed_annotation(giantsteps_tempo_root):
    bad = write(giantsteps_tempo_root / "annotations" / "tempo" / "2.LOFI.bpm", "fast")
    with pytest.raises(AnnotationError, match=rf"{bad}:1: cannot read a tempo"):
        giantsteps_tempo.load(giantsteps_tempo_root)


# --------------------------------------------------------------------------- GTZAN


@pytest.fixture
def gtzan_root(tmp_path):
    for genre in ("blues", "jazz"):
        for i in range(3):
            write(tmp_path / "genres" / genre / f"{genre}.{i:05d}.au")
    return tmp_path


def test_gtzan_default_split_is_stratified_and_deterministic(gtzan_root):
    examples = gtzan.load(gtzan_root)
    assert_sorted(examples)
    assert len(examples) == 6
    assert all(e.labels == {"genre": e.path.parent.name} for e in examples)
    for genre in ("blues", "jazz"):
        splits = sorted(e.split for e in examples if e.labels["genre"] == genre)
        assert splits == ["test", "train", "train"]  # round(0.7*3)=2 train, round(0.8*3)=2
    assert examples == gtzan.load(gtzan_root)


def test_gtzan_split_lists_as_distributed(gtzan_root):
    write(gtzan_root / "train_filtered.txt", "blues/blues.00000.wav\njazz/jazz.00000.wav\n")
    write(gtzan_root / "valid_filtered.txt", "blues/blues.00001.wav\n")
    write(gtzan_root / "test_filtered.txt", "jazz/jazz.00001.wav\njazz/jazz.00099.wav\n")
    with pytest.warns(SkippedExamplesWarning, match=r"skipped 1 of 5 .*jazz\.00099"):
        examples = gtzan.load(gtzan_root)
    got = {name: e.split for name, e in by_name(examples).items()}
    assert got == {
        "blues.00000.au": "train",
        "jazz.00000.au": "train",
        "blues.00001.au": "valid",
        "jazz.00001.au": "test",
    }


def test_gtzan_split_dir_and_errors(gtzan_root, tmp_path_factory):
    lists = tmp_path_factory.mktemp("lists")
    with pytest.raises(DatasetLayoutError, match="split lists .*none for train, valid, test"):
        gtzan.load(gtzan_root, split_dir=lists)
    for split in ("train", "valid", "test"):
        write(lists / f"{split}.txt", "blues.00000\n" if split == "train" else "")
    [example] = gtzan.load(gtzan_root, split_dir=lists)
    assert (example.path.name, example.split) == ("blues.00000.au", "train")
    bad = write(lists / "test.txt", "\nblues/blues.00000.au\n")
    with pytest.raises(AnnotationError, match=rf"{bad}:2: .*already listed for train"):
        gtzan.load(gtzan_root, split_dir=lists)


def test_gtzan_missing_folder(tmp_path):
    with pytest.raises(DatasetLayoutError, match=rf"GTZAN: expected audio at {tmp_path}/genres/"):
        gtzan.load(tmp_path)


# --------------------------------------------------------------------------- MagnaTagATune


MTT_TAGS = ["no voice", "singer", "guitar", "classical", "techno"]
MTT_ROWS = [  # clip_id, tags, mp3_path
    (2, [0, 0, 1, 1, 0], "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3"),
    (6, [1, 0, 1, 1, 0], "0/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-146-175.mp3"),
    (10, [0, 1, 0, 1, 0], "c/jeff_wahl-guitarscapes-01-spanish_lace-0-29.mp3"),
    (11, [0, 0, 0, 0, 1], "b/jeff_wahl-guitarscapes-01-spanish_lace-30-59.mp3"),
    (12, [0, 0, 0, 0, 0], "d/tilopa-turkishauch-05-phrase_one-0-29.mp3"),
]


@pytest.fixture
def mtt_root(tmp_path):
    quote = lambda values: "\t".join(f'"{v}"' for v in values)  # noqa: E731
    lines = [quote(["clip_id", *MTT_TAGS, "mp3_path"])]
    lines += [quote([clip, *tags, path]) for clip, tags, path in MTT_ROWS]
    write(tmp_path / "annotations_final.csv", "\n".join(lines) + "\n")
    for _, _, path in MTT_ROWS:
        write(tmp_path / path)
    return tmp_path


def test_magnatagatune_top_tags_and_hex_splits(mtt_root):
    examples = magnatagatune.load(mtt_root, top_k=3)
    assert_sorted(examples)
    got = {e.labels["clip_id"]: (e.split, e.labels["tags"]) for e in examples}
    # counts: classical 3, guitar 2, then no voice / singer / techno 1 each: "no voice" wins
    # the tie by column order.
    assert got == {
        2: ("test", ["classical", "guitar"]),
        6: ("train", ["classical", "guitar", "no voice"]),
        10: ("valid", ["classical"]),
        11: ("train", []),
        12: ("test", []),
    }
    assert by_name(magnatagatune.load(mtt_root))[MTT_ROWS[4][2][2:]].labels["tags"] == []


def test_magnatagatune_missing_files(mtt_root, tmp_path_factory):
    (mtt_root / MTT_ROWS[0][2]).unlink()
    with pytest.warns(SkippedExamplesWarning, match="skipped 1 of 5 examples"):
        assert len(magnatagatune.load(mtt_root)) == 4
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(
        DatasetLayoutError, match=rf"expected tag annotations at {empty}/annotations_final.csv"
    ):
        magnatagatune.load(empty)


def test_magnatagatune_malformed_row(mtt_root):
    csv_path = mtt_root / "annotations_final.csv"
    lines = csv_path.read_text().splitlines()
    lines[3] = lines[3].replace('"0"', '"x"', 1)
    write(csv_path, "\n".join(lines))
    with pytest.raises(AnnotationError, match=rf"{csv_path}:4: tag .* is 'x'"):
        magnatagatune.load(mtt_root)


# --------------------------------------------------------------------------- NSynth


def nsynth_entry(note_str: str, pitch: int, family: str) -> dict:
    instrument = note_str.rsplit("-", 2)[0]
    return {
        "note_str": note_str, "pitch": pitch, "velocity": 50, "sample_rate": 16000,
        "instrument_str": instrument, "instrument_family_str": family,
        "instrument_source_str": instrument.split("_")[1], "qualities_str": ["dark"],
        "note": 1, "instrument": 2, "instrument_family": 0, "instrument_source": 2,
        "qualities": [0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    }


@pytest.fixture
def nsynth_root(tmp_path):
    notes = {
        "train": [
            ("bass_synthetic_033-022-050", 22, "bass"),
            ("guitar_acoustic_010-060-050", 60, "guitar"),
        ],
        "valid": [("keyboard_electronic_001-064-050", 64, "keyboard")],
        "test": [("flute_acoustic_002-077-050", 77, "flute")],
    }
    for split, entries in notes.items():
        folder = tmp_path / f"nsynth-{split}"
        data = {name: nsynth_entry(name, pitch, family) for name, pitch, family in entries}
        write(folder / "examples.json", json.dumps(data, indent=4))
        for name in data:
            write(folder / "audio" / f"{name}.wav")
    return tmp_path


def test_nsynth_labels_and_splits(nsynth_root):
    examples = nsynth.load(nsynth_root)
    assert_sorted(examples)
    assert [e.split for e in examples] == ["test", "train", "train", "valid"]
    bass = by_name(examples)["bass_synthetic_033-022-050.wav"]
    assert bass.labels == {
        "pitch": 22, "velocity": 50, "instrument": "bass_synthetic_033", "family": "bass",
        "source": "synthetic", "qualities": ["dark"],
    }


def test_nsynth_missing_split_and_audio(nsynth_root, tmp_path_factory):
    (nsynth_root / "nsynth-test" / "audio" / "flute_acoustic_002-077-050.wav").unlink()
    with pytest.warns(SkippedExamplesWarning, match="NSynth test: skipped 1 of 1"):
        assert len(nsynth.load(nsynth_root)) == 3
    (nsynth_root / "nsynth-valid" / "examples.json").unlink()
    with pytest.raises(DatasetLayoutError, match=r"labels at .*nsynth-valid/examples\.json"):
        nsynth.load(nsynth_root)
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DatasetLayoutError, match=r"nsynth-\{train,valid,test\}/; found none"):
        nsynth.load(empty)


def test_nsynth_partial_download_warns(nsynth_root):
    for path in sorted((nsynth_root / "nsynth-train").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (nsynth_root / "nsynth-train").rmdir()
    with pytest.warns(SkippedExamplesWarning, match="nsynth-train"):
        assert {e.split for e in nsynth.load(nsynth_root)} == {"valid", "test"}


def test_nsynth_malformed_entry(nsynth_root):
    path = nsynth_root / "nsynth-valid" / "examples.json"
    data = json.loads(path.read_text())
    del data["keyboard_electronic_001-064-050"]["pitch"]
    write(path, json.dumps(data))
    with pytest.raises(AnnotationError, match=r"'keyboard_electronic_001-064-050': field 'pitch'"):
        nsynth.load(nsynth_root)
    write(path, '{\n  "a": {\n  oops\n}')
    with pytest.raises(AnnotationError, match=rf"{path}:3: invalid JSON"):
        nsynth.load(nsynth_root)


# --------------------------------------------------------------------------- TinySOL


TINYSOL_HEADER = (
    "Path,Fold,Family,Instrument (abbr.),Instrument (in full),Technique (abbr.),"
    "Technique (in full),Pitch,Pitch ID,Dynamics,Dynamics ID,Instance ID,"
    "String ID (if applicable),Needed digital retuning"
)
TINYSOL_ROWS = [
    "Brass/Bass_Tuba/ordinario/BTb-ord-F#1-pp-N-N.wav,2,Brass,BTb,Bass Tuba,ord,ordinario,F#1,30,pp,0,0,,FALSE",
    "Strings/Violin/ordinario/Vn-ord-G3-ff-4c-N.wav,0,Strings,Vn,Violin,ord,ordinario,G3,55,ff,4,0,4.0,FALSE",
    "Winds/Flute/ordinario/Fl-ord-C4-mf-N-N.wav,1,Winds,Fl,Flute,ord,ordinario,C4,60,mf,2,0,,TRUE",
    "Keyboards/Accordion/ordinario/Acc-ord-A4-p-N-R100d.wav,4,Keyboards,Acc,Accordion,ord,ordinario,A4,69,p,1,0,,FALSE",
]


@pytest.fixture
def tinysol_root(tmp_path):
    write(tmp_path / "TinySOL_metadata.csv", "\n".join([TINYSOL_HEADER, *TINYSOL_ROWS]) + "\n")
    for row in TINYSOL_ROWS:
        write(tmp_path / "TinySOL" / row.split(",")[0])
    return tmp_path


def test_tinysol_labels_and_fold_splits(tinysol_root):
    examples = tinysol.load(tinysol_root)
    assert_sorted(examples)
    tuba = by_name(examples)["BTb-ord-F#1-pp-N-N.wav"]
    assert tuba.path == tinysol_root / "TinySOL/Brass/Bass_Tuba/ordinario/BTb-ord-F#1-pp-N-N.wav"
    assert tuba.labels == {
        "pitch": 30, "pitch_name": "F#1", "instrument": "Bass Tuba", "family": "Brass",
        "technique": "ordinario", "dynamics": "pp", "fold": 2,
    }
    splits = {e.labels["instrument"]: e.split for e in examples}
    assert splits == {
        "Violin": "test", "Flute": "valid", "Bass Tuba": "train", "Accordion": "train",
    }
    rotated = {e.labels["instrument"]: e.split for e in tinysol.load(tinysol_root, test_fold=4)}
    assert rotated == {
        "Accordion": "test", "Violin": "valid", "Bass Tuba": "train", "Flute": "train",
    }


def test_tinysol_missing_files(tinysol_root, tmp_path_factory):
    (tinysol_root / "TinySOL" / TINYSOL_ROWS[0].split(",")[0]).unlink()
    with pytest.warns(SkippedExamplesWarning, match="TinySOL: skipped 1 of 4"):
        assert len(tinysol.load(tinysol_root)) == 3
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DatasetLayoutError, match=rf"metadata at {empty}/TinySOL_metadata.csv"):
        tinysol.load(empty)
    write(empty / "TinySOL_metadata.csv", TINYSOL_HEADER + "\n")
    with pytest.raises(DatasetLayoutError, match=rf"expected audio at {empty}/TinySOL/"):
        tinysol.load(empty)


def test_tinysol_malformed_row(tinysol_root):
    metadata = tinysol_root / "TinySOL_metadata.csv"
    bad_row = TINYSOL_ROWS[1].replace(",55,", ",G,")
    write(metadata, "\n".join([TINYSOL_HEADER, TINYSOL_ROWS[0], bad_row]))
    with pytest.raises(AnnotationError, match=rf"{metadata}:3: cannot read column 'Pitch ID'"):
        tinysol.load(tinysol_root)
    write(metadata, TINYSOL_HEADER.replace("Pitch ID", "MIDI") + "\n")
    with pytest.raises(AnnotationError, match=r":1: header lacks column\(s\) \['Pitch ID'\]"):
        tinysol.load(tinysol_root)


# --------------------------------------------------------------------------- Ballroom


BALLROOM_BEATS = {  # name: (style, beats file)
    "Albums-AnaBelen_Veneo-01": ("ChaChaCha", "0.5 1\n1.0 2\n1.5 3\n2.0 4\n2.5 1\n"),
    "Media-105901": ("Waltz", "1.86 1\n2.627 2\n3.333 3\n4.1 1\n"),
    "Albums-Cafe_Paradiso-05": ("Rumba-International", "0.1\t1\n0.7\t2\n1.3\t3\n1.9\t4\n"),
}


@pytest.fixture
def ballroom_root(tmp_path):
    for name, (style, beats) in BALLROOM_BEATS.items():
        write(tmp_path / "BallroomData" / style / f"{name}.wav")
        write(tmp_path / "BallroomAnnotations" / f"{name}.beats", beats)
    return tmp_path


def test_ballroom_beats_tempo_genre(ballroom_root):
    examples = ballroom.load(ballroom_root)
    assert_sorted(examples)
    cha = by_name(examples)["Albums-AnaBelen_Veneo-01.wav"].labels
    assert cha["beats"] == [0.5, 1.0, 1.5, 2.0, 2.5]
    assert cha["downbeats"] == [0.5, 2.5]
    assert cha["tempo"] == pytest.approx(120.0)
    assert (cha["style"], cha["genre"]) == ("ChaChaCha", "ChaChaCha")
    waltz = by_name(examples)["Media-105901.wav"].labels
    assert waltz["tempo"] == pytest.approx(60 / 0.767)  # median of 0.767, 0.706, 0.767
    rumba = by_name(examples)["Albums-Cafe_Paradiso-05.wav"].labels
    assert (rumba["style"], rumba["genre"]) == ("Rumba-International", "Rumba")
    assert rumba["tempo"] == pytest.approx(100.0)
    assert {e.split for e in examples} <= {"train", "valid", "test"}
    assert examples == ballroom.load(ballroom_root)


def test_ballroom_unannotated_audio_and_missing_annotations(ballroom_root, tmp_path_factory):
    write(ballroom_root / "BallroomData" / "Tango" / "Albums-Duplicate-01.wav")
    (ballroom_root / "BallroomData" / "Waltz" / "Media-105901.wav").unlink()
    with pytest.warns(SkippedExamplesWarning) as record:
        examples = ballroom.load(ballroom_root)
    messages = [str(w.message) for w in record]
    assert any("no .beats file): Albums-Duplicate-01" in m for m in messages)
    assert any("audio missing): Media-105901" in m for m in messages)
    assert len(examples) == 2
    empty = tmp_path_factory.mktemp("empty")
    write(empty / "BallroomData" / "Jive" / "a.wav")
    expected = rf"expected beat annotations at {empty}/BallroomAnnotations/\*\.beats"
    with pytest.raises(DatasetLayoutError, match=expected):
        ballroom.load(empty)


def test_ballroom_malformed_beats(ballroom_root):
    bad = write(ballroom_root / "BallroomAnnotations" / "Media-105901.beats", "1.0 1\n1.5\n")
    with pytest.raises(AnnotationError, match=rf"{bad}:2: expected '<time> <beat number>'"):
        ballroom.load(ballroom_root)
    write(bad, "1.0 1\n0.5 2\n")
    with pytest.raises(AnnotationError, match=rf"{bad}:2: beat at 0.5 s is not after 1.0 s"):
        ballroom.load(ballroom_root)
