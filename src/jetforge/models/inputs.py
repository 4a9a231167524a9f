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


def masked_slots(
    mask: torch.Tensor, replace: torch.Tensor | None, replacement: torch.Tensor | None
) -> torch.Tensor | None:
    """Token masking (``replace`` / ``replacement`` of a backbone's ``encode``, see
    :mod:`jetforge.models.interface`): the real slots of ``mask [B, P']`` (trimmed after
    the batch's last real particle) whose embedding is replaced; None without masking."""
    if replace is None:
        return None
    if replacement is None:
        raise ValueError("replace given without a replacement token")
    return replace[:, : mask.shape[1]].bool() & mask


def put_mask_token(
    h: torch.Tensor, slots: torch.Tensor, replacement: torch.Tensor
) -> torch.Tensor:
    """``h [B, P', D]`` with the embeddings of ``slots`` replaced by ``replacement``: one
    token ``[D]`` or one per slot ``[B, P, D]`` (trimmed like ``h``)."""
    r = replacement.to(h.dtype)
    r = r[:, : h.shape[1]] if r.dim() == 3 else r
    return torch.where(slots[..., None], r.expand_as(h), h)
