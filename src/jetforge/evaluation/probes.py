"""Probes of frozen jet embeddings: k-NN and linear classifiers (jBOT §4.4, Tables 2-3).

"Following standard evaluation protocols [DINO, iBOT], we fit a k-nearest-neighbor
classifier with k = 30 and a linear classifier on the frozen features" (jBOT §4.4). A
probe says how much class information an embedding holds *without* training the
encoder, so it compares pre-training methods (or a pre-trained vs a random encoder)
independently of fine-tuning choices. Used by every method in jetforge.

* :func:`knn_probe`: majority vote of the k nearest training embeddings; class
  probabilities are the vote fractions. ``metric="cosine"`` (default) l2-normalises the
  embeddings first (neighbours by cosine similarity, as DINO's k-NN and jBOT's anomaly
  scores); ``"euclidean"`` uses raw vectors (the authors' probe code:
  ``KNeighborsClassifier(n_neighbors=30)`` on the raw [CLS]).
* :func:`linear_probe`: multinomial logistic regression on standardised embeddings
  (the authors' code: ``StandardScaler`` + ``LogisticRegression(max_iter=1000)``).
* :func:`embed_rows`: embeddings of chosen rows of a format-4 file by a saved backbone,
  fed the inputs it declares (``backbone_inputs``: particles, or tracks + calorimeter
  cells for the Rieck et al. ``cells_tracks`` backbone on hadronization-fork files).

Metrics (:func:`classification_metrics`): accuracy of the arg-max class (with its binomial
standard error sqrt(a (1 - a) / N), ``accuracy_err``) and the
one-vs-rest ROC AUC per class (jBOT Table 2), their macro mean ``auc``; for two classes
``auc`` is the usual AUC of class 1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import h5py
import numpy as np
import numpy.typing as npt
import torch

from jetforge.evaluation.metrics import classification_metrics
from jetforge.models.registry import backbone_inputs, eval_chunk, load_backbone
from jetforge.training.data import check_model_features, iter_rows


def _check(z: npt.ArrayLike, y: npt.ArrayLike, what: str) -> tuple[np.ndarray, np.ndarray]:
    z, y = np.asarray(z, dtype=np.float64), np.asarray(y).ravel().astype(np.int64)
    if z.ndim != 2 or z.shape[0] != y.shape[0]:
        raise ValueError(f"{what}: need z [N, D] and y [N], got {z.shape} and {y.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{what}: {int((~np.isfinite(z)).sum())} non-finite embedding entries")
    return z, y


def knn_probe(
    z_train: npt.ArrayLike,
    y_train: npt.ArrayLike,
    z_test: npt.ArrayLike,
    y_test: npt.ArrayLike,
    k: int = 30,  # jBOT §4.4
    metric: str = "cosine",
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """k-NN probe (uniform votes); returns :func:`classification_metrics` of the test set."""
    from sklearn.neighbors import KNeighborsClassifier  # ~2 s to import: only where probed

    zt, yt = _check(z_train, y_train, "train")
    zs, ys = _check(z_test, y_test, "test")
    if not 1 <= k <= zt.shape[0]:
        raise ValueError(f"k={k} neighbours but {zt.shape[0]} training embeddings")
    if metric == "cosine":
        zt = zt / np.maximum(np.linalg.norm(zt, axis=1, keepdims=True), 1e-12)
        zs = zs / np.maximum(np.linalg.norm(zs, axis=1, keepdims=True), 1e-12)
    elif metric != "euclidean":
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    n_classes = int(max(yt.max(), ys.max())) + 1
    knn = KNeighborsClassifier(n_neighbors=k).fit(zt, yt)
    proba = np.zeros((zs.shape[0], n_classes))
    proba[:, knn.classes_] = knn.predict_proba(zs)
    return classification_metrics(proba, ys, class_names)


def linear_probe(
    z_train: npt.ArrayLike,
    y_train: npt.ArrayLike,
    z_test: npt.ArrayLike,
    y_test: npt.ArrayLike,
    max_iter: int = 1000,  # authors' code
    C: float = 1.0,
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Logistic regression on standardised frozen embeddings; test-set metrics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    zt, yt = _check(z_train, y_train, "train")
    zs, ys = _check(z_test, y_test, "test")
    if np.unique(yt).size < 2:
        raise ValueError(
            f"linear probe needs >= 2 classes in training, got {np.unique(yt).tolist()}"
        )
    scaler = StandardScaler().fit(zt)
    clf = LogisticRegression(max_iter=int(max_iter), C=float(C)).fit(scaler.transform(zt), yt)
    n_classes = int(max(yt.max(), ys.max())) + 1
    proba = np.zeros((zs.shape[0], n_classes))
    proba[:, clf.classes_] = clf.predict_proba(scaler.transform(zs))
    return classification_metrics(proba, ys, class_names)


def embed_rows(
    model_pt: str | os.PathLike[str] | torch.nn.Module,
    h5_path: str,
    rows: npt.ArrayLike,
    device: str = "cpu",
    chunk: int = 1024,
    represent: bool = False,
) -> np.ndarray:
    """Embeddings ``z`` float32 ``[len(rows), D]`` of ``rows`` (any order, row i of z is
    ``rows[i]``) by a saved backbone (``model.pt``, :func:`load_backbone`) or a module.

    ``represent``: the backbone's pooled pre-head features (e.g. x of Rieck et al. §5.5)
    instead of its output; see :func:`embed_views`.
    """
    view = "pooled" if represent else "output"
    return embed_views(model_pt, h5_path, rows, (view,), device, chunk)[view]


@torch.no_grad()
def embed_views(
    model_pt: str | os.PathLike[str] | torch.nn.Module,
    h5_path: str,
    rows: npt.ArrayLike,
    views: Sequence[str] = ("output",),
    device: str = "cpu",
    chunk: int = 1024,
) -> dict[str, np.ndarray]:
    """Per view, embeddings float32 ``[len(rows), D]`` of ``rows`` in one pass of the net.

    Views: ``output`` (the backbone's jet representation, what fine-tuning reads) and
    ``pooled`` (the mean of its particle/node tokens, for backbones with ``views(...)``,
    which returns both from one forward pass). Float32, eval mode, in chunks of ``chunk``
    jets; the backbone gets the datasets it declares (``backbone_inputs``). A ``model.pt``
    whose recorded ``feature_names`` (or ``cells_feature_names``) differ from the file's is
    refused.
    """
    unknown = set(views) - {"output", "pooled"}
    if unknown:
        raise ValueError(f"unknown embedding views {sorted(unknown)}; known: output, pooled")
    if isinstance(model_pt, torch.nn.Module):
        backbone = model_pt.to(device)
    else:
        backbone, payload = load_backbone(model_pt, map_location=device)
        check_model_features(payload, h5_path, model_pt)
    if set(views) == {"output"}:
        def fn(*inputs: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"output": backbone(*inputs)}
    elif hasattr(backbone, "views"):
        fn = backbone.views
    else:
        raise TypeError(f"{type(backbone).__name__} has no pooled view (no views(...))")
    was_training = backbone.training
    backbone.eval()
    rows = np.asarray(rows, dtype=np.int64)
    uniq, inv = np.unique(rows, return_inverse=True)
    parts: dict[str, list[np.ndarray]] = {v: [] for v in views}
    with h5py.File(h5_path, "r") as f:
        batches = iter_rows(f, uniq, eval_chunk(backbone, chunk), backbone_inputs(backbone))
        for _, *inputs in batches:
            out = fn(*(t.to(device) for t in inputs))
            for v in views:
                parts[v].append(out[v].float().cpu().numpy())
    backbone.train(was_training)
    dims = {"output": "embed_dim", "pooled": "width"}
    return {
        v: np.concatenate(p)[inv] if p
        else np.zeros((0, int(getattr(backbone, dims[v]))), np.float32)
        for v, p in parts.items()
    }
