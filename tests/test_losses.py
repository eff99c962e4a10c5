import math

import pytest
import torch
import torch.nn.functional as F

from mt2.losses import TRIVIAL_FLOOR, cpsd_loss, gather_with_grad, nt_xent_loss


def one_hot(index: int) -> torch.Tensor:
    return F.one_hot(torch.tensor([index]), 12).float()


def naive_cpsd(ya, yb, yc, k, w=7):
    z = lambda y: sum(complex(y[q]) * complex(math.cos(2 * math.pi * w * q / 12), math.sin(2 * math.pi * w * q / 12)) for q in range(12))
    za, zb, zc = z(ya), z(yb), z(yc)
    rot = complex(math.cos(-2 * math.pi * w * k / 12), math.sin(-2 * math.pi * w * k / 12))
    return abs(1 - za * zb.conjugate()) ** 2 + abs(rot - zc * za.conjugate()) ** 2 + abs(rot - zc * zb.conjugate()) ** 2


@pytest.mark.parametrize("k", [1, 2, 5, 7, 11, -3])
def test_cpsd_zero_for_roll_in_right_direction(k):
    """View C is A cut k bins higher: y_C[q] = y_A[q + k], i.e. y_C = roll(y_A, -k)."""
    ya = one_hot(3)
    yc = torch.roll(ya, -k, dims=1)
    right = cpsd_loss(ya, ya, yc, torch.tensor([k]))
    wrong = cpsd_loss(ya, ya, torch.roll(ya, k, dims=1), torch.tensor([k]))
    assert right < 1e-6
    if (2 * k) % 12 != 0:
        assert wrong > 1.0


def test_cpsd_trivial_floor_for_constant_output():
    # a constant output with |z|^2 = 3/11: mass p on one bin, the rest spread evenly
    p = (1 + 11 * math.sqrt(3 / 11)) / 12
    y = torch.full((1, 12), (1 - p) / 11)
    y[0, 0] = p
    values = [cpsd_loss(y, y, y, torch.tensor([k])).item() for k in range(1, 12)]
    assert sum(values) / 11 == pytest.approx(TRIVIAL_FLOOR, abs=1e-4)
    assert TRIVIAL_FLOOR == pytest.approx(2.777, abs=1e-3)


def test_cpsd_matches_naive_loop():
    torch.manual_seed(0)
    ya, yb, yc = (torch.softmax(torch.randn(6, 12), dim=1) for _ in range(3))
    k = torch.tensor([1, 2, 3, -4, 5, 11])
    expected = sum(naive_cpsd(ya[i], yb[i], yc[i], int(k[i])) for i in range(6)) / 6
    assert cpsd_loss(ya, yb, yc, k).item() == pytest.approx(expected, rel=1e-5)


def test_cpsd_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        cpsd_loss(torch.zeros(2, 12), torch.zeros(3, 12), torch.zeros(2, 12), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="shift"):
        cpsd_loss(torch.zeros(2, 12), torch.zeros(2, 12), torch.zeros(2, 12), torch.tensor([1, 1, 1]))


def naive_nt_xent(a, b, tau):
    x = torch.cat([F.normalize(a, dim=1), F.normalize(b, dim=1)])
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = [math.exp(float(x[i] @ x[m]) / tau) for m in range(2 * n) if m != i]
        total += -math.log(math.exp(float(x[i] @ x[j]) / tau) / sum(sims))
    return total / (2 * n)


def test_nt_xent_matches_naive_loop():
    torch.manual_seed(1)
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    assert nt_xent_loss(a, b, 0.1).item() == pytest.approx(naive_nt_xent(a, b, 0.1), rel=1e-5)
    assert nt_xent_loss(a, b, 0.5).item() == pytest.approx(naive_nt_xent(a, b, 0.5), rel=1e-5)


def test_nt_xent_low_for_matching_pairs():
    torch.manual_seed(2)
    a = torch.randn(8, 16)
    assert nt_xent_loss(a, a + 0.01 * torch.randn_like(a)) < nt_xent_loss(a, torch.randn(8, 16))


def test_gather_is_identity_on_one_process():
    x = torch.randn(4, 3, requires_grad=True)
    assert gather_with_grad(x) is x
