"""Masked prediction loss of the ``masked`` variant: MERT's objective on our backbone
(HuBERT's masked cluster prediction plus MERT's reconstruction of the hidden CQT frames).

At the ``M`` masked token positions of a batch, with ``logits_m`` the ``k`` code scores,
``c_m`` the k-means code of the hidden token, ``r_m`` the predicted and ``x_m`` the hidden
frames (``n`` values each):

    CE  = (1 / M) sum_m -log softmax(logits_m)[c_m]
    MSE = (1 / (M n)) sum_m |r_m - x_m|^2
    L   = CE + lambda * MSE,    lambda = RECONSTRUCTION_WEIGHT = 1.

Only masked positions count (HuBERT's ``alpha = 1``). Both terms are computed in fp32.

Trivial floors (an output that ignores its input; :func:`trivial_floors`): the best
constant logits are the log of the codes' marginal ``q``, so CE >= H(q) = -sum_j q_j ln q_j
(``ln k`` = 4.61 for a uniform marginal over k = 100 codes); the best constant
reconstruction is the mean frame, so MSE >= the mean per-value variance of the targets.
A run whose terms end near their floors has learned nothing from the context.

``lambda = 1``: the reconstruction target is the model-input window (sqrt magnitudes
normalised to mean 1 per window). Measured on masked tokens of the ``small`` rendered
corpus with its k = 100 codebook: CE floor 4.37 nats, MSE floor 1.93, so at their floors the
two terms are of one order and the cluster term, MERT's main one, is the larger.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

RECONSTRUCTION_WEIGHT = 1.0


def masked_prediction_loss(
    logits: torch.Tensor,
    codes: torch.Tensor,
    reconstruction: torch.Tensor,
    frames: torch.Tensor,
    weight: float = RECONSTRUCTION_WEIGHT,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(L, CE, MSE)`` of the masked positions: ``logits`` ``(M, k)``, ``codes`` ``(M,)``,
    ``reconstruction`` and ``frames`` ``(M, n)``. See the module doc."""
    if logits.dim() != 2 or codes.shape != logits.shape[:1]:
        raise ValueError(f"need logits (masked, k) and one code per row: got {tuple(logits.shape)} and {tuple(codes.shape)}")
    if reconstruction.shape != frames.shape or reconstruction.shape[:1] != logits.shape[:1]:
        raise ValueError(
            f"reconstruction {tuple(reconstruction.shape)} and frames {tuple(frames.shape)} must share one shape (masked, n) "
            f"with {logits.shape[0]} masked rows"
        )
    if logits.shape[0] == 0:
        raise ValueError("no masked position in the batch: raise the mask's start probability or the segment length")
    ce = F.cross_entropy(logits.float(), codes)
    mse = F.mse_loss(reconstruction.float(), frames.float())
    return ce + weight * mse, ce, mse


def trivial_floors(codes: torch.Tensor, frames: torch.Tensor, k: int) -> tuple[float, float]:
    """The floors of CE and MSE for these targets: the entropy of the codes' marginal (nats)
    and the mean per-value variance of ``frames`` ``(M, n)``."""
    q = torch.bincount(codes.reshape(-1), minlength=k).double()
    q = q[q > 0] / q.sum()
    return float(-(q * q.log()).sum()), float(frames.double().var(dim=0, unbiased=False).mean())
