"""Label-free diagnostics of an embedding matrix (JP-JEPA App. C; Fig. 2(d), Table 3).

Why: pre-training cannot be judged by its loss alone (a collapsed encoder has a low JEPA
loss); these spectra detect dimensional collapse without labels.

* Effective rank (Roy & Vetterli 2007; App. C.2, eqs. (22)-(24)): exp of the Shannon entropy
  of the normalised singular values of Z. In [1, min(N, D)]; higher = more dimensions used.
* AUC_emb (App. C.1, eqs. (18)-(21)): mean over k of the cumulative explained variance of the
  first k principal components, in [(D+1)/(2D), 1] (the paper's "between 0.5 and 1"):
  1 for a single direction (collapse), (D+1)/(2D) for a perfectly isotropic spectrum.

Both centre Z first (App. C.1: "Assuming Z is centered"); float64.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def _centred(z: npt.ArrayLike) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"need an [N >= 2, D] embedding matrix, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{int((~np.isfinite(z)).sum())} non-finite embedding entries")
    return z - z.mean(axis=0, keepdims=True)


def effective_rank(z: npt.ArrayLike, eps: float = 1e-12) -> float:
    """exp(H(p)), p_i = sigma_i / sum sigma (singular values of centred Z), eq. (24)."""
    s = np.linalg.svd(_centred(z), compute_uv=False)
    if s.sum() <= eps:
        return 1.0  # all embeddings identical: one (degenerate) direction
    p = s / s.sum()
    p = p[p > eps]
    return float(np.exp(-(p * np.log(p)).sum()))


#: spread around the mean (Frobenius norm of the centred matrix) below this fraction of
#: the embeddings' own norm counts as a single point in :func:`embedding_rank`
POINT_RTOL = 1e-4


def embedding_rank(z: npt.ArrayLike) -> float:
    """:func:`effective_rank` for collapse detection (``val_effective_rank`` of the
    pre-training validation, read by the engine's ``collapse_rank``).

    Why not the plain rank: embeddings collapsed onto one constant vector differ only by
    float rounding, and the entropy of that noise's spectrum is high. A spread below
    :data:`POINT_RTOL` of the embeddings' norm (a working embedding spreads by 1e-2 or
    more) is therefore one point, rank 1; NaN if any entry is not finite.
    """
    z = np.asarray(z, dtype=np.float64)
    if not np.isfinite(z).all():
        return float("nan")
    spread = np.linalg.norm(z - z.mean(axis=0, keepdims=True))
    if spread <= POINT_RTOL * np.linalg.norm(z):
        return 1.0
    return effective_rank(z)


def auc_emb(z: npt.ArrayLike) -> float:
    """AUC of the cumulative explained-variance curve, eq. (21) (D = embedding dim)."""
    zc = _centred(z)
    lam = np.linalg.svd(zc, compute_uv=False) ** 2 / (zc.shape[0] - 1)
    d = zc.shape[1]
    lam = np.concatenate([lam, np.zeros(d - lam.size)])  # N < D: the rest have zero variance
    if lam.sum() <= 0:
        return 1.0
    return float(np.cumsum(lam / lam.sum()).mean())
