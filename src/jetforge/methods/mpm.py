"""Masked particle modelling (MPM; Golling et al., arXiv:2401.13537, §III A, §V B, Fig. 1).

A fraction of the real particles of each jet is replaced by one learnable mask vector m
(the masked set M_m), the backbone maps the jet to one representation per particle, and a
prediction head recovers a property of every masked particle from them. The loss is the
per-particle loss of §III A,

    E_X [ 1/|M| sum_{i in M} L(x_i, f_theta,i(M_m, U_x)) ],

i.e. averaged over the masked particles of a jet, then over jets. L is the cross-entropy
over token ids (VQ-VAE or K-means tokens) or, for the "regression" target, the squared
error of the standardised features (it "learns the mean of the feature posterior", §III A).

Ordering (Table I). A permutation-equivariant network gives identical outputs at all
masked positions because they share the same input m (§III A). ``ordering`` chooses where
p_T-order information breaks this degeneracy, with a learned positional embedding of the
p_T rank (§V B):

* ``none``: nowhere (the redundancy stays; the model learns the joint posterior);
* ``head``: added to the prediction-head input only (box A of Fig. 1), so the backbone
  used downstream stays permutation equivariant. The paper's choice (56.8 % in Table I);
* ``backbone``: added to the backbone input (box B), which breaks the equivariance of the
  backbone for every downstream task; requires a backbone built with ``ordered: true``.

Backbones (:mod:`jetforge.models.interface`): any with per-particle ``tokens``. On one
with ``token_masking`` (ParT, the ViT) m replaces the masked particles' embeddings rather
than their input features, so nothing of a masked particle (ParT: its pair features)
reaches the network; the paper's NormFormer embeds linearly, where the two are the same.

Inputs (Table I "Inputs" column): ``continuous`` (the particle features) or ``quantized``:
the backbone reads the code vector the tokenizer assigns to each particle instead (§V B;
:meth:`jetforge.models.normformer.NormformerNet.quantize_inputs_`), so its downstream uses
see quantized inputs too; masking then replaces code vectors, not features.

The prediction head is "a single transformer block followed by a softmax for
classification or a linear layer for regression" (§V); it is discarded after pre-training
(only ``.backbone`` is saved). Tokenizers are frozen and kept in eval mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.methods import METHOD_NEEDS
from jetforge.methods.mpm_tokenizer import Standardiser, load_tokenizer
from jetforge.models.interface import has, require
from jetforge.models.normformer import NormformerBlock, particle_rank

TARGETS = ("vqvae", "kmeans", "regression")
ORDERINGS = ("none", "head", "backbone")
INPUTS = ("continuous", "quantized")


def sample_particle_mask(
    mask: Tensor, ratio: float, generator: torch.Generator | None = None
) -> Tensor:
    """Bool ``[B, P]``: exactly ``max(1, round(ratio * n))`` of the n real particles of each
    jet, uniformly at random (jets without real particles get none).

    A fixed count per jet (rather than a Bernoulli draw) keeps the masked fraction equal
    to ``ratio`` for every jet and guarantees at least one target per jet.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask ratio must be in (0, 1), got {ratio}")
    mask = mask.bool()
    n = mask.sum(dim=1, keepdim=True)
    k = torch.where(n > 0, (n.double() * ratio).round().long().clamp_min(1), n)
    where = "cpu" if generator is not None else mask.device  # CPU generators draw on CPU
    score = torch.rand(mask.shape, generator=generator, device=where)
    score = score.to(mask.device).masked_fill(~mask, 2.0)  # padded slots sort last
    order = score.argsort(dim=1)
    slots = torch.arange(mask.shape[1], device=mask.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, slots)  # rank of each slot's score
    return (rank < k) & mask


