"""MERT's masked-prediction pretext on the MT2 backbone (the ``masked`` variant, docs/design.md
sections 2 and 6): span masking of frame tokens, the learned mask embedding, the k-means
target features and the prediction heads.

MERT (and HuBERT before it) hides spans of frame tokens behind a learned mask embedding
and asks the network to predict, at the hidden positions, discrete targets of an acoustic
teacher (here: the nearest centroid of a k-means codebook over the token's input frames,
:mod:`mt2.training.codebook`) and, as MERT's musical teacher, the hidden CQT frames
themselves. Reduced to this backbone:

* **Masking** (:func:`span_mask`): every token position starts a span with probability
  :data:`MASK_START_PROB`; a span covers :data:`MASK_SPAN` tokens (clipped at the end);
  spans may overlap. With 4 frames per token (7.8 tokens/s, 31 tokens per 4-s segment), a
  span is 384 ms, close to MERT's 5 frames at 75 Hz scaled to our coarser token, and the
  expected masked fraction is ``1 - (1 - p)^L`` = 49 % away from the start (measured 47 %
  over a 31-token segment, see ``tests/test_masked.py``), MERT/HuBERT's "about half".
* **Mask embedding**: one learned per-channel vector, expanded like the class tokens and
  positions (:meth:`mt2.model.layout.PitchClassLayout.expand`): in the ``pitch-class`` layout its
  equivariant part is the same for all 12 pitch classes, so a masked token carries no
  pitch-class direction and the equivariant stream stays exactly roll-equivariant. It
  replaces the token *before* the positions are added, so the network knows where the
  hidden token sits (as wav2vec 2.0 and HuBERT do).
* **Targets** (:func:`token_features`): the model-input window frames (compressed,
  normalised per window, exactly what the network sees) averaged over the token's
  ``frames_per_token`` frames, then ``log(x + LOG_FLOOR)``; the code of a token is its
  nearest centroid (squared Euclidean distance). The reconstruction target is the token's
  ``frames_per_token x bins`` input frames, uncompressed by the log (the model's own units).
* **Heads** (:class:`MaskedPrediction`): a linear map of the full final token (both
  streams) to ``codebook_size`` logits and one to the token's frames. MERT's targets are
  absolute pitch content, not transposition-equivariant, so the head may read the
  pitch-class axis densely; the head is training-only, like the CPSD and NT-Xent heads.

The codebook is a buffer of :class:`MaskedPrediction`, so it travels with checkpoints and
exported folders; it is all zeros until fitted (:meth:`MaskedPrediction.set_codebook`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Probability that a token position starts a masked span (HuBERT/MERT's ``p``).
MASK_START_PROB = 0.2
#: Tokens per masked span (HuBERT/MERT's ``L``); 3 tokens of 4 frames = 384 ms.
MASK_SPAN = 3
#: Floor added before the log of the target features (the window is normalised to mean 1).
LOG_FLOOR = 1e-2


def span_mask(
    batch: int, tokens: int, generator: np.random.Generator, start_prob: float = MASK_START_PROB, span: int = MASK_SPAN
) -> torch.Tensor:
    """``(batch, tokens)`` booleans, True where a token is masked: each position starts a span of
    ``span`` tokens with probability ``start_prob`` (spans clipped at the end, overlaps merge)."""
    if not 0.0 <= start_prob <= 1.0:
        raise ValueError(f"start_prob={start_prob} must lie in [0, 1]")
    if span < 1:
        raise ValueError(f"span={span} must be >= 1")
    starts = torch.from_numpy(generator.random((batch, tokens)) < start_prob)
    mask = torch.zeros(batch, tokens, dtype=torch.bool)
    for offset in range(min(span, tokens)):
        mask[:, offset:] |= starts[:, : tokens - offset]
    return mask


def token_frames(window: torch.Tensor, frames_per_token: int) -> torch.Tensor:
    """Model-input window ``(B, bins, T)`` -> each token's frames ``(B, T // n, n * bins)``, frame-major
    (the order of :class:`mt2.model.vit.PlainEmbedding`'s patches); trailing frames are dropped."""
    b, bins, t = window.shape
    usable = t // frames_per_token * frames_per_token
    return window[:, :, :usable].transpose(1, 2).reshape(b, t // frames_per_token, frames_per_token * bins)


def token_features(window: torch.Tensor, frames_per_token: int) -> torch.Tensor:
    """The k-means features of each token: ``log(mean of its frames + LOG_FLOOR)``, ``(B, T', bins)``."""
    b, bins, _ = window.shape
    frames = token_frames(window.float(), frames_per_token).view(b, -1, frames_per_token, bins)
    return torch.log(frames.mean(dim=2).clamp_min(0) + LOG_FLOOR)


def nearest_centroid(features: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid ``(k, F)`` of each row of ``features`` ``(..., F)`` (squared
    Euclidean distance, ties to the lowest index)."""
    flat = features.reshape(-1, features.shape[-1]).float()
    distances = (flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ centroids.float().T + centroids.float().pow(2).sum(-1))
    return distances.argmin(dim=-1).view(features.shape[:-1])


class MaskedPrediction(nn.Module):
    """Mask embedding, k-means codebook (a buffer) and the two prediction heads of the ``masked`` variant.

    ``mask_embedding``: one per-channel vector of the layout (``layout.per_channel_dim``:
    ``pc_channels + invariant_width`` in the pitch-class layout, ``width`` in the plain one);
    the model expands it to a full token (``layout.expand``).
    """

    def __init__(self, layout, config) -> None:
        super().__init__()
        self.frames_per_token = config.frames_per_token
        self.mask_embedding = nn.Parameter(torch.randn(layout.per_channel_dim) * 0.02)
        self.register_buffer("codebook", torch.zeros(config.codebook_size, config.input_bins))
        self.classify = nn.Linear(layout.token_dim, config.codebook_size)
        self.reconstruct = nn.Linear(layout.token_dim, config.frames_per_token * config.input_bins)

    @torch.no_grad()
    def set_codebook(self, centroids: torch.Tensor) -> None:
        """Store fitted centroids ``(codebook_size, bins)``."""
        if tuple(centroids.shape) != tuple(self.codebook.shape):
            raise ValueError(
                f"codebook of shape {tuple(centroids.shape)} does not fit this model's {tuple(self.codebook.shape)} "
                "(codebook_size x input_bins): refit it with mt2.training.codebook.fit_codebook for this config"
            )
        self.codebook.copy_(centroids.to(self.codebook))

    def targets(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``(B, T')`` and frames ``(B, T', n * bins)`` of the unmasked input window."""
        if not bool(self.codebook.any()):
            raise ValueError("the masked variant's codebook is all zeros: fit it before training (mt2.training.codebook.fit_codebook)")
        with torch.autocast(window.device.type, enabled=False):  # codes from fp32 distances, also under bf16 training
            codes = nearest_centroid(token_features(window, self.frames_per_token), self.codebook)
        return codes, token_frames(window, self.frames_per_token)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final frame tokens ``(..., D)`` -> code logits ``(..., k)`` and frames ``(..., n * bins)``."""
        return self.classify(tokens), self.reconstruct(tokens)
