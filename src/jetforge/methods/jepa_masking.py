"""Particle sequencing and contiguous block masking of JP-JEPA (§4.1, Fig. 10, Table 7).

Why a sequence: a jet is an unordered set, so "contiguous" masking needs an order in which
neighbours in the sequence are neighbours in the detector. JP-JEPA uses the greedy
nearest-neighbour ordering of Point-JEPA (arXiv:2404.16432) / HEP-JEPA: start from one
point and repeatedly append the nearest unvisited point to the last one. Point-JEPA starts
from the point with the smallest coordinates; we start from the *leading* (highest-pT)
particle, which is well defined for a jet and independent of the frame's sign conventions.
A contiguous block of this sequence is then a spatially coherent region of the jet.

Masking (Table 7, "target/context sampling: contiguous"; V = 1 target): per jet with n real
particles, the target is one block of round(r_t n) particles (r_t ~ U[target_ratio]) at a
uniform position; the context is a block of round(r_c n) particles (r_c ~ U[context_ratio])
at a uniform position *minus the target* (the I-JEPA / Point-JEPA recipe that Table 7's two
ratios describe). The context block is forced longer than the target, so the context is
never empty; with ``context_ratio=None`` the context is every non-target particle.
Everything is in *sequence positions*; all random numbers are drawn on the CPU from the
given generator (or the global RNG), so a run is reproducible on any device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


@torch.no_grad()
def greedy_sequence(eta: Tensor, phi: Tensor, mask: Tensor, start: Tensor) -> Tensor:
    """Greedy nearest-neighbour order ``[B, P]`` (indices into the particle axis).

    ``eta``, ``phi``: ``[B, P]`` coordinates (distance sqrt(deta^2 + dphi^2), dphi wrapped);
    ``start``: ``[B]`` index of the first particle. Real particles come first, in visiting
    order; padded slots follow in index order. Exact distance ties go to the lowest index.
    """
    B, P = mask.shape
    mask = mask.bool()
    deta = eta[:, :, None] - eta[:, None, :]
    dphi = torch.remainder(phi[:, :, None] - phi[:, None, :] + math.pi, 2 * math.pi) - math.pi
    dist = (deta * deta + dphi * dphi).float()  # [B, P, P]
    n = mask.sum(1)
    n_max = int(n.max()) if B else 0
    rows = torch.arange(B, device=mask.device)
    visited = ~mask
    seq = torch.zeros(B, max(n_max, 1), dtype=torch.long, device=mask.device)
    cur = start.long().to(mask.device)
    for k in range(n_max):
        if k > 0:
            d = dist[rows, cur].masked_fill(visited, float("inf"))
            cur = d.argmin(dim=1)
        seq[:, k] = cur
        visited = visited.clone()
        visited[rows, cur] = True
    # key = position in the sequence for real particles, P + index for padded slots
    pos = torch.arange(seq.shape[1], device=mask.device).expand(B, -1)
    key = torch.cat([P + torch.arange(P, device=mask.device).expand(B, -1),
                     torch.zeros(B, 1, dtype=torch.long, device=mask.device)], dim=1)  # fmt: skip
    valid = pos < n[:, None]
    key.scatter_(1, torch.where(valid, seq, P), torch.where(valid, pos, 0))
    return key[:, :P].argsort(dim=1)


def _uniform(lo_hi: Sequence[float], n: int, generator: torch.Generator | None) -> Tensor:
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    if not 0.0 < lo <= hi < 1.0:
        raise ValueError(f"ratio range must satisfy 0 < lo <= hi < 1, got {list(lo_hi)}")
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


def sample_blocks(
    n: Tensor,
    n_slots: int,
    target_ratio: Sequence[float],
    context_ratio: Sequence[float] | None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Boolean ``(target, context)`` masks ``[B, n_slots]`` over sequence positions.

    ``n``: ``[B]`` real particles per jet, each >= 2 (JP-JEPA drops smaller jets).
    """
    if (n < 2).any():
        raise ValueError(f"block masking needs >= 2 particles per jet, got min {int(n.min())}")
    device = n.device
    nc = n.cpu().double()
    B = nc.shape[0]
    n_t = torch.clamp(torch.round(_uniform(target_ratio, B, generator) * nc), min=1)
    n_t = torch.minimum(n_t, nc - 1)
    s_t = torch.floor(torch.rand(B, generator=generator, dtype=torch.float64) * (nc - n_t + 1))
    s_t = torch.minimum(s_t, nc - n_t)
    p = torch.arange(n_slots, dtype=torch.float64)[None]
    target = (p >= s_t[:, None]) & (p < (s_t + n_t)[:, None])
    if context_ratio is None:
        context = (p < nc[:, None]) & ~target
    else:
        n_c = torch.round(_uniform(context_ratio, B, generator) * nc)
        n_c = torch.minimum(torch.maximum(n_c, n_t + 1), nc)
        s_c = torch.floor(torch.rand(B, generator=generator, dtype=torch.float64) * (nc - n_c + 1))
        s_c = torch.minimum(s_c, nc - n_c)
        context = (p >= s_c[:, None]) & (p < (s_c + n_c)[:, None]) & ~target
    return target.to(device), context.to(device)


def compact(sel: Tensor) -> tuple[Tensor, Tensor]:
    """Indices ``[B, L]`` of the selected slots moved to the front (order kept) and their
    mask; ``L`` = the largest selection (>= 1), so compute follows real particle counts."""
    B, P = sel.shape
    ar = torch.arange(P, device=sel.device).expand(B, -1)
    order = torch.where(sel, ar, P + ar).argsort(dim=1)
    count = sel.sum(1)
    L = max(int(count.max()) if B else 0, 1)
    return order[:, :L], ar[:, :L] < count[:, None]


def gather_slots(t: Tensor, idx: Tensor) -> Tensor:
    """``t[b, idx[b, l], ...]`` for ``t`` of shape ``[B, P, ...]`` -> ``[B, L, ...]``."""
    return t[torch.arange(t.shape[0], device=t.device)[:, None], idx]
