"""jBOT: ViT backbone, distillation losses, KoLeo, p_T masking, augmentations, EMA/centring,
overfit, resume after a kill, multi-class fine-tuning with LLRD.

Everything runs on CPU with tiny models; the suite pins torch to one thread (restored
afterwards) because on shared 2-core machines intra-op threading costs more than it saves.
"""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from toyfiles import write_toy_file

from jetforge.jets.features import RS3L_FEATURES
from jetforge.methods import METHODS
from jetforge.methods.distill_ce import Centre
from jetforge.methods.ema import ema_momentum as _ema_momentum
from jetforge.methods.jbot import JBOT
from jetforge.methods.jbot_augment import (
    JetAugment,
    JetFeatures,
    collinear_split,
    log_cosh,
    rotate,
    smear,
)
from jetforge.methods.jbot_cls_loss import ClsDistillationLoss
from jetforge.methods.jbot_masking import closest_prefix_mask, pt_fraction_mask
from jetforge.methods.jbot_particle_loss import ParticleDistillationLoss
from jetforge.methods.koleo_loss import KoLeoLoss
from jetforge.models.registry import build_backbone, load_backbone
from jetforge.models.vit import ParticleViT
from jetforge.training.engine import EngineConfig, fit
from jetforge.training.finetune import Classifier, llrd_param_groups, run_finetune
from jetforge.training.pretrain import run_pretrain

