"""Anomaly scores on frozen jet representations, one module for every paper.

* **Cosine-loss autoencoder** (Rieck et al., §5.5, Fig. 9): an MLP autoencoder
  on the frozen backbone representation x, encoder 128 -> 64 -> 32 -> 24 -> 20 (the
  "5 layers with 128, 64, 32 and 24 nodes ... a central layer of 20 nodes") and a
  mirrored decoder, trained on Standard-Model jets only with ``L = 1 - cos(x, z)``
  ("motivated by improved sensitivity compared to the mean-squared error"); the anomaly
  score is ``log L`` ("the logarithm of the reconstruction loss"). The input is
  standardised with the SM training set's per-dimension mean and standard deviation
  (our choice; the paper is silent): the pooled, LayerNorm-ed x shares a large common
  direction across jets, which would make a cosine reconstruction almost trivial.
* **Embedding-distance scores** of jBOT (Tsoi & Rankin, §4.5, eqs. (5)-(8)), with the
  reference set R = SM embeddings, ℓ2-normalised first (jBOT: "z(x) ... is
  ℓ2-normalized"; ``normalise=False`` keeps raw vectors): ``knn`` (mean Euclidean
  distance to the k = 30 nearest references), ``cosine_knn`` (eq. (6),
  ``-τ log mean_k exp(cos/τ)``, τ = 0.05), ``mahalanobis`` (min over classes of the
  distance to class-conditional Gaussians with a tied covariance), ``gmm`` (negative
  log-likelihood under a K = 4 Gaussian mixture), plus ``cosine_mean``
  (``1 - max_c cos(z, μ_c)``, cosine to the nearest class mean).

Every score is "higher = more anomalous", so :func:`anomaly_auc` of SM (0) versus
anomalous (1) jets is the AUC of Fig. 9 / jBOT Table 4.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.evaluation.anomaly_settings import CosineAEConfig
from jetforge.evaluation.metrics import auc

# ----------------------------------------------------------------------------- cosine AE


class CosineAE(nn.Module):
    """MLP autoencoder of §5.5 with the input standardisation stored as buffers."""

    def __init__(
        self, in_dim: int, hidden: Sequence[int] = (128, 64, 32, 24), latent: int = 20
    ) -> None:
        super().__init__()
        dims = [int(in_dim), *map(int, hidden), int(latent)]
        enc: list[nn.Module] = []
        dec: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            enc += [nn.Linear(a, b), nn.ReLU()]
        rev = dims[::-1]
        for i, (a, b) in enumerate(zip(rev[:-1], rev[1:], strict=True)):
            dec.append(nn.Linear(a, b))
            if i < len(rev) - 2:
                dec.append(nn.ReLU())
        self.encoder, self.decoder = nn.Sequential(*enc[:-1]), nn.Sequential(*dec)
        self.register_buffer("shift", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))

    def standardise(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.scale

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(input after standardisation, reconstruction)``."""
        u = self.standardise(x)
        return u, self.decoder(self.encoder(u))


def cosine_loss(u: Tensor, z: Tensor) -> Tensor:
    """Per-jet reconstruction loss ``1 - cos(u, z)`` (§5.5), float32."""
    return 1.0 - F.cosine_similarity(u.float(), z.float(), dim=-1, eps=1e-8)


def fit_cosine_ae(
    features: np.ndarray, cfg: CosineAEConfig | None = None, device: str = "cpu"
) -> tuple[CosineAE, list[float]]:
    """Train a :class:`CosineAE` on SM features ``[n, d]``; returns it (eval mode) and the
    mean loss per epoch.

    A plain in-memory loop rather than :func:`jetforge.training.engine.fit`: the inputs
    are a few MB of frozen embeddings and one run takes seconds, so there is nothing to
    resume; the result is still a pure function of the features and ``cfg.seed``.
    """
    cfg = cfg or CosineAEConfig()
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"need [n >= 2, d] SM features, got shape {tuple(x.shape)}")
    gen = torch.Generator().manual_seed(int(cfg.seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.seed))
        ae = CosineAE(x.shape[1], cfg.hidden, cfg.latent)
    if cfg.standardise:
        std = x.std(0)
        ae.shift.copy_(x.mean(0))
        ae.scale.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))
    ae.to(device)
    opt = torch.optim.Adam(ae.parameters(), lr=cfg.lr)
    history = []
    for _ in range(int(cfg.epochs)):
        perm = torch.randperm(x.shape[0], generator=gen)
        total = 0.0
        for s in range(0, x.shape[0], int(cfg.batch_size)):
            xb = x[perm[s : s + int(cfg.batch_size)]].to(device)
            loss = cosine_loss(*ae(xb)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * xb.shape[0]
        history.append(total / x.shape[0])
    return ae.eval(), history


@torch.no_grad()
def cosine_ae_score(ae: CosineAE, features: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """``log(1 - cos(x, z))`` per jet (§5.5); higher = worse reconstruction = anomalous."""
    dev = next(ae.parameters()).device
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32, device=dev)
    return torch.log(cosine_loss(*ae(x)).clamp_min(eps)).cpu().numpy().astype(np.float64)


# ----------------------------------------------------------------------------- jBOT scores


def _prep(z: np.ndarray, normalise: bool) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"embeddings must be [n, d], got shape {z.shape}")
    if normalise:
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return z


