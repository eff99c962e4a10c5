"""Recipe round 3 in the study: a row with a real share trains through the data path of
``mt2 pretrain`` (:func:`mt2.data.pretrain.open_source`), on crops of the real-music corpus's
training tracks. Small fixtures made here: tones as a real-music corpus, the synthetic corpus."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mt2 import study
from mt2.data.cqt_cache import CQTCache, TrackCQTCache
from mt2.data.pretrain import CachedSource, MixedSource

SR = 22050
TINY = {"model": {"depth": 1, "pc_channels": 8, "heads": 2, "invariant_width": 16}, "batch_size": 8, "warmup": 2}


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory) -> Path:
    """A real-music corpus (``mt2 corpus real --folder``) of two 'soundtracks' of four tone tracks."""
    from mt2.corpus import real

    root = tmp_path_factory.mktemp("study-real")
    for album, base in (("strings", 220.0), ("synth", 330.0)):
        (root / "mine" / album).mkdir(parents=True)
        for i in range(4):
            t = np.arange(int((8 + 2 * i) * SR)) / SR
            tone = 0.3 * np.sin(2 * np.pi * base * (1 + i / 8) * t)
            sf.write(root / "mine" / album / f"track{i}.flac", tone.astype(np.float32), SR)
    real.build_real_corpus(root / "corpus", folder=root / "mine", seed=3, log=lambda _: None)
    return root / "corpus"


@pytest.fixture
def counted(monkeypatch):
    """Counts of what training reads: rendered clips (CQT cache items) and real crops (track cache)."""
    counts = {"rendered": 0, "real": 0, "real_tracks": set()}
    get, crop = CQTCache.__getitem__, TrackCQTCache.crop

    def rendered(self, key):
        counts["rendered"] += 1
        return get(self, key)

    def real_crop(self, key, start, frames):
        counts["real"] += 1
        counts["real_tracks"].add(key)
        return crop(self, key, start, frames)

    monkeypatch.setattr(CQTCache, "__getitem__", rendered)
    monkeypatch.setattr(TrackCQTCache, "crop", real_crop)
    return counts


@pytest.mark.parametrize("name, real_items", [("pc", 0), ("pc-real50", 4), ("pc-real100", 8)])
def test_a_study_row_trains_on_real_crops_at_its_share(name, real_items, real_folder, synthetic_corpus, tmp_path, counted):
    root, _, _ = synthetic_corpus
    config = study.study_config(name, 3, real=real_folder).overlaid(TINY)
    source = study.training_source(root, config, tmp_path / "cache")
    assert isinstance(source, MixedSource) == (real_items > 0) and isinstance(source, CachedSource)
    source.prepare(progress=False)
    for key in counted:
        counted[key] = set() if key == "real_tracks" else 0
    _, curve = study.train(config, source, log=lambda _: None)
    assert len(curve) == 3 and all(np.isfinite(r["loss"]) for r in curve)
    assert counted["real"] == 3 * real_items and counted["rendered"] == 3 * (8 - real_items)
    train_tracks = {json.loads(line)["path"] for line in (real_folder / "manifest.jsonl").read_text().splitlines()
                    if json.loads(line)["split"] == "train"}
    assert counted["real_tracks"] <= train_tracks  # never a valid or test track
    assert study.real_share_of(config) == real_items / 8


def test_study_batches_are_the_pretraining_batches(real_folder, synthetic_corpus, tmp_path):
    """The study's row and ``mt2 pretrain`` with the same config read one stream (rank 0, from step 0)."""
    from mt2.data.pretrain import open_source

    root, _, _ = synthetic_corpus
    config = study.study_config("pc-real50", 3, real=real_folder).overlaid(TINY)
    kwargs = dict(batch_size=config.batch_size, views=config.view_config(), seed=config.seed, rank=0, world=1, start=0)
    ours = next(iter(study.training_source(root, config, tmp_path / "cache").batches(**kwargs))).views
    theirs = next(iter(open_source(root, tmp_path / "cache", config.real_data, config.real_share).batches(**kwargs))).views
    np.testing.assert_array_equal(ours.a.numpy(), theirs.a.numpy())
    np.testing.assert_array_equal(ours.c.numpy(), theirs.c.numpy())


