"""What the encoder returns: the embedding containers (:class:`Embedding`, :class:`Readout`)
and the key estimate (:class:`KeyEstimate`), with the one check of readout names and layers.

They hold arrays only; :mod:`mt2.inference.encoder` fills them (one forward pass per window)
and :mod:`mt2.inference.key_decision` turns window statistics into a :class:`KeyEstimate`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

#: Readouts of :meth:`~mt2.inference.Encoder.embed` (docs/design.md section 2).
READOUTS = ("equivariant", "contrastive", "average", "concat", "frames")

#: The key label of an input without a key (silence, noise): mir_eval's "uncategorised" key.
NO_KEY = "X"


def readouts_of(roles: tuple[str, ...]) -> tuple[str, ...]:
    """The readouts of a model whose class tokens serve ``roles``: the roles, ``average``,
    ``concat`` (with two or more class tokens; with one it would repeat the token) and ``frames``."""
    return (*roles, "average", *(("concat",) if len(roles) > 1 else ()), "frames")


def check_readout_name(name: str, roles: tuple[str, ...]) -> None:
    """Raise ValueError unless a model with class tokens ``roles`` offers readout ``name``."""
    readouts = readouts_of(roles)
    if name not in readouts:
        raise ValueError(f"readout {name!r} is not available: this model has class tokens {roles}, so its readouts are {', '.join(readouts)}")


def check_layer(layer: int, depth: int) -> int:
    """The block ``0 .. depth - 1`` of ``layer`` (negative counts from the end), or ValueError."""
    if not -depth <= layer < depth:
        raise ValueError(f"layer {layer} is out of range for a model with {depth} blocks (use -{depth}..{depth - 1})")
    return layer % depth


def check_readout(roles: tuple[str, ...], depth: int, readout: str, layer: int, layers: Iterable[int] = ()) -> tuple[int, ...]:
    """Raise ValueError unless a model with class tokens ``roles`` and ``depth`` blocks offers
    ``readout`` and has blocks ``layer`` and ``layers``; returns ``layers`` as a tuple of ints."""
    check_readout_name(readout, roles)
    layers = tuple(int(x) for x in layers)
    for index in (layer, *layers):
        check_layer(index, depth)
    return layers


@dataclass(frozen=True)
class Readout:
    """One readout of an :class:`Embedding` at one block.

    Attributes:
        name: ``equivariant``, ``contrastive`` (one class token), ``average`` (mean of the
            class tokens), ``concat`` (the class tokens side by side, in role order: ``K * D``
            values) or ``frames`` (mean of each window's frame tokens).
        layer: the block read, ``0 .. depth - 1``.
        windows: ``(W, D)`` the readout of each window (``(W, K * D)`` for ``concat``).
        clip: ``(D,)`` mean of ``windows`` weighted by each window's valid duration.
    """

    name: str
    layer: int
    windows: np.ndarray
    clip: np.ndarray


@dataclass
class Embedding:
    """Everything one forward pass over an input's windows yields (:meth:`~mt2.inference.Encoder.embed`):
    ``W`` windows, ``K`` class tokens, ``F`` frame tokens, ``D`` values per token.

    Every readout of every block held comes from here without another pass:
    ``emb.readout("contrastive")``, ``emb.readout("average", layer=2)``,
    ``emb.frames_at(2)``. The attributes ``clip``, ``windows``, ``class_tokens`` and
    ``frames`` are those of the readout and block that :meth:`~mt2.inference.Encoder.embed` was asked for.

    Attributes:
        roles: the role of each class token, in order.
        depth: the model's number of blocks; a negative layer counts from the end.
        default_readout: the readout of ``clip`` and ``windows``.
        layer: the block of ``clip``, ``windows``, ``class_tokens`` and ``frames``, ``0 .. depth - 1``.
        layer_class_tokens: block -> ``(W, K, D)`` class tokens of each window. Holds the
            blocks asked for and always the last (the key reads it: :meth:`~mt2.inference.Encoder.key_of`).
        layer_frames: block -> ``(F, D)`` frame tokens of all windows in time order,
            padding dropped, for the blocks asked for (empty when embedded without frames).
        timestamps: ``(F,)`` centre of each frame token in seconds.
        window_starts: ``(W,)`` start of each window in seconds.
        window_lengths: ``(W,)`` valid (unpadded) duration of each window in seconds.
        frame_counts: ``(W,)`` frame tokens of each window (padding dropped).
        spectrum: ``(W, 84)`` each window's model input averaged over its valid frames (bin ``b``
            is MIDI pitch ``21 + offset + b``, :mod:`mt2.frontend`).
        rms: ``(W,)`` RMS of each window's valid samples at 16 kHz (1 for a full-scale square wave).
        key_head: ``(W, D) tokens -> (W, 12)`` the equivariant head's softmax (set by the encoder),
            applied on first use of :attr:`key_probabilities` only.
        shifts: the bin shifts whose group average the key outputs hold (``(0,)``: none;
            :attr:`mt2.inference.Encoder.shifts`).
        passes: windows start every ``1 / passes`` of a window (1: they do not overlap; more:
            the key path's overlapping windows, :attr:`mt2.inference.Encoder.passes`).
        averaged_probabilities, averaged_tokens: with more than one shift, ``(W, 12)`` and
            ``(W, D)``: each window's head softmax and last-block equivariant token cut at every
            shift ``s``, rolled back by ``s`` and averaged (None with one shift).
    """

    roles: tuple[str, ...]
    depth: int
    default_readout: str
    layer: int
    layer_class_tokens: dict[int, np.ndarray]
    layer_frames: dict[int, np.ndarray]
    timestamps: np.ndarray
    window_starts: np.ndarray
    window_lengths: np.ndarray
    frame_counts: np.ndarray
    spectrum: np.ndarray
    rms: np.ndarray
    key_head: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False, compare=False)
    shifts: tuple[int, ...] = (0,)
    passes: int = 1
    averaged_probabilities: np.ndarray | None = field(default=None, repr=False)
    averaged_tokens: np.ndarray | None = field(default=None, repr=False)

    @cached_property
    def key_probabilities(self) -> np.ndarray | None:
        """``(W, 12)`` softmax of the equivariant head on each window's last-block equivariant
        token, in output-bin order (uncalibrated), averaged over :attr:`shifts`; None without
        that token. Computed on first use from the held tokens (an embedding asked for no key
        computes none)."""
        if self.key_head is None or "equivariant" not in self.roles:
            return None
        if self.averaged_probabilities is not None:
            return self.averaged_probabilities
        return self.key_head(self.class_tokens_at(-1)[:, self.roles.index("equivariant")])

    @property
    def key_tokens(self) -> np.ndarray:
        """``(W, D)`` the last block's equivariant class token of each window, averaged over
        :attr:`shifts` (what the mode probe reads)."""
        if self.averaged_tokens is not None:
            return self.averaged_tokens
        return self.class_tokens_at(-1)[:, self.roles.index("equivariant")]

    @property
    def layers(self) -> tuple[int, ...]:
        """The blocks whose class tokens are held, ascending."""
        return tuple(sorted(self.layer_class_tokens))

    def _block(self, layer: int | None) -> int:
        layer = self.layer if layer is None else layer
        block = check_layer(layer, self.depth)
        if block not in self.layer_class_tokens:
            raise ValueError(f"layer {layer} was not embedded (held: {list(self.layers)}): pass it in embed(..., layers=[...])")
        return block

    def class_tokens_at(self, layer: int | None = None) -> np.ndarray:
        """``(W, K, D)`` class tokens of block ``layer`` (None: :attr:`layer`)."""
        return self.layer_class_tokens[self._block(layer)]

    def frames_at(self, layer: int | None = None) -> np.ndarray:
        """``(F, D)`` frame tokens of block ``layer`` (None: :attr:`layer`).

        Raises:
            ValueError: the block was not embedded, or was embedded without frame tokens.
        """
        block = self._block(layer)
        if block not in self.layer_frames:
            raise ValueError(f"the frame tokens of layer {block} were not kept (held: {sorted(self.layer_frames)}): use Encoder.embed")
        return self.layer_frames[block]

    def readout(self, name: str | None = None, layer: int | None = None) -> Readout:
        """Readout ``name`` (None: :attr:`default_readout`) of block ``layer`` (None: :attr:`layer`).

        ``frames`` averages each window's frame tokens; the other readouts read the class
        tokens. ``clip = sum_w L_w x_w / sum_w L_w`` with ``L_w`` the window's valid duration.

        Raises:
            ValueError: a readout the model lacks, or a block that was not embedded.
        """
        name = self.default_readout if name is None else name
        check_readout_name(name, self.roles)
        block = self._block(layer)
        if name == "frames":
            frames = self.frames_at(block)
            starts = np.concatenate([[0], np.cumsum(self.frame_counts)[:-1]])
            windows = (np.add.reduceat(frames, starts, axis=0) / self.frame_counts[:, None]).astype(np.float32)
        elif name == "average":
            windows = self.layer_class_tokens[block].mean(axis=1)
        elif name == "concat":
            tokens = self.layer_class_tokens[block]
            windows = tokens.reshape(len(tokens), -1)
        else:
            windows = self.layer_class_tokens[block][:, self.roles.index(name)]
        weights = self.window_lengths / self.window_lengths.sum()
        return Readout(name, block, windows, (weights @ windows).astype(np.float32))

    @property
    def clip(self) -> np.ndarray:
        """``(D,)`` the default readout of the whole input (:meth:`readout`)."""
        return self.readout().clip

    @property
    def windows(self) -> np.ndarray:
        """``(W, D)`` the default readout of each window."""
        return self.readout().windows

    @property
    def class_tokens(self) -> np.ndarray:
        """``(W, K, D)`` class tokens of :attr:`layer`."""
        return self.class_tokens_at()

    @property
    def frames(self) -> np.ndarray:
        """``(F, D)`` frame tokens of :attr:`layer`."""
        return self.frames_at()

    def arrays(self) -> dict[str, np.ndarray]:
        """The default readout's arrays by name (what ``mt2 embed`` writes): ``clip``,
        ``windows``, ``class_tokens``, ``frames``, ``timestamps``, ``window_starts``, ``window_lengths``."""
        readout = self.readout()
        return {
            "clip": readout.clip, "windows": readout.windows, "class_tokens": self.class_tokens, "frames": self.frames,
            "timestamps": self.timestamps, "window_starts": self.window_starts, "window_lengths": self.window_lengths,
        }


@dataclass
class KeyEstimate:
    """What :meth:`~mt2.inference.Encoder.key` returns.

    An input without a key (silence, noise: :meth:`~mt2.inference.Encoder.key` says how it is decided) has
    ``has_key`` False, ``key``, ``tonic``, ``mode``, ``signature`` and ``signature_name`` None,
    and ``label`` :data:`NO_KEY` (``"X"``, mir_eval's uncategorised key).

    Attributes:
        key: ``"A minor"`` (mir_eval spelling), or None: no key.
        tonic: pitch class of the tonic, C = 0 (None: no key).
        mode: ``"major"`` or ``"minor"`` (None: no key).
        signature: key signature as the relative major's pitch class (:mod:`mt2.keys`; None: no key).
        signature_name: e.g. ``"C major / A minor (0 sharps)"`` (None: no key).
        confidence: the profile's maximum (the chosen signature's probability when there is a key).
        profile: ``(12,)`` signature probabilities indexed by signature (C = 0), the
            equivariant token's softmax averaged over windows and calibrated.
        mode_source: ``"probe"`` (stored mode probe), ``"template"`` (Krumhansl-Kessler), None: no key.
        level_db: RMS level of the input in dB full scale (``-inf`` for digital silence).
        tonality: how far the input's spectrum is from noise (:func:`~mt2.inference.key_decision.tonality`;
            noise is below 1, music 1.4 and above).
    """

    key: str | None
    tonic: int | None
    mode: str | None
    signature: int | None
    signature_name: str | None
    confidence: float
    profile: np.ndarray = field(repr=False)
    mode_source: str | None
    level_db: float
    tonality: float

    @property
    def has_key(self) -> bool:
        """False for an input without a key (silence, noise)."""
        return self.key is not None

    @property
    def label(self) -> str:
        """The key in mir_eval syntax: :attr:`key`, or :data:`NO_KEY` (``"X"``) without one."""
        return self.key if self.key is not None else NO_KEY

    def to_dict(self) -> dict:
        """JSON-ready fields: ``key`` is :attr:`label` (``"X"``: no key), ``has_key`` is added,
        ``profile`` is a list and ``level_db`` None for digital silence."""
        return {
            "key": self.label, "has_key": self.has_key, "tonic": self.tonic, "mode": self.mode, "signature": self.signature,
            "signature_name": self.signature_name, "confidence": self.confidence,
            "profile": [float(p) for p in self.profile], "mode_source": self.mode_source,
            "level_db": self.level_db if np.isfinite(self.level_db) else None, "tonality": self.tonality,
        }
