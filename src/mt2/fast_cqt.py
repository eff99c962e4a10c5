"""nnAudio's ``CQT2010v2`` computed another way: the same filters and sums, several times faster on CPU.

``CQT2010v2`` (Schörkhuber's multi-rate CQT) applies a small bank of complex kernels,
one octave wide, to the audio and to successive half-band decimations of it: octave
``o`` from the top is the same kernel bank run on the signal decimated ``o`` times, with
the hop halved at each step. nnAudio runs both steps as ``conv1d`` with a single input
channel, a 256-tap decimation filter at stride 2 and a 128-tap kernel bank at a stride of
up to 512 samples. On CPU PyTorch sends these shapes to its slow im2col path
(``aten::_slow_conv2d_forward``) and its oneDNN convolution: on one core of our 2-core
CPU about 0.12 s for one 4-s window, 15-20 ms per window in batches of 16.

:class:`FastCQT2010v2` keeps nnAudio's buffers (kernels, decimation filters, bin
lengths) and computes the same sums differently:

* each decimation (zero padding of 127, 256 taps, stride 2) as one real FFT
  cross-correlation whose output is read at every second sample, in float64;
* each octave's kernel bank (reflect padding of ``n_fft // 2``, stride ``hop``) as frames
  cut with ``unfold`` and one float32 matrix product with the stacked real and imaginary
  kernels.

Why float64 for the FFTs: a direct convolution rounds locally, so silence stays (nearly)
silent, but an FFT spreads its rounding error, about 1e-7 of the loudest component in
float32, over every sample, silence included. The model's windows lift such a floor (square
root, then division by the window mean), by up to 2% of the mean in a half-silent window,
the zero-padded last window of every file. In float64 the decimated signal is exact to
float32 precision, and the output is closer to the exact transform than nnAudio's own
float32 result (measured in ``docs/perf/perf.md``; ``tests/test_fast_cqt.py``). The FFTs
cost twice as much in float64; the transform stays several times faster than nnAudio's.
Devices without float64 (Apple MPS) need the nnAudio backend.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def fft_decimate(
    x: torch.Tensor, taps: torch.Tensor, factor: int, taps_spectrum: Callable[[int], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``conv1d(x, taps, stride=factor, padding=(len(taps) - 1) // 2)`` for ``x`` of shape ``(B, N)``.

    A cross-correlation with zero padding computed with one real FFT of the padded signal,
    then read at every ``factor``-th sample: ``O(N log N)`` instead of ``O(N * taps)``.
    ``taps_spectrum(n_fft)``, when given, returns ``conj(rfft(taps, n_fft))`` (a cached copy):
    the taps never change, so only the signal needs a transform.
    """
    size = taps.shape[-1]
    pad = (size - 1) // 2
    length = x.shape[-1] + 2 * pad
    if length < size:
        raise ValueError(f"{x.shape[-1]} samples are too few to decimate with {size} taps: pass a longer signal")
    outputs = (length - size) // factor + 1
    n_fft = _fast_fft_size(length)
    filter_spectrum = taps_spectrum(n_fft) if taps_spectrum else torch.fft.rfft(taps, n=n_fft).conj()
    spectrum = torch.fft.rfft(x, n=n_fft) * filter_spectrum
    # The padded signal is x shifted right by ``pad``, so its correlation at lag m is the
    # correlation of x at lag m - pad (circular, hence read modulo n_fft).
    correlation = torch.fft.irfft(spectrum, n=n_fft).roll(pad, dims=-1)
    return correlation[..., : (outputs - 1) * factor + 1 : factor]


def _fast_fft_size(n: int) -> int:
    """The smallest ``2^a 3^b 5^c >= n``: sizes that pocketfft transforms fast."""
    best = 1 << (n - 1).bit_length()
    power5 = 1
    while power5 < best:
        power3 = power5
        while power3 < best:
            size = power3
            while size < n:
                size *= 2
            best = min(best, size)
            power3 *= 3
        power5 *= 5
    return best


