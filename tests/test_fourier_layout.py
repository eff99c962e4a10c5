"""The pitch-class layout in the Fourier basis agrees with the dense reference (mt2.model.fourier).

Each piece is checked against its dense counterpart: the change of basis, a roll-commuting
linear map, the layer norm, the MLP, the invariant features; then every layer of a model,
end to end for random and for the shipped weights, and the gradients.
"""
from __future__ import annotations

import pytest
import torch

from mt2 import build_model
from mt2.inference.checkpoint import read_checkpoint, resolve
from mt2.model import ModelConfig, MT2Model, count_parameters, make_config
from mt2.model.fourier import (
    circulant_blocks,
    dc_only,
    fourier_basis,
    fourier_invariant_features,
    fourier_layer_norm,
    fourier_linear,
    fourier_mlp,
    to_fourier,
    to_pitch_class,
)
from mt2.model.layout import split_tokens
from mt2.model.pitch_class import CirculantLinear, PitchClassLayerNorm, PitchClassMLP, invariant_features
from tiny_encoder import one_thread

TOL = dict(atol=2e-5, rtol=2e-5)


single_thread = pytest.fixture(autouse=True)(one_thread)


def cqt(batch=2, frames=126, seed=0):
    return torch.rand(batch, 84, frames, generator=torch.Generator().manual_seed(seed))


def pair_of_models(preset="mt2-mini", variant="mt2", **overrides) -> tuple[MT2Model, MT2Model]:
    """The same random weights in the dense and the Fourier basis (biases and norms perturbed,
    so that no term is trivially zero or one)."""
    torch.manual_seed(0)
    dense = build_model(preset, variant, pc_basis="dense", **overrides).eval()
    with torch.no_grad():
        for name, p in dense.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    fourier = build_model(preset, variant, pc_basis="fourier", **overrides).eval()
    fourier.load_state_dict(dense.state_dict())
    return dense, fourier


# -- the pieces --------------------------------------------------------------------------

def test_basis_is_orthogonal_and_its_coordinates_are_the_named_frequencies():
    phi = fourier_basis(dtype=torch.float64)
    torch.testing.assert_close(phi @ phi.T, torch.eye(12, dtype=torch.float64))
    x = torch.randn(3, 12, 5, dtype=torch.float64)
    torch.testing.assert_close(to_pitch_class(to_fourier(x)), x)
    # DC is sqrt(12) x the mean; |(cos_m, sin_m)| is sqrt(2/12) |rfft_m|; k = 1 is frequency 6
    spectrum = torch.fft.rfft(x, dim=-2)
    coords = to_fourier(x)
    torch.testing.assert_close(coords[:, 0], x.mean(dim=-2) * 12**0.5)
    torch.testing.assert_close(coords[:, 1].abs(), spectrum[:, 6].abs() / 12**0.5)
    for m in range(1, 6):
        torch.testing.assert_close(coords[:, 2 * m : 2 * m + 2].norm(dim=-2), spectrum[:, m].abs() * (2 / 12) ** 0.5)


def test_circulant_blocks_are_the_dense_map_in_fourier_coordinates():
    """Phi D Phi^T is block-diagonal, and its blocks are circulant_blocks (pair 0 = DC and frequency 6)."""
    torch.manual_seed(0)
    layer = CirculantLinear(3, 5).double()
    phi = fourier_basis(dtype=torch.float64)
    dense = layer.dense_weight().view(12, 5, 12, 3)
    in_basis = torch.einsum("kq,qopi,lp->koli", phi, dense, phi)  # (12, 5, 12, 3)
    blocks = circulant_blocks(layer.weight)  # (6, 10, 6)
    for f in range(6):
        for g in range(6):
            block = in_basis[2 * f : 2 * f + 2, :, 2 * g : 2 * g + 2].reshape(10, 6)
            expected = blocks[f] if f == g else torch.zeros(10, 6, dtype=torch.float64)
            torch.testing.assert_close(block, expected, msg=f"pair ({f}, {g})")


