"""CQT frontend: audio at 16 kHz -> compressed, normalised constant-Q magnitudes.

Bin ``b`` of the 99-bin CQT is centred on MIDI pitch ``21 + b`` (A0 = 27.5 Hz), 12 bins
per octave, hop 512 samples (31.25 frames per second). The model sees an 84-bin window
(7 octaves) cut from the 99 bins at an offset ``o`` in ``[0, 15]``: cutting at ``o + k``
shows the same audio as if it had been transposed down by ``k`` semitones
(see :func:`crop`), which is how training transposes for free (docs/design.md section 2).
"""
from __future__ import annotations

import torch
from torch import nn

SAMPLE_RATE = 16_000
HOP_LENGTH = 512
FRAME_RATE = SAMPLE_RATE / HOP_LENGTH  # 31.25 frames per second
FMIN = 27.5
BINS_PER_OCTAVE = 12
N_BINS = 99
MIDI_OF_BIN0 = 21
WINDOW_BINS = 84
MAX_OFFSET = N_BINS - WINDOW_BINS  # 15
#: Frames of one model window (a training segment, an inference window): 126 hops of 512
#: samples at 16 kHz, :data:`WINDOW_SECONDS` = 4.03 s.
WINDOW_FRAMES = 126
WINDOW_SECONDS = WINDOW_FRAMES * HOP_LENGTH / SAMPLE_RATE
DEFAULT_OFFSET = 7  # inference window: bins 7..90 = MIDI 28..111
COMPRESSIONS = ("linear", "sqrt", "log")
#: The magnitude compression of the model input unless told otherwise: the recipe study's
#: measured choice (log blurs pitch classes at 12 bins per octave; docs/recipe.md).
DEFAULT_COMPRESSION = "sqrt"
#: How the CQT is computed: nnAudio's ``CQT2010v2`` itself, or the same transform through
#: :class:`mt2.fast_cqt.FastCQT2010v2` (same filters, FFT decimation in float64; it differs from
#: nnAudio by nnAudio's own float32 rounding error).
BACKENDS = ("nnaudio", "fast")
#: The backend a :class:`CQTFrontend` gets unless told otherwise: ``fast``, several times faster
#: on CPU (``docs/perf/perf.md``) and equal to nnAudio's magnitudes up to nnAudio's float32
#: rounding, so that the shipped model names the same key with either backend
#: (``tests/test_fast_cqt.py``). ``nnaudio`` stays selectable, and is needed on devices without
#: float64 (Apple MPS).
DEFAULT_BACKEND = "fast"


