"""Low-rank adaptation (LoRA, Hu et al. arXiv:2106.09685) of any registered backbone.

Rieck et al. ("Self-Supervised Learning Strategies for Jet Physics", §4, §6) fine-tune
their pre-trained transformer "by means of low-rank adaption" with rank 1: the
backbone's weights stay frozen and every linear layer's weight becomes
``W0 + (alpha / r) B A`` with ``A`` [r, in] and ``B`` [out, r], ~1 % of the parameters
trained. ``B`` starts at zero, so training starts exactly from
the pre-trained function.

Why a parametrization (``torch.nn.utils.parametrize``) and not a wrapper module: some
backbones read ``linear.weight`` directly (the DynamicEdgeConv splits its edge MLP
weight, models/edgeconv.py), so the adapted weight has to *be* ``.weight``; every
``nn.Linear`` of every backbone gets LoRA without the backbone knowing.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize


class LowRankDelta(nn.Module):
    """``W -> W + (alpha / rank) B A`` (a weight parametrization)."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as LoRA's reference code
        self.scale = float(alpha) / rank

    def forward(self, weight: Tensor) -> Tensor:
        return weight + self.scale * (self.B @ self.A).to(weight.dtype)


def apply_lora(module: nn.Module, rank: int = 1, alpha: float = 1.0) -> list[nn.Parameter]:
    """Freeze ``module`` and give each of its ``nn.Linear`` layers a rank-``rank`` update;
    returns the new trainable parameters (A and B of every layer)."""
    for p in module.parameters():
        p.requires_grad_(False)
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(module).__name__} has no nn.Linear layer to adapt with LoRA")
    params: list[nn.Parameter] = []
    for lin in linears:
        delta = LowRankDelta(lin.out_features, lin.in_features, rank, alpha).to(
            lin.weight.device
        )
        parametrize.register_parametrization(lin, "weight", delta)
        params += [delta.A, delta.B]
    return params
