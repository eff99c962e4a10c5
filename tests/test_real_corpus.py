"""The real-music corpus (``mt2 corpus real``) and pretraining on it: small fixtures made here
(tones written as Ogg, FLAC and MP3-free files), never the soundtracks themselves."""
from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mt2.cli import main
from mt2.corpus import debian, real, soundtracks
from mt2.data.views import ViewConfig

SR = 22050


def tone(seconds: float, freq: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 1.5 * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write_folder(root: Path) -> Path:
    """Two 'soundtracks' of tones (ogg and flac), a duplicate, a broken file and a too-short file."""
    for album, base in (("strings", 220.0), ("synth", 330.0)):
        (root / album).mkdir(parents=True)
        for i in range(4):
            fmt = "OGG" if i % 2 else "FLAC"
            sf.write(root / album / f"track{i}.{fmt.lower()}", tone(8 + 2 * i, base * (1 + i / 8), channels=2), SR, format=fmt)
    (root / "synth" / "copy.flac").write_bytes((root / "synth" / "track0.flac").read_bytes())
    (root / "synth" / "broken.ogg").write_bytes(b"OggS" + bytes(200))
    sf.write(root / "synth" / "short.flac", tone(1.0, 440.0), SR)
    return root


@pytest.fixture(scope="module")
def real_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    folder = write_folder(root / "mine")
    corpus = real.build_real_corpus(root / "corpus", folder=folder, seed=3, log=lambda _: None)
    return root / "corpus", corpus


def test_folder_corpus_manifest_splits_and_skips(real_corpus):
    out, corpus = real_corpus
    rows = [json.loads(line) for line in (out / real.MANIFEST).read_text().splitlines()]
    assert len(rows) == 8 and corpus.duplicates == 1
    assert list(rows[0]) == list(real.FIELDS)
    assert {r["soundtrack"] for r in rows} == {"strings", "synth"}
    assert set(corpus.skipped_files) == {str(out.parent / "mine/synth/broken.ogg"), str(out.parent / "mine/synth/short.flac")}
    assert "does not decode" in corpus.skipped_files[str(out.parent / "mine/synth/broken.ogg")]
    for row in rows:
        assert (out / row["path"]).is_file() and row["sample_rate"] == SR and row["channels"] == 2
        assert row["duration"] == pytest.approx(sf.info(out / row["path"]).duration, abs=1e-3)
    # splits by track, per soundtrack: each soundtrack of 4 tracks has 1 test, 1 valid, 2 train
    for album in ("strings", "synth"):
        assert sorted(r["split"] for r in rows if r["soundtrack"] == album) == ["test", "train", "train", "valid"]
    summary = json.loads((out / real.SUMMARY).read_text())
    assert summary["tracks"] == 8 and summary["soundtracks"]["strings"]["tracks"] == 4
    assert not list(out.glob(".*tmp*"))
    # the project's track lists and manifest reader take it as it is
    from mt2.data.tracks import list_tracks

    tracks = list_tracks(out)
    assert tracks.kind == "manifest" and len(tracks.training_rows()) == 4
    assert real.is_real_manifest(tracks.rows)


def test_splits_are_seeded_and_deterministic():
    rows = [{"path": f"a/{i}", "soundtrack": "a"} for i in range(20)] + [{"path": "b/0", "soundtrack": "b"}]
    again = [dict(r) for r in reversed(rows)]
    real.assign_splits(rows, 1)
    real.assign_splits(again, 1)
    assert {r["path"]: r["split"] for r in rows} == {r["path"]: r["split"] for r in again}
    counts = {s: sum(r["split"] == s for r in rows if r["soundtrack"] == "a") for s in ("train", "valid", "test")}
    assert counts == {"train": 14, "valid": 3, "test": 3}
    assert rows[-1]["split"] == "train"  # one track: training only
    held = [dict(r) for r in rows]
    real.assign_splits(held, 1, holdout="a")
    assert [r["split"] for r in held] == ["holdout"] * 20 + ["train"]
    other = [dict(r) for r in rows]
    real.assign_splits(other, 2)
    assert [r["split"] for r in other] != [r["split"] for r in rows]


def test_reserved_packages_are_refused_by_name(tmp_path):
    for name in ("wesnoth-1.16-music", "wesnoth-music", "warzone2100-music", "fretsonfire-songs-muldjord",
                 "fretsonfire-songs-sectoid", "fluid-soundfont-gm", "musescore-general-soundfont"):
        assert debian.is_reserved(name)
        with pytest.raises(ValueError, match="reserved"):
            real.build_real_corpus(tmp_path, packages=["asc-music", name], install=False, log=lambda _: None)
        with pytest.raises(ValueError, match="reserved"):
            debian.fetch_package(name, tmp_path / "cache", log=lambda _: None)
    assert not any(debian.is_reserved(s.package) for s in soundtracks.PACKAGES)
    assert not (tmp_path / "cache").exists()
    assert main(["corpus", "real", str(tmp_path / "x"), "--no-install", "--packages", "warzone2100-music"]) == 2


def test_pk3_members_sound_effects_and_licenses(tmp_path):
    pk3 = tmp_path / "base" / "0music.pk3"
    pk3.parent.mkdir()
    with zipfile.ZipFile(pk3, "w") as archive:
        archive.writestr("music/", b"")
        archive.writestr("music/a.ogg", b"x")
        archive.writestr("sound/step.ogg", b"y")
    spec = soundtracks.Soundtrack("game", "game-music", ("*.pk3",), members=("music/*.ogg",))
    found = real.package_candidates(spec, [pk3, tmp_path / "readme.txt"])
    assert [c.origin for c in found] == [f"{pk3}:music/a.ogg"] and found[0].read() == b"x"
    hyper = soundtracks.PACKAGES[3]
    files = [Path("/usr/share/hyperrogue/music/a.ogg"), Path("/usr/share/hyperrogue/sounds/b.ogg")]
    assert [c.name for c in real.package_candidates(hyper, files)] == ["a"]

    dep5 = tmp_path / "copyright"
    dep5.write_text("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                    "Files: *\nCopyright: x\nLicense: GPL-2+\n\n"
                    "Files:\n base/music/a.ogg\n base/music/b*.ogg\nCopyright: y\nLicense: CC-BY-3.0\n")
    assert real.license_of(dep5, f"{tmp_path}/base/music/a.ogg") == "CC-BY-3.0"
    assert real.license_of(dep5, f"{tmp_path}/base/music/bz.ogg") == "CC-BY-3.0"
    assert real.license_of(dep5, f"{tmp_path}/base/music/c.ogg") == "GPL-2+"
    gpl = tmp_path / "gpl"
    gpl.write_text("under the terms of the GNU General Public License as published by the FSF; either version 2\n"
                   "of the License, or (at your option) any later version.")
    assert real.license_of(gpl, "x") == "GPL-2+"
    assert real.license_of(tmp_path / "missing", "x").startswith("unknown")


def test_raw_songs_decode_as_unsigned_8_bit_stereo():
    data = bytes([128, 128, 255, 0, 0, 255])
    audio = real.decode_raw(data)
    assert audio.shape == (3, 2) and audio[0].tolist() == [0.0, 0.0]
    assert audio[1, 0] > 0.99 and audio[1, 1] == -1.0


def test_no_apt_says_so_and_how_to_pass_a_folder(tmp_path, monkeypatch):
    messages = []
    monkeypatch.setattr(real, "installed_files", lambda package: [])
    monkeypatch.setattr(debian.shutil, "which", lambda name: None)
    corpus = real.build_real_corpus(tmp_path / "out", install=True, packages=["asc-music"], cache=tmp_path / "cache",
                                    log=messages.append)
    assert any("not a Debian system" in m for m in messages) and any("--folder" in m for m in messages)
    assert corpus.rows == [] and corpus.skipped_packages == {"asc-music": "could not be fetched"}


def _fake_deb(folder: Path, package: str, files: dict[str, bytes]) -> Path:
    """A .deb of ``package`` holding ``files`` (packaged path -> bytes), built with dpkg-deb."""
    tree = folder / f"tree-{package}"
    for name, data in files.items():
        (tree / name.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (tree / name.lstrip("/")).write_bytes(data)
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(f"Package: {package}\nVersion: 1.0-1\nArchitecture: all\n"
                                             "Maintainer: test <t@example.org>\nDescription: test\n")
    debs = folder / "cache" / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    deb = debs / f"{package}_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(deb)], check=True, capture_output=True)
    return deb


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian)")
def test_fetched_packages_give_music_folders_long_tracks_packaged_origins_and_licenses(tmp_path, monkeypatch):
    """A game-data package unpacked without installing: only its music folder, only tracks of
    30 s or more, origins and licenses as the package names them; the held-out soundtrack
    gets split 'holdout'; nothing is downloaded (the .deb is in the cache already)."""
    def ogg(seconds: float, freq: float) -> bytes:
        path = tmp_path / f"{seconds}-{freq}.ogg"
        sf.write(path, tone(seconds, freq), SR, format="OGG")
        return path.read_bytes()

    music = "/usr/share/games/toy/music"
    _fake_deb(tmp_path, "toy-data", {
        f"{music}/long-a.ogg": ogg(31.0, 220.0), f"{music}/long-b.ogg": ogg(32.0, 330.0),
        f"{music}/long-c.ogg": ogg(33.0, 440.0), f"{music}/jingle.ogg": ogg(6.0, 550.0),
        "/usr/share/games/toy/sfx/boom.ogg": ogg(31.0, 110.0),
        "/usr/share/doc/toy-data/copyright": b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
                                            b"\n\nFiles: *\nCopyright: x\nLicense: GPL-2+\n\n"
                                            b"Files: usr/share/games/toy/music/*\nCopyright: y\nLicense: CC-BY-SA-3.0\n",
    })
    _fake_deb(tmp_path, "other-data", {f"/usr/share/other/music/{n}.ogg": ogg(30.5, f) for n, f in (("x", 200.0), ("y", 300.0))})
    monkeypatch.setattr(real, "installed_files", lambda package: [])
    monkeypatch.setattr(real, "PACKAGES", (soundtracks.Soundtrack("toy", "toy-data", ("*/games/toy/music/*.ogg",)),
                                           soundtracks.Soundtrack("other", "other-data", ("*/other/music/*.ogg",))))
    monkeypatch.setattr(real, "HOLDOUT", "other")
    messages = []
    corpus = real.build_real_corpus(tmp_path / "out", cache=tmp_path / "cache", log=messages.append)
    assert not any("apt-get download" in m for m in messages)
    rows = {r["origin"]: r for r in corpus.rows}
    assert sorted(rows) == [f"{music}/long-{c}.ogg" for c in "abc"] + [f"/usr/share/other/music/{n}.ogg" for n in "xy"]
    assert "shorter than 30 s" in corpus.skipped_files[f"{music}/jingle.ogg"]
    assert {rows[f"{music}/long-{c}.ogg"]["license"] for c in "abc"} == {"CC-BY-SA-3.0"}
    assert sorted(r["split"] for r in corpus.rows if r["soundtrack"] == "toy") == ["test", "train", "valid"]
    assert {r["split"] for r in corpus.rows if r["soundtrack"] == "other"} == {"holdout"}
    assert (tmp_path / "cache" / "root" / "toy-data").is_dir() and not list((tmp_path / "cache" / "root").glob(".*partial"))
    summary = json.loads((tmp_path / "out" / real.SUMMARY).read_text())
    assert summary["splits"]["holdout"] == 2


# -- pretraining on long tracks ------------------------------------------------------------------
def test_chunked_cqt_equals_the_whole_track_transform():
    from mt2.data.cqt_cache import chunked_magnitude
    from mt2.frontend import CQTFrontend

    frontend = CQTFrontend()
    rng = np.random.default_rng(0)
    audio = (tone(13.3, 110.0, 16000) + 0.05 * rng.standard_normal(int(13.3 * 16000))).astype(np.float32)
    with torch.inference_mode():
        whole = frontend.magnitude(torch.from_numpy(audio))[0].numpy().astype(np.float16)
    chunked = chunked_magnitude(frontend, audio, chunk_frames=100)
    assert chunked.shape == whole.shape
    np.testing.assert_allclose(chunked.astype(np.float32), whole.astype(np.float32), rtol=2e-3, atol=1e-4)


def test_track_cache_tries_skipped_tracks_again(tmp_path, monkeypatch):
    """A track an earlier build skipped (here under a stricter decoder rule) is added when the
    cache is reused: a reused cache holds what a new build would."""
    from mt2.data import cqt_cache

    sf.write(tmp_path / "good.flac", tone(3.0, 220.0), SR)
    sf.write(tmp_path / "late.ogg", tone(4.0, 330.0), SR, format="OGG")
    decoded = cqt_cache._decoded

    def stricter(rel, path, skipped):
        if rel == "late.ogg":
            skipped[rel] = "refused by an older rule"
            return None
        return decoded(rel, path, skipped)

    paths = ["good.flac", "late.ogg"]
    monkeypatch.setattr(cqt_cache, "_decoded", stricter)
    first = cqt_cache.build_track_cache(paths, tmp_path, tmp_path / "cache", progress=False)
    assert list(first.skipped) == ["late.ogg"] and "late.ogg" not in first
    monkeypatch.setattr(cqt_cache, "_decoded", decoded)
    again = cqt_cache.build_track_cache(paths, tmp_path, tmp_path / "cache", progress=False)
    assert again.folder == first.folder and again.skipped == {} and "late.ogg" in again
    np.testing.assert_array_equal(again["good.flac"], first["good.flac"])
    fresh = cqt_cache.build_track_cache(paths, tmp_path, tmp_path / "fresh", progress=False)
    assert fresh.frames("late.ogg") == again.frames("late.ogg")
    np.testing.assert_array_equal(fresh["late.ogg"], again["late.ogg"])


def test_real_source_reads_crops_and_mixes_at_the_configured_share(real_corpus, synthetic_corpus, tmp_path):
    from mt2.data.pretrain import CROP_FRAMES, MixedSource, RealSource, open_source

    out, _ = real_corpus
    source = open_source(out, tmp_path / "cache")
    assert isinstance(source, RealSource) and source.kind == "real"
    cache = source.prepare(progress=False)
    key = source.train_keys()[0]
    whole = cache[key]
    np.testing.assert_array_equal(cache.crop(key, 50, 40), whole[:, 50:90])
    assert isinstance(cache._array(key), np.memmap)  # crops are read from disk, not held
    make = lambda src, start=0: src.batches(batch_size=4, views=ViewConfig(), seed=0, rank=0, world=1, start=start)  # noqa: E731
    stream = iter(make(source))
    first = [next(stream) for _ in range(3)]
    assert first[0].views.a.shape == (4, 84, ViewConfig().segment_frames)
    torch.testing.assert_close(next(iter(make(source, 2))).views.a, first[2].views.a, rtol=0, atol=0)
    assert CROP_FRAMES * 512 / 16000 == pytest.approx(15.0, abs=0.05)

    root, _, _ = synthetic_corpus
    mixed = open_source(root, root / "cache", real=out, real_share=0.25)
    assert isinstance(mixed, MixedSource) and mixed.real_count(8) == 2 and mixed.real_count(2) == 1
    batch = next(iter(make(mixed)))
    assert batch.views.a.shape[0] == 4
    assert "mixed with real recordings" in mixed.describe()
    with pytest.raises(ValueError, match="not a real-music manifest"):
        open_source(root, root / "cache", real=root)


def test_real_share_is_a_config_field_and_a_flag():
    from mt2.training.config import load_config

    config = load_config("mt2-mini", real_data="/data/real", real_share=0.3)
    assert config.real_data == "/data/real" and config.real_share == 0.3
    assert load_config("mt2-mini").real_data is None
    with pytest.raises(ValueError, match="real_share"):
        load_config("mt2-mini", real_share=0.0)


@pytest.mark.slow
@pytest.mark.apt
def test_apt_path_installs_the_smallest_package(tmp_path):
    """Runs apt-get where it can (root on Debian): the 2.4 MB fb-music-high, rendered with openmpt123."""
    ok, why = real.apt_status()
    if not ok:
        pytest.skip(why)
    corpus = real.build_real_corpus(tmp_path, packages=["fb-music-high"], log=lambda _: None)
    if "fb-music-high" in corpus.skipped_packages:
        pytest.skip(f"apt-get could not install fb-music-high: {corpus.skipped_packages}")
    assert [r["soundtrack"] for r in corpus.rows] == ["frozen-bubble"]
    assert corpus.rows[0]["duration"] > 60 and corpus.rows[0]["license"].startswith("GPL")
