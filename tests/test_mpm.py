"""MPM (arXiv:2401.13537): quantiser, tokenizers, masking, Normformer symmetries, training.

Everything runs on CPU with tiny models; the format-4 files come from the writer of
``test_training`` so the data layout is the one the training code is tested on.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from jetforge.methods import METHODS, MPM
from jetforge.methods.mpm import masked_particle_loss, sample_particle_mask
from jetforge.methods.mpm_tokenizer import (
    VQVAE,
    KMeansTokenizer,
    Standardiser,
    load_tokenizer,
    train_tokenizer,
)
from jetforge.methods.mpm_vq import VectorQuantiser, codebook_usage
from jetforge.models.normformer import NormformerNet
from jetforge.models.registry import build_backbone, load_backbone
from jetforge.training.engine import EngineConfig, fit
from jetforge.training.pretrain import run_pretrain

from test_training import _Batches, _history, _Kill, _kill_after, write_format4

F = 15
EPOCHS = 25  # of the 64-jet overfit tests (2 steps each)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_backbone(ordered: bool = False, seed: int = 0) -> NormformerNet:
    torch.manual_seed(seed)
    return NormformerNet(F, dim=32, n_blocks=2, n_heads=4, mlp_dim=64, dropout=0.0, ordered=ordered)


def jets(B: int, P: int, n_real: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, P, F, generator=g)
    mask = torch.arange(P)[None] < torch.tensor(n_real)[:, None]
    return x * mask[..., None], mask


# ----------------------------------------------------------------------------- quantiser


def test_quantiser_nearest_code_and_straight_through_gradient() -> None:
    torch.manual_seed(0)
    vq = VectorQuantiser(dim=3, n_codes=7, beta=0.9, sync_nu=0.0)
    z = torch.randn(20, 3, requires_grad=True)
    out = vq(z)
    brute = torch.stack([((vq.codes() - zi) ** 2).sum(1).argmin() for zi in z.detach()])
    assert torch.equal(out.ids, brute)
    assert torch.allclose(out.z_q, vq.codes()[brute])  # forward value is the code
    w = torch.randn(20, 3)
    gz, gc = torch.autograd.grad((out.z_q * w).sum(), [z, vq.codebook], allow_unused=True)
    assert torch.allclose(gz, w)  # straight through: identity to the encoder
    assert gc is None  # and nothing to the codebook without sync
    # synchronised update (nu = 2): the selected codes also get nu times the gradient
    vq.sync_nu = 2.0
    out = vq(z)
    gz, gc = torch.autograd.grad((out.z_q * w).sum(), [z, vq.codebook])
    expected = torch.zeros(7, 3).index_add_(0, out.ids, 2.0 * w)
    assert torch.allclose(gz, w) and torch.allclose(gc, expected, atol=1e-6)


def test_commitment_loss_by_hand() -> None:
    vq = VectorQuantiser(dim=2, n_codes=2, beta=0.9, sync_nu=0.0)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [4.0, 0.0]]))
    z = torch.tensor([[1.0, 1.0], [3.0, -1.0]], requires_grad=True)
    out = vq(z)
    assert out.ids.tolist() == [0, 1]
    # d = mean squared distance: ((1 + 1) + (1 + 1)) / 4 = 1; (1-b) d + b d = 1
    assert out.commitment.item() == pytest.approx(1.0)
    gz, gc = torch.autograd.grad(out.commitment, [z, vq.codebook])
    diff = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # z_e - z_q
    assert torch.allclose(gz, (1 - 0.9) * 2 * diff / 4)  # encoder pulled by (1 - beta)
    assert torch.allclose(gc, -0.9 * 2 * diff / 4)  # codes pulled by beta


def test_codebook_kmeans_init_and_affine_identity() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]])
    z = (centres[:, None] + 0.05 * torch.randn(4, 50, 2, generator=g)).reshape(-1, 2)
    vq = VectorQuantiser(dim=2, n_codes=4)
    with torch.no_grad():
        vq.affine_scale.fill_(3.0)
    vq.kmeans_init_(z, seed=1)
    codes = vq.codes().detach()
    for c in centres:  # every blob centre has its own code, within the blob's noise
        assert ((codes - c) ** 2).sum(1).min() < 0.05**2 * 10
    assert torch.equal(vq.affine_scale.detach(), torch.ones(2))
    assert sorted(vq.nearest(z).unique().tolist()) == [0, 1, 2, 3]
    # more codes than distinct latents: spare codes are jittered latents, no duplicates
    vq8 = VectorQuantiser(dim=2, n_codes=8)
    vq8.kmeans_init_(centres, seed=0)
    assert len(torch.unique(vq8.codes().detach(), dim=0)) == 8


def test_codebook_usage_metric() -> None:
    u = codebook_usage(torch.tensor([0, 0, 1, 1]), 4)
    assert u["used_fraction"] == 0.5 and u["perplexity"] == pytest.approx(2.0)
    u = codebook_usage(torch.arange(8), 8)
    assert u["used_fraction"] == 1.0 and u["perplexity"] == pytest.approx(8.0)
    assert codebook_usage(torch.zeros(5, dtype=torch.long), 3)["perplexity"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- tokenizers


def test_kmeans_tokenizer_deterministic_given_seed() -> None:
    rng = np.random.default_rng(0)
    particles = rng.normal(size=(600, F)) * rng.uniform(0.1, 5, size=F)
    a = KMeansTokenizer(F, n_codes=16).fit_(particles, seed=3)
    b = KMeansTokenizer(F, n_codes=16).fit_(particles, seed=3)
    c = KMeansTokenizer(F, n_codes=16).fit_(particles, seed=4)
    assert torch.equal(a.centroids, b.centroids)
    assert not torch.equal(a.centroids, c.centroids)
    x, mask = jets(4, 9, [9, 5, 1, 3], seed=1)
    ids = a.targets(x, mask)
    z = a.scaler(x)
    brute = ((z[..., None, :] - a.centroids) ** 2).sum(-1).argmin(-1)
    assert torch.equal(ids[mask], brute[mask]) and (ids[~mask] == 0).all()
    assert torch.allclose(a.scaler.mean, torch.from_numpy(particles.mean(0)).float(), atol=1e-5)


def test_mask_sampling_ratio_and_mask_vector_replacement() -> None:
    n_real = [20, 10, 7, 3, 1, 0]
    x, mask = jets(6, 20, n_real, seed=2)
    g = torch.Generator().manual_seed(0)
    for ratio in (0.15, 0.3, 0.5):
        masked = sample_particle_mask(mask, ratio, g)
        expect = [max(1, round(ratio * n)) if n else 0 for n in n_real]
        assert masked.sum(1).tolist() == expect
        assert not (masked & ~mask).any()  # only real particles are ever masked
    # different draws mask different particles
    assert not torch.equal(sample_particle_mask(mask, 0.3, g), sample_particle_mask(mask, 0.3, g))
    model = MPM(tiny_backbone(), KMeansTokenizer(F, 8), "kmeans", "head", mask_ratio=0.3)
    x_in, masked = model.mask_inputs(x, mask, torch.Generator().manual_seed(5))
    vec = model.mask_vector.detach()
    assert (x_in[masked] == vec).all()  # every masked slot holds exactly the mask vector
    assert torch.equal(x_in[~masked], x[~masked])  # and every other slot is untouched
    with pytest.raises(ValueError, match="ratio"):
        sample_particle_mask(mask, 0.0)


def test_masked_loss_is_per_jet_mean_over_masked_particles() -> None:
    pred = torch.zeros(2, 3, 4)
    pred[0, 0, 1] = 10.0  # jet 0, slot 0 confidently predicts token 1
    target = torch.tensor([[1, 2, 3], [0, 0, 0]])
    masked = torch.tensor([[True, True, False], [False, True, False]])
    ce = torch.nn.functional.cross_entropy
    j0 = (ce(pred[0, 0:1], target[0, 0:1]) + ce(pred[0, 1:2], target[0, 1:2])) / 2
    j1 = ce(pred[1, 1:2], target[1, 1:2])
    assert float(masked_particle_loss(pred, target, masked)) == pytest.approx(float(j0 + j1) / 2)
    reg = masked_particle_loss(
        torch.ones(1, 2, 3), torch.zeros(1, 2, 3), torch.tensor([[True, False]])
    )
    assert float(reg) == pytest.approx(3.0)  # squared error summed over features


# ----------------------------------------------------------------------------- symmetries


def test_padding_never_changes_outputs() -> None:
    x, mask = jets(3, 8, [8, 5, 2], seed=3)
    backbone = tiny_backbone().eval()
    vq = VQVAE(F, dim=16, n_blocks=1, n_heads=2, latent_dim=4, n_codes=8, dropout=0.0).eval()
    model = MPM(backbone, vq, "vqvae", "head").eval()
    x_in, masked = model.mask_inputs(x, mask, torch.Generator().manual_seed(0))

    def outputs(xx: torch.Tensor, mm: torch.Tensor, xi: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return [backbone(xx, mm), backbone.tokens(xx, mm), vq.targets(xx, mm),
                    model.predict(xi, mm)]  # fmt: skip

    ref = outputs(x, mask, x_in)
    # 1) pad twice as long with garbage (NaN) in the padded slots
    pad = torch.full((3, 8, F), float("nan"))
    xp, mp = torch.cat([x, pad], 1), torch.cat([mask, torch.zeros(3, 8, dtype=torch.bool)], 1)
    xip = torch.cat([x_in, pad], 1)
    got = outputs(xp, mp, xip)
    assert torch.allclose(got[0], ref[0], atol=1e-6)
    for r, g_ in zip(ref[1:], got[1:], strict=True):
        assert torch.allclose(g_[:, :8][mask].float(), r[mask].float(), atol=1e-5)
    # 2) padding interleaved between real particles (no trimming possible), ordering kept
    perm = torch.tensor([0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15])
    got = outputs(xp[:, perm], mp[:, perm], xip[:, perm])
    inv = torch.argsort(perm)[:8]
    assert torch.allclose(got[0], ref[0], atol=1e-5)
    for r, g_ in zip(ref[1:], got[1:], strict=True):
        assert torch.allclose(g_[:, inv][mask].float(), r[mask].float(), atol=1e-5)


def test_backbone_permutation_equivariance_without_ordering() -> None:
    x, mask = jets(2, 10, [10, 10], seed=4)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    net = tiny_backbone().eval()
    with torch.no_grad():
        t, tp = net.tokens(x, mask), net.tokens(x[:, perm], mask[:, perm])
        assert torch.allclose(tp, t[:, perm], atol=1e-5)
        assert torch.allclose(net(x[:, perm], mask), net(x, mask), atol=1e-5)
        # the ordered backbone (Table I "order backbone") is deliberately not equivariant
        ordered = tiny_backbone(ordered=True).eval()
        torch.nn.init.normal_(ordered.pos.weight)
        assert not torch.allclose(
            ordered.tokens(x[:, perm], mask), ordered.tokens(x, mask)[:, perm], atol=1e-3
        )


def test_ordering_consistency_and_registry() -> None:
    tok = KMeansTokenizer(F, 8)
    assert METHODS["mpm"] is MPM and MPM.sampler == "jets"
    with pytest.raises(ValueError, match="ordered"):
        MPM(tiny_backbone(ordered=False), tok, "kmeans", "backbone")
    with pytest.raises(ValueError, match="ordered"):
        MPM(tiny_backbone(ordered=True), tok, "kmeans", "head")
    with pytest.raises(ValueError, match="tokenizer"):
        MPM(tiny_backbone(), tok, "vqvae", "head")
    assert MPM(tiny_backbone(), tok, "kmeans", "none").head.pos is None
    assert MPM(tiny_backbone(), tok, "kmeans", "head").head.pos is not None
    bb = build_backbone({"name": "normformer", "dim": 16, "n_blocks": 1, "n_heads": 2}, in_dim=F)
    assert isinstance(bb, NormformerNet) and bb.embed_dim == 16


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("target", ["vqvae", "kmeans", "regression"])
def test_overfit_64_jets(target: str, tmp_path: Path) -> None:
    # particles scatter around a per-jet centre: a masked particle is predictable from the
    # others, as in real jets, so the loss can fall far within a few dozen steps
    g = torch.Generator().manual_seed(0)
    centre = 2.0 * torch.randn(64, 1, F, generator=g)
    x = centre + 0.2 * torch.randn(64, 10, F, generator=g)
    m = torch.arange(10)[None] < torch.randint(4, 11, (64, 1), generator=g)
    x = x * m[..., None]
    torch.manual_seed(0)
    if target == "vqvae":
        tok = VQVAE(F, dim=16, n_blocks=1, n_heads=2, latent_dim=4, n_codes=16, dropout=0.0)
        tok.scaler.fit_(x[m].numpy())
        tok.quantiser.kmeans_init_(tok.encode(x, m)[m].detach(), seed=0)
    elif target == "kmeans":
        tok = KMeansTokenizer(F, 16).fit_(x[m].numpy(), seed=0)
    else:
        tok = Standardiser(F).fit_(x[m].numpy())
    model = MPM(
        tiny_backbone(), tok, target, "head", mask_ratio=0.3, head_heads=4, head_dropout=0.0
    )
    params = [p for p in model.parameters() if p.requires_grad]
    state = fit(
        model, [{"params": params}], lambda mod, b: mod(b.x, b.mask),
        _Batches(x, m, torch.zeros(64), 32), 2,
        EngineConfig(epochs=EPOCHS, lr=3e-3, checkpoint_every=10**6),
        torch.device("cpu"), tmp_path / "ck.pt", tmp_path / "h.csv",
    )  # fmt: skip
    first = np.mean([r["loss"] for r in state.history[:3]])
    last = np.mean([r["loss"] for r in state.history[-3:]])
    assert last < first / 3, f"{target}: loss fell only from {first:.3f} to {last:.3f}"


def _tiny_exp(tokenizer_path: str | None, target: str = "kmeans") -> dict:
    return {
        "backbone": {"name": "normformer", "dim": 16, "n_blocks": 1, "n_heads": 2,
                     "mlp_dim": 32, "dropout": 0.0},
        "pretrain": {"method": "mpm", "target": target, "ordering": "head", "mask_ratio": 0.3,
                     "tokenizer_path": tokenizer_path, "head_heads": 2, "head_dropout": 0.0,
                     "processes": ["qcd_zjet", "hbb_zh"], "batch_size": 8, "epochs": 2,
                     "lr": 1e-4, "weight_decay": 0.01, "grad_clip": 5.0, "val_fraction": 0.2,
                     "checkpoint_every": 3},
    }  # fmt: skip


@pytest.fixture(scope="module")
def pretrain_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("mpm")
    return write_format4(d / "pretrain.h5", {"qcd_zjet": 24, "hbb_zh": 24}, seed=1)


def test_mpm_pretrain_resume_after_kill_is_bit_identical(pretrain_h5: Path, tmp_path: Path) -> None:
    h5 = str(pretrain_h5)
    tok_cfg = {"kind": "kmeans", "n_codes": 8, "n_fit_jets": 100, "val_fraction": 0.2}
    usage = train_tokenizer(h5, str(tmp_path / "km.pt"), tok_cfg, seed=3, device="cpu")
    assert 0 < usage["used_fraction"] <= 1 and 1 <= usage["perplexity"] <= 8
    exp = _tiny_exp(str(tmp_path / "km.pt"))
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_pretrain(h5, str(ref), exp, "", repeat=0, seed=11, device="cpu")
    with pytest.raises(_Kill):
        run_pretrain(
            h5, str(killed), exp, "", repeat=0, seed=11, device="cpu", after_step=_kill_after(5)
        )
    assert (killed / "checkpoint.pt").exists() and not (killed / "model.pt").exists()
    run_pretrain(h5, str(killed), exp, "", repeat=0, seed=11, device="cpu")
    a = torch.load(ref / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(killed / "model.pt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    hist = _history(ref / "history.csv")
    assert hist == _history(killed / "history.csv")
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(hist[0])
    assert all(math.isfinite(float(v)) for r in hist for v in r.values())
    model, payload = load_backbone(ref / "model.pt")
    assert isinstance(model, NormformerNet) and payload["method"] == "mpm"


def test_vqvae_tokenizer_training_resumes_and_reports_usage(
    pretrain_h5: Path, tmp_path: Path
) -> None:
    h5 = str(pretrain_h5)
    cfg = {"kind": "vqvae", "dim": 16, "n_blocks": 1, "n_heads": 2, "latent_dim": 4,
           "n_codes": 16, "dropout": 0.0, "commit_every": 4, "n_fit_jets": 100,
           "batch_size": 8, "epochs": 2, "lr": 1e-3, "val_fraction": 0.2,
           "checkpoint_every": 2}  # fmt: skip
    usage = train_tokenizer(h5, str(tmp_path / "a" / "vq.pt"), cfg, seed=1, device="cpu")
    with pytest.raises(_Kill):
        train_tokenizer(h5, str(tmp_path / "b" / "vq.pt"), cfg, seed=1, device="cpu",
                        after_step=_kill_after(3))  # fmt: skip
    assert train_tokenizer(h5, str(tmp_path / "b" / "vq.pt"), cfg, seed=1, device="cpu") == usage
    ta, pa = load_tokenizer(tmp_path / "a" / "vq.pt")
    tb, _ = load_tokenizer(tmp_path / "b" / "vq.pt")
    sa, sb = ta.state_dict(), tb.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert isinstance(ta, VQVAE) and not ta.training and int(ta.step) > 0
    assert not any(p.requires_grad for p in ta.parameters())
    assert 0 < usage["used_fraction"] <= 1 and pa["usage"] == usage and "init_usage" in pa
    hist = _history(tmp_path / "a" / "vq_history.csv")
    assert {"recon", "commitment", "used_fraction", "perplexity"} <= set(hist[0])
