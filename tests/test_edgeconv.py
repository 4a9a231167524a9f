"""EdgeConvNet (RS3L eq. (1)): reference equality, symmetries, padding safety, registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jetforge.models import BACKBONES
from jetforge.models.edgeconv import DynamicEdgeConv, EdgeConvNet, knn_indices
from jetforge.models.registry import build_backbone


def small_net(k: int = 4, in_dim: int = 6) -> EdgeConvNet:
    torch.manual_seed(0)
    return EdgeConvNet(in_dim=in_dim, embed=(16, 16), k=k, n_conv=3, conv_dim=16, encoder=(12, 8))


def random_jets(
    B: int, P: int, F: int, n_real: list[int], seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, P, F, generator=g)
    mask = torch.arange(P)[None, :] < torch.tensor(n_real)[:, None]
    return x * mask[..., None], mask


def naive_edgeconv(conv: DynamicEdgeConv, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Textbook EdgeConv: explicit kNN by sorting, per-edge Linear([x_i, x_j - x_i]), ELU, max."""
    B, P, _ = h.shape
    out = torch.zeros(B, P, conv.lin.out_features, dtype=h.dtype)
    for b in range(B):
        real = [j for j in range(P) if mask[b, j]]
        for i in real:
            others = sorted(
                (float(((h[b, i] - h[b, j]) ** 2).sum().detach()), j) for j in real if j != i
            )
            nbrs = [j for _, j in others[: conv.k]]
            if not nbrs:
                continue
            edges = torch.stack([torch.cat([h[b, i], h[b, j] - h[b, i]]) for j in nbrs])
            out[b, i] = nn.functional.elu(conv.lin(edges)).max(dim=0).values
    return out


def test_conv_matches_naive_reference_values_and_gradients() -> None:
    torch.manual_seed(1)
    conv = DynamicEdgeConv(5, 7, k=3)
    h, mask = random_jets(3, 6, 5, [6, 4, 1], seed=1)
    h = h.double().requires_grad_(True)
    conv = conv.double()
    fast = conv(h, mask)
    ref = naive_edgeconv(conv, h, mask)
    assert torch.allclose(fast, ref, atol=1e-10)
    g_fast = torch.autograd.grad(fast.sin().sum(), [h, conv.lin.weight, conv.lin.bias])
    g_ref = torch.autograd.grad(ref.sin().sum(), [h, conv.lin.weight, conv.lin.bias])
    for a, b in zip(g_fast, g_ref, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


def test_output_shape_and_embed_dim() -> None:
    net = small_net()
    x, mask = random_jets(4, 10, 6, [10, 7, 3, 1])
    z = net(x, mask)
    assert z.shape == (4, 8) and net.embed_dim == 8
    assert torch.isfinite(z).all()
    assert EdgeConvNet().embed_dim == 8


def test_permutation_invariance_and_equivariance() -> None:
    net = small_net()
    x, mask = random_jets(3, 9, 6, [9, 9, 9], seed=2)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(3))
    h = net.particle_features(x, mask)
    h_perm = net.particle_features(x[:, perm], mask[:, perm])
    assert torch.allclose(h_perm, h[:, perm], atol=1e-5)
    assert torch.allclose(net(x[:, perm], mask[:, perm]), net(x, mask), atol=1e-4)


def test_invariance_under_permutation_with_interleaved_padding() -> None:
    net = small_net()
    x, mask = random_jets(3, 12, 6, [8, 5, 2], seed=4)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(net(x[:, perm], mask[:, perm]), net(x, mask), atol=1e-4)


def test_padding_invariance_and_garbage_in_padded_rows() -> None:
    net = small_net()
    x, mask = random_jets(3, 8, 6, [8, 5, 2], seed=6)
    z = net(x, mask)
    pad = torch.zeros(3, 20, 6)
    x_pad, m_pad = (
        torch.cat([x, pad], 1),
        torch.cat([mask, torch.zeros(3, 20, dtype=torch.bool)], 1),
    )
    assert torch.allclose(net(x_pad, m_pad), z, atol=1e-5)
    garbage = torch.where(m_pad[..., None], x_pad, torch.full_like(x_pad, 1e6))
    garbage[0, -1] = float("nan")
    garbage[2, 3] = float("inf")  # jet 2 has only 2 real particles: slot 3 is padding
    garbage = garbage.requires_grad_(True)
    z_g = net(garbage, m_pad)
    assert torch.allclose(z_g, z, atol=1e-5)
    z_g.sum().backward()
    assert torch.isfinite(garbage.grad).all()
    assert (garbage.grad[~m_pad] == 0).all()


def test_knn_never_selects_padding_or_self() -> None:
    x, mask = random_jets(4, 10, 5, [10, 6, 2, 1], seed=7)
    x = torch.where(mask[..., None], x, torch.zeros_like(x))  # padded points sit at the origin
    for k in (3, 9, 24):
        idx, valid = knn_indices(x, mask, k)
        assert idx.shape[-1] == min(k, 9)
        n_real = mask.sum(1)
        for b in range(4):
            for i in range(10):
                sel = idx[b, i][valid[b, i]].tolist()
                if not mask[b, i]:
                    assert sel == []
                    continue
                assert i not in sel
                assert all(mask[b, j] for j in sel)
                assert len(sel) == min(k, int(n_real[b]) - 1)


def test_single_particle_jet_and_empty_jet() -> None:
    net = small_net()
    x, mask = random_jets(2, 5, 6, [1, 0], seed=8)
    z = net(x, mask)
    assert torch.isfinite(z).all()
    assert (z[1] == 0).all()  # nothing to pool
    # A lone particle has no neighbour: every EdgeConv output is the zero message, so the
    # encoder sees zeros and z equals MLP_enc(0).
    expected = net.mlp_enc(torch.zeros(1, 16))[0]
    assert torch.allclose(z[0], expected, atol=1e-6)


def test_registry_builds_from_config() -> None:
    cfg = {
        "name": "edgeconv",
        "embed": [128, 128],
        "k": 24,
        "n_conv": 3,
        "conv_dim": 128,
        "encoder": [64, 32, 32, 8],
    }
    net = build_backbone(cfg, in_dim=15)
    assert isinstance(net, EdgeConvNet) and net.in_dim == 15 and net.embed_dim == 8
    assert len(net.convs) == 3 and net.convs[0].k == 24
    assert "edgeconv" in BACKBONES
    with pytest.raises(KeyError, match="'nope'"):
        build_backbone({"name": "nope"})
    with pytest.raises(TypeError, match="bogus"):
        build_backbone({**cfg, "bogus": 1})
    with pytest.raises(ValueError, match="expects 15 features"):
        net(torch.zeros(2, 4, 3), torch.ones(2, 4, dtype=torch.bool))
