"""Online probes on the predictor's target tokens (JP-JEPA §4.1 and App. C.4; Table 7).

Table 7 (Mini and Small) uses lambda_2 = lambda_3 = lambda_4 = 1 "sg enabled": the PID,
trajectory-displacement (TD) and physics heads are trained on *detached* predictor outputs,
so they measure what the predicted particle representations encode without shaping them
(Table 3: letting these gradients through degrades fine-tuning). Each head exists only if
the dataset has its inputs:

* ``pid``: cross-entropy over the 8 particle classes of §4.1 (electron, positron, muon,
  antimuon, photon, charged hadron, charged antihadron, neutral hadron) built from the
  charge and the five type flags; ``pid_acc`` is logged too.
* ``td``: MSE on the displacement features (RS3L: tanh d0, tanh dz; JetClass adds their
  errors).
* ``physics``: the "lorentz-momentum-vector" (LMV) variant of Table 7: MSE on each
  particle's jet-frame four-vector divided by the jet's summed energy (dimensionless, so
  one scale fits every jet energy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PID_CLASSES: tuple[str, ...] = (
    "electron", "positron", "muon", "antimuon", "photon",
    "charged_hadron", "charged_antihadron", "neutral_hadron",
)  # fmt: skip
#: role -> feature name (RS3L Table I names).
DEFAULT_PID_FEATURES: dict[str, str] = {
    "charge": "charge",
    "electron": "is_electron",
    "muon": "is_muon",
    "photon": "is_photon",
    "charged_hadron": "is_ch",
    "neutral_hadron": "is_nh",
}
DEFAULT_TD_FEATURES: tuple[str, ...] = ("tanh_d0", "tanh_dz")


def pid_labels(x: Tensor, idx: Mapping[str, int]) -> Tensor:
    """8-class label of every particle (``-100`` = no type flag set), from ``x[..., F]``."""
    q = x[..., idx["charge"]]
    flag = {k: x[..., idx[k]] > 0.5 for k in ("electron", "muon", "photon", "charged_hadron",
                                                "neutral_hadron")}  # fmt: skip
    lab = torch.full(q.shape, -100, dtype=torch.long, device=x.device)
    lab = torch.where(flag["neutral_hadron"], 7, lab)
    lab = torch.where(flag["charged_hadron"], torch.where(q < 0, 6, 5), lab)
    lab = torch.where(flag["photon"], 4, lab)
    lab = torch.where(flag["muon"], torch.where(q > 0, 3, 2), lab)  # mu- is the particle
    lab = torch.where(flag["electron"], torch.where(q > 0, 1, 0), lab)  # e- is the particle
    return lab


class OnlineProbes(nn.Module):
    """Linear heads on detached target-token predictions; returns their loss terms."""

    def __init__(
        self,
        dim: int,
        pid_idx: Mapping[str, int] | None,
        td_idx: Sequence[int],
        physics: bool = True,
    ) -> None:
        super().__init__()
        self.pid_idx = dict(pid_idx) if pid_idx else None
        self.td_idx = [int(i) for i in td_idx]
        self.pid = nn.Linear(dim, len(PID_CLASSES)) if self.pid_idx else None
        self.td = nn.Linear(dim, len(self.td_idx)) if self.td_idx else None
        self.physics = nn.Linear(dim, 4) if physics else None

    def forward(
        self, pred: Tensor, x: Tensor, p4: Tensor, e_jet: Tensor, mask: Tensor
    ) -> dict[str, Tensor]:
        """``pred [B, L, D]`` predicted tokens, ``x [B, L, F]`` the targets' *full* input
        features, ``p4 [B, L, 4]`` their four-vectors, ``e_jet [B]``, ``mask [B, L]``."""
        h = pred.detach()[mask].float()
        out: dict[str, Tensor] = {}
        with torch.autocast(device_type=pred.device.type, enabled=False):
            if self.pid is not None:
                lab = pid_labels(x[mask], self.pid_idx)
                logits = self.pid(h)
                ok = lab >= 0
                out["pid"] = (F.cross_entropy(logits[ok], lab[ok]) if ok.any()
                              else logits.sum() * 0.0)  # fmt: skip
                out["pid_acc"] = ((logits.argmax(-1) == lab).float()[ok].mean() if ok.any()
                                  else logits.new_zeros(()))  # fmt: skip
            if self.td is not None:
                out["td"] = F.mse_loss(self.td(h), x[mask][:, self.td_idx].float())
            if self.physics is not None:
                scale = e_jet[:, None].expand(mask.shape)[mask].clamp(min=1e-6)
                out["physics"] = F.mse_loss(self.physics(h), p4[mask].float() / scale[:, None])
        return out
