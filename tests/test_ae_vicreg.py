"""Autoencoder + VICReg terms (Rieck et al. §5.4) and the anomaly scores (§5.5; jBOT §4.5)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from jetforge.evaluation.anomaly import (
    SCORES,
    CosineAEConfig,
    anomaly_auc,
    cosine_ae_score,
    cosine_knn_score,
    evaluate_scores,
    fit_cosine_ae,
    knn_score,
    mahalanobis_score,
)
from jetforge.methods import AEVICReg
from jetforge.methods.vicreg_loss import covariance_term, variance_term
from jetforge.models.registry import build_backbone
from jetforge.training.engine import EngineConfig, fit

sys.path.insert(0, str(Path(__file__).parent))
from test_cells_tracks import SMALL, _Batches, overfit_views

pytestmark = pytest.mark.usefixtures("one_thread")


def test_variance_and_covariance_terms_match_explicit_loops() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(13, 5, generator=g) * torch.tensor([0.1, 0.5, 1.0, 2.0, 0.0])
    z[:, 4] = 3.0  # a collapsed dimension
    z[:, 1] += 0.7 * z[:, 0]  # correlated pair
    n, d = z.shape
    zl = z.double().tolist()
    var_loop = 0.0
    for j in range(d):
        m = sum(zl[i][j] for i in range(n)) / n
        var = sum((zl[i][j] - m) ** 2 for i in range(n)) / (n - 1)
        var_loop += max(0.0, 1.0 - math.sqrt(var + 1e-4))
    var_loop /= d
    means = [sum(zl[i][j] for i in range(n)) / n for j in range(d)]
    cov_loop = 0.0
    for a in range(d):
        for b in range(d):
            if a != b:
                c = sum((zl[i][a] - means[a]) * (zl[i][b] - means[b]) for i in range(n)) / (n - 1)
                cov_loop += c * c
    cov_loop /= d
    assert abs(float(variance_term(z)) - var_loop) < 1e-5
    assert abs(float(covariance_term(z)) - cov_loop) < 1e-5
    # hinge: a batch with std >= γ everywhere costs nothing; decorrelated costs nothing
    wide = torch.randn(4000, 3, generator=g) * 3
    assert float(variance_term(wide)) == 0.0
    factorial = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert float(covariance_term(factorial)) == 0.0
    with pytest.raises(ValueError, match="n >= 2"):
        variance_term(torch.zeros(1, 3))


def test_ae_reconstructs_pooled_representation_x() -> None:
    torch.manual_seed(0)
    bb = build_backbone(SMALL)
    ae = AEVICReg.from_config(bb, {"vc_target": "z", "decoder_hidden": [16]})
    views = overfit_views(4)
    b = next(_Batches(views, 4)(0, 0))
    terms = ae(b)
    assert set(terms) == {"loss", "mse", "var", "cov"}
    x = torch.cat([bb.represent(*b.view("a")), bb.represent(*b.view("b"))])
    z = ae.decoder(bb.head(x))
    torch.testing.assert_close(terms["mse"], torch.nn.functional.mse_loss(z, x))
    torch.testing.assert_close(
        terms["loss"], 25 * terms["mse"] + 25 * variance_term(z) + covariance_term(z)
    )
    terms["loss"].backward()
    assert bb.track_mlp[0].weight.grad is not None  # the backbone trains on reconstruction
    with pytest.raises(ValueError, match="vc_target"):
        AEVICReg(bb, vc_target="w")


def test_ae_vicreg_overfits_64_jets(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = AEVICReg(build_backbone(SMALL), decoder_hidden=(16,))
    state = fit(
        model, [{"params": list(model.parameters())}], lambda m, b: m(b),
        _Batches(overfit_views(), 16), 2, EngineConfig(epochs=40, lr=3e-3, checkpoint_every=10_000),
        torch.device("cpu"), tmp_path / "ck.pt", tmp_path / "h.csv",
    )
    # With vc_target z (the paper's "terms depending on the autoencoder output") the VICReg
    # terms have a floor: 32 output dimensions decoded from an 8-d bottleneck cannot all be
    # decorrelated with unit spread. Hence one factor per term rather than on the sum.
    h0, h1 = state.history[0], state.history[-1]
    assert h1["mse"] < h0["mse"] / 8, f"reconstruction fell only {h0['mse']:.3f} -> {h1['mse']:.3f}"
    assert h1["var"] < h0["var"] / 2, f"z spread did not grow: {h0['var']:.3f} -> {h1['var']:.3f}"
    assert h1["loss"] < h0["loss"] / 2, f"loss fell only {h0['loss']:.3f} -> {h1['loss']:.3f}"


# ----------------------------------------------------------------------------- anomaly


def _gaussians(seed: int = 0, d: int = 8):
    """Two SM classes around directions e0 / e1, and a cluster shifted towards e2 by s."""
    rng = np.random.default_rng(seed)
    centres = np.eye(d)[:2] * 3.0

    def sm(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        return centres[y] + rng.normal(0, 0.5, (n, d)), y

    def shifted(n: int, s: float) -> np.ndarray:
        y = rng.integers(0, 2, n)
        return centres[y] + s * np.eye(d)[2] + rng.normal(0, 0.5, (n, d))

    return sm, shifted


def test_reference_scores_rank_a_shifted_cluster_as_anomalous() -> None:
    sm, shifted = _gaussians()
    ref, ref_y = sm(600)
    normal, _ = sm(300)
    near, far = shifted(300, 1.0), shifted(300, 3.0)
    aucs = evaluate_scores(ref, ref_y, normal, {"near": near, "far": far})
    assert set(aucs) == set(SCORES)
    for name, v in aucs.items():
        assert v["far"] > 0.9, (name, v)
        assert v["far"] > v["near"] > 0.55, (name, v)
    # the SM test set itself is not anomalous
    s = knn_score(ref, normal)
    assert 0.4 < anomaly_auc(s[:150], s[150:]) < 0.6
    with pytest.raises(ValueError, match="labels"):
        SCORES["mahalanobis"](ref, None, normal)


def test_cosine_knn_and_mahalanobis_formulas() -> None:
    rng = np.random.default_rng(1)
    ref, test = rng.normal(size=(40, 4)), rng.normal(size=(3, 4))
    r = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    t = test / np.linalg.norm(test, axis=1, keepdims=True)
    cos = np.sort(t @ r.T, axis=1)[:, ::-1][:, :5]
    want = -0.05 * np.log(np.exp(cos / 0.05).mean(1))
    np.testing.assert_allclose(cosine_knn_score(ref, test, k=5, tau=0.05), want, rtol=1e-9)
    y = np.arange(40) % 2
    mu = np.stack([ref[y == c].mean(0) for c in (0, 1)])
    cov = np.cov(ref - mu[y], rowvar=False)
    d = test[:, None] - mu[None]
    want = np.einsum("nci,ij,ncj->nc", d, np.linalg.inv(cov), d).min(1)
    np.testing.assert_allclose(mahalanobis_score(ref, y, test, normalise=False), want, rtol=1e-8)


def test_cosine_autoencoder_flags_off_manifold_jets() -> None:
    rng = np.random.default_rng(2)
    basis = np.linalg.qr(rng.normal(size=(32, 4)))[0].T  # SM lives on a 4-d subspace
    sm = rng.normal(size=(1500, 4)) @ basis * 2 + 0.05 * rng.normal(size=(1500, 32))
    test_sm = rng.normal(size=(300, 4)) @ basis * 2 + 0.05 * rng.normal(size=(300, 32))
    off = test_sm + rng.normal(size=(300, 32)) * 1.0  # leaves the subspace
    cfg = CosineAEConfig(hidden=(32, 16), latent=4, epochs=20, batch_size=128, lr=3e-3, seed=0)
    ae, hist = fit_cosine_ae(sm, cfg)
    assert hist[-1] < hist[0] / 3
    s_sm, s_off = cosine_ae_score(ae, test_sm), cosine_ae_score(ae, off)
    assert s_off.mean() > s_sm.mean()
    assert anomaly_auc(s_sm, s_off) > 0.9
    again, _ = fit_cosine_ae(sm, cfg)  # deterministic given the seed
    np.testing.assert_array_equal(cosine_ae_score(again, off), s_off)