F = len(RS3L_FEATURES)
COL = {n: i for i, n in enumerate(RS3L_FEATURES)}
SHIFT = [1.8, -4.45, 1.8, -4.45, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
SCALE = [1.4, 1.4, 1.4, 1.4, 0.2, 0.2, 0.2, 0.25, 0.25, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


pytestmark = pytest.mark.usefixtures("one_thread")


def rs3l_jets(B: int, P: int, seed: int = 0, n_min: int = 3, n_max: int | None = None):
    """Physical toy jets in RS3L features: massless particles, jet axis at eta = 0, so
    ``log_e - log_pt = log cosh(deta)`` holds exactly; padding holds garbage (NaN)."""
    g = np.random.default_rng(seed)
    n = g.integers(n_min, (n_max or P) + 1, size=B)
    m = np.arange(P)[None] < n[:, None]
    pt = g.exponential(10.0, (B, P)) + 0.3
    deta, dphi = g.normal(0, 0.15, (B, P)), g.normal(0, 0.15, (B, P))
    e = pt * np.cosh(deta)
    ptj, ej = (pt * m).sum(1, keepdims=True), (e * m).sum(1, keepdims=True)
    flags = np.eye(5)[g.integers(0, 5, (B, P))]
    cols = [
        np.log(pt), np.log(pt / ptj), np.log(e), np.log(e / ej), deta, dphi, np.hypot(deta, dphi),
        np.tanh(g.normal(0, 0.3, (B, P))), np.tanh(g.normal(0, 0.3, (B, P))),
        g.integers(-1, 2, (B, P)).astype(float),
    ]  # fmt: skip
    x = np.concatenate([np.stack(cols, -1), flags], -1)
    x = np.where(m[..., None], x, np.nan)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(m)


def tiny_vit(**kw) -> ParticleViT:
    args = {"in_dim": F, "d_model": 16, "n_blocks": 2, "n_heads": 2, "dropout": 0.0}
    args.update(kw)
    return ParticleViT(input_shift=SHIFT, input_scale=SCALE, **args)


# ----------------------------------------------------------------------------- backbone


def test_vit_sizes_and_registry() -> None:
    s = build_backbone({"name": "vit", "size": "S"}, in_dim=4)
    b = build_backbone({"name": "vit", "size": "B"}, in_dim=4)
    assert (s.embed_dim, len(s.blocks), s.blocks[0].attn.n_heads) == (32, 2, 4)
    assert (b.embed_dim, len(b.blocks), b.blocks[0].attn.n_heads) == (64, 4, 6)
    assert b.blocks[0].attn.head_dim == 10  # 64 // 6, as the authors' Keras key_dim
    assert b.blocks[0].attn.proj.weight.shape == (64, 60)
    assert b.blocks[0].mlp[0].out_features == 4 * 64
    with pytest.raises(ValueError, match="size"):
        ParticleViT(size="L")
    groups = b.layer_groups()
    assert len(groups) == 5 and sum(len(g) for g in groups) == len(list(b.parameters()))


def test_padding_never_changes_outputs() -> None:
    torch.manual_seed(0)
    model = tiny_vit().eval()
    x, m = rs3l_jets(6, 10, seed=1)
    with torch.no_grad():
        tok, cls = model.encode(x, m)
        # twice as long, garbage in every padded slot
        x2 = torch.cat([x, torch.full_like(x, float("nan"))], 1)
        m2 = torch.cat([m, torch.zeros_like(m)], 1)
        tok2, cls2 = model.encode(x2, m2)
        # padding *between* real particles, and [MASK] replacement requested on padding
        perm = torch.argsort(torch.rand(6, 20), dim=1)
        x3, m3 = torch.gather(x2, 1, perm[..., None].expand_as(x2)), torch.gather(m2, 1, perm)
        tok3, cls3 = model.encode(x3, m3, replace=~m3, replacement=torch.full((16,), 7.0))
    assert torch.isfinite(cls).all() and torch.isfinite(tok).all()
    torch.testing.assert_close(cls2, cls, rtol=0, atol=1e-6)
    torch.testing.assert_close(tok2[:, :10], tok, rtol=0, atol=1e-6)
    assert (tok2[:, 10:] == 0).all() and (tok[~m] == 0).all()
    torch.testing.assert_close(cls3, cls, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        tok3, torch.gather(tok2, 1, perm[..., None].expand_as(tok2)), rtol=1e-5, atol=1e-5
    )


def test_permutation_equivariance_and_invariance() -> None:
    torch.manual_seed(1)
    model = tiny_vit().eval()
    x, m = rs3l_jets(5, 12, seed=2)
    perm = torch.randperm(12)
    with torch.no_grad():
        tok, cls = model.encode(x, m)
        tok_p, cls_p = model.encode(x[:, perm], m[:, perm])
        z = model(x, m)
    torch.testing.assert_close(cls_p, cls, rtol=1e-5, atol=1e-5)  # [CLS] invariant
    torch.testing.assert_close(tok_p, tok[:, perm], rtol=1e-5, atol=1e-5)  # tokens equivariant
    torch.testing.assert_close(z, cls)


# ----------------------------------------------------------------------------- losses


def _logits_for(p: np.ndarray, temp: float) -> torch.Tensor:
    """Logits whose temperature softmax is exactly ``p`` (rows sum to 1)."""
    return torch.tensor(temp * np.log(p), dtype=torch.float32)


def test_cls_loss_matches_hand_made_distributions() -> None:
    pt_u, pt_v = (
        np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]),
        np.array([[0.5, 0.25, 0.25], [1 / 3] * 3]),
    )
    ps_u, ps_v = (
        np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]),
        np.array([[0.4, 0.4, 0.2], [0.1, 0.8, 0.1]]),
    )
    loss = ClsDistillationLoss(3, temp_teacher=0.04, temp_student=0.1)
    got = loss(
        _logits_for(ps_u, 0.1),
        _logits_for(ps_v, 0.1),
        _logits_for(pt_u, 0.04),
        _logits_for(pt_v, 0.04),
    )

    def ce(p, q):
        return -(p * np.log(q)).sum(1).mean()

    want = 0.5 * (ce(pt_u, ps_v) + ce(pt_v, ps_u))  # eq. (2): teacher u <-> student v
    assert float(got) == pytest.approx(want, rel=1e-5)
    # the centre is subtracted from teacher outputs before the softmax
    c = torch.tensor([0.3, -0.2, 0.1])
    loss.centre.center.copy_(c)
    p = loss.teacher_probs(torch.zeros(1, 3))
    want_p = np.exp(-c.numpy() / 0.04) / np.exp(-c.numpy() / 0.04).sum()
    np.testing.assert_allclose(p.numpy()[0], want_p, rtol=1e-5)


