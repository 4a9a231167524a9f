"""The input contract shared by every backbone."""

from __future__ import annotations

import torch


def check_inputs(x: torch.Tensor, mask: torch.Tensor, in_dim: int) -> None:
    """``x [B, P, F]`` with ``F = in_dim`` and a matching ``mask [B, P]``: a wrong file or
    feature set fails here with the shapes named, not deep inside a layer."""
    if x.dim() != 3 or mask.shape != x.shape[:2]:
        raise ValueError(
            f"expected x [B, P, F] and mask [B, P], got x {tuple(x.shape)}, "
            f"mask {tuple(mask.shape)}"
        )
    if x.shape[-1] != in_dim:
        raise ValueError(f"model expects {in_dim} features per particle, got {x.shape[-1]}")