@pytest.mark.parametrize("bias", [True, False])
def test_linear_layer_norm_mlp_and_invariants_match_the_dense_layers(bias):
    torch.manual_seed(0)
    x = torch.randn(4, 7, 12, 8) + 0.5  # a mean, so that centring matters
    linear = CirculantLinear(8, 6, bias=bias)
    norm = PitchClassLayerNorm(8)
    mlp = PitchClassMLP(8, 32)
    with torch.no_grad():
        for p in [*norm.parameters(), *mlp.parameters(), *linear.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    X = to_fourier(x)
    torch.testing.assert_close(to_pitch_class(fourier_linear(linear, X)), linear(x), **TOL)
    torch.testing.assert_close(to_pitch_class(fourier_layer_norm(norm, X)), norm(x), **TOL)
    torch.testing.assert_close(to_pitch_class(fourier_mlp(mlp, X)), mlp(x), **TOL)
    with torch.no_grad():  # the inference path reuses buffers
        torch.testing.assert_close(to_pitch_class(fourier_mlp(mlp, X)), mlp(x), **TOL)
    torch.testing.assert_close(fourier_invariant_features(X), invariant_features(x), **TOL)
    v = torch.randn(4, 8)
    torch.testing.assert_close(to_pitch_class(dc_only(v)), v.unsqueeze(-2).expand(4, 12, 8), **TOL)


def test_zero_magnitudes_have_finite_gradients():
    """A DC-only input (a class token at the first block) has |X_m| = 0: gradient 0, not NaN."""
    x = dc_only(torch.randn(3, 4)).requires_grad_()
    fourier_invariant_features(x).sum().backward()
    assert torch.isfinite(x.grad).all()


# -- whole models ------------------------------------------------------------------------

def test_every_layer_agrees_between_bases():
    dense, fourier = pair_of_models(depth=3)
    x = cqt()
    with torch.no_grad():
        a, b = dense.tokenize(x), fourier.tokenize(x)
        torch.testing.assert_close(fourier.layout.output(b), a, **TOL)  # embedding, positions, class tokens
        for i, (block_a, block_b) in enumerate(zip(dense.blocks, fourier.blocks)):
            a, b = block_a(a), block_b(b)
            torch.testing.assert_close(fourier.layout.output(b), a, **TOL, msg=f"block {i}")
        a, b = dense.layout.final_norm(a), fourier.layout.output(fourier.layout.final_norm(b))
        torch.testing.assert_close(b, a, **TOL)
        for role in dense.config.roles:
            torch.testing.assert_close(fourier.forward_head(b, role), dense.forward_head(a, role), **TOL)
        for norm in (True, False):
            for la, lb in zip(dense.forward_intermediates(x, norm=norm), fourier.forward_intermediates(x, norm=norm)):
                torch.testing.assert_close(lb, la, **TOL)


@pytest.mark.parametrize("overrides", [dict(), dict(frames_per_token=4, register="none", class_token_mean=True)])
def test_end_to_end_agreement_for_random_weights(overrides):
    dense, fourier = pair_of_models(**overrides)
    x = cqt(3, 200)  # positions interpolated
    with torch.no_grad():
        out_a, out_b = dense(x), fourier(x)
    for name in ("tokens", "key_logits", "projection"):
        torch.testing.assert_close(getattr(out_b, name), getattr(out_a, name), **TOL, msg=name)


@pytest.mark.parametrize("name", ["mt2", "equivariant", "contrastive", "masked"])
def test_shipped_weights_load_unchanged_and_agree_in_both_bases(name):
    loaded = read_checkpoint(resolve(name))["model"].eval()
    assert loaded.config.pc_basis == "fourier"  # the default: config.json does not name a basis
    dense = MT2Model(ModelConfig.from_dict({**loaded.config.to_dict(), "pc_basis": "dense"})).eval()
    dense.load_state_dict(loaded.state_dict(), strict=True)
    x = cqt(2, 126, seed=1) ** 2
    with torch.no_grad():
        out_a, out_b = dense(x), loaded(x)
        torch.testing.assert_close(out_b.tokens, out_a.tokens, **TOL)
        if out_a.key_logits is not None:
            torch.testing.assert_close(out_b.key_logits, out_a.key_logits, **TOL)
        if out_a.projection is not None:
            torch.testing.assert_close(out_b.projection, out_a.projection, **TOL)
        for la, lb in zip(dense.forward_intermediates(x), loaded.forward_intermediates(x)):
            torch.testing.assert_close(lb, la, **TOL)


def test_gradients_agree_between_bases():
    dense, fourier = pair_of_models(depth=2)
    x = cqt(4)
    grads = []
    for model in (dense, fourier):
        model.train().zero_grad()
        out = model(x)
        (torch.log_softmax(out.key_logits, -1)[:, 3].sum() + out.projection.square().mean() + out.tokens.square().mean()).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        assert g is not None and torch.isfinite(grads[1][name]).all(), name
        torch.testing.assert_close(grads[1][name], g, atol=1e-4, rtol=1e-3, msg=name)


def test_parameters_and_state_dict_keys_do_not_depend_on_the_basis():
    for preset in ("mt2-mini", "mt2-tiny"):
        dense = build_model(preset, "mt2", pc_basis="dense")
        fourier = build_model(preset, "mt2", pc_basis="fourier")
        assert count_parameters(dense) == count_parameters(fourier)
        assert {k: v.shape for k, v in dense.state_dict().items()} == {k: v.shape for k, v in fourier.state_dict().items()}


def test_pc_basis_is_validated():
    with pytest.raises(ValueError, match="pc_basis='fft' is not one of"):
        make_config(pc_basis="fft")


# -- the layout object -----------------------------------------------------------------

@pytest.mark.parametrize("pc_basis", ["fourier", "dense"])
def test_views_of_the_pitch_class_layout(pc_basis):
    """equivariant_view rolls with the input, invariant_view does not move (register off)."""
    torch.manual_seed(0)
    model = build_model("mt2-mini", "mt2", register="none", pc_basis=pc_basis).eval()
    x = cqt(2)
    with torch.no_grad():
        tokens, rolled = model.forward_features(x), model.forward_features(torch.roll(x, 5, dims=1))
    layout = model.layout
    torch.testing.assert_close(layout.equivariant_view(rolled), torch.roll(layout.equivariant_view(tokens), 5, dims=-2), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(layout.invariant_view(rolled), layout.invariant_view(tokens), atol=1e-4, rtol=1e-4)
    e, u = split_tokens(tokens, model.config.pc_channels)
    torch.testing.assert_close(layout.invariant_view(tokens), torch.cat([u, invariant_features(e)], dim=-1))


@pytest.mark.parametrize("layout", ["plain", "pitch-class"])
def test_forward_head_is_what_forward_returns(layout):
    model = build_model("mt2-mini", "mt2", layout=layout).eval()
    x = cqt(2)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(model.forward_head(out.tokens, "equivariant"), out.key_logits)
        torch.testing.assert_close(model.forward_head(out.tokens, "contrastive"), out.projection)
    with pytest.raises(ValueError, match="no 'equivariant' class token"):
        build_model("mt2-mini", "contrastive", layout=layout).forward_head(out.tokens, "equivariant")
