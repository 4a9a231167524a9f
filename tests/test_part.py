"""Particle Transformer backbone: interaction features, four-vectors, padding, symmetry, sizes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from jetforge.jets.features import RS3L_FEATURES
from jetforge.models.part import (
    ParticleTransformer,
    fourvec_from_features,
    pairwise_features,
)
from jetforge.models.registry import build_backbone, load_backbone, save_backbone

TINY = dict(embed_dims=[16, 32, 16], pair_embed_dims=[8, 8], num_heads=2, num_layers=2,
            num_cls_layers=1, dropout=0.0, attn_dropout=0.0, activation_dropout=0.0)  # fmt: skip
F_ = len(RS3L_FEATURES)


pytestmark = pytest.mark.usefixtures("one_thread")


def rs3l_jets(B: int, P: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random jets with physically consistent RS3L kinematic features (pT-sorted)."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(2, P + 1, (B,), generator=g)
    mask = torch.arange(P)[None] < n[:, None]
    pt = (torch.rand(B, P, generator=g) * 80 + 1).sort(dim=1, descending=True).values
    deta, dphi = 0.3 * torch.randn(B, P, generator=g), 0.3 * torch.randn(B, P, generator=g)
    x = torch.randn(B, P, F_, generator=g)
    col = {f: i for i, f in enumerate(RS3L_FEATURES)}
    x[..., col["log_pt"]], x[..., col["deta"]], x[..., col["dphi"]] = pt.log(), deta, dphi
    x[..., col["log_e"]] = (pt * torch.cosh(deta)).log()
    return x * mask[..., None], mask


def test_pairwise_features_by_hand() -> None:
    # particle 1: pT 10 at (y, phi) = (0, 0), massless; particle 2: pT 5 at (0.3, 0.4)
    def p4(pt: float, y: float, phi: float) -> list[float]:
        return [pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(y), pt * math.cosh(y)]

    a, b = torch.tensor(p4(10.0, 0.0, 0.0)), torch.tensor(p4(5.0, 0.3, 0.4))
    got = pairwise_features(a, b)
    assert got.dtype == torch.float64
    dr = math.hypot(0.3, 0.4)  # 0.5
    m2 = 2 * 10 * 5 * (math.cosh(0.3) - math.cos(0.4))  # massless pair mass
    want = torch.tensor([math.log(dr), math.log(5 * dr), math.log(5 / 15), math.log(m2)])
    assert torch.allclose(got, want.double(), atol=1e-6), (got, want)
    assert torch.allclose(pairwise_features(b, a), got, rtol=1e-12)  # symmetric
    # a particle with itself: dR = kT = m^2 = 0 are clamped at eps, z = 1/2
    self_pair = pairwise_features(a, a)
    eps = torch.full((3,), math.log(1e-8), dtype=torch.float64)
    assert torch.allclose(self_pair[[0, 1, 3]], eps)
    assert self_pair[2] == pytest.approx(math.log(0.5))


def test_fourvec_from_features_by_name() -> None:
    names = ["a", "dphi", "log_pt", "deta"]  # any order: columns are found by name
    x = torch.tensor([[0.0, 0.4, math.log(5.0), 0.3]])
    p = fourvec_from_features(x, names)[0]
    want = [5 * math.cos(0.4), 5 * math.sin(0.4), 5 * math.sinh(0.3), 5 * math.cosh(0.3)]
    assert torch.allclose(p, torch.tensor(want, dtype=torch.float64), atol=1e-5)
    with pytest.raises(KeyError, match="deta"):
        fourvec_from_features(x[:, :3], names[:3])
    # ParT/JetClass inputs are stored standardised: part_pt_log = 0.7 (log pT - 1.7)
    jetclass = {"log_pt": ["part_pt_log", 1.7, 0.7], "eta": "part_deta", "phi": "part_dphi"}
    xs = x.clone()
    xs[0, 2] = 0.7 * (math.log(5.0) - 1.7)
    q = fourvec_from_features(xs, ["a", "part_dphi", "part_pt_log", "part_deta"], jetclass)
    assert torch.allclose(q[0].double(), p, atol=1e-5)


@pytest.mark.parametrize("train", [False, True])
def test_padding_never_changes_outputs(train: bool) -> None:
    torch.manual_seed(0)
    model = ParticleTransformer(**TINY).train(train)
    x, mask = rs3l_jets(6, 10)
    ref_tok, ref_cls = model.encode(x, mask)
    # twice as long, padding full of garbage (even NaN), and real slots scattered
    P2 = 20
    perm = torch.randperm(P2)[:10]
    x2 = torch.full((6, P2, F_), float("nan"))
    m2 = torch.zeros(6, P2, dtype=torch.bool)
    x2[:, perm], m2[:, perm] = x, mask
    x2[:, perm] = torch.where(mask[..., None], x, torch.full_like(x, 1e3))
    tok2, cls2 = model.encode(x2, m2)
    assert torch.allclose(cls2, ref_cls, atol=1e-5)
    assert torch.allclose(tok2[:, perm][mask], ref_tok[mask], atol=1e-5)
    assert (tok2[~m2] == 0).all() and torch.isfinite(cls2).all()
    # the pooled representation: mean of the real particles' tokens, blind to the padding
    if not train:
        n = mask.sum(1, keepdim=True)
        want = (ref_tok * mask[..., None]).sum(1) / n
        for xx, mm in ((x, mask), (x2, m2)):
            views = model.views(xx, mm)
            assert torch.allclose(views["pooled"], want, atol=1e-5)
            assert torch.allclose(views["output"], ref_cls, atol=1e-5)


def test_permutation_equivariance_and_empty_jet() -> None:
    torch.manual_seed(1)
    model = ParticleTransformer(**TINY).eval()
    x, mask = rs3l_jets(4, 9, seed=3)
    perm = torch.randperm(9)
    tok, cls = model.encode(x, mask)
    tok_p, cls_p = model.encode(x[:, perm], mask[:, perm])
    assert torch.allclose(cls_p, cls, atol=1e-5)
    assert torch.allclose(tok_p, tok[:, perm], atol=1e-5)
    assert torch.equal(model(x, mask), cls) and torch.equal(model.tokens(x, mask), tok)
    empty = model(torch.zeros(1, 9, F_), torch.zeros(1, 9, dtype=torch.bool))
    assert torch.isfinite(empty).all()
    # length buckets (jets grouped by length in the particle blocks) change nothing
    x, mask = rs3l_jets(16, 12, seed=4)
    model.length_buckets = 3
    tok3, cls3 = model.encode(x, mask)
    model.length_buckets = 1
    tok1, cls1 = model.encode(x, mask)
    assert torch.allclose(cls3, cls1, atol=1e-5) and torch.allclose(tok3, tok1, atol=1e-5)


def test_table6_sizes_and_registry(tmp_path: Path) -> None:
    # ParT Table 3: 2.14 M parameters (17 JetClass inputs, 10-class head); JP-JEPA §2.2:
    # Small has 27.1 M. Our backbone has no head: add 128*10+10 / 384*10+10.
    names17 = [f"f{i}" for i in range(14)] + ["log_pt", "deta", "dphi"]
    n_mini = sum(p.numel() for p in ParticleTransformer(17, "mini", feature_names=names17)
                 .parameters()) + 1290  # fmt: skip
    n_small = sum(p.numel() for p in ParticleTransformer(17, "small", feature_names=names17)
                  .parameters()) + 3850  # fmt: skip
    assert round(n_mini / 1e6, 2) == 2.14 and round(n_small / 1e6, 1) == 27.1
    cfg = {"name": "part", **TINY}
    model = build_backbone(cfg, in_dim=F_)
    assert isinstance(model, ParticleTransformer) and model.embed_dim == 16
    save_backbone(tmp_path / "m.pt", model, {**cfg, "in_dim": F_})
    again, _ = load_backbone(tmp_path / "m.pt")
    x, mask = rs3l_jets(3, 7)
    assert torch.equal(again.eval()(x, mask), model.eval()(x, mask))
    with pytest.raises(ValueError, match="feature_names"):
        ParticleTransformer(in_dim=17)
