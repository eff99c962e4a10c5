"""The embedded labelled corpus: music rendered offline from packages on disk.

Three sources, all rendered with a General MIDI soundfont (TimGM6mb from pretty_midi by
default) through tinysoundfont to 16 kHz mono FLAC:

- ``generator``: tonal pieces of our own in all 24 keys and several styles
  (:mod:`mt2.corpus.generator`);
- ``bach``: the Bach chorales of the music21 corpus (:mod:`mt2.corpus.bach`);
- ``note``: single notes per (program, pitch), NSynth-like (:mod:`mt2.corpus.notes`).

Labels come from the score (key, tempo, beats, downbeats, chords, instruments, pitch,
tags); the manifest format is in :mod:`mt2.corpus.manifest`, sizes, splits and
determinism in :mod:`mt2.corpus.build`.

    >>> from mt2.corpus import render_corpus, read_manifest
    >>> clips = read_manifest(render_corpus("corpus", size="small", seed=7))
"""
from mt2.corpus.build import SIZES, render_corpus
from mt2.corpus.manifest import FIELDS, read_manifest

__all__ = ["FIELDS", "SIZES", "read_manifest", "render_corpus"]