def test_run_study_records_the_share_and_refuses_it_without_real(real_folder, synthetic_corpus, tmp_path, monkeypatch):
    root, _, _ = synthetic_corpus
    monkeypatch.setitem(study.OVERLAYS, "tiny-real50", {**TINY, "real_share": 0.5})
    monkeypatch.setitem(study.OVERLAYS, "tiny", TINY)
    monkeypatch.setattr(study, "evaluate", lambda model, root, manifest, compression, seed: {"key_signature": 0.5})
    measured = []
    monkeypatch.setattr(study, "real_measures", lambda encoder, folder, cache: measured.append(folder) or {"followed": 0.25})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "cache").symlink_to(root / "cache")
    with pytest.raises(ValueError, match="--real"):
        study.run_study(root, ["tiny", "tiny-real50"], 2, tmp_path / "out", log=lambda _: None)
    assert not (tmp_path / "out" / "runs.jsonl").exists()  # refused before any work
    rows = study.run_study(root, ["tiny", "tiny-real50"], 2, tmp_path / "out", log=lambda _: None, real=real_folder)
    assert [r["real_share"] for r in rows] == [0.0, 0.5]
    assert rows[1]["config"]["real_data"] == str(real_folder) and rows[0]["config"]["real_data"] is None
    assert "mixed with real recordings" in rows[1]["train_data"] and "mixed" not in rows[0]["train_data"]
    assert measured == [real_folder, real_folder]
    header, _, first, second = (tmp_path / "out" / "table.md").read_text().splitlines()[:4]
    column = [c.strip() for c in header.split("|")].index("real share")
    assert [c.strip() for c in first.split("|")][column] == "0.000" and [c.strip() for c in second.split("|")][column] == "0.500"


# -- the key reference on real music: essentia on longer excerpts of unseen tracks ----------
def test_against_reference_scores_each_relation_of_two_keys():
    from mt2.evaluation.real_music import against_reference

    references = ["C major"] * 6
    scores = against_reference(["C major", "G major", "A minor", "C minor", "F# major", None], references)
    assert scores["mirex"] == pytest.approx([1.0, 0.5, 0.3, 0.2, 0.0, 0.0])
    assert scores["exact"] == [1.0, 0, 0, 0, 0, 0]
    assert scores["signature"] == [1.0, 0, 1.0, 0, 0, 0]  # A minor shares C major's signature


def test_reference_keys_are_cached_per_version_and_reference_measures_need_essentia(real_folder, tmp_path, monkeypatch):
    from mt2.evaluation import real_music as re

    root, rows = re.read_manifest(real_folder)
    excerpts = re.reference_excerpts(root, rows, tmp_path)
    assert excerpts and {e.split for e in excerpts} <= {"valid", "test"} and all(e.shift == 0 for e in excerpts)
    assert all(sf.info(e.path).duration <= re.REFERENCE_SECONDS for e in excerpts)
    calls = []

    def fake():
        return (lambda audio: calls.append(len(audio)) or "D minor"), "fake-1"

    monkeypatch.setattr(re, "essentia_key_estimator", fake)
    keys, version = re.reference_keys(excerpts)
    assert keys == ["D minor"] * len(excerpts) and version == "fake-1" and len(calls) == len(excerpts)
    assert all(n > 0 for n in calls)  # audio handed over at 44.1 kHz from the 16 kHz excerpts
    assert re.reference_keys(excerpts)[0] == keys and len(calls) == len(excerpts)  # read from the cache
    assert (excerpts[0].path.parent / "keys-fake-1.json").exists()

    def missing():
        raise ImportError("No module named 'essentia'")

    monkeypatch.setattr(re, "essentia_key_estimator", missing)
    result = re.reference_measures(object(), root, rows, tmp_path)
    assert "pip install essentia" in result["essentia_error"]