def test_particle_loss_is_per_jet_mean_over_masked() -> None:
    K = 3
    rng = np.random.default_rng(0)
    pt = rng.dirichlet(np.ones(K), size=(3, 4))
    ps = rng.dirichlet(np.ones(K), size=(3, 4))
    masked = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    loss = ParticleDistillationLoss(K)
    got = loss(_logits_for(ps, 0.1), _logits_for(pt, 0.04), masked)
    ce = -(pt * np.log(ps)).sum(-1)  # [3, 4]
    want = np.mean([(ce[0, 0] + ce[0, 1]) / 2, ce[1, 2]])  # eq. (1); jet 2 has M = 0
    assert float(got) == pytest.approx(want, rel=1e-5)
    none = loss(
        _logits_for(ps, 0.1).requires_grad_(),
        _logits_for(pt, 0.04),
        torch.zeros(3, 4, dtype=torch.bool),
    )
    assert float(none.detach()) == 0.0 and none.requires_grad
    t = torch.randn(3, 4, K)
    torch.testing.assert_close(loss.batch_mean(t, masked | True), t.reshape(-1, K).mean(0))


def test_koleo_against_explicit_loop() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(9, 5, generator=g) * torch.rand(9, 1, generator=g) * 4  # norms vary
    x[4] = 2.5 * x[1]  # same direction: normalised duplicates, distance 0
    z = (x / x.norm(dim=1, keepdim=True)).double()
    total = 0.0
    for i in range(len(z)):
        d = min(float((z[i] - z[j]).norm()) for j in range(len(z)) if j != i)
        total += math.log(math.sqrt(d * d + 1e-16))
    got = KoLeoLoss()(x.requires_grad_())
    assert float(got.detach()) == pytest.approx(-total / len(z), rel=1e-4)
    got.backward()
    assert torch.isfinite(x.grad).all()
    assert float(KoLeoLoss()(torch.randn(1, 4))) == 0.0


# ----------------------------------------------------------------------------- masking


def test_mask_is_the_closest_cumulative_subset() -> None:
    g = torch.Generator().manual_seed(5)
    B, P = 200, 15
    pt = torch.rand(B, P, generator=g) ** 3 * 50
    valid = torch.arange(P)[None] < torch.randint(1, P + 1, (B, 1), generator=g)
    valid = torch.gather(valid, 1, torch.argsort(torch.rand(B, P, generator=g), 1))  # holes
    ratio = torch.rand(B, generator=g) * 0.5
    ratio[:5] = 0.0
    keys = torch.rand(B, P, generator=g)
    mask = closest_prefix_mask(pt, valid, ratio, keys)
    assert not (mask & ~valid).any()  # padding never masked
    for b in range(B):
        idx = [i for i in np.argsort(keys[b].numpy(), kind="stable") if valid[b, i]]
        w = pt[b, idx].double().numpy()
        S = np.concatenate([[0.0], np.cumsum(w)])
        target = float(ratio[b]) * w.sum()
        n = len(idx)
        if ratio[b] == 0:
            k = 0
        else:
            k = int(np.argmin(np.abs(S - target)))
            k = min(max(k, 1), n - 1)
        assert sorted(torch.nonzero(mask[b]).ravel().tolist()) == sorted(idx[:k]), b
        if ratio[b] > 0 and n >= 2:  # at least one masked and one visible
            assert 1 <= int(mask[b].sum()) <= n - 1
        if ratio[b] > 0 and 1 <= int(np.argmin(np.abs(S - target))) <= n - 1:
            frac = float(pt[b][mask[b]].double().sum()) / w.sum()
            assert abs(frac - float(ratio[b])) <= np.abs(S / w.sum() - float(ratio[b])).min() + 1e-6


def test_random_masks_hit_the_target_on_average() -> None:
    torch.manual_seed(0)
    pt = torch.rand(4000, 60) + 0.05  # many comparable particles: fine granularity
    valid = torch.ones_like(pt, dtype=torch.bool)
    valid[:, 50:] = False
    mask, ratio = pt_fraction_mask(pt, valid, (0.0, 0.5))
    frac = (pt * mask).sum(1) / (pt * valid).sum(1)
    assert not (mask & ~valid).any()
    assert float(ratio.min()) >= 0 and float(ratio.max()) <= 0.5
    dev = (frac - ratio).abs()
    assert float(dev.max()) < 0.04  # closest subset: within one particle's share (<= 1.05 / 27.5)
    assert float(dev.mean()) < 0.01
    assert float(frac.mean()) == pytest.approx(0.25, abs=0.01)


# ----------------------------------------------------------------------------- augmentations


