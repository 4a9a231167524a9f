"""EMA teachers: the momentum schedule and the in-place update, in one place.

Self-distillation methods keep a *teacher* whose weights follow the student's,
``theta_t <- m theta_t + (1 - m) theta_s`` after every optimiser step (BYOL, DINO), with
the momentum ``m`` rising over training. jBOT (Tsoi & Rankin) uses a cosine schedule
from 0.996 to 1 (its Table 1, after BYOL); JP-JEPA (Letellier, Vacheret, Jurie,
arXiv:2606.14813, eq. (9), Table 7) a linear one from 0.9995 to 0.99999. Both call
:func:`ema_momentum` and :func:`ema_update_` from their ``on_step`` hook, which the
training engine runs before any checkpoint of that step, so a resumed run replays the
teacher exactly.

Buffers (batch-norm running statistics) are copied from the student, not averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

Schedule = Literal["cosine", "linear"]


def ema_momentum(
    update: int, n_updates: int, start: float, end: float, schedule: Schedule = "cosine"
) -> float:
    """Momentum of EMA update ``update`` (0-based) of ``n_updates``.

    * ``cosine`` (BYOL, DINO, jBOT): ``end - (end - start) (1 + cos(pi k / K)) / 2`` with
      ``k = update`` clamped to ``[0, K]``: ``start`` at the first update, ``end`` only
      after the run (k = K); ``start`` if ``K <= 0``.
    * ``linear`` (JP-JEPA, "linear on total steps"): exactly ``start`` at the first update
      and ``end`` at the last one (k = K - 1); ``end`` if ``K <= 1``.
    """
    if schedule == "cosine":
        if n_updates <= 0:
            return start
        k = min(max(update, 0), n_updates)
        return end - (end - start) * (1.0 + math.cos(math.pi * k / n_updates)) / 2.0
    if schedule == "linear":
        if n_updates <= 1:
            return float(end)
        f = min(max(int(update), 0), int(n_updates) - 1) / (int(n_updates) - 1)
        return float(start + (end - start) * f)
    raise ValueError(f"EMA schedule must be 'cosine' or 'linear', got {schedule!r}")


@torch.no_grad()
def ema_update_(
    pairs: Iterable[tuple[nn.Module, nn.Module]], momentum: float, *, fused: bool = False
) -> None:
    """``teacher <- m teacher + (1 - m) student`` for every (teacher, student) module pair,
    in place, parameter by parameter; buffers are copied from the student.

    ``fused``: ``t.mul_(m).add_(s, alpha=1 - m)`` (one multiply-add kernel) instead of
    ``t.mul_(m).add_((1 - m) * s)`` (DINO's and I-JEPA's code). The two round differently
    in the last bit; jBOT's runs were made with the fused form and JP-JEPA's with the other,
    so each keeps its own to stay bit-identical with its earlier checkpoints and tables.
    """
    for teacher, student in pairs:
        for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
            if fused:
                t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
            else:
                t.mul_(momentum).add_((1.0 - momentum) * s.detach())
        for bt, bs in zip(teacher.buffers(), student.buffers(), strict=True):
            bt.copy_(bs)
