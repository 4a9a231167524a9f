"""Evaluation metrics (ROC, rejection, AUC, Wasserstein robustness)."""

from jetforge.evaluation.metrics import auc, rejection_at, roc, wasserstein

__all__ = ["auc", "rejection_at", "roc", "wasserstein"]