class CQTFrontend(nn.Module):
    """Audio at 16 kHz -> CQT magnitudes -> the model's input window: the one definition of
    what the model sees.

    * :meth:`magnitude`: raw CQT magnitudes ``(B, n_bins, T)`` of audio ``(B, N)`` or ``(N,)``,
      ``T = 1 + N // hop_length`` centred frames (what caches store).
    * :meth:`window`: the model input ``(B, 84, frames)`` cut from magnitudes by
      :func:`model_window` at this frontend's ``offset`` with its ``compression``.

    ``compression`` maps a magnitude ``m`` to ``m`` (linear), ``sqrt(m)`` or ``log1p(100 m)``
    (log); log blurs pitch classes at 12 bins per octave (docs/design.md section 3), so the default
    is ``sqrt``, the recipe study's measured choice. ``offset`` is the first of the 84 CQT bins
    the model sees (:data:`DEFAULT_OFFSET`: MIDI 28..111).

    ``backend`` picks how the CQT is computed (:data:`BACKENDS`): ``nnaudio`` runs nnAudio's
    ``CQT2010v2``, ``fast`` the same filters through :class:`mt2.fast_cqt.FastCQT2010v2`,
    several times faster on CPU (``docs/perf/perf.md``).
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        hop_length: int = HOP_LENGTH,
        fmin: float = FMIN,
        bins_per_octave: int = BINS_PER_OCTAVE,
        n_bins: int = N_BINS,
        compression: str = DEFAULT_COMPRESSION,
        offset: int = DEFAULT_OFFSET,
        backend: str = DEFAULT_BACKEND,
    ) -> None:
        super().__init__()
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression={compression!r} is not one of {COMPRESSIONS}")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is not one of {BACKENDS}")
        top = fmin * 2 ** ((n_bins - 1) / bins_per_octave)
        if top >= sample_rate / 2:
            raise ValueError(
                f"the top CQT bin ({top:.0f} Hz) must lie below Nyquist ({sample_rate / 2:.0f} Hz): "
                "lower n_bins or fmin"
            )
        from nnAudio.features import CQT2010v2  # deferred: nnAudio import is slow

        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.n_bins = n_bins
        self.bins_per_octave = bins_per_octave
        self.compression = compression
        self.offset = offset
        self.backend = backend
        self.cqt = CQT2010v2(
            sr=sample_rate,
            hop_length=hop_length,
            fmin=fmin,
            n_bins=n_bins,
            bins_per_octave=bins_per_octave,
            output_format="Magnitude",
            verbose=False,
        )
        if backend == "fast":
            from mt2.fast_cqt import FastCQT2010v2

            self.cqt = FastCQT2010v2(self.cqt)

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """Raw CQT magnitudes ``(B, n_bins, T)``: what caches store and :meth:`window` cuts."""
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        if audio.dim() != 2:
            raise ValueError(f"audio must have shape (N,) or (B, N), got {tuple(audio.shape)}")
        if not torch.isfinite(audio).all():
            raise ValueError("audio contains NaN or infinite samples: clean or drop the input")
        if self.backend == "fast" and audio.device.type == "mps":
            raise ValueError("the fast CQT backend computes in float64, which MPS lacks: use backend='nnaudio' "
                             "(CQTFrontend(backend=...), mt2.load(name, backend='nnaudio'))")
        return self.cqt(audio.float())

    def window(self, magnitude: torch.Tensor, frames: int | None = None, shift: int = 0) -> torch.Tensor:
        """The model input ``(B, 84, frames)``: the first ``frames`` frames (all when None) of
        ``magnitude`` through :func:`model_window` at :attr:`offset` ``+ shift`` with
        :attr:`compression`. A ``shift`` of ``k`` cuts the window ``k`` bins higher, so it shows
        the content ``k`` semitones lower (how the study measures equivariance)."""
        return model_window(magnitude[..., :frames], self.offset + shift, self.compression)

    def num_frames(self, num_samples: int) -> int:
        """Number of CQT frames for ``num_samples`` samples."""
        return 1 + num_samples // self.hop_length


def compress(magnitude: torch.Tensor, compression: str = DEFAULT_COMPRESSION) -> torch.Tensor:
    """Compress magnitudes ``(B, F, T)`` (``m``, ``sqrt(m)`` or ``log1p(100 m)``) and divide each
    example by its mean compressed value over bins and frames, so the input gain does not
    matter; silence stays exactly zero."""
    if compression == "sqrt":
        out = magnitude.clamp_min(0).sqrt()
    elif compression == "log":
        out = torch.log1p(100 * magnitude.clamp_min(0))
    elif compression == "linear":
        out = magnitude
    else:
        raise ValueError(f"compression={compression!r} is not one of {COMPRESSIONS}")
    scale = out.mean(dim=(-2, -1), keepdim=True)
    return out / scale.clamp_min(1e-8) * (scale > 0)


def crop(cqt: torch.Tensor, offset: int | torch.Tensor, width: int = WINDOW_BINS) -> torch.Tensor:
    """Cut ``width`` bins starting at ``offset`` from ``(B, F, T)`` (one offset or one per example).

    Cutting at ``offset + k`` instead of ``offset`` shows the content ``k`` semitones lower:
    what sat at window bin ``j + k`` now sits at window bin ``j``.
    """
    n_bins = cqt.shape[-2]
    if isinstance(offset, int):
        if not 0 <= offset <= n_bins - width:
            raise ValueError(f"offset={offset} must lie in [0, {n_bins - width}] for {n_bins} bins and width {width}")
        return cqt[..., offset : offset + width, :]
    offset = torch.as_tensor(offset, device=cqt.device).long()
    if offset.shape != cqt.shape[:1]:
        raise ValueError(f"need one offset per example: offsets {tuple(offset.shape)} for batch {cqt.shape[0]}")
    if (offset < 0).any() or (offset > n_bins - width).any():
        raise ValueError(f"offsets must lie in [0, {n_bins - width}], got {offset.tolist()}")
    index = offset[:, None] + torch.arange(width, device=cqt.device)[None, :]
    index = index[:, :, None].expand(-1, -1, cqt.shape[-1])
    return torch.gather(cqt, 1, index)


def model_window(magnitude: torch.Tensor, offset: int | torch.Tensor, compression: str = DEFAULT_COMPRESSION) -> torch.Tensor:
    """What the model sees: the 84-bin window of raw magnitudes ``(B, 99, T)`` at ``offset``
    (one, or one per example), compressed and normalised per window (:func:`compress`).

    The single implementation: training views, the study and :meth:`CQTFrontend.window`
    (so the encoder) all go through this function."""
    return compress(crop(magnitude, offset, WINDOW_BINS), compression)
