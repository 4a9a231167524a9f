"""jBOT particle-level objective, same-view masked distillation (Tsoi & Rankin, §3, eq. (1)).

    l_Part(u) = 1/M(u) sum_i m_i(u) (-P_t^{part,i}(u)^T log P_s^{part,i}(u)),
    L_Part    = 1/2 (l_Part(u) + l_Part(v)),

where m_i(u) = 1 for particles replaced by the [MASK] token in the student's input and
M(u) = sum_i m_i(u). The teacher saw the particle, the student did not: the student
must infer it from the rest of the jet (the iBOT "online tokenizer" objective).

Batch reduction: eq. (1) is per jet; we average ``l_Part`` over the jets that have at
least one masked particle (M = 0 leaves l_Part undefined; with the Table 1 masking,
r ~ U[0, 0.5] and at least one masked particle whenever r > 0, this is almost every
jet). Stacking views u and v of B jets as 2B rows, this mean is eq. (1)'s
``1/2 (l(u) + l(v))`` averaged over the batch. The authors' code instead averages over
all masked particles of the batch (jets with many masked particles weigh more).
"""

from __future__ import annotations

import torch
from torch import Tensor

from jetforge.methods.distill_ce import CentredDistillation, cross_entropy, student_log_probs


class ParticleDistillationLoss(CentredDistillation):
    """Eq. (1) with its own teacher centre over particle tokens."""

    def forward(self, s: Tensor, t: Tensor, masked: Tensor) -> Tensor:
        """Student / teacher particle projections ``[N, P, K]`` of N jet views and the
        [MASK] positions ``[N, P]`` -> scalar (0 if nothing is masked)."""
        if s.shape != t.shape or s.dim() != 3 or masked.shape != s.shape[:2]:
            raise ValueError(
                f"need s, t [N, P, K] and masked [N, P], got {tuple(s.shape)}, {tuple(t.shape)}, "
                f"{tuple(masked.shape)}"
            )
        m = masked.bool()
        if not m.any():
            return s.sum() * 0.0  # keeps the graph; no masked particle, no signal
        jet = m.nonzero(as_tuple=True)[0]
        ce = cross_entropy(self.teacher_probs(t[m]), student_log_probs(s[m], self.temp_student))
        per_jet = torch.zeros(s.shape[0], dtype=ce.dtype, device=ce.device).index_add_(0, jet, ce)
        count = m.sum(1)
        has = count > 0
        return (per_jet[has] / count[has].to(ce.dtype)).mean()

    @staticmethod
    @torch.no_grad()
    def batch_mean(t: Tensor, real: Tensor) -> Tensor:
        """x_bar for the centre update: mean teacher output over *real* particles (the
        authors' code also averages padded slots; iBOT has no padding)."""
        return t[real.bool()].float().mean(0)
