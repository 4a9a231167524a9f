"""jBOT jet-level objective, cross-view [CLS] distillation (Tsoi & Rankin, §3, eq. (2)).

    l_CLS(u, v) = -P_t^[CLS](u)^T log P_s^[CLS](v),
    L_CLS       = 1/2 (l_CLS(u, v) + l_CLS(v, u)),

averaged over the jets of the batch. The teacher sees the complete views, the student
the masked ones; the student [CLS] of one view is trained to predict the teacher [CLS]
of the *other* view, which makes the jet representation invariant to the augmentations.
"""

from __future__ import annotations

import torch
from torch import Tensor

from jetforge.methods.distill_ce import CentredDistillation, cross_entropy, student_log_probs


class ClsDistillationLoss(CentredDistillation):
    """Eq. (2) with its own teacher centre (iBOT keeps separate [CLS] / patch centres)."""

    def forward(self, s_u: Tensor, s_v: Tensor, t_u: Tensor, t_v: Tensor) -> Tensor:
        """Student / teacher projections ``[B, K]`` of views u and v -> scalar L_CLS."""
        if not s_u.shape == s_v.shape == t_u.shape == t_v.shape or s_u.dim() != 2:
            raise ValueError(
                "need four [B, K] tensors of one shape, got "
                f"{[tuple(a.shape) for a in (s_u, s_v, t_u, t_v)]}"
            )
        l_uv = cross_entropy(self.teacher_probs(t_u), student_log_probs(s_v, self.temp_student))
        l_vu = cross_entropy(self.teacher_probs(t_v), student_log_probs(s_u, self.temp_student))
        return 0.5 * (l_uv.mean() + l_vu.mean())

    @staticmethod
    @torch.no_grad()
    def batch_mean(t_u: Tensor, t_v: Tensor) -> Tensor:
        """x_bar for the centre update: mean teacher [CLS] output over both views."""
        return torch.cat([t_u, t_v]).float().mean(0)