def masked_particle_loss(pred: Tensor, target: Tensor, masked: Tensor) -> Tensor:
    """§III A loss: mean over the masked particles of each jet, then over jets.

    ``pred`` ``[B, P, C]``; ``target`` long ``[B, P]`` (cross-entropy over C token ids) or
    float ``[B, P, C]`` (squared error summed over the C features). Evaluated in float32.
    """
    with torch.autocast(device_type=pred.device.type, enabled=False):
        pred = pred.float()
        if target.dtype == torch.long:
            per = F.cross_entropy(pred.transpose(1, 2), target, reduction="none")
        else:
            per = ((pred - target.float()) ** 2).sum(dim=-1)
        w = masked.float()
        n = w.sum(dim=1)
        per_jet = (per * w).sum(dim=1) / n.clamp_min(1.0)
        has = n > 0
        return per_jet[has].mean() if has.any() else per_jet.sum() * 0.0


class MPMHead(nn.Module):
    """One Normformer block (+ optional positional embedding, box A of Fig. 1), LN, Linear."""

    def __init__(
        self,
        dim: int,
        n_out: int,
        n_heads: int = 8,
        mlp_dim: int | None = None,
        dropout: float = 0.1,
        positional: bool = True,
        max_particles: int = 128,
    ) -> None:
        super().__init__()
        self.pos = nn.Embedding(int(max_particles), dim) if positional else None
        self.block = NormformerBlock(dim, n_heads, mlp_dim, dropout)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, n_out)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        if self.pos is not None:
            h = h + self.pos(particle_rank(mask).clamp_max(self.pos.num_embeddings - 1))
        return self.out(self.norm(self.block(h, mask)))


