import pytest
import torch

from mt2 import build_model
from mt2.model import PRESETS, VARIANTS, count_parameters, make_config
from mt2.model.pitch_class import CirculantLinear, PitchClassLayerNorm, invariant_features

LAYOUTS = ["plain", "pitch-class"]


def cqt(batch=2, frames=126, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 84, frames, generator=g)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_shapes_of_every_output(layout, variant):
    model = build_model("mt2-mini", variant, layout=layout, frames_per_token=1).eval()
    k = len(VARIANTS[variant])
    out = model(cqt())
    assert out.tokens.shape == (2, k + 126, model.layout.token_dim)
    assert (out.key_logits is None) == ("equivariant" not in VARIANTS[variant])
    assert (out.projection is None) == ("contrastive" not in VARIANTS[variant])
    if out.key_logits is not None:
        assert out.key_logits.shape == (2, 12)
    if out.projection is not None:
        assert out.projection.shape == (2, model.config.projection_dim)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_last_intermediate_equals_forward_features(layout):
    model = build_model("mt2-mini", "mt2", layout=layout).eval()
    x = cqt()
    layers = model.forward_intermediates(x, indices=[0, -1])
    torch.testing.assert_close(layers[-1], model.forward_features(x))
    assert len(model.forward_intermediates(x)) == model.config.depth
    with pytest.raises(ValueError, match="layer index"):
        model.forward_intermediates(x, indices=[99])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("frames", [32, 938])  # 1 s and 30 s
def test_positional_interpolation_gives_finite_outputs(layout, frames):
    model = build_model("mt2-mini", "mt2", layout=layout, frames_per_token=1).eval()
    with torch.inference_mode():
        out = model(cqt(1, frames))
    assert torch.isfinite(out.tokens).all() and out.tokens.shape[1] == 2 + frames


@pytest.mark.parametrize("frames_per_token", [2, 4])
def test_frames_per_token(frames_per_token):
    model = build_model("mt2-mini", "mt2", frames_per_token=frames_per_token)
    assert model(cqt()).tokens.shape[1] == 2 + 126 // frames_per_token


@pytest.mark.parametrize("layout", LAYOUTS)
def test_class_tokens_differ_at_init(layout):
    model = build_model("mt2-mini", "mt2", layout=layout).eval()
    tokens = model.forward_features(cqt(8))
    cos = torch.nn.functional.cosine_similarity(tokens[:, 0], tokens[:, 1], dim=-1)
    assert cos.abs().max() < 0.8


def test_determinism():
    torch.manual_seed(3)
    a = build_model("mt2-mini", "mt2")
    torch.manual_seed(3)
    b = build_model("mt2-mini", "mt2")
    torch.testing.assert_close(a(cqt()).tokens, b(cqt()).tokens)


def test_tiny_parameter_count_matches_the_paper_scale():
    """MERT-95M / 18 = 5.3 M: mt2-tiny must hold 5.0-6.0 M parameters with two class tokens."""
    for layout in LAYOUTS:
        n = count_parameters(build_model("mt2-tiny", "mt2", layout=layout))
        assert 5.0e6 <= n <= 6.0e6, (layout, n)


def test_errors_name_the_value():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        build_model("huge")
    with pytest.raises(ValueError, match="unknown variant 'both'"):
        build_model("mt2-mini", "both")
    with pytest.raises(ValueError, match="layout"):
        make_config(layout="square")
    with pytest.raises(ValueError, match="pc_basis='complex'"):
        make_config(pc_basis="complex")
    model = build_model("mt2-mini")
    with pytest.raises(ValueError, match=r"\(batch, 84, frames\)"):
        model(torch.zeros(1, 99, 126))
    with pytest.raises(ValueError, match="no 'equivariant' class token"):
        build_model("mt2-mini", "contrastive").role_index("equivariant")


# --- the pitch-class layout is equivariant by construction -----------------------------

def test_circulant_linear_commutes_with_roll_and_matches_naive():
    torch.manual_seed(0)
    layer = CirculantLinear(3, 5)
    x = torch.randn(4, 12, 3)
    y = layer(x)
    for k in (1, 5, 11):
        torch.testing.assert_close(layer(torch.roll(x, k, dims=1)), torch.roll(y, k, dims=1), atol=1e-5, rtol=1e-5)
    naive = torch.stack([
        sum(x[:, p] @ layer.weight[(q - p) % 12].T for p in range(12)) + layer.bias for q in range(12)
    ], dim=1)
    torch.testing.assert_close(y, naive, atol=1e-5, rtol=1e-5)


def test_layer_norm_and_invariant_features():
    x = torch.randn(2, 12, 4)
    norm = PitchClassLayerNorm(4)
    torch.testing.assert_close(norm(torch.roll(x, 3, dims=1)), torch.roll(norm(x), 3, dims=1))
    torch.testing.assert_close(invariant_features(torch.roll(x, 5, dims=1)), invariant_features(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pc_basis", ["fourier", "dense"])
@pytest.mark.parametrize("variant", ["mt2", "equivariant"])
def test_rolling_the_input_rolls_the_key_logits(variant, pc_basis):
    """A roll of the 84 input bins by k (content k semitones up) rolls the logits by k."""
    torch.manual_seed(0)
    model = build_model("mt2-mini", variant, layout="pitch-class", pc_basis=pc_basis).eval()
    x = cqt(3)
    logits = model(x).key_logits
    for k in (1, 4, 7):
        rolled = model(torch.roll(x, k, dims=1)).key_logits
        torch.testing.assert_close(rolled, torch.roll(logits, k, dims=1), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("pc_basis", ["fourier", "dense"])
def test_contrastive_projection_is_roll_invariant_without_register(pc_basis):
    torch.manual_seed(0)
    model = build_model("mt2-mini", "mt2", layout="pitch-class", register="none", pc_basis=pc_basis).eval()
    x = cqt(3)
    torch.testing.assert_close(model(torch.roll(x, 5, dims=1)).projection, model(x).projection, atol=1e-4, rtol=1e-4)


def test_presets_have_the_papers_size_and_the_shipped_shape():
    # mt2-tiny: the paper's scale, about MERT-95M / 18 = 5.3 M parameters (docs/design.md section 2)
    assert 5.0e6 <= count_parameters(build_model("mt2-tiny", "mt2")) <= 6.0e6
    # one preset per trained shape: every shipped folder is exactly its training preset, variant by variant
    import mt2

    for name in mt2.inference.shipped_models():
        encoder = mt2.load(name)
        variant = next(v for v, roles in VARIANTS.items() if roles == encoder.config.roles)
        assert encoder.training_info["preset"] in PRESETS, name
        assert encoder.config == make_config(encoder.training_info["preset"], variant), name


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sizes_and_heads_come_from_the_layout(layout):
    model = build_model("mt2-mini", "mt2", layout=layout)
    assert model(cqt(frames=124)).tokens.shape[-1] == model.layout.token_dim
    assert set(model.heads) == {"equivariant", "contrastive"}
    masked = build_model("mt2-mini", "masked", layout=layout)
    assert masked.masked_prediction.mask_embedding.shape == (masked.layout.per_channel_dim,)
    assert masked.heads == {}
    with pytest.raises(ValueError, match="has no head"):
        masked.forward_head(masked.forward_features(cqt(frames=124)), "masked")
    with pytest.raises(ValueError, match="no 'contrastive' class token"):
        build_model("mt2-mini", "equivariant", layout=layout).forward_head(torch.zeros(1, 2, model.layout.token_dim), "contrastive")
