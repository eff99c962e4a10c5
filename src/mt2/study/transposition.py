"""Transposition consistency of the key estimate (issue 16): a transposed piece should get a
transposed estimate.

Pieces come from the corpus generator (:func:`mt2.corpus.generator.generate_piece`),
composed in C (``pieces`` of them, major and minor in turn, the styles in a seeded order),
orchestrated once (:func:`mt2.corpus.instruments.orchestrate`) and then transposed by each
offset of :data:`mt2.corpus.build.TRANSPOSITIONS` (-5..+6 semitones: all 12 keys, pitches in
the corpus's range), so the renders of a piece differ in pitch only, not in instruments. Each
render is the first clip of the piece as the corpus renders it
(:func:`mt2.corpus.render.render_piece`: one clip of :data:`mt2.corpus.build.CLIP_SECONDS`,
peak-normalised, 16-bit), in each soundfont, and its key is ``encoder.key(audio, rate)``.

With ``E_k`` the estimate of the render transposed by ``k`` and ``(t, m)`` the tonic and mode
of ``E_0``, per soundfont:

- ``consistency``: share of the pairs (piece, ``k != 0``) with ``E_k = (t + k mod 12, m)``;
- ``signature_consistency``: share of the same pairs with ``sig(E_k) = sig(E_0) + k mod 12``
  (a signature is the relative major tonic's pitch class, :func:`mt2.keys.signature_of`, so a
  transposition by ``k`` semitones moves it by ``k``; on the circle of fifths, by ``7 k``);
- ``accuracy``: share of all renders whose estimated signature is the label's (the key the
  piece was composed in, moved by ``k``: the manifest record's ``signature``).

An estimate without a key (``has_key`` false) is wrong and inconsistent, and so are all the
pairs of a piece whose ``E_0`` has none. The issue asks for ``consistency >= 0.95`` with all
12 transpositions of several pieces in both fonts.
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from mt2.corpus.build import CLIP_SECONDS, TRANSPOSITIONS, derive_seed, load_font
from mt2.corpus.generator import STYLES, generate_piece
from mt2.corpus.instruments import orchestrate
from mt2.corpus.piece import Piece
from mt2.corpus.render import render_piece
from mt2.keys import MODES

if TYPE_CHECKING:
    from mt2.inference import Encoder

#: The soundfonts measured by default (names of :data:`mt2.corpus.render.SOUNDFONTS`).
FONTS = ("timgm6mb", "merlin")


def transposition_pieces(pieces: int = 6, seed: int = 0) -> list[Piece]:
    """``pieces`` generated pieces in C, orchestrated: piece ``i`` (id ``transp-SEED-II``) is in
    ``MODES[i % 2]``, in style ``i`` of a seeded order of the :data:`~mt2.corpus.generator.STYLES`
    (each style once per ``len(STYLES)`` pieces), one clip long, composed and orchestrated from
    its own generator seeded by ``(seed, id)``. The same seed gives the same pieces."""
    if pieces < 1:
        raise ValueError(f"pieces={pieces}: measure at least 1 piece")
    styles = sorted(STYLES)
    order = np.random.default_rng(derive_seed(seed, "transposition-styles")).permutation(len(styles))
    made = []
    for i in range(pieces):
        piece_id = f"transp-{seed}-{i:02d}"
        rng = np.random.default_rng(derive_seed(seed, piece_id))
        piece = generate_piece(piece_id, rng, 0, MODES[i % 2], styles[order[i % len(styles)]], CLIP_SECONDS)
        made.append(orchestrate(piece, rng))
    return made


def render_clip(piece: Piece, soundfont: bytes) -> tuple[np.ndarray, int, dict]:
    """The first clip of ``piece`` as the corpus renders it (:func:`~mt2.corpus.render.render_piece`,
    one clip of :data:`~mt2.corpus.build.CLIP_SECONDS`, written to a temporary folder and read
    back): audio, sample rate and the clip's manifest record (its labels)."""
    with tempfile.TemporaryDirectory(prefix="mt2-transp-") as folder:
        (record,) = render_piece(piece, Path(folder), "test", soundfont, CLIP_SECONDS, 1)
        audio, rate = sf.read(Path(folder) / record["path"], dtype="float32")
    return audio, rate, record