class MPM(nn.Module):
    """Backbone + learnable mask vector + prediction head + frozen tokenizer (Fig. 1)."""

    sampler = "jets"  # single-jet batches (training.pretrain.run_pretrain, sampler "jets")
    #: :mod:`jetforge.models.interface`; plus ``quantized_inputs`` for quantized inputs
    needs = METHOD_NEEDS["mpm"]

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: nn.Module | None,
        target: str = "vqvae",
        ordering: str = "head",
        mask_ratio: float = 0.3,
        head_heads: int = 8,
        head_mlp_dim: int | None = None,
        head_dropout: float = 0.1,
        max_particles: int = 128,
        inputs: str = "continuous",
    ) -> None:
        super().__init__()
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if ordering not in ORDERINGS:
            raise ValueError(f"ordering must be one of {ORDERINGS}, got {ordering!r}")
        require(backbone, self.needs, "mpm")
        ordered = bool(getattr(backbone, "ordered", False))
        if (ordering == "backbone") != ordered:
            raise ValueError(
                f"ordering={ordering!r} needs a backbone with ordered={ordering == 'backbone'} "
                f"(positional embedding in the backbone only for 'backbone'), got {ordered}"
            )
        in_dim = int(backbone.in_dim)
        if tokenizer is None:
            if target != "regression":
                raise ValueError(f"target {target!r} needs a tokenizer (tokenizer_path)")
            tokenizer = Standardiser(in_dim)  # identity: regress the raw features
        if tokenizer.kind != target:
            raise ValueError(f"target {target!r} but the tokenizer is a {tokenizer.kind!r} one")
        if int(tokenizer.init_kwargs["in_dim"]) != in_dim:
            raise ValueError(
                f"tokenizer expects {tokenizer.init_kwargs['in_dim']} particle features, "
                f"the backbone {in_dim}"
            )
        self.target, self.ordering, self.mask_ratio = target, ordering, float(mask_ratio)
        sample_particle_mask(torch.ones(1, 2, dtype=torch.bool), self.mask_ratio)  # validate
        self.backbone = backbone
        self.tokenizer = tokenizer.eval().requires_grad_(False)
        self.quantized = inputs == "quantized"
        #: entries the saved ``backbone_cfg`` needs beyond the experiment's backbone block
        self.backbone_cfg_updates: dict[str, Any] = {}
        if self.quantized:
            if target == "regression":
                raise ValueError("quantized inputs need a kmeans or vqvae tokenizer")
            require(backbone, ("quantized_inputs",), "mpm (inputs: quantized)")
            self.backbone_cfg_updates = backbone.quantize_inputs_(self.tokenizer)
        # where the mask vector m of §III A acts: a backbone with token masking replaces
        # the masked particles' embeddings (ParT: their pair features would otherwise be
        # computed from m as if it were a particle); else m replaces their input features
        # (or code vectors with quantized inputs), which a linear embedding maps the same
        self.token_masking = has(backbone, "token_masking") and not self.quantized
        width = backbone.embed_dim if self.token_masking else getattr(backbone, "code_dim", in_dim)
        self.mask_vector = nn.Parameter(torch.randn(int(width)))
        n_out = tokenizer.n_codes if target != "regression" else in_dim
        self.head = MPMHead(
            int(backbone.embed_dim), n_out, head_heads, head_mlp_dim, head_dropout,
            positional=(ordering == "head"), max_particles=max_particles,
        )  # fmt: skip

    @classmethod
    def from_config(cls, backbone: nn.Module, cfg: Mapping[str, Any]) -> MPM:
        """Build from the ``pretrain`` block: ``target``, ``ordering``, ``mask_ratio``,
        ``tokenizer_path`` (a file of :func:`~jetforge.methods.mpm_tokenizer.train_tokenizer`;
        optional for ``regression``), ``head_heads``, ``head_mlp_dim``, ``head_dropout``."""
        path = cfg.get("tokenizer_path")
        tok = load_tokenizer(path)[0] if path else None
        return cls(
            backbone, tok, target=cfg.get("target", "vqvae"), ordering=cfg.get("ordering", "head"),
            mask_ratio=float(cfg.get("mask_ratio", 0.3)), head_heads=int(cfg.get("head_heads", 8)),
            head_mlp_dim=cfg.get("head_mlp_dim"), head_dropout=float(cfg.get("head_dropout", 0.1)),
            max_particles=int(cfg.get("max_particles", 128)),
            inputs=str(cfg.get("inputs", "continuous")),
        )  # fmt: skip

    def train(self, mode: bool = True) -> MPM:
        """Like ``nn.Module.train``, but the frozen tokenizer always stays in eval mode."""
        super().train(mode)
        self.tokenizer.eval()
        return self

    def mask_inputs(
        self, x: Tensor, mask: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """(inputs with the masked particles replaced by the mask vector, masked ``[B, P]``);
        with token masking the inputs are returned unchanged (:meth:`predict` masks)."""
        masked = sample_particle_mask(mask, self.mask_ratio, generator)
        if self.token_masking:
            return x, masked
        if self.quantized:
            x = self.backbone.quantize(x, mask).to(x.dtype)
        return torch.where(masked[..., None], self.mask_vector.to(x.dtype), x), masked

    def predict(self, x_in: Tensor, mask: Tensor, masked: Tensor | None = None) -> Tensor:
        """Head outputs ``[B, P, C]`` (logits or standardised features) for every slot;
        ``masked`` is needed with token masking (the slots the mask vector replaces)."""
        if self.quantized:
            return self.head(self.backbone.tokens(x_in, mask, quantized=True), mask)
        if self.token_masking:
            if masked is None:
                raise ValueError("token masking needs the masked slots")
            return self.head(self.backbone.tokens(x_in, mask, masked, self.mask_vector), mask)
        return self.head(self.backbone.tokens(x_in, mask), mask)

    def forward(self, x: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Loss terms of one batch: ``loss`` (§III A) and, for tokens, masked ``accuracy``.

        In eval mode the masks come from a fixed generator, so validation losses of
        different epochs are computed on the same masked sets.
        """
        mask = mask.bool()
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        gen = None if self.training else torch.Generator().manual_seed(0)
        x_in, masked = self.mask_inputs(x, mask, gen)
        with torch.no_grad():
            target = self.tokenizer.targets(x, mask)
        pred = self.predict(x_in, mask, masked)
        out = {"loss": masked_particle_loss(pred, target, masked)}
        if target.dtype == torch.long:
            hit = (pred.argmax(dim=-1) == target) & masked
            out["accuracy"] = (hit.sum() / masked.sum().clamp_min(1)).detach().float()
        return out
