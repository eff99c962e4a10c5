"""ViT-1D with K class tokens (docs/design.md section 2), in the ``plain`` or ``pitch-class`` layout.

Input: a CQT window ``(B, bins, T)`` (84 bins by default, see :mod:`mt2.frontend`). Frames
become tokens (``frames_per_token`` frames each), K learnable class tokens are prepended at
positions ``0..K-1``, and pre-norm transformer blocks follow. Every token is a vector of
``layout.token_dim`` values. Class token ``i`` serves ``config.roles[i]``: ``equivariant``
(12 key-signature logits through :attr:`MT2Model.equivariant_head`) or ``contrastive``
(a projection for NT-Xent through :attr:`MT2Model.contrastive_head`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mt2.model.config import ModelConfig
from mt2.model.layout import PlainLayout, PitchClassLayout, make_layout
from mt2.model.masked import MaskedPrediction
from mt2.model.pitch_class import PITCH_CLASSES

__all__ = ["MT2Model", "ModelOutput", "EquivariantHead", "ContrastiveHead", "count_parameters"]


class EquivariantHead(nn.Module):
    """Class token -> 12 logits (softmax gives the key-signature profile):
    ``linear(layout.equivariant_view(token))``.

    ``plain``: a dense ``Linear(width, 12)``. ``pitch-class``: one ``Linear(c, 1)`` shared by
    the 12 pitch classes of the equivariant part, so the logits roll with the input.
    """

    def __init__(self, layout: PlainLayout | PitchClassLayout) -> None:
        super().__init__()
        self.layout = layout
        self.linear = nn.Linear(*layout.key_head_features)

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        return self.linear(self.layout.equivariant_view(token)).reshape(*token.shape[:-1], PITCH_CLASSES)


class ContrastiveHead(nn.Module):
    """Class token -> projection for NT-Xent: ``Linear -> GELU -> Linear`` of
    ``layout.invariant_view(token)`` (in the ``pitch-class`` layout, roll-invariant values only:
    the invariant part ``u`` and the invariant features of the equivariant part)."""

    def __init__(self, layout: PlainLayout | PitchClassLayout, config: ModelConfig) -> None:
        super().__init__()
        self.layout = layout
        self.mlp = nn.Sequential(
            nn.Linear(layout.invariant_dim, config.projection_hidden),
            nn.GELU(),
            nn.Linear(config.projection_hidden, config.projection_dim),
        )

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.layout.invariant_view(token))


@dataclass
class ModelOutput:
    """What :meth:`MT2Model.forward` returns.

    ``tokens``: ``(B, K + T', D)`` after the final norm; ``key_logits``: ``(B, 12)`` from the
    equivariant class token or ``None``; ``projection``: ``(B, P)`` from the contrastive class
    token or ``None``.
    """

    tokens: torch.Tensor
    key_logits: torch.Tensor | None
    projection: torch.Tensor | None


#: The head of each class-token role: the :class:`MT2Model` attribute holding it (None: no head;
#: the ``masked`` variant's class token is a register that no loss reads).
ROLE_HEADS: dict[str, str | None] = {"equivariant": "equivariant_head", "contrastive": "contrastive_head", "masked": None}


class MT2Model(nn.Module):
    """ViT-1D with ``K = len(config.roles)`` class tokens; see the module docstring.

    Everything that depends on what a token is comes from ``self.layout``
    (:mod:`mt2.model.layout`); tokens between :meth:`tokenize` and the final norm are in the
    layout's working basis, every returned token in the output basis (pitch classes).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.layout = make_layout(c)
        self.embed = self.layout.embedding()
        self.blocks = nn.ModuleList(self.layout.block() for _ in range(c.depth))
        for name, module in self.layout.final_norm_modules().items():
            self.add_module(name, module)
        # Class tokens start at the scale of the frame tokens and apart from each other, so
        # that they stay distinct (docs/design.md section 2: small tokens plus a shared frame
        # mean made two class tokens identical).
        self.class_tokens = nn.Parameter(torch.randn(c.num_class_tokens, self.layout.per_channel_dim))
        self.pos_embed = nn.Parameter(torch.randn(c.max_tokens // c.frames_per_token, self.layout.per_channel_dim) * 0.02)
        self.equivariant_head = EquivariantHead(self.layout) if "equivariant" in c.roles else None
        self.contrastive_head = ContrastiveHead(self.layout, c) if "contrastive" in c.roles else None
        self.masked_prediction = MaskedPrediction(self.layout, c) if "masked" in c.roles else None

    # -- token bookkeeping -------------------------------------------------------------
    @property
    def num_prefix_tokens(self) -> int:
        return self.config.num_class_tokens

    def role_index(self, role: str) -> int:
        """Position of the class token serving ``role``."""
        if role not in self.config.roles:
            raise ValueError(f"this {self.config.roles} model has no {role!r} class token")
        return self.config.roles.index(role)

    def _positions(self, n: int) -> torch.Tensor:
        pos = self.pos_embed
        if n != pos.shape[0]:
            pos = F.interpolate(pos.T.unsqueeze(0), size=n, mode="linear", align_corners=False)[0].T
        return self.layout.expand(pos)

    def _check_input(self, cqt: torch.Tensor) -> None:
        c = self.config
        if cqt.dim() != 3 or cqt.shape[1] != c.input_bins:
            raise ValueError(
                f"expected a CQT window of shape (batch, {c.input_bins}, frames), got {tuple(cqt.shape)}; "
                "crop the frontend output with mt2.frontend.crop"
            )
        if cqt.shape[2] < c.frames_per_token:
            raise ValueError(f"need at least {c.frames_per_token} frames, got {cqt.shape[2]}")

    def tokenize(self, cqt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """CQT window ``(B, bins, T)`` -> class + frame tokens ``(B, K + T', D)`` before the blocks,
        in the layout's working basis.

        Trailing frames that do not fill a token are dropped (``T' = T // frames_per_token``).
        ``mask`` ``(B, T')``: frame tokens replaced by the mask embedding (``masked`` variant).
        """
        self._check_input(cqt)
        frames = cqt.transpose(1, 2)
        t = frames.shape[1] // self.config.frames_per_token * self.config.frames_per_token
        tokens = self.embed(frames[:, :t].contiguous())
        if mask is not None:
            if self.masked_prediction is None:
                raise ValueError(f"a mask needs the masked variant's mask embedding; this model has class tokens {self.config.roles}")
            tokens = torch.where(mask.unsqueeze(-1), self.layout.expand(self.masked_prediction.mask_embedding).to(tokens.dtype), tokens)
        tokens = tokens + self._positions(tokens.shape[1])
        cls = self.layout.expand(self.class_tokens).unsqueeze(0).expand(tokens.shape[0], -1, -1)
        if self.config.class_token_mean:
            cls = cls + tokens.mean(dim=1, keepdim=True)
        return torch.cat([cls, tokens], dim=1)

    # -- features ----------------------------------------------------------------------
    def forward_features(self, cqt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """CQT window -> normalised tokens ``(B, K + T', D)``: class tokens first (``mask``: see :meth:`tokenize`)."""
        x = self.tokenize(cqt, mask)
        for block in self.blocks:
            x = block(x)
        return self.layout.output(self.layout.final_norm(x))

    def forward_intermediates(self, cqt: torch.Tensor, indices: list[int] | int | None = None, norm: bool = True) -> list[torch.Tensor]:
        """Tokens after the blocks in ``indices`` (negative counts from the end; an int ``n``
        means the last ``n`` blocks; ``None`` all), each through the final norm when ``norm``."""
        depth = len(self.blocks)
        if indices is None:
            wanted = list(range(depth))
        elif isinstance(indices, int):
            wanted = list(range(depth - indices, depth))
        else:
            wanted = [i % depth if -depth <= i < depth else _bad_index(i, depth) for i in indices]
        x = self.tokenize(cqt)
        outputs = {}
        for i, block in enumerate(self.blocks[: max(wanted) + 1]):
            x = block(x)
            if i in wanted:
                outputs[i] = self.layout.output(self.layout.final_norm(x) if norm else x)
        return [outputs[i] for i in wanted]

    @property
    def heads(self) -> dict[str, nn.Module]:
        """Role -> the head of the class token serving it (:data:`ROLE_HEADS`), for this model's roles."""
        return {role: getattr(self, ROLE_HEADS[role]) for role in self.config.roles if ROLE_HEADS.get(role)}

    def forward_head(self, tokens: torch.Tensor, role: str) -> torch.Tensor:
        """Output tokens ``(B, K + T', D)`` -> the head of the class token serving ``role``:
        key logits ``(B, 12)`` (``equivariant``) or the projection ``(B, P)`` (``contrastive``).

        Raises:
            ValueError: the model has no class token for ``role``, or that token has no head
                (the ``masked`` variant's class token is a register no loss reads).
        """
        index = self.role_index(role)
        heads = self.heads
        if role not in heads:
            raise ValueError(f"the {role!r} class token has no head (heads of this model: {sorted(heads)})")
        return heads[role](tokens[:, index])

    def forward(self, cqt: torch.Tensor) -> ModelOutput:
        tokens = self.forward_features(cqt)
        roles = self.config.roles
        return ModelOutput(
            tokens=tokens,
            key_logits=self.forward_head(tokens, "equivariant") if "equivariant" in roles else None,
            projection=self.forward_head(tokens, "contrastive") if "contrastive" in roles else None,
        )


def _bad_index(index: int, depth: int) -> int:
    raise ValueError(f"layer index {index} is out of range for a model with {depth} blocks")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
