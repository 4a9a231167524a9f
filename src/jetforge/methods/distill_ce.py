"""Centred teacher / student cross-entropy shared by the jBOT distillation losses.

jBOT §3 ("Self-distillation"), following DINO/iBOT: the teacher output x in the
projection space is re-centred, ``x <- x - c``, with an EMA centre
``c <- tau_c c + (1 - tau_c) x_bar`` (x_bar: batch mean), then both outputs become
probability vectors through temperature-scaled softmaxes (teacher 0.04, student 0.1,
Table 1) and are matched by the cross-entropy ``-P_t . log P_s``. Centring keeps one
dimension from dominating, sharpening (low teacher temperature) keeps the teacher from
becoming uniform; together they avoid collapse.

Numerics: everything here runs in float32 with autocast disabled. With a teacher
temperature of 0.04 the logits reach +-25 (projections are unit vectors), where bf16
softmax would visibly bias the targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Centre(nn.Module):
    """EMA centre of teacher outputs (a buffer, so it is checkpointed with the model)."""

    center: Tensor

    def __init__(self, dim: int, momentum: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"centring momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.register_buffer("center", torch.zeros(dim))

    @torch.no_grad()
    def update(self, batch_mean: Tensor) -> None:
        """``c <- tau_c c + (1 - tau_c) x_bar`` (jBOT §3)."""
        if batch_mean.shape != self.center.shape:
            raise ValueError(
                f"batch mean {tuple(batch_mean.shape)} != centre {tuple(self.center.shape)}"
            )
        self.center.mul_(self.momentum).add_(batch_mean.detach().float(), alpha=1.0 - self.momentum)


def teacher_probs(t: Tensor, center: Tensor, temp: float) -> Tensor:
    """``softmax((t - c) / temp)`` in float32, without gradient (stop-gradient, §3)."""
    with torch.no_grad(), torch.autocast(device_type=t.device.type, enabled=False):
        return F.softmax((t.detach().float() - center.float()) / temp, dim=-1)


def student_log_probs(s: Tensor, temp: float) -> Tensor:
    """``log_softmax(s / temp)`` in float32 (differentiable)."""
    with torch.autocast(device_type=s.device.type, enabled=False):
        return F.log_softmax(s.float() / temp, dim=-1)


def cross_entropy(p_t: Tensor, logp_s: Tensor) -> Tensor:
    """Row-wise ``-P_t^T log P_s`` (last axis summed), float32."""
    with torch.autocast(device_type=logp_s.device.type, enabled=False):
        return -(p_t.float() * logp_s.float()).sum(dim=-1)


def entropy(p: Tensor, eps: float = 1e-12) -> Tensor:
    """Mean entropy ``-sum p log p`` of probability rows (a collapse monitor, paper Fig. 4)."""
    with torch.no_grad():
        return -(p * torch.log(p.clamp_min(eps))).sum(-1).mean()


class CentredDistillation(nn.Module):
    """Temperatures and an own teacher centre: what the [CLS] (eq. 2) and particle (eq. 1)
    losses share (iBOT keeps separate centres for the two)."""

    def __init__(
        self,
        dim: int,
        temp_teacher: float = 0.04,  # Table 1
        temp_student: float = 0.1,  # Table 1
        centre_momentum: float = 0.9,  # Table 1
    ) -> None:
        super().__init__()
        if not (temp_teacher > 0 and temp_student > 0):
            raise ValueError(f"temperatures must be > 0, got {temp_teacher}, {temp_student}")
        self.temp_teacher, self.temp_student = float(temp_teacher), float(temp_student)
        self.centre = Centre(dim, centre_momentum)

    def teacher_probs(self, t: Tensor) -> Tensor:
        return teacher_probs(t, self.centre.center, self.temp_teacher)

