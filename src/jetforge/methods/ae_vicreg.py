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
:class:`~jetforge.training.multi_data.MultiPairBatch` (``"multi_pairs"``) on the paper's
tracks + cells backbone, particle pairs (``"pairs"``) on a particles-only one
(:mod:`jetforge.methods.pair_batch`), trained by
:func:`~jetforge.training.pretrain.run_pretrain` like every method.

Other backbones (issue 16: every method on one backbone). A backbone without the
``compressor`` capability (:mod:`jetforge.models.interface`; e.g. ParT) has no x -> y of
its own: then x is its jet embedding (``forward``, what probes and fine-tuning read) and
the method adds the compressor, the mirror of the decoder
(``embed_dim -> reversed(decoder_hidden) -> bottleneck_dim``, 8 as Rieck's y), so the
loss is the same MSE(z, x) + v + c; the compressor is discarded with the decoder.

Fig. 8's hybrids "AE (gtag)" / "AE (tautag)" (§5.4: "a third model where the SSL backbone
network stems from fully supervised learning, but the compressing encoder MLP ... stems
from a dedicated autoencoder training including the decompressing MLP"): with
``pretrain.init_backbone`` the backbone is loaded from a supervised fine-tuning and frozen
(:mod:`jetforge.training.init_backbone`); only :attr:`AEVICReg.fresh_backbone_parts` (the
compressor ``backbone.head``, re-initialised) and the decoder train, so x is fixed and the
variance term acts on the compressor alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.methods import METHOD_NEEDS
from jetforge.methods.pair_batch import PAIR_SAMPLERS, pair_views
from jetforge.methods.vicreg_loss import covariance_term, variance_term
from jetforge.models.cells_tracks import mlp
from jetforge.models.interface import has, require

#: the ``pretrain`` keys :meth:`AEVICReg.from_config` reads (each in the config schema)
CONFIG_KEYS = ("decoder_hidden", "mse_weight", "var_weight", "cov_weight", "vc_target", "gamma",
               "eps", "bottleneck_dim")  # fmt: skip


class AEVICReg(nn.Module):
    """Compressor (x -> y) + decoder (y -> z) trained on MSE(z, x) + v + c.

    With a ``compressor`` backbone (:class:`~jetforge.models.cells_tracks.CellsTracksNet`)
    x = ``backbone.represent(...)`` and the compressor is ``backbone.head`` (Fig. 7);
    otherwise x = ``backbone(...)`` and the compressor is this module's (see module doc).
    """

    sampler = PAIR_SAMPLERS
    needs = METHOD_NEEDS["ae_vicreg"]
    method_name = "ae_vicreg"
    #: ``pretrain.init_backbone`` is supported (Rieck et al. §5.4 hybrids)
    supports_init_backbone = True

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
        bottleneck_dim: int = 8,
    ) -> None:
        super().__init__()
        if vc_target not in ("x", "y", "z"):
            raise ValueError(f"vc_target must be 'x', 'y' or 'z', got {vc_target!r}")
        require(backbone, self.needs, self.method_name)
        self.backbone = backbone
        self.own_compressor = not has(backbone, "compressor")
        if self.own_compressor:
            hidden = [int(h) for h in decoder_hidden]
            y_dim, x_dim = int(bottleneck_dim), int(backbone.embed_dim)
            self.compressor = mlp([x_dim, *reversed(hidden), y_dim])
        else:
            y_dim, x_dim = int(backbone.embed_dim), int(backbone.width)
        self.decoder = mlp([y_dim, *map(int, decoder_hidden), x_dim])
        self.mse_weight, self.var_weight = float(mse_weight), float(var_weight)
        self.cov_weight, self.vc_target = float(cov_weight), vc_target
        self.gamma, self.eps = float(gamma), float(eps)
        #: set by :func:`jetforge.training.init_backbone.init_from_finetuned`: the backbone
        #: outside :attr:`fresh_backbone_parts` is frozen and stays in eval mode
        self.backbone_frozen = False

    @property
    def fresh_backbone_parts(self) -> tuple[str, ...]:
        """Backbone submodules this method trains when the rest of the backbone comes from
        a fine-tuning (``pretrain.init_backbone``): the compressor x -> y where it is the
        backbone's own (``head``); none where the method brings its own compressor."""
        return () if self.own_compressor else ("head",)

    def train(self, mode: bool = True) -> AEVICReg:
        """Like ``nn.Module.train``, but a frozen loaded backbone stays in eval mode (its
        dropout off: x must be the fine-tuned network's x) while its fresh parts train."""
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
            for name in self.fresh_backbone_parts:
                self.backbone.get_submodule(name).train(mode)
        return self

    @classmethod
    def from_config(cls, backbone: nn.Module, cfg: Mapping[str, Any]) -> AEVICReg:
        """Build from the ``pretrain`` block (keys as the constructor's, all optional)."""
        return cls(backbone, **{k: cfg[k] for k in CONFIG_KEYS if k in cfg})

    def encode(self, *view: Tensor) -> tuple[Tensor, Tensor]:
        """``(x, y)`` of one view (the backbone's ``forward`` arguments)."""
        if self.own_compressor:
            x = self.backbone(*view)
            return x, self.compressor(x)
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

    def embed_pair(self, *batch: Any) -> tuple[Tensor, Tensor]:
        """The backbone's embedding of both views (validation diagnostics)."""
        view_a, view_b = pair_views(*batch)
        return self.backbone(*view_a), self.backbone(*view_b)

    def loss_from_embeddings(self, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
        """Loss terms from :meth:`embed_pair` (the ``"pairs"`` validation): only where the
        embedding is x itself, i.e. with this module's compressor."""
        if not self.own_compressor:
            raise TypeError("with a compressor backbone the embedding is y, not x: the loss "
                            "needs forward(batch)")  # fmt: skip
        x = torch.cat([x_a, x_b])
        return self.loss_terms(x, self.compressor(x))

    def forward(self, *batch: Any) -> dict[str, Tensor]:
        """Loss terms of one pair batch, both views as independent jets."""
        view_a, view_b = pair_views(*batch)
        (x_a, y_a), (x_b, y_b) = self.encode(*view_a), self.encode(*view_b)
        return self.loss_terms(torch.cat([x_a, x_b]), torch.cat([y_a, y_b]))
