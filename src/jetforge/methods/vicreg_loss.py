"""Variance and covariance regularisers of VICReg (Bardes, Ponce, LeCun, arXiv:2105.04906).

Used by the autoencoder of Rieck et al. (§5.4): "a variance and covariance term
depending on the autoencoder output are added to the loss function to avoid a collapse of
the network that would result only in trivial representations". Definitions (VICReg
eqs. (1), (3), (4)) for a batch ``z`` ``[n, d]``:

    v(z) = 1/d sum_j max(0, γ - sqrt(Var(z_j) + ε))          (unbiased variance)
    c(z) = 1/d sum_{i != j} C(z)_ij²,   C(z) = 1/(n-1) (z - z̄)^T (z - z̄)

γ = 1 and ε = 1e-4 as in VICReg. Evaluated in float32 (autocast off): the square root of
small variances and the squared covariances lose too much in bf16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(z: Tensor) -> None:
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"VICReg terms need a [n >= 2, d] batch, got shape {tuple(z.shape)}")


def variance_term(z: Tensor, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    """Hinge on the per-dimension standard deviation (VICReg eq. (1))."""
    _check(z)
    with torch.autocast(device_type=z.device.type, enabled=False):
        std = torch.sqrt(z.float().var(dim=0) + eps)
        return F.relu(gamma - std).mean()


def covariance_term(z: Tensor) -> Tensor:
    """Sum of squared off-diagonal covariances over the dimension (VICReg eq. (4))."""
    _check(z)
    with torch.autocast(device_type=z.device.type, enabled=False):
        zf = z.float()
        n, d = zf.shape
        zc = zf - zf.mean(dim=0)
        cov = (zc.T @ zc) / (n - 1)
        off = cov - torch.diag(torch.diagonal(cov))
        return off.pow(2).sum() / d
