"""Record the original musicnn's activations on a synthetic fixture (tests/data/musicnn_reference.npz).

Runs once, in an environment of its own that has TensorFlow and the ``musicnn`` package
(never the project's: ``make test`` needs neither)::

    python3 -m venv /tmp/musicnn-venv
    /tmp/musicnn-venv/bin/pip install --no-deps musicnn==0.1.0
    /tmp/musicnn-venv/bin/pip install tensorflow-cpu tf-keras librosa numpy
    /tmp/musicnn-venv/bin/python scripts/record_musicnn_reference.py

(TensorFlow 2.21 with tf-keras: the package's ``tf.compat.v1.layers`` need the legacy Keras,
which the script selects with ``TF_USE_LEGACY_KERAS=1``.)

It builds the package's own graph (``musicnn.models.define_model``, as its extractor does),
restores the package's checkpoints and feeds it the log-mel patches of
:func:`fixture_signal`: the two full 3-s patches in one batch and the 33-frame tail alone.
The log-mel spectrogram is the package's ``batch_data`` with two corrections that
:mod:`mt2.bench.musicnn` makes too: the log is taken in float32 (the package's float16 cast
overflows on this fixture's loud second half; the count is recorded as ``float16_overflow``)
and librosa's STFT pads by reflection, the default of the librosa 0.7 the package asks for
(librosa >= 0.10 pads with zeros unless told). Stored per model: the taggram, the
penultimate layer, and every fourth max- and mean-pooled feature, of each patch; and a
strided sample of the log-mel spectrogram. tests/test_musicnn.py compares
:mod:`mt2.bench.musicnn` with them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
SECONDS = 6.5
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "musicnn_reference.npz"
MODELS = ("MSD_musicnn", "MTT_musicnn")
PATCH = 187
#: Rows and columns of the log-mel spectrogram kept in the fixture, and the pooled features kept.
MEL_ROWS, MEL_COLUMNS, POOL_STRIDE = slice(None, None, 16), slice(None, None, 8), 4


def fixture_signal() -> np.ndarray:
    """6.5 s at 16 kHz, deterministic (no random numbers): a quiet three-note chord for 3 s, then
    a loud one (peak near 0.9) over a 2-Hz click train, a rising chirp throughout; float32."""
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    chord = lambda freqs: sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate(freqs))  # noqa: E731
    quiet = (t < 3.0) * 0.05 * chord([261.63, 329.63, 392.0])
    loud = (t >= 3.0) * 0.35 * chord([220.0, 277.18, 329.63, 440.0])
    clicks = (t >= 3.0) * 0.4 * np.exp(-80.0 * np.mod(t, 0.5)) * np.sin(2 * np.pi * 2000.0 * t)
    chirp = 0.02 * np.sin(2 * np.pi * (100.0 * t + 150.0 * t**2))
    return (quiet + loud + clicks + chirp).astype(np.float32)


def log_mel(audio: np.ndarray) -> tuple[np.ndarray, int]:
    """The package's front end in float32 with reflect padding; and how many entries its float16 path makes inf."""
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, hop_length=256, n_fft=512, n_mels=96, pad_mode="reflect").T
    with np.errstate(over="ignore"):
        overflow = int(np.isinf(np.log10(10000 * mel.astype(np.float16) + 1)).sum())
    return np.log10(10000 * mel.astype(np.float32) + 1).astype(np.float32), overflow


def run_graph(model: str, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The package's graph of ``model`` on each batch ``(P, T, 96)``."""
    import tensorflow as tf
    import musicnn
    from musicnn import configuration, models

    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.reset_default_graph()
    tags = configuration.MSD_LABELS if model.startswith("MSD") else configuration.MTT_LABELS
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, None, 96])
        is_training = tf.compat.v1.placeholder(tf.bool)
        logits, _, _, _, _, _, mean_pool, max_pool, penultimate = models.define_model(x, is_training, model, len(tags))
        taggram = tf.nn.sigmoid(logits)
    outputs = []
    with tf.compat.v1.Session() as session:
        tf.compat.v1.train.Saver().restore(session, str(Path(musicnn.__file__).parent / model) + "/")
        for batch in batches:
            values = session.run([taggram, penultimate, max_pool, mean_pool], feed_dict={x: batch, is_training: False})
            outputs.append(dict(zip(("taggram", "penultimate", "max_pool", "mean_pool"), values)))
    return outputs


def main() -> int:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf

    spectrogram, overflow = log_mel(fixture_signal())
    starts = list(range(0, len(spectrogram) - PATCH + 1, PATCH))
    full = np.stack([spectrogram[s:s + PATCH] for s in starts])
    tail = spectrogram[None, starts[-1] + PATCH:]
    record = {"log_mel": spectrogram[MEL_ROWS, MEL_COLUMNS], "frames": np.array(len(spectrogram)),
              "float16_overflow": np.array(overflow), "tensorflow": np.array(tf.__version__)}
    for model in MODELS:
        for part, out in zip(("full", "tail"), run_graph(model, [full, tail])):
            for name, value in out.items():
                value = value.reshape(len(value), -1)
                record[f"{model}/{part}/{name}"] = value[:, ::POOL_STRIDE] if name.endswith("pool") else value
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **{k: np.asarray(v, dtype=np.float32) if np.asarray(v).dtype.kind == "f" else v for k, v in record.items()})
    print(f"{OUT}: {len(spectrogram)} frames, {len(starts)} patches + tail {tail.shape[1]}, float16 overflow {overflow}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
