"""NT-Xent (RS3L eqs. (2)-(3)) against a brute-force double loop, plus SimCLR plumbing."""

from __future__ import annotations

import math

import pytest
import torch

from jetforge.methods import METHODS, SimCLR, nt_xent
from jetforge.models.edgeconv import EdgeConvNet


def brute_force_nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, tau: float) -> float:
    """Literal SimCLR loss: for every view a, -log(e^{s(a,p)/tau} / sum_{b != a} e^{s(a,b)/tau})."""
    views = [v.double() for v in list(z_a) + list(z_b)]
    n, B = len(views), z_a.shape[0]

    def s(u: torch.Tensor, v: torch.Tensor) -> float:
        return float(u @ v / (u.norm() * v.norm()))

    total = 0.0
    for a in range(n):
        partner = a + B if a < B else a - B
        denom = sum(math.exp(s(views[a], views[b]) / tau) for b in range(n) if b != a)
        total += -math.log(math.exp(s(views[a], views[partner]) / tau) / denom)
    return total / n


@pytest.mark.parametrize(("B", "D", "tau"), [(1, 3, 0.1), (2, 8, 0.1), (7, 8, 0.1), (5, 4, 0.5)])
def test_nt_xent_matches_brute_force(B: int, D: int, tau: float) -> None:
    g = torch.Generator().manual_seed(B * 100 + D)
    z_a, z_b = torch.randn(B, D, generator=g), torch.randn(B, D, generator=g)
    assert float(nt_xent(z_a, z_b, tau)) == pytest.approx(
        brute_force_nt_xent(z_a, z_b, tau), rel=1e-5, abs=1e-6
    )


def test_nt_xent_symmetric_and_scale_invariant() -> None:
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    ref = nt_xent(z_a, z_b, 0.1)
    assert torch.allclose(nt_xent(z_b, z_a, 0.1), ref, atol=1e-6)
    assert torch.allclose(nt_xent(3.0 * z_a, 0.2 * z_b, 0.1), ref, atol=1e-5)


def test_nt_xent_hand_value_orthogonal_negatives() -> None:
    # Two pairs, partners identical, the pairs orthogonal: for each view the denominator
    # is e^{1/tau} (positive) + 2 e^{0} (the other pair's two views).
    tau = 0.1
    z = torch.eye(2)
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2.0))
    assert float(nt_xent(z, z.clone(), tau)) == pytest.approx(expected, abs=1e-7)


def test_nt_xent_float32_under_autocast() -> None:
    g = torch.Generator().manual_seed(1)
    z_a, z_b = torch.randn(8, 8, generator=g), torch.randn(8, 8, generator=g)
    ref = nt_xent(z_a, z_b, 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = nt_xent(z_a, z_b, 0.1)
    assert out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=1e-6)


def test_nt_xent_gradient_finite_and_errors() -> None:
    z_a = torch.randn(4, 8, requires_grad=True)
    z_b = torch.randn(4, 8, requires_grad=True)
    nt_xent(z_a, z_b).backward()
    assert torch.isfinite(z_a.grad).all() and torch.isfinite(z_b.grad).all()
    with pytest.raises(ValueError, match=r"\(4, 8\) and \(3, 8\)"):
        nt_xent(torch.randn(4, 8), torch.randn(3, 8))
    with pytest.raises(ValueError, match="tau"):
        nt_xent(torch.randn(4, 8), torch.randn(4, 8), tau=0.0)


def test_simclr_method_registry_and_forward() -> None:
    assert METHODS["simclr"] is SimCLR
    torch.manual_seed(0)
    net = EdgeConvNet(in_dim=5, embed=(8,), k=3, n_conv=1, conv_dim=8, encoder=(8, 4))
    method = SimCLR.from_config(net, {"tau": 0.2, "batch_size": 100})
    assert method.tau == 0.2
    x_a, x_b = torch.randn(3, 6, 5), torch.randn(3, 6, 5)
    m = torch.ones(3, 6, dtype=torch.bool)
    terms = method(x_a, m, x_b, m)
    assert set(terms) == {"loss"}
    z_a, z_b = net(x_a, m), net(x_b, m)
    assert torch.allclose(terms["loss"], nt_xent(z_a, z_b, 0.2))