def _check_rs3l_consistency(
    x: torch.Tensor, m: torch.Tensor, log_ptj: torch.Tensor, log_ej: torch.Tensor
) -> None:
    r = x[m].double()
    c = COL
    torch.testing.assert_close(
        r[:, c["dr"]], torch.hypot(r[:, c["deta"]], r[:, c["dphi"]]), rtol=0, atol=1e-5
    )
    jet = torch.nonzero(m)[:, 0]
    torch.testing.assert_close(
        r[:, c["log_pt"]] - r[:, c["log_pt_rel"]], log_ptj[jet], rtol=0, atol=1e-4
    )
    torch.testing.assert_close(
        r[:, c["log_e"]] - r[:, c["log_e_rel"]], log_ej[jet], rtol=0, atol=1e-4
    )
    massless = r[:, c["log_e"]] - r[:, c["log_pt"]] - log_cosh(r[:, c["deta"]])
    assert float(massless.abs().max()) < 1e-4
    assert float(r[:, c["dphi"]].abs().max()) <= math.pi


def test_augmentations_keep_rs3l_features_consistent() -> None:
    torch.manual_seed(0)
    x, m = rs3l_jets(64, 40, seed=3, n_min=2, n_max=40)
    feats = JetFeatures.from_spec("rs3l")
    log_ptj = (x[..., COL["log_pt"]] - x[..., COL["log_pt_rel"]])[:, 0].double()
    log_ej = (x[..., COL["log_e"]] - x[..., COL["log_e_rel"]])[:, 0].double()

    def pt_sum(x, m):
        return (torch.exp(x[..., COL["log_pt"]].double()) * m).sum(1)

    x0 = torch.where(m[..., None], x, 0.0)
    xr = rotate(x0, m, feats)
    _check_rs3l_consistency(xr, m, log_ptj, log_ej)
    torch.testing.assert_close(
        xr[..., COL["dr"]], x0[..., COL["dr"]], rtol=0, atol=1e-5
    )  # rotation
    xs = smear(x0, m, feats)
    _check_rs3l_consistency(xs, m, log_ptj, log_ej)
    torch.testing.assert_close(pt_sum(xs, m), pt_sum(x0, m))  # p_T untouched by both
    xa, ma = collinear_split(xs, m, feats, split_below=30)
    _check_rs3l_consistency(xa, ma, log_ptj, log_ej)
    n, n_a = m.sum(1), ma.sum(1)
    assert torch.equal(n_a, n + (30 - n).clamp(min=0).minimum(n))  # min(30 - n, n) splits
    assert (n_a[n >= 30] == n[n >= 30]).all()
    torch.testing.assert_close(pt_sum(xa, ma), pt_sum(xs, m))  # splitting conserves p_T
    assert (xa[~ma] == 0).all() and torch.equal(ma[:, : m.shape[1]] | m, ma[:, : m.shape[1]])
    flags = slice(COL["tanh_d0"], F)
    for b in range(8):  # every particle of the view is an original (angles, flags) or a split copy
        orig = {
            tuple(np.round(r, 5))
            for r in xs[b][m[b]][:, [COL["deta"], COL["dphi"], *range(F)[flags]]].numpy()
        }
        new = {
            tuple(np.round(r, 5))
            for r in xa[b][ma[b]][:, [COL["deta"], COL["dphi"], *range(F)[flags]]].numpy()
        }
        assert new == orig


def test_smearing_width_and_jetnet_features() -> None:
    torch.manual_seed(1)
    B, P = 2000, 2
    feats = JetFeatures.from_spec("jetnet", jet_pt=1000.0)  # etarel, phirel, ptrel, mask
    x = torch.zeros(B, P, 4)
    x[:, 0, 2], x[:, 1, 2] = 0.001, 0.999  # p_T = 1 GeV and 999 GeV
    x[..., 3] = 1.0
    m = torch.ones(B, P, dtype=torch.bool)
    xs = smear(x, m, feats)
    assert float(xs[:, 0, 0].std()) == pytest.approx(0.1, rel=0.08)  # Lambda / p_T = 0.1
    assert float(xs[:, 1, 0].std()) == pytest.approx(1e-4, rel=0.1)
    m2 = torch.tensor([[True, True, False, False]] * 3)
    x2 = torch.zeros(3, 4, 4)
    x2[:, :2, 2], x2[:, :2, 3] = torch.tensor([0.6, 0.4]), 1.0
    xa, ma = JetAugment(feats)(x2, m2)
    assert ma.sum(1).tolist() == [4, 4, 4]
    torch.testing.assert_close(xa[..., 2].sum(1), torch.ones(3))
    assert torch.equal(xa[..., 3], ma.float())  # the "mask" feature follows the mask
    with pytest.raises(ValueError, match="jet_pt"):
        JetAugment(JetFeatures.from_spec("jetnet3"))
    with pytest.raises(ValueError, match="no augmentation rule"):
        JetFeatures(("deta", "dphi", "log_pt", "mystery"))


