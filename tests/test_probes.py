"""Frozen-embedding probes: k-NN and linear classifiers, metrics, embedding saved backbones."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from jetforge.evaluation.probes import classification_metrics, embed_rows, knn_probe, linear_probe
from jetforge.models.registry import build_backbone, save_backbone


def _clusters(n: int, seed: int, sep: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian classes in 8-d."""
    g = np.random.default_rng(seed)
    centres = np.eye(3, 8) * sep
    y = g.integers(0, 3, n)
    return centres[y] + g.normal(0, 1.0, (n, 8)), y


def test_probes_on_separable_embeddings() -> None:
    zt, yt = _clusters(300, 0)
    zs, ys = _clusters(200, 1)
    for res in (knn_probe(zt, yt, zs, ys, k=30), linear_probe(zt, yt, zs, ys)):
        assert res["accuracy"] > 0.99
        assert res["auc"] > 0.999 and all(res[f"auc_{c}"] > 0.999 for c in range(3))
    names = knn_probe(zt, yt, zs, ys, k=5, class_names=["q", "g", "t"])
    assert {"auc_q", "auc_g", "auc_t"} <= set(names)
    # binary task: one AUC, that of class 1
    b = knn_probe(zt[yt < 2], yt[yt < 2], zs[ys < 2], ys[ys < 2], k=10)
    assert set(b) == {"accuracy", "accuracy_err", "auc", "eff_0", "eff_1"} and b["auc"] > 0.999
    assert b["eff_0"] == b["eff_1"] == 1.0  # separable: every jet of each class found
    # labels carry no information -> chance level
    g = np.random.default_rng(2)
    r = linear_probe(zt, g.integers(0, 3, 300), zs, g.integers(0, 3, 200))
    assert 0.2 < r["accuracy"] < 0.5 and 0.4 < r["auc"] < 0.6


def test_cosine_knn_ignores_norms() -> None:
    g = np.random.default_rng(3)
    y = g.integers(0, 2, 200)
    direction = np.where(y[:, None] == 1, [1.0, 0.0], [0.0, 1.0]) + g.normal(0, 0.1, (200, 2))
    z = direction * g.uniform(0.1, 10.0, (200, 1))  # the class is the direction, not the norm
    cos = knn_probe(z[:100], y[:100], z[100:], y[100:], k=15, metric="cosine")
    euc = knn_probe(z[:100], y[:100], z[100:], y[100:], k=15, metric="euclidean")
    assert cos["accuracy"] == 1.0 and euc["accuracy"] < cos["accuracy"]
    with pytest.raises(ValueError, match="k=500"):
        knn_probe(z[:100], y[:100], z[100:], y[100:], k=500)
    with pytest.raises(ValueError, match="metric"):
        knn_probe(z[:100], y[:100], z[100:], y[100:], metric="manhattan")


def test_classification_metrics_by_hand() -> None:
    s = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    y = np.array([0, 1, 2, 1])
    m = classification_metrics(s, y, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["accuracy_err"] == pytest.approx(np.sqrt(0.75 * 0.25 / 4))  # binomial, N = 4
    # class a: positive score 0.8 vs negatives 0.2, 0.3, 0.5 -> AUC 1
    # class b: positives 0.5, 0.4 vs negatives 0.1, 0.3 -> AUC 1
    # class c: positive 0.4 vs 0.1, 0.3, 0.1 -> AUC 1
    assert m["auc_a"] == m["auc_b"] == m["auc_c"] == m["auc"] == 1.0
    binary = classification_metrics(np.array([0.9, 0.2, 0.6, 0.4]), np.array([1, 0, 0, 1]))
    assert binary["accuracy"] == 0.5 and binary["auc"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="labels"):
        classification_metrics(s, np.array([0, 1, 3, 1]))


def test_embed_rows_matches_backbone(tmp_path: Path) -> None:
    g = np.random.default_rng(0)
    N, P, F = 30, 9, 4
    x = g.normal(size=(N, P, F)).astype(np.float32)
    m = np.arange(P)[None] < g.integers(2, P + 1, (N, 1))
    x[~m] = 0
    h5 = tmp_path / "d.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("particles", data=x)
        f.create_dataset("mask", data=m)
        f.create_group("jets").create_dataset("label", data=np.zeros(N, np.int8))
        for a, v in (("feature_names", ["a", "b", "c", "d"]), ("class_names", ["x"]),
                     ("process_names", ["p"]), ("variant_names", ["nominal"])):  # fmt: skip
            f.attrs[a] = v
    cfg = {"name": "vit", "in_dim": F, "d_model": 8, "n_blocks": 1, "n_heads": 2}
    torch.manual_seed(0)
    bb = build_backbone(cfg)
    save_backbone(tmp_path / "model.pt", bb, cfg, feature_names=["a", "b", "c", "d"])
    rows = np.array([7, 3, 3, 29, 0])  # any order, duplicates allowed
    z = embed_rows(tmp_path / "model.pt", str(h5), rows, chunk=2)
    with torch.no_grad():
        want = bb.eval()(torch.from_numpy(x[rows]), torch.from_numpy(m[rows])).numpy()
    assert z.shape == (5, 8) and z.dtype == np.float32
    np.testing.assert_allclose(z, want, atol=1e-5)
    np.testing.assert_allclose(embed_rows(bb, str(h5), rows), want, atol=1e-5)
    save_backbone(tmp_path / "other.pt", bb, cfg, feature_names=["e", "f", "g", "h"])
    with pytest.raises(ValueError, match="trained on features"):
        embed_rows(tmp_path / "other.pt", str(h5), rows)
