"""The recipe levers of the token-1 study (docs/recipe.md): NT-Xent's positive pair and the
detached roll-invariant summaries."""
from __future__ import annotations

import pytest
import torch

from mt2.data.views import Views
from mt2.losses import nt_xent_loss
from mt2.model import build_model
from mt2.training.config import load_config
from mt2.training.objective import ssl_losses


def _views(batch: int = 4, frames: int = 16) -> Views:
    generator = torch.Generator().manual_seed(0)
    a, b, c = (torch.rand(batch, 84, frames, generator=generator) for _ in range(3))
    return Views(a=a, b=b, c=c, shift=torch.tensor([1, 2, 3, 5][:batch]), offset=torch.zeros(batch, dtype=torch.long))


def test_cb_pair_contrasts_the_transposed_view_with_b():
    torch.manual_seed(0)
    model = build_model("mt2-mini", "mt2").eval()
    views = _views()
    losses = ssl_losses(model, views, contrastive_pair="CB")
    with torch.no_grad():
        expected = nt_xent_loss(model(views.c).projection, model(views.b).projection, 0.1)
        plain = ssl_losses(model, views, contrastive_pair="AB").ntxent
    assert torch.allclose(losses.ntxent, expected, atol=1e-5)
    assert not torch.allclose(plain, expected, atol=1e-3)  # the pair did change


def test_cb_pair_works_without_an_equivariant_token_and_bad_pairs_are_refused():
    model = build_model("mt2-mini", "contrastive")
    assert ssl_losses(model, _views(), contrastive_pair="CB").ntxent.isfinite()
    with pytest.raises(ValueError, match="contrastive_pair='BA'"):
        ssl_losses(model, _views(), contrastive_pair="BA")
    with pytest.raises(ValueError, match="contrastive_pair"):
        load_config("mt2-mini", contrastive_pair="XY")


@pytest.mark.parametrize("detach", [False, True])
def test_detached_summaries_keep_ntxent_out_of_the_equivariant_stream(detach):
    torch.manual_seed(0)
    model = build_model("mt2-mini", "mt2", register="none", detach_summaries=detach)
    ssl_losses(model, _views()).ntxent.backward()
    equivariant = [p.grad for n, p in model.named_parameters() if ".eq_" in n or n.startswith("embed.eq_proj")]
    reached = any(g is not None and g.abs().sum() > 0 for g in equivariant)
    assert reached != detach  # NT-Xent trains the equivariant stream only without the detach
    assert model.blocks[0].inv.attn.qkv.weight.grad.abs().sum() > 0  # the invariant stream learns either way