# ----------------------------------------------------------------------------- method


def _jbot(**kw) -> JBOT:
    torch.manual_seed(0)
    cfg = {"feature_names": "rs3l", **kw}
    return METHODS["jbot"].from_config(tiny_vit(), cfg)


def ema_momentum(k: int, total: int) -> float:
    """jBOT's momentum of update ``k`` (0-based) of ``total`` (Table 1)."""
    return _ema_momentum(k, total, 0.996, 1.0, schedule="cosine")


def test_ema_update_exact_and_teacher_gets_no_gradient() -> None:
    model = _jbot().train()
    x, m = rs3l_jets(8, 10, seed=4)
    out = model(x, m)
    out["loss"].backward()
    assert all(not p.requires_grad and p.grad is None for p in model.teacher_backbone.parameters())
    assert all(not p.requires_grad and p.grad is None for p in model.teacher_head.parameters())
    assert all(p.grad is not None for p in model.backbone.parameters())
    assert model.mask_token.grad is not None and model.teacher_backbone.training is False
    with torch.no_grad():  # make student and teacher differ
        for p in [*model.backbone.parameters(), *model.head.parameters()]:
            p.add_(torch.randn_like(p))
    t0 = [
        p.clone() for p in [*model.teacher_backbone.parameters(), *model.teacher_head.parameters()]
    ]
    s0 = [p.clone() for p in [*model.backbone.parameters(), *model.head.parameters()]]
    model.on_step(5, 10)
    mom = ema_momentum(4, 10)
    assert mom == pytest.approx(0.996 + 0.004 * (1 - math.cos(math.pi * 0.4)) / 2)
    t1 = [*model.teacher_backbone.parameters(), *model.teacher_head.parameters()]
    for a, b, c in zip(t1, t0, s0, strict=True):
        torch.testing.assert_close(a, mom * b + (1 - mom) * c, rtol=1e-6, atol=1e-7)
    assert ema_momentum(0, 10) == pytest.approx(0.996) and ema_momentum(10, 10) == 1.0
    assert float(model.last_momentum) == pytest.approx(mom)


def test_centring_update_only_after_training_forwards() -> None:
    model = _jbot().train()
    x, m = rs3l_jets(8, 10, seed=5)
    c_cls, c_part = model.cls_loss.centre.center.clone(), model.part_loss.centre.center.clone()
    model(x, m)
    mean_cls, mean_part = model._pending
    model.on_step(1, 10)
    torch.testing.assert_close(model.cls_loss.centre.center, 0.9 * c_cls + 0.1 * mean_cls)
    torch.testing.assert_close(model.part_loss.centre.center, 0.9 * c_part + 0.1 * mean_part)
    assert float(mean_cls.norm()) <= 1 + 1e-6  # mean of unit projections
    before = model.cls_loss.centre.center.clone()
    model.eval()
    with torch.no_grad():
        model(x, m)
    model.on_step(2, 10)  # nothing pending from an eval forward
    torch.testing.assert_close(model.cls_loss.centre.center, before)
    c = Centre(2, momentum=0.9)
    c.update(torch.tensor([1.0, -2.0]))
    torch.testing.assert_close(c.center, torch.tensor([0.1, -0.2]))


def test_length_buckets_do_not_change_the_encoding() -> None:
    model = _jbot(length_buckets=3).eval()
    x, m = rs3l_jets(12, 16, seed=7, n_min=1)
    x = torch.where(m[..., None], x, 0.0)
    replace = m & (torch.rand(m.shape) < 0.3)
    with torch.no_grad():
        one = model.backbone.encode(x, m, replace, model.mask_token)[::-1]  # (cls, tok)
        three = model._encode(model.backbone, x, m, replace, model.mask_token)
    for a, b in zip(one, three, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="feature_names"):
        METHODS["jbot"].from_config(tiny_vit(), {})
    with pytest.raises(ValueError, match="features"):
        METHODS["jbot"].from_config(ParticleViT(in_dim=4), {"feature_names": "rs3l"})
    with pytest.raises(ValueError, match="augment"):
        METHODS["jbot"].from_config(
            tiny_vit(), {"feature_names": "rs3l", "augment": {"rotation": 1}}
        )


