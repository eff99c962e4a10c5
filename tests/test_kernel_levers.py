"""The speed levers of the Fourier basis (mt2.model.pitch_class.KernelOptions) change how, never what.

Every setting of the levers gives the outputs and gradients of today's implementation (all
levers off) within float32 rounding, and of the dense reference (``pc_basis="dense"``, the
oracle); under bf16 autocast it stays within bf16 rounding of the float32 result.
"""
from __future__ import annotations

import itertools

import pytest
import torch

from mt2 import build_model
from mt2.model.fourier import fourier_linear, fourier_mlp, to_fourier, to_pitch_class
from mt2.model.pitch_class import KERNELS, CirculantLinear, KernelOptions, PitchClassMLP, kernel_options
from tiny_encoder import one_thread

TOL = dict(atol=2e-5, rtol=2e-5)
GRAD_TOL = dict(atol=1e-4, rtol=1e-3)
TODAY = dict(split_pair0=False, sliced_gelu=False)
#: Every on/off combination, with slices small enough that the round trip takes several.
SETTINGS = [dict(split_pair0=a, sliced_gelu=b, gelu_slice=s) for (a, b), s in itertools.product(itertools.product([False, True], repeat=2), [7, 16384])]


single_thread = pytest.fixture(autouse=True)(one_thread)


def _weighted_sum(y: torch.Tensor) -> torch.Tensor:
    return (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum()


def _layer_result(layer, function, x, **levers):
    with kernel_options(**levers):
        X = to_fourier(x)
        y = to_pitch_class(function(layer, X))
        grads = torch.autograd.grad(_weighted_sum(y), [x, *layer.parameters()])
        with torch.no_grad():
            y_inference = to_pitch_class(function(layer, to_fourier(x)))
    return y, grads, y_inference


@pytest.mark.parametrize("levers", SETTINGS, ids=str)
@pytest.mark.parametrize("which", ["linear", "mlp"])
def test_each_lever_setting_gives_todays_outputs_and_gradients(levers, which):
    torch.manual_seed(0)
    layer = CirculantLinear(8, 6) if which == "linear" else PitchClassMLP(8, 32)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    function = fourier_linear if which == "linear" else fourier_mlp
    x = (torch.randn(3, 20, 12, 8) + 0.5).requires_grad_()
    today = _layer_result(layer, function, x, **TODAY)
    new = _layer_result(layer, function, x, **levers)
    dense = layer(x)  # the oracle: the dense 12c' x 12c expansion
    dense_grads = torch.autograd.grad(_weighted_sum(dense), [x, *layer.parameters()])
    torch.testing.assert_close(new[0], today[0], **TOL)
    torch.testing.assert_close(new[0], dense, **TOL)
    torch.testing.assert_close(new[2], dense, **TOL)
    for got, expected, oracle in zip(new[1], today[1], dense_grads):
        torch.testing.assert_close(got, expected, **GRAD_TOL)
        torch.testing.assert_close(got, oracle, **GRAD_TOL)


def _model_result(model, x):
    model.zero_grad()
    out = model(x)
    loss = torch.log_softmax(out.key_logits, -1)[:, 3].sum() + out.projection.square().mean() + out.tokens.square().mean()
    loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("levers", [dict(split_pair0=True, sliced_gelu=True, gelu_slice=1000), dict(split_pair0=False, sliced_gelu=True)], ids=str)
def test_a_model_trains_the_same_with_the_levers_as_today_and_as_the_dense_oracle(levers):
    torch.manual_seed(0)
    dense = build_model("mt2-mini", "mt2", pc_basis="dense", depth=2).train()
    with torch.no_grad():
        for name, p in dense.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    fourier = build_model("mt2-mini", "mt2", pc_basis="fourier", depth=2).train()
    fourier.load_state_dict(dense.state_dict())
    x = torch.rand(4, 84, 126, generator=torch.Generator().manual_seed(0))
    with kernel_options(**TODAY):
        today_out, today_grads = _model_result(fourier, x)
    with kernel_options(**levers):
        new_out, new_grads = _model_result(fourier, x)
    oracle_out, oracle_grads = _model_result(dense, x)
    for name in ("tokens", "key_logits", "projection"):
        torch.testing.assert_close(getattr(new_out, name), getattr(today_out, name), **TOL, msg=name)
        torch.testing.assert_close(getattr(new_out, name), getattr(oracle_out, name), **TOL, msg=name)
    for name, g in today_grads.items():
        torch.testing.assert_close(new_grads[name], g, **GRAD_TOL, msg=name)
        torch.testing.assert_close(new_grads[name], oracle_grads[name], **GRAD_TOL, msg=name)


@pytest.mark.parametrize("levers", SETTINGS[1:], ids=str)
def test_under_bf16_autocast_the_levers_stay_within_bf16_rounding(levers):
    """Outputs within bf16 rounding of float32; gradients within bf16 rounding of today's
    implementation under the same autocast (a bias gradient is a sum that cancels, so it is
    not compared with float32)."""
    torch.manual_seed(0)
    layer = PitchClassMLP(16, 64)
    x = torch.randn(2, 30, 12, 16).requires_grad_()
    y32 = _layer_result(layer, fourier_mlp, x, **TODAY)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        today = _layer_result(layer, fourier_mlp, x, **TODAY)
        new = _layer_result(layer, fourier_mlp, x, **levers)
    assert new[0].dtype == torch.bfloat16
    assert (new[0].float() - y32).abs().max() < 0.03 * y32.abs().max()
    for got, expected in zip(new[1], today[1]):
        assert got.dtype == expected.dtype
        assert torch.linalg.vector_norm(got.float() - expected.float()) < 0.02 * torch.linalg.vector_norm(expected.float())


def test_kernel_options_are_restored_and_checked():
    before = KernelOptions(**{f: getattr(KERNELS, f) for f in ("split_pair0", "sliced_gelu", "gelu_slice", "bf16_math_attention")})
    with kernel_options(split_pair0=not before.split_pair0, gelu_slice=5):
        assert KERNELS.split_pair0 is not before.split_pair0 and KERNELS.gelu_slice == 5
    assert (KERNELS.split_pair0, KERNELS.sliced_gelu, KERNELS.gelu_slice) == (before.split_pair0, before.sliced_gelu, before.gelu_slice)
    with pytest.raises(ValueError, match="unknown kernel options"):
        with kernel_options(fused=True):
            pass


def test_attention_under_bf16_takes_the_math_backend_and_agrees_with_the_flash_kernel():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 40, 24, requires_grad=True) for _ in range(3))
    from mt2.model.pitch_class import attention

    results = {}
    for math_backend in (True, False):
        with kernel_options(bf16_math_attention=math_backend), torch.autocast("cpu", dtype=torch.bfloat16):
            out = attention(q, k, v)
        grads = torch.autograd.grad(_weighted_sum(out.float()), [q, k, v])
        results[math_backend] = (out.float(), grads)
    exact = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    for out, grads in results.values():
        assert (out - exact).abs().max() < 0.03 * exact.abs().max()
    for a, b in zip(results[True][1], results[False][1]):
        assert torch.linalg.vector_norm(a - b) < 0.03 * torch.linalg.vector_norm(b)
    with kernel_options(bf16_math_attention=True):  # float32: the fused kernel, exactly as before
        torch.testing.assert_close(attention(q, k, v), exact)
