"""Autoencoder pre-training with VICReg-style anti-collapse terms (Rieck et al.,
§5.4, Fig. 7).

What is reconstructed: Fig. 7 — "The representation x is compressed to obtain another
representation y as in the contrastive learning approach. However, in the autoencoder
approach a decompression follows to obtain a representation z. The autoencoder training
aims to match the representations x and z." So the fixed-size target is **x**, the
mean-pooled transformer output (``backbone.represent``, 128-d), *not* the variable-length
tracks and cells: the compressor is the backbone's own output MLP (x -> y, 8-d, the
representation used downstream) and the decoder mirrors it (y -> z, 8 -> 64 -> 128).

Loss: ``mse_weight * MSE(z, x) + var_weight * v(t) + cov_weight * c(t)`` with the VICReg
terms of :mod:`jetforge.methods.vicreg_loss` on ``t = z`` by default (the paper: terms
"depending on the autoencoder output"; ``vc_target: y`` or ``x`` are options). The
gradient flows into both sides of the MSE — the whole network trains on reconstruction —
which is why the trivial solution (constant x, z = x) exists and the variance term is
needed: z is a function of x only, so std(z_j) >= γ forces x to vary across jets. The
paper gives no coefficients; the defaults 25 / 25 / 1 are VICReg's (λ, μ, ν).

Both forks of a pair enter as independent jets (the AE has no notion of pairs), so one
batch of B pairs gives 2B jets; positive-pair cosines are still logged by validation as
a diagnostic of how much shower information the AE representation keeps. Batches are
:class:`~jetforge.training.multi_data.MultiPairBatch` (``sampler = "multi_pairs"``),
trained by :func:`~jetforge.training.pretrain.run_pretrain` like every method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.methods.vicreg_loss import covariance_term, variance_term
from jetforge.models.cells_tracks import mlp


class AEVICReg(nn.Module):
    """Backbone (x -> y via its ``head``) + decoder (y -> z) trained on MSE(z, x) + v + c.

    The backbone must expose ``represent(...) -> x``, ``head`` (x -> y), ``width`` and
    ``embed_dim`` (as :class:`~jetforge.models.cells_tracks.CellsTracksNet` does).
    """

    sampler = "multi_pairs"

    def __init__(
        self,
        backbone: nn.Module,
        decoder_hidden: Sequence[int] = (64,),
        mse_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
        vc_target: str = "z",
        gamma: float = 1.0,
        eps: float = 1e-4,
    ) -> None:
        super().__init__()
        if vc_target not in ("x", "y", "z"):
            raise ValueError(f"vc_target must be 'x', 'y' or 'z', got {vc_target!r}")
        self.backbone = backbone
        dims = [int(backbone.embed_dim), *map(int, decoder_hidden), int(backbone.width)]
        self.decoder = mlp(dims)
        self.mse_weight, self.var_weight = float(mse_weight), float(var_weight)
        self.cov_weight, self.vc_target = float(cov_weight), vc_target
        self.gamma, self.eps = float(gamma), float(eps)

    @classmethod
    def from_config(cls, backbone: nn.Module, cfg: Mapping[str, Any]) -> AEVICReg:
        """Build from the ``pretrain`` block (keys as the constructor's, all optional)."""
        keys = (
            "decoder_hidden", "mse_weight", "var_weight", "cov_weight", "vc_target", "gamma", "eps"
        )
        return cls(backbone, **{k: cfg[k] for k in keys if k in cfg})

    def encode(self, *view: Tensor) -> tuple[Tensor, Tensor]:
        """``(x, y)`` of one view ``(tracks, tracks_mask, cells, cells_mask)``."""
        x = self.backbone.represent(*view)
        return x, self.backbone.head(x)

    def loss_terms(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """All loss terms from x ``[n, width]`` and y ``[n, embed_dim]`` (n >= 2 jets)."""
        z = self.decoder(y)
        with torch.autocast(device_type=x.device.type, enabled=False):
            mse = F.mse_loss(z.float(), x.float())
        t = {"x": x, "y": y, "z": z}[self.vc_target]
        var, cov = variance_term(t, self.gamma, self.eps), covariance_term(t)
        loss = self.mse_weight * mse + self.var_weight * var + self.cov_weight * cov
        return {"loss": loss, "mse": mse, "var": var, "cov": cov}

    def embed_pair(self, batch: Any) -> tuple[Tensor, Tensor]:
        """y of both views (validation diagnostics)."""
        return self.backbone(*batch.view("a")), self.backbone(*batch.view("b"))

    def forward(self, batch: Any) -> dict[str, Tensor]:
        """Loss terms of one :class:`MultiPairBatch`, both forks as independent jets."""
        (x_a, y_a), (x_b, y_b) = self.encode(*batch.view("a")), self.encode(*batch.view("b"))
        return self.loss_terms(torch.cat([x_a, x_b]), torch.cat([y_a, y_b]))
