"""SimCLR contrastive loss as used by RS3L (arXiv:2403.07066, §II A and §II C, eqs. (2)-(3)).

A minibatch holds B nominal jets ``z_i`` and their re-simulated augmentations ``z'_i``
(RS3L: B = 100). Each of the 2B views is an anchor whose positive is its partner; all
other views of the batch are negatives. With cosine similarity s (eq. (3)) and
temperature tau (0.1 in RS3L), the loss per anchor a with partner p(a) is

    l_a = -log( exp(s(a, p(a))/tau) / sum_{b != a} exp(s(a, b)/tau) ),

averaged over all 2B anchors (the NT-Xent loss of Chen et al., arXiv:2002.05709).

Note on eq. (2): printed literally, its denominator runs over j != i only and thus omits
the positive term itself; we follow the standard SimCLR form (the positive is part of the
2B - 1 terms of the denominator) that RS3L says it is "based on" ([15], [25]).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.methods import METHOD_NEEDS
from jetforge.methods.pair_batch import PAIR_SAMPLERS, pair_views
from jetforge.models.interface import require


def nt_xent(z_a: Tensor, z_b: Tensor, tau: float = 0.1) -> Tensor:
    """NT-Xent loss of paired views ``z_a[i] <-> z_b[i]`` (shape ``[B, D]`` each).

    Always evaluated in float32 (autocast disabled locally): with tau = 0.1 the logits
    reach +-10 and bf16 softmax would noticeably bias the loss and its gradient.
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(
            f"nt_xent needs two [B, D] tensors of equal shape, got {tuple(z_a.shape)} "
            f"and {tuple(z_b.shape)}"
        )
    if z_a.shape[0] < 1:
        raise ValueError("nt_xent needs at least one pair")
    if not tau > 0:
        raise ValueError(f"temperature tau must be > 0, got {tau}")
    B = z_a.shape[0]
    with torch.autocast(device_type=z_a.device.type, enabled=False):
        z = torch.cat([z_a, z_b], dim=0).float()
        z = F.normalize(z, dim=1, eps=1e-8)
        logits = (z @ z.t()) / tau
        self_mask = torch.eye(2 * B, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        idx = torch.arange(B, device=z.device)
        target = torch.cat([idx + B, idx])
        return F.cross_entropy(logits, target)


class SimCLR(nn.Module):
    """Backbone + NT-Xent on (nominal, augmented) jet pairs; no projection head.

    RS3L applies the loss directly on the 8-d backbone output (§II A: "The 8D jet
    representations are then used in the contrastive loss function"). Needs only the
    backbone's jet embedding (:mod:`jetforge.models.interface`), so it runs on every
    backbone; pairs of particles-only jets or of tracks + cells
    (:mod:`jetforge.methods.pair_batch`), whichever the backbone reads.
    """

    sampler = PAIR_SAMPLERS
    needs = METHOD_NEEDS["simclr"]
    method_name = "simclr"

    def __init__(self, backbone: nn.Module, tau: float = 0.1) -> None:
        super().__init__()
        if not tau > 0:
            raise ValueError(f"temperature tau must be > 0, got {tau}")
        require(backbone, self.needs, self.method_name)
        self.backbone = backbone
        self.tau = float(tau)

    @classmethod
    def from_config(cls, backbone: nn.Module, cfg: Mapping[str, Any]) -> SimCLR:
        """Build from the ``pretrain`` config block (uses ``tau``)."""
        return cls(backbone, tau=cfg.get("tau", 0.1))

    def embed_pair(self, *batch: Any) -> tuple[Tensor, Tensor]:
        """Embeddings of both views of a pair batch (two backbone calls, so each view
        trims its own padding)."""
        view_a, view_b = pair_views(*batch)
        return self.backbone(*view_a), self.backbone(*view_b)

    def loss_from_embeddings(self, z_a: Tensor, z_b: Tensor) -> dict[str, Tensor]:
        """Loss terms from already computed embeddings (used by validation too)."""
        return {"loss": nt_xent(z_a, z_b, self.tau)}

    def forward(self, *batch: Any) -> dict[str, Tensor]:
        """Loss terms of ``(x_a, m_a, x_b, m_b)`` or one ``MultiPairBatch``; ``loss`` is
        what the optimiser minimises."""
        return self.loss_from_embeddings(*self.embed_pair(*batch))