class _Batches:
    def __init__(self, x: torch.Tensor, m: torch.Tensor) -> None:
        self.x, self.m = x, m

    def __call__(self, epoch: int, start: int):
        from jetforge.training.data import JetBatch

        for _ in range(start, 1):
            yield JetBatch(self.x, self.m, torch.zeros(len(self.x)))


def test_overfit_64_jets(tmp_path: Path) -> None:
    """64 fixed jets, deterministic views (augmentations off, [MASK] position hints on).

    Self-distillation has no fixed target: the loss floor is the teacher's own entropy,
    which moves. What must fall is the student's divergence from the teacher,
    KL = L_CLS - H(P_t^[CLS]) (the cross-entropy minus the teacher entropy, both logged),
    by a factor 2.5 in 80 steps; the total loss must fall too, and nothing collapses.
    """
    torch.manual_seed(0)
    x, m = rs3l_jets(64, 20, seed=6)
    model = METHODS["jbot"].from_config(
        tiny_vit(n_blocks=1),
        {
            "feature_names": "rs3l",
            "mask_hint": True,
            "augment": {"rotate": False, "smear": False, "split_below": 0},
        },
    )
    state = fit(
        model,
        [{"params": [p for p in model.parameters() if p.requires_grad]}],
        lambda mod, b: mod(b.x, b.mask),
        _Batches(x, m),
        1,
        EngineConfig(epochs=80, lr=3e-3, checkpoint_every=10_000),
        torch.device("cpu"),
        tmp_path / "ck.pt",
        tmp_path / "h.csv",
    )
    h = state.history
    kl = [r["loss_cls"] - r["entropy_teacher"] for r in h]
    assert np.mean(kl[-10:]) < kl[0] / 2.5, (
        f"KL(teacher || student) fell only from {kl[0]:.3f} to {np.mean(kl[-10:]):.3f}"
    )
    assert np.mean([r["loss"] for r in h[-10:]]) < h[0]["loss"]
    assert h[-1]["centre_cls_norm"] < 0.99 and h[-1]["entropy_teacher"] < 0.5 * math.log(
        8
    )  # no collapse
    assert h[-1]["ema_momentum"] > 0.999


# ----------------------------------------------------------------------------- stages


def write_jets(path: Path, n: dict[str, int], P: int = 14, seed: int = 0) -> Path:
    """Format-4 file with one variant (``nominal``) of toy RS3L jets; class k has its
    particles spread k+1 times wider in angle so that classifiers can learn."""
    xs, ms, proc = [], [], []
    for k, count in enumerate(n.values()):
        x, m = rs3l_jets(count, P, seed=seed + k)
        x[..., COL["deta"]] *= k + 1
        x[..., COL["dphi"]] *= k + 1
        x[..., COL["dr"]] *= k + 1
        xs.append(torch.where(m[..., None], x, 0.0).numpy())
        ms.append(m.numpy())
        proc += [k] * count
    return write_toy_file(path, np.concatenate(xs), np.concatenate(ms),
                          np.asarray(proc, np.int8), list(n))  # fmt: skip


PROCS = {"qcd_zjet": 20, "hbb_zh": 20, "wqq_wjet": 16}
EXP = {
    "backbone": {
        "name": "vit",
        "d_model": 16,
        "n_blocks": 2,
        "n_heads": 2,
        "input_shift": SHIFT,
        "input_scale": SCALE,
    },
    "pretrain": {
        "method": "jbot",
        "processes": ["qcd_zjet", "hbb_zh"],
        "augsets": {"none": []},
        "feature_names": "rs3l",
        "batch_size": 8,
        "epochs": 2,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "val_fraction": 0.2,
        "checkpoint_every": 3,
    },
    "finetune": {
        "epochs": 2,
        "batch_size": 16,
        "lr": 2e-3,
        "llrd": 0.7,
        "head_hidden_mult": [2, 1],
        "head_dropout": 0.2,
        "checkpoint_every": 4,
        "tasks": {"three": {"classes": ["qcd_zjet", "hbb_zh", "wqq_wjet"]}},
    },
}


