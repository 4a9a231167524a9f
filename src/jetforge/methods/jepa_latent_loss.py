"""JP-JEPA latent-prediction losses (§4.1; Table 7 lambda_1 = 1, "predictor [CLS] only").

* ``L_local``: smooth-L1 between each predicted target token and the teacher's token of
  that particle, averaged over the real target particles of the batch (and channels).
* ``L_global``: smooth-L1 between the predictor [CLS] and the teacher [CLS] of the full jet.

The teacher side is always detached (stop-gradient, §4.1: "we do not backpropagate
gradients through the teacher branch"). Float32 with autocast off; ``beta`` is the
smooth-L1 transition point (PyTorch / I-JEPA default 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def local_loss(pred: Tensor, target: Tensor, mask: Tensor, beta: float = 1.0) -> Tensor:
    """Mean smooth-L1 over real target slots: ``pred``/``target`` ``[B, L, D]``, ``mask [B, L]``."""
    if pred.shape != target.shape or mask.shape != pred.shape[:2]:
        raise ValueError(
            f"shapes differ: pred {tuple(pred.shape)}, target {tuple(target.shape)}, "
            f"mask {tuple(mask.shape)}"
        )
    with torch.autocast(device_type=pred.device.type, enabled=False):
        per = F.smooth_l1_loss(pred.float(), target.detach().float(), beta=beta, reduction="none")
        w = mask.float()[..., None]
        return (per * w).sum() / (w.sum() * pred.shape[-1]).clamp(min=1.0)


def global_loss(pred_cls: Tensor, target_cls: Tensor, beta: float = 1.0) -> Tensor:
    """Mean smooth-L1 between predicted and teacher [CLS] ``[B, D]``."""
    with torch.autocast(device_type=pred_cls.device.type, enabled=False):
        return F.smooth_l1_loss(pred_cls.float(), target_cls.detach().float(), beta=beta)