def transposition_consistency(
    encoder: Encoder,
    pieces: int = 6,
    seed: int = 0,
    soundfonts: Sequence[str] = FONTS,
    transpositions: Sequence[int] = TRANSPOSITIONS,
) -> dict[str, dict]:
    """Transposition consistency and accuracy of ``encoder.key`` (module docstring), per soundfont.

    Args:
        encoder: anything with ``key(audio, sample_rate)`` returning a
            :class:`~mt2.inference.embedding.KeyEstimate` (an :class:`~mt2.inference.Encoder`
            with a calibration, as :func:`mt2.load` returns).
        pieces: how many pieces (:func:`transposition_pieces`).
        seed: draws the pieces; the result is the same for the same seed.
        soundfonts: names of :data:`mt2.corpus.render.SOUNDFONTS` or .sf2 paths; the result's keys.
        transpositions: semitone offsets rendered; 0 (the reference) and at least one other.

    Returns:
        soundfont -> JSON-ready dict: ``consistency``, ``signature_consistency``, ``accuracy``;
        the counts behind them (``pairs``, ``consistent``, ``signature_consistent``, ``renders``,
        ``correct``, ``no_key``); ``soundfont`` (file name), ``seed``, ``transpositions`` and
        ``per_piece`` (id, style, label key, estimated key per transposition, ``"X"`` = no key).

    Raises:
        ValueError: ``transpositions`` lacks 0 or any other offset.
        FileNotFoundError, RenderError: a soundfont cannot be found or loaded (:func:`mt2.corpus.build.load_font`).
    """
    offsets = sorted(set(int(k) for k in transpositions))
    if 0 not in offsets or len(offsets) < 2:
        raise ValueError(f"transpositions={list(transpositions)} must hold 0 (the reference render) and at least one other offset")
    fonts = {name: load_font(name) for name in soundfonts}  # a missing font fails before any render
    drawn = transposition_pieces(pieces, seed)
    return {name: _measure(encoder, drawn, font_path, font, offsets, seed) for name, (font_path, font) in fonts.items()}


def _measure(encoder, pieces: list[Piece], font_path: Path, font: bytes, offsets: list[int], seed: int) -> dict:
    """The metrics of one soundfont (:func:`transposition_consistency`)."""
    pairs = consistent = signature_consistent = renders = correct = no_key = 0
    per_piece = []
    for piece in pieces:
        estimates, labels = {}, {}
        for k in offsets:
            audio, rate, record = render_clip(piece.transposed(k), font)
            estimates[k], labels[k] = encoder.key(audio, rate), record
        reference = estimates[0]
        for k, estimate in estimates.items():
            renders += 1
            no_key += not estimate.has_key
            correct += estimate.has_key and estimate.signature == labels[k]["signature"]
            if k == 0:
                continue
            pairs += 1
            if reference.has_key and estimate.has_key:
                consistent += (estimate.tonic, estimate.mode) == ((reference.tonic + k) % 12, reference.mode)
                signature_consistent += estimate.signature == (reference.signature + k) % 12
        per_piece.append({
            "piece_id": piece.piece_id, "style": piece.style, "key": labels[0]["key"],
            "estimates": [estimates[k].label for k in offsets],
        })
    return {
        "consistency": consistent / pairs,
        "signature_consistency": signature_consistent / pairs,
        "accuracy": correct / renders,
        "pairs": pairs, "consistent": consistent, "signature_consistent": signature_consistent,
        "renders": renders, "correct": correct, "no_key": no_key,
        "soundfont": font_path.name, "seed": seed, "transpositions": offsets, "per_piece": per_piece,
    }
