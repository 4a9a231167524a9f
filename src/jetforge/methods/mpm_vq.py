"""Vector quantiser of the MPM VQ-VAE (arXiv:2401.13537, App. B, eqs. (B1)-(B3)).

The quantiser h maps each latent z_e in R^n to its nearest codebook vector (Euclidean
distance) and passes gradients straight through (Bengio et al. [62]). Its loss is the
commitment loss of eq. (B2),

    L_cmt = (1 - beta) d(z_e, sg(z_q)) + beta d(sg(z_e), z_q),

weighted by alpha in the proxy objective (B3): L_task + alpha L_cmt with alpha = 10 and
beta = 0.9. So beta is *not* an EMA decay: it splits the commitment force between the
encoder (first term: pulls z_e towards its code) and the codebook (second term: pulls the
code towards z_e); there is no EMA codebook update in MPM. As in the vqtorch package the
paper uses ([48, 63]), d is the mean squared Euclidean distance.

The other prescriptions of App. B / Huh et al. [48], implemented here:

* k-means initialisation of the codebook on latents of the randomly initialised encoder
  (:meth:`VectorQuantiser.kmeans_init_`);
* "shared parameterization for the codebook elements": the affine re-parameterisation
  c_i = s * c~_i + b with one scale s and one bias b shared by all codes, so every gradient
  step moves the whole codebook and unused codes follow the used ones;
* "synchronized update rule with nu = 2": the straight-through estimate is
  z_e + sg(z_q - z_e) + nu z_q - sg(nu z_q), whose value is z_q but which also sends nu
  times the task gradient to the selected code.

Written here rather than taken from ``vector-quantize-pytorch``: that package updates
codebooks by EMA and weights commitment without the (1 - beta) / beta split of (B2), and the
whole quantiser is ~100 lines that tests can check by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class Quantised:
    """Output of :class:`VectorQuantiser`: straight-through codes, ids and the (B2) loss."""

    z_q: Tensor  # value = nearest code, gradient = straight-through (+ nu sync)
    ids: Tensor  # long, index of the nearest code
    commitment: Tensor  # scalar L_cmt of eq. (B2), not yet multiplied by alpha


def codebook_usage(ids: Tensor, n_codes: int) -> dict[str, float]:
    """Codebook utilisation of a set of token ids (§V A reports ~80 % for the VQ-VAE).

    ``used_fraction``: fraction of the ``n_codes`` codes hit at least once;
    ``perplexity``: exp of the entropy of the code frequencies, i.e. the number of equally
    used codes that would give the same entropy (``n_codes`` for a uniform usage).
    """
    counts = torch.bincount(ids.reshape(-1).long().cpu(), minlength=n_codes).double()
    total = counts.sum()
    if total == 0:
        return {"used_fraction": 0.0, "perplexity": 0.0}
    p = counts / total
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {
        "used_fraction": float((counts > 0).double().mean()),
        "perplexity": float(entropy.exp()),
    }


class VectorQuantiser(nn.Module):
    """Nearest-code quantiser with the (B2) commitment loss, affine codebook and nu sync."""

    def __init__(
        self,
        dim: int = 16,
        n_codes: int = 512,
        beta: float = 0.9,
        sync_nu: float = 2.0,
        affine: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1] (eq. (B2)), got {beta}")
        self.dim, self.n_codes = int(dim), int(n_codes)
        self.beta, self.sync_nu = float(beta), float(sync_nu)
        self.codebook = nn.Parameter(torch.randn(self.n_codes, self.dim))
        self.affine_scale = nn.Parameter(torch.ones(self.dim), requires_grad=affine)
        self.affine_bias = nn.Parameter(torch.zeros(self.dim), requires_grad=affine)

    def codes(self) -> Tensor:
        """Effective codebook ``[n_codes, dim]`` (shared affine re-parameterisation, App. B)."""
        return self.codebook * self.affine_scale + self.affine_bias

    @torch.no_grad()
    def nearest(self, z: Tensor) -> Tensor:
        """Index of the nearest code (Euclidean) for each row of ``z`` ``[..., dim]``.

        Computed in float32 with autocast off: bf16 distances would reassign tokens.
        """
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = z.reshape(-1, self.dim).float()
            c = self.codes().float()
            d = (flat * flat).sum(1, keepdim=True) - 2.0 * flat @ c.t() + (c * c).sum(1)[None]
            return d.argmin(dim=1).reshape(z.shape[:-1])

    @torch.no_grad()
    def kmeans_init_(self, z: Tensor, seed: int, max_iter: int = 50) -> None:
        """Set the codebook to the k-means++ centroids of latents ``z`` ``[N, dim]`` (App. B).

        The affine scale/bias are reset to the identity so the effective codes are exactly
        the centroids. With fewer distinct latents than codes the remaining codes are
        drawn from the latents (with a little noise) so that no code is a duplicate.
        """
        from sklearn.cluster import KMeans

        data = z.detach().reshape(-1, self.dim).double().cpu().numpy()
        rng = np.random.default_rng(seed)
        k = min(self.n_codes, len(np.unique(data, axis=0)))
        if k < 1:
            raise ValueError("kmeans_init_ needs at least one latent vector")
        km = KMeans(k, init="k-means++", n_init=1, max_iter=max_iter, random_state=seed).fit(data)
        centres = km.cluster_centers_
        if k < self.n_codes:
            extra = data[rng.integers(len(data), size=self.n_codes - k)]
            extra = extra + 1e-3 * data.std(0, keepdims=True) * rng.normal(size=extra.shape)
            centres = np.concatenate([centres, extra])
        self.codebook.copy_(torch.from_numpy(centres).to(self.codebook))
        self.affine_scale.fill_(1.0)
        self.affine_bias.zero_()

    def forward(self, z_e: Tensor) -> Quantised:
        """Quantise ``z_e`` ``[..., dim]`` (pass only real particles: padding would bias (B2))."""
        if z_e.shape[-1] != self.dim:
            raise ValueError(f"latent dim {z_e.shape[-1]} != codebook dim {self.dim}")
        ids = self.nearest(z_e)
        z_q = self.codes()[ids]
        with torch.autocast(device_type=z_e.device.type, enabled=False):
            ze, zq = z_e.float(), z_q.float()
            commitment = (1.0 - self.beta) * F.mse_loss(ze, zq.detach()) + self.beta * F.mse_loss(
                ze.detach(), zq
            )
        st = z_e + (z_q - z_e).detach()
        if self.sync_nu:
            st = st + self.sync_nu * z_q - (self.sync_nu * z_q).detach()
        return Quantised(st, ids, commitment)
