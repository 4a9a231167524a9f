"""p_T-aware particle masking of jBOT (Tsoi & Rankin, §3 and §4.2, Table 1).

Masking a fixed *number* of particles would mask mostly hard or mostly soft particles
depending on the draw; jBOT instead masks a random subset carrying a target *fraction
of the jet p_T*. §4.2: "Masking is implemented by accumulating particles from a randomly
reshuffled list until the cumulative p_T crosses the masking target; the subset whose
cumulative p_T is closest to the target is masked". Concretely, per jet view:

1. draw r ~ U[r_min, r_max] (Table 1: U[0, 0.5] per view);
2. shuffle the real particles (padding last) and form the prefix sums
   S_0 = 0, S_1, ..., S_n of their p_T;
3. mask the first k particles with k = argmin_k |S_k - r * sum p_T| (the prefix whose
   cumulative p_T is closest to the target: the crossing prefix or the one before it);
4. as in the authors' code, keep k >= 1 and k <= n - 1 when r > 0 (at least one
   particle masked, at least one visible) and k = 0 when r = 0.

Padded particles are never masked.
"""

from __future__ import annotations

import torch
from torch import Tensor


def closest_prefix_mask(pt: Tensor, valid: Tensor, ratio: Tensor, keys: Tensor) -> Tensor:
    """Deterministic core: mask ``[B, P]`` of the prefix, in increasing ``keys`` order, whose
    cumulative p_T is closest to ``ratio * sum(pt)``.

    ``pt`` may be any quantity proportional to p_T; ``keys`` (``[B, P]``, any real values)
    define the shuffled order (padded slots are moved last whatever their key).
    """
    if not pt.shape == valid.shape == keys.shape or pt.dim() != 2 or ratio.shape != pt.shape[:1]:
        raise ValueError(
            f"need pt, valid, keys [B, P] and ratio [B], got {tuple(pt.shape)}, "
            f"{tuple(valid.shape)}, "
            f"{tuple(keys.shape)}, {tuple(ratio.shape)}"
        )
    B, P = pt.shape
    valid = valid.bool()
    w = torch.where(valid, pt.double(), torch.zeros((), dtype=torch.float64, device=pt.device))
    order = torch.where(valid, keys.double(), torch.full_like(w, float("inf"))).argsort(
        dim=1, stable=True
    )
    csum = torch.cat([w.new_zeros(B, 1), torch.gather(w, 1, order).cumsum(1)], dim=1)  # S_0..S_P
    target = ratio.double()[:, None] * w.sum(1, keepdim=True)
    n_valid = valid.sum(1)
    k = torch.arange(P + 1, device=pt.device)
    dist = (csum - target).abs().masked_fill(k[None] > n_valid[:, None], float("inf"))
    n_take = dist.argmin(dim=1)  # first minimum: the smaller subset on exact ties
    n_take = torch.where(ratio > 0, n_take.clamp(min=1), torch.zeros_like(n_take))
    n_take = torch.minimum(n_take, (n_valid - 1).clamp(min=0))
    in_perm = k[None, :P] < n_take[:, None]
    out = torch.zeros_like(valid).scatter(1, order, in_perm)
    return out & valid


def pt_fraction_mask(
    pt: Tensor,
    valid: Tensor,
    ratio_range: tuple[float, float] = (0.0, 0.5),  # Table 1
    mask_prob: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Random p_T-fraction masks for a batch of views: ``(masked [B, P], ratio [B])``.

    ``mask_prob`` is the probability that a view is masked at all (the authors' code
    option ``p_mask``; 1 in the paper, where every view draws r from ``ratio_range``).
    Uses the global torch RNG on ``pt.device`` (checkpointed by the training engine).
    """
    lo, hi = float(ratio_range[0]), float(ratio_range[1])
    if not 0.0 <= lo <= hi <= 1.0 or not 0.0 <= mask_prob <= 1.0:
        raise ValueError(
            f"need 0 <= r_min <= r_max <= 1 and mask_prob in [0, 1], got {ratio_range}, {mask_prob}"
        )
    B, P = pt.shape
    ratio = lo + (hi - lo) * torch.rand(B, device=pt.device)
    if mask_prob < 1.0:
        ratio = torch.where(
            torch.rand(B, device=pt.device) < mask_prob, ratio, torch.zeros_like(ratio)
        )
    keys = torch.rand(B, P, device=pt.device)
    return closest_prefix_mask(pt, valid, ratio, keys), ratio