class FastCQT2010v2(nn.Module):
    """The transform of an nnAudio ``CQT2010v2`` (output format ``Magnitude``), computed with FFT
    decimation and frame matrix products (module docstring). Input ``(B, N)``, output
    ``(B, n_bins, 1 + N // hop_length)``, as nnAudio's.

    Args:
        reference: an nnAudio ``CQT2010v2`` built with ``output_format="Magnitude"`` and
            ``trainable=False``; its kernels, filters and settings are copied.
    """

    def __init__(self, reference: nn.Module) -> None:
        super().__init__()
        if reference.output_format != "Magnitude" or reference.trainable:
            raise ValueError("FastCQT2010v2 reproduces a non-trainable CQT2010v2 with output_format='Magnitude'")
        self.hop_length = reference.hop_length  # after early downsampling, as in nnAudio
        self.n_bins = reference.n_bins
        self.n_octaves = reference.n_octaves
        self.downsample_factor = int(reference.downsample_factor)
        self.reflect = reference.pad_mode == "reflect"
        kernels = torch.cat([reference.cqt_kernels_real[:, 0], -reference.cqt_kernels_imag[:, 0]])
        self.register_buffer("kernels", kernels.T.contiguous())  # (n_fft, 2 * bins per octave)
        self.register_buffer("lowpass", reference.lowpass_filter[0, 0].clone())
        early = reference.early_downsample_filter[0, 0].clone() if reference.earlydownsample else None
        self.register_buffer("early_lowpass", early)
        self.register_buffer("scale", torch.sqrt(reference.lenghts) * self.downsample_factor)
        self._spectra: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    #: Filter spectra kept (least recently used dropped): one per decimation filter and FFT size.
    CACHED_SPECTRA = 16

    def _spectrum_of(self, name: str) -> Callable[[int], torch.Tensor]:
        """``n_fft -> conj(rfft(taps, n_fft))`` of the float64 buffer ``name``, cached."""
        def spectrum(n_fft: int) -> torch.Tensor:
            taps = getattr(self, name)
            key = (name, n_fft, taps.device)
            if key not in self._spectra:
                self._spectra[key] = torch.fft.rfft(taps.double(), n=n_fft).conj()
                if len(self._spectra) > self.CACHED_SPECTRA:
                    self._spectra.popitem(last=False)
            self._spectra.move_to_end(key)
            return self._spectra[key]

        return spectrum

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """CQT magnitudes ``(B, n_bins, T)`` of audio ``(B, N)``."""
        x = audio.double()  # decimation in float64 (module docstring)
        if self.early_lowpass is not None:
            x = fft_decimate(x, self.early_lowpass.double(), self.downsample_factor, self._spectrum_of("early_lowpass"))
        hop = self.hop_length
        octaves = [self._octave(x, hop)]
        for _ in range(self.n_octaves - 1):
            hop //= 2
            x = fft_decimate(x, self.lowpass.double(), 2, self._spectrum_of("lowpass"))
            octaves.insert(0, self._octave(x, hop))
        complex_cqt = torch.cat(octaves, dim=1)[:, -self.n_bins :]  # (B, bins, T, 2): real, imag
        return complex_cqt.pow(2).sum(-1).sqrt() * self.scale[:, None]

    def _octave(self, x: torch.Tensor, hop: int) -> torch.Tensor:
        """One octave of complex CQT, ``(B, bins per octave, T, 2)``, from the (float64) signal at that octave's rate."""
        size = self.kernels.shape[0]
        pad = size // 2
        # nnAudio falls back to zero padding when the signal is too short to reflect.
        mode = "reflect" if self.reflect and x.shape[-1] > pad else "constant"
        frames = F.pad(x[:, None].to(self.kernels.dtype), (pad, pad), mode=mode)[:, 0].unfold(-1, size, hop)  # (B, T, n_fft)
        out = frames @ self.kernels  # (B, T, 2 * bins)
        return out.unflatten(-1, (2, -1)).permute(0, 3, 1, 2)