def _neighbours(ref: np.ndarray, test: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors

    if not 1 <= k <= len(ref):
        raise ValueError(f"k={k} must be in [1, {len(ref)}] (size of the reference set)")
    return NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(test)


def knn_score(
    ref: np.ndarray, test: np.ndarray, k: int = 30, normalise: bool = True
) -> np.ndarray:
    """Mean Euclidean distance to the k nearest reference embeddings (jBOT eq. (5))."""
    dist, _ = _neighbours(_prep(ref, normalise), _prep(test, normalise), k)
    return dist.mean(1)


def cosine_knn_score(
    ref: np.ndarray, test: np.ndarray, k: int = 30, tau: float = 0.05
) -> np.ndarray:
    """``-τ log( mean over the k most similar references of exp(cos/τ) )`` (jBOT eq. (6)).

    Always on ℓ2-normalised vectors (it is a cosine); the nearest Euclidean neighbours of
    unit vectors are the most cosine-similar ones.
    """
    r, t = _prep(ref, True), _prep(test, True)
    _, idx = _neighbours(r, t, k)
    cos = np.einsum("nd,nkd->nk", t, r[idx])
    m = cos.max(1, keepdims=True)  # log-mean-exp, stable
    return -tau * (m[:, 0] / tau + np.log(np.exp((cos - m) / tau).mean(1)))


def _class_means(ref: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    if labels.shape[0] != ref.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {ref.shape[0]} reference embeddings")
    classes = np.unique(labels)
    return classes, np.stack([ref[labels == c].mean(0) for c in classes])


def cosine_mean_score(
    ref: np.ndarray, ref_labels: np.ndarray, test: np.ndarray
) -> np.ndarray:
    """``1 - max_c cos(z, μ_c)`` with μ_c the mean of class c's unit reference vectors."""
    r, t = _prep(ref, True), _prep(test, True)
    _, mu = _class_means(r, ref_labels)
    mu = mu / np.maximum(np.linalg.norm(mu, axis=1, keepdims=True), 1e-12)
    return 1.0 - (t @ mu.T).max(1)


def mahalanobis_score(
    ref: np.ndarray, ref_labels: np.ndarray, test: np.ndarray, normalise: bool = True
) -> np.ndarray:
    """``min_c (z - μ_c)^T Σ^-1 (z - μ_c)``, Σ the tied within-class covariance (jBOT eq. (7)).

    The pseudo-inverse keeps unit-normalised (hence rank-deficient) embeddings finite.
    """
    r, t = _prep(ref, normalise), _prep(test, normalise)
    labels = np.asarray(ref_labels)
    classes, mu = _class_means(r, labels)
    centred = r - mu[np.searchsorted(classes, labels)]
    prec = np.linalg.pinv(np.cov(centred, rowvar=False).reshape(r.shape[1], r.shape[1]))
    d = t[:, None, :] - mu[None]
    return np.einsum("nci,ij,ncj->nc", d, prec, d).min(1)


def gmm_score(
    ref: np.ndarray, test: np.ndarray, n_components: int = 4, seed: int = 0,
    normalise: bool = True,
) -> np.ndarray:
    """Negative log-likelihood under a Gaussian mixture fitted to the references (eq. (8))."""
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(n_components, covariance_type="full", reg_covar=1e-5, random_state=seed)
    gmm.fit(_prep(ref, normalise))
    return -gmm.score_samples(_prep(test, normalise))


#: name -> f(ref, ref_labels, test) for the label-free/label-using reference scores
SCORES: dict[str, Callable[[np.ndarray, np.ndarray | None, np.ndarray], np.ndarray]] = {
    "knn": lambda r, y, t: knn_score(r, t),
    "cosine_knn": lambda r, y, t: cosine_knn_score(r, t),
    "cosine_mean": lambda r, y, t: cosine_mean_score(r, _need(y), t),
    "mahalanobis": lambda r, y, t: mahalanobis_score(r, _need(y), t),
    "gmm": lambda r, y, t: gmm_score(r, t),
}


def _need(labels: np.ndarray | None) -> np.ndarray:
    if labels is None:
        raise ValueError("this score needs the class labels of the reference set")
    return labels


def anomaly_auc(scores_normal: np.ndarray, scores_anomalous: np.ndarray) -> float:
    """AUC of anomalous (1) versus normal (0) jets for a higher-is-anomalous score."""
    s = np.concatenate([np.ravel(scores_normal), np.ravel(scores_anomalous)])
    y = np.r_[np.zeros(np.size(scores_normal)), np.ones(np.size(scores_anomalous))]
    return auc(s, y)


def evaluate_scores(
    ref: np.ndarray,
    ref_labels: np.ndarray | None,
    normal: np.ndarray,
    anomalous: Mapping[str, np.ndarray],
    names: Sequence[str] = tuple(SCORES),
) -> dict[str, dict[str, float]]:
    """``{score: {signal: AUC}}`` for every reference score on held-out normal jets and
    each anomalous sample (the reference set must not overlap ``normal``)."""
    out: dict[str, dict[str, float]] = {}
    for name in names:
        if name not in SCORES:
            raise KeyError(f"unknown anomaly score {name!r}; have {sorted(SCORES)}")
        s_norm = SCORES[name](ref, ref_labels, normal)
        out[name] = {
            sig: anomaly_auc(s_norm, SCORES[name](ref, ref_labels, z))
            for sig, z in anomalous.items()
        }
    return out