class _Kill(RuntimeError):
    pass


def _kill_after(n: int):
    def hook(state) -> None:
        if state.step == n:
            raise _Kill(f"simulated kill after step {n}")

    return hook


def _history(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in [k for k in r if k.endswith("_per_s")]:  # throughput: wall-clock timings
            r.pop(k)
    return rows


def test_pretrain_resume_after_kill_is_bit_identical(tmp_path: Path) -> None:
    h5 = str(write_jets(tmp_path / "pre.h5", {"qcd_zjet": 20, "hbb_zh": 20}))
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_pretrain(h5, str(ref), EXP, "none", repeat=0, seed=11, device="cpu")
    n_steps = int(_history(ref / "history.csv")[-1]["step"])
    assert n_steps >= 6  # >= 3 steps per epoch: step 5 is mid-epoch 2, after a checkpoint
    with pytest.raises(_Kill):
        run_pretrain(
            h5, str(killed), EXP, "none", repeat=0, seed=11, device="cpu", after_step=_kill_after(5)
        )
    assert (killed / "checkpoint.pt").exists() and not (killed / "model.pt").exists()
    run_pretrain(h5, str(killed), EXP, "none", repeat=0, seed=11, device="cpu")
    a, b = (torch.load(p / "model.pt", weights_only=False) for p in (ref, killed))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    ca, cb = (torch.load(p / "checkpoint.pt", weights_only=False)["model"] for p in (ref, killed))
    for k in ca:  # teacher, centres, mask token too
        assert torch.equal(ca[k], cb[k]), k
    assert any(k.startswith("teacher_backbone.") for k in ca) and "cls_loss.centre.center" in ca
    assert _history(ref / "history.csv") == _history(killed / "history.csv")
    hist = _history(ref / "history.csv")
    assert {"loss_cls", "loss_part", "loss_koleo", "val_loss", "centre_cls_norm"} <= set(hist[0])
    model, payload = load_backbone(ref / "model.pt")
    assert isinstance(model, ParticleViT) and payload["method"] == "jbot"


def test_multiclass_finetune_with_llrd(tmp_path: Path) -> None:
    train = write_jets(tmp_path / "ft.h5", PROCS, seed=20)
    test = write_jets(tmp_path / "te.h5", dict.fromkeys(PROCS, 6), seed=40)
    pre = tmp_path / "pre"
    run_pretrain(
        str(write_jets(tmp_path / "pre.h5", {"qcd_zjet": 20, "hbb_zh": 20})),
        str(pre),
        EXP,
        "none",
        0,
        1,
        "cpu",
    )
    out = tmp_path / "floating" / "predictions.h5"
    run_finetune(
        str(train),
        str(test),
        str(out),
        EXP,
        "three",
        "floating",
        "none",
        40,
        0,
        1,
        str(pre / "model.pt"),
        "cpu",
    )
    with h5py.File(out) as f:
        s, y = f["score"][:], f["label"][:]
        assert s.shape == (18, 3) and s.dtype == np.float32
        np.testing.assert_allclose(s.sum(1), 1.0, rtol=1e-5)
        assert y.tolist() == [0] * 6 + [1] * 6 + [2] * 6
        assert list(f.attrs["classes"]) == list(PROCS)
    # LLRD groups: head lr, last group lr * d, ..., embedding lr * d^n; every parameter once
    torch.manual_seed(0)
    clf = Classifier(tiny_vit(n_blocks=3), n_out=3, hidden=[32, 16], dropout=0.2)
    groups = llrd_param_groups(clf, 1e-3, 0.5)
    assert [g["lr"] for g in groups] == pytest.approx(
        [1e-3, 1e-3 / 16, 1e-3 / 8, 1e-3 / 4, 1e-3 / 2]
    )
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(clf.parameters()))
    with pytest.raises(ValueError, match="layer_groups"):
        llrd_param_groups(
            Classifier(
                copy.deepcopy(
                    build_backbone(
                        {
                            "name": "edgeconv",
                            "embed": [8],
                            "k": 2,
                            "n_conv": 1,
                            "conv_dim": 8,
                            "encoder": [4],
                        },
                        in_dim=F,
                    )
                )
            ),
            1e-3,
            0.5,
        )
