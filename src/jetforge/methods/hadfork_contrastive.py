"""Contrastive pre-training on hadronization-fork pairs (Rieck et al., §4, eq. (1)).

The positive pair is the two hadronizations (``fork_a``, ``fork_b``) of one parton
shower, each with its own detector response (§3, Fig. 1); every other jet of the batch
is a negative. Eq. (1) is the NT-Xent loss of SimCLR on the 8-d representation y with
cosine similarity and τ = 0.1 ("stable, optimal results for τ in [0.05, 0.5]"), so the
loss is :func:`jetforge.methods.simclr.nt_xent` unchanged; no projection head (§6: an
expander was tried and dropped). Eq. (1) orders the 2N views as (2k-1, 2k) pairs; here
they are ``[y_a; y_b]`` with partner ``i <-> i + N``, the same set of terms.

The backbone takes tracks and cells, so the method consumes a whole
:class:`~jetforge.training.multi_data.MultiPairBatch` (``sampler = "multi_pairs"``,
trained by :func:`~jetforge.training.pretrain.run_pretrain` like every method).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from jetforge.methods.simclr import nt_xent


class HadforkContrastive(nn.Module):
    """Backbone + NT-Xent on (fork_a, fork_b) pairs of tracks + cells."""

    sampler = "multi_pairs"

    def __init__(self, backbone: nn.Module, tau: float = 0.1) -> None:
        super().__init__()
        if not tau > 0:
            raise ValueError(f"temperature tau must be > 0, got {tau}")
        self.backbone = backbone
        self.tau = float(tau)

    @classmethod
    def from_config(cls, backbone: nn.Module, cfg: Mapping[str, Any]) -> HadforkContrastive:
        """Build from the ``pretrain`` block (``tau``, default 0.1 as in §4)."""
        return cls(backbone, tau=cfg.get("tau", 0.1))

    def embed_pair(self, batch: Any) -> tuple[Tensor, Tensor]:
        """y of both views (two backbone calls: each view trims its own padding)."""
        return self.backbone(*batch.view("a")), self.backbone(*batch.view("b"))

    def loss_from_embeddings(self, y_a: Tensor, y_b: Tensor) -> dict[str, Tensor]:
        """Eq. (1) from already computed representations."""
        return {"loss": nt_xent(y_a, y_b, self.tau)}

    def forward(self, batch: Any) -> dict[str, Tensor]:
        """Loss terms of one :class:`MultiPairBatch`; ``loss`` is minimised."""
        return self.loss_from_embeddings(*self.embed_pair(batch))
