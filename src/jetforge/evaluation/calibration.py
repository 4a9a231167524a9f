"""Reliability of a tagger's class probabilities (JP-JEPA, Letellier et al.,
arXiv:2606.14813, §2.4 and §4.4 eqs. (12)-(13); Fig. 3(d)).

Why three numbers: the log loss (eq. 12) scores the whole predicted distribution; the
expected calibration error (ECE, Guo et al. 2017, eq. 13) isolates whether the top-class
confidence matches how often that class is right; the Shannon entropy of each prediction
shows how decisive the tagger is (the paper's Fig. 3(d) histogram), which neither of the
other two does. Binary taggers (one sigmoid score) are read as the two-class
distribution ``(1 - s, s)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: probabilities are clipped here before a log (a float32 softmax can round to 0)
EPS = 1e-7


def class_probabilities(scores: npt.ArrayLike) -> np.ndarray:
    """``[N, C]`` probabilities from ``[N, C]`` softmax outputs or ``[N]`` sigmoid ones."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1:
        s = np.stack([1.0 - s, s], axis=1)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"scores must be [N] or [N, C >= 2], got shape {s.shape}")
    if not np.isfinite(s).all() or (s < -1e-6).any():
        raise ValueError("scores must be finite probabilities")
    return s


def _labels(labels: npt.ArrayLike, p: np.ndarray) -> np.ndarray:
    y = np.asarray(labels).ravel().astype(np.int64)
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"{y.shape[0]} labels for {p.shape[0]} predictions")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must be in [0, {p.shape[1]}), got {np.unique(y).tolist()}")
    return y


def log_loss(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Mean cross-entropy ``-1/N sum_i log p_i[y_i]`` (eq. 12), natural log."""
    p = class_probabilities(scores)
    y = _labels(labels, p)
    return float(-np.log(np.clip(p[np.arange(y.size), y], EPS, 1.0)).mean())


def expected_calibration_error(
    scores: npt.ArrayLike, labels: npt.ArrayLike, bins: int = 15
) -> float:
    """ECE (eq. 13): bins ``I_k = ((k-1)/K, k/K]`` of the top-class confidence, each
    weighted by its share of jets, ``|acc(B_k) - conf(B_k)|`` summed."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    p = class_probabilities(scores)
    y = _labels(labels, p)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # bin k holds (k-1)/K < conf <= k/K: ceil(conf K) - 1, a confidence of 0 in the first
    k = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = k == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def prediction_entropy(scores: npt.ArrayLike) -> np.ndarray:
    """Shannon entropy ``-sum_j p_j ln p_j`` of each prediction (nats; Fig. 3(d))."""
    p = class_probabilities(scores)
    return -(p * np.log(np.clip(p, EPS, 1.0))).sum(axis=1)


def calibration_metrics(
    scores: npt.ArrayLike, labels: npt.ArrayLike, bins: int = 15
) -> dict[str, float]:
    """``ece``, ``log_loss`` and ``mean_entropy`` of one prediction file's scores."""
    return {
        "ece": expected_calibration_error(scores, labels, bins),
        "log_loss": log_loss(scores, labels),
        "mean_entropy": float(prediction_entropy(scores).mean()),
    }
