"""Evaluation metrics (ROC, rejection, AUC, Wasserstein robustness), probes and anomaly scores.

The metrics are imported on first use (PEP 562): the config check reads
:data:`ANOMALY_SCORES` in the Snakemake driver, whose environment has neither scipy nor
scikit-learn nor torch.
"""

from typing import Any

#: the reference-based anomaly scores of jBOT (Tsoi & Rankin, arXiv:2601.11719 §4.5),
#: implemented under these names in :data:`jetforge.evaluation.anomaly.SCORES`
ANOMALY_SCORES = ("knn", "cosine_knn", "cosine_mean", "mahalanobis", "gmm")

__all__ = ["ANOMALY_SCORES", "auc", "rejection_at", "roc", "wasserstein"]


def __getattr__(name: str) -> Any:
    if name in ("auc", "rejection_at", "roc", "wasserstein"):
        from jetforge.evaluation import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module 'jetforge.evaluation' has no attribute {name!r}")
