"""KoLeo regulariser (Sablayrolles et al. [30]; as in DINOv2; jBOT §3, eq. (3)).

    L_KoLeo = -1/B sum_i log( min_{j != i} ||x_i - x_j|| ),

with x_i the l2-normalised embeddings of a batch. It is the Kozachenko-Leonenko
differential-entropy estimator up to constants: pushing every embedding away from its
nearest neighbour spreads the batch uniformly over the sphere. jBOT applies it to the
student [CLS] of one view only (both views would push positive pairs apart) with
weight lambda = 0.01 (Table 1).

Numerics (as DINOv2's ``koleo_loss.py``): float32 with autocast off; the nearest
neighbour is found from dot products (argmax of cosine similarity, exact ties broken by
the lowest index), the distance to it recomputed directly so that near-duplicates give a
small positive distance instead of a cancellation error; the distance is
``sqrt(d^2 + eps^2)`` so exact duplicates give a finite log and gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class KoLeoLoss(nn.Module):
    """Eq. (3) on a batch ``[B, D]``; B < 2 has no neighbours and gives 0."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2:
            raise ValueError(f"KoLeo needs [B, D] embeddings, got {tuple(x.shape)}")
        if x.shape[0] < 2:
            return x.sum() * 0.0
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = F.normalize(x.float(), dim=-1, eps=self.eps)
            with torch.no_grad():
                sim = z @ z.t()
                sim.fill_diagonal_(-2.0)  # below any cosine: a point is not its own neighbour
                nn_idx = sim.argmax(dim=1)
            diff = z - z[nn_idx]
            # sqrt(d^2 + eps^2): finite log and gradient for exact duplicates (d = 0)
            dist = torch.sqrt((diff * diff).sum(-1) + self.eps**2)
            return -torch.log(dist).mean()
