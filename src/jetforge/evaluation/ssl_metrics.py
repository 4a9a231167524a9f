"""Label-free diagnostics of an embedding matrix (JP-JEPA App. C; Fig. 2(d), Table 3).

Why: pre-training cannot be judged by its loss alone (a collapsed encoder has a low JEPA
loss); these spectra detect dimensional collapse without labels.

* Effective rank (Roy & Vetterli 2007; App. C.2, eqs. (22)-(24)): exp of the Shannon entropy
  of the normalised singular values of Z. In [1, min(N, D)]; higher = more dimensions used.
* AUC_emb (App. C.1, eqs. (18)-(21)): mean over k of the cumulative explained variance of the
  first k principal components, in [(D+1)/(2D), 1] (the paper's "between 0.5 and 1"):
  1 for a single direction (collapse), (D+1)/(2D) for a perfectly isotropic spectrum.

AUC_emb centres Z first (App. C.1: "Assuming Z is centered"); the effective rank does not
(App. C.2: the singular values of Z), except in the collapse check; float64.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def _checked(z: npt.ArrayLike) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"need an [N >= 2, D] embedding matrix, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{int((~np.isfinite(z)).sum())} non-finite embedding entries")
    return z


def _centred(z: npt.ArrayLike) -> np.ndarray:
    z = _checked(z)
    return z - z.mean(axis=0, keepdims=True)


def effective_rank(z: npt.ArrayLike, eps: float = 1e-12) -> float:
    """exp(H(p)), p_i = sigma_i / sum sigma of the singular values of Z itself, eq. (24):
    App. C.2 takes the SVD of the embedding matrix as it is, *not* centred (centring moves
    a randomly initialised ParT-Mini [CLS] from ~41 to ~56). The probe tables quote this."""
    return _spectral_rank(_checked(z), eps)


def effective_rank_centred(z: npt.ArrayLike, eps: float = 1e-12) -> float:
    """:func:`effective_rank` of the centred Z: the spread around the mean only, which a
    common offset cannot dominate (what the collapse check, :func:`embedding_rank`, uses)."""
    return _spectral_rank(_centred(z), eps)


def _spectral_rank(z: np.ndarray, eps: float) -> float:
    s = np.linalg.svd(z, compute_uv=False)
    if s.sum() <= eps:
        return 1.0  # all embeddings identical: one (degenerate) direction
    p = s / s.sum()
    p = p[p > eps]
    return float(np.exp(-(p * np.log(p)).sum()))


#: spread around the mean (Frobenius norm of the centred matrix) below this fraction of
#: the embeddings' own norm counts as a single point in :func:`embedding_rank`
POINT_RTOL = 1e-4


def embedding_rank(z: npt.ArrayLike) -> float:
    """:func:`effective_rank_centred` for collapse detection (``val_effective_rank`` of the
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
    return effective_rank_centred(z)


def auc_emb(z: npt.ArrayLike) -> float:
    """AUC of the cumulative explained-variance curve, eq. (21) (D = embedding dim)."""
    zc = _centred(z)
    lam = np.linalg.svd(zc, compute_uv=False) ** 2 / (zc.shape[0] - 1)
    d = zc.shape[1]
    lam = np.concatenate([lam, np.zeros(d - lam.size)])  # N < D: the rest have zero variance
    if lam.sum() <= 0:
        return 1.0
    return float(np.cumsum(lam / lam.sum()).mean())


def pretraining_percent_error(z: npt.ArrayLike, views: int = 1) -> float:
    """PPE in percent (App. C.3, eq. (25); Yerxa et al.'s MMCR diagnostic):
    ``100 (sqrt(N min(N, d)) - ||C||_*) / sqrt(N min(N, d))``, C the centroids of the
    unit-normalised embeddings of ``views`` consecutive rows per jet (JP-JEPA's [CLS] has
    one view: C is the normalised embedding matrix). 0 = every direction used equally."""
    z = _checked(z)
    if views < 1 or z.shape[0] % views:
        raise ValueError(f"{z.shape[0]} rows are not a whole number of {views}-view groups")
    u = z / np.clip(np.linalg.norm(z, axis=1, keepdims=True), 1e-12, None)
    c = u.reshape(-1, views, z.shape[1]).mean(axis=1)
    bound = math.sqrt(c.shape[0] * min(c.shape))
    return float(100.0 * (bound - np.linalg.svd(c, compute_uv=False).sum()) / bound)
