"""Tagging metrics of RS3L Tables II-V: ROC, background rejection at fixed signal
efficiency, AUC, and 1-d Wasserstein distances between score distributions (§III B 1).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.stats import wasserstein_distance
from sklearn.metrics import roc_auc_score, roc_curve

ArrayLike = npt.ArrayLike


def _check_binary(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} vs {y.shape[0]}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"labels must be 0/1, found {np.unique(y[bad])[:5].tolist()}")
    n_sig, n_bkg = int((y == 1).sum()), int((y == 0).sum())
    if n_sig == 0 or n_bkg == 0:
        raise ValueError(f"need both classes, got {n_sig} signal and {n_bkg} background jets")
    if not np.isfinite(s).all():
        raise ValueError(f"{int((~np.isfinite(s)).sum())} non-finite scores")
    return s, y.astype(np.int8)


def roc(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` with every distinct score as a threshold (label 1 = signal)."""
    s, y = _check_binary(scores, labels)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr, thr


def auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve."""
    s, y = _check_binary(scores, labels)
    return float(roc_auc_score(y, s))


def rejection_at(scores: ArrayLike, labels: ArrayLike, eff: float) -> float:
    """Background rejection 1/FPR at signal efficiency ``eff`` (RS3L Tables II, IV).

    The ROC is the staircase of all thresholds; the FPR at ``eff`` is linearly
    interpolated between the two ROC points bracketing ``eff`` (taking the lowest FPR
    when a point reaches ``eff`` exactly). A finite background sample cannot resolve an
    FPR below one jet: with N_bkg background jets the FPR is floored at 1/N_bkg, so the
    returned rejection is at most N_bkg (a lower bound on the true rejection when no
    background jet passes). This keeps tables finite and honest about the sample size.
    """
    if not 0.0 < eff <= 1.0:
        raise ValueError(f"signal efficiency must be in (0, 1], got {eff}")
    s, y = _check_binary(scores, labels)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    i = int(np.searchsorted(tpr, eff, side="left"))  # first point with tpr >= eff
    if tpr[i] == eff or i == 0:
        f = float(fpr[i])
    else:
        t0, t1, f0, f1 = tpr[i - 1], tpr[i], fpr[i - 1], fpr[i]
        f = float(f0 + (f1 - f0) * (eff - t0) / (t1 - t0))
    n_bkg = int((y == 0).sum())
    return 1.0 / max(f, 1.0 / n_bkg)


def wasserstein(a: ArrayLike, b: ArrayLike) -> float:
    """1-d Wasserstein (earth mover's) distance between two samples (RS3L Table III)."""
    u, v = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if u.size == 0 or v.size == 0:
        raise ValueError(f"wasserstein needs non-empty samples, got sizes {u.size} and {v.size}")
    return float(wasserstein_distance(u, v))
