"""jBOT: self-distillation pre-training for jets (Tsoi & Rankin, §3, §4.2, Table 1).

Meta-architecture (paper Fig. 1), iBOT adapted to particle sets:

* two augmented views u, v of each jet (:mod:`jetforge.methods.jbot_augment`);
* **student** = backbone (``self.backbone``, the ViT of :mod:`jetforge.models.vit`, or
  any backbone with tokens, [CLS] and token masking, :mod:`jetforge.models.interface`,
  e.g. ParT) + projection head; it sees the views with a p_T fraction of particles
  replaced by a learnable [MASK] token (:mod:`jetforge.methods.jbot_masking`);
* **teacher** = same architecture and initialisation, sees the complete views, gets no
  gradients; its weights are an EMA of the student's,
  ``theta_t <- tau theta_t + (1 - tau) theta_s``, with tau following a cosine schedule
  from 0.996 to 1 over training (Table 1, after BYOL [39]);
* one projection head, shared by [CLS] and particle tokens (§4.2): an MLP
  ``d_model -> 8 d_proj -> d_proj`` (GELU), d_proj = d_model / 2 (Table 1), whose output
  is l2-normalised as in the authors' code (the paper is silent; without it logits
  divided by a 0.04 temperature are unbounded);
* loss (eq. (4)) ``L = L_Part + L_CLS + lambda L_KoLeo``: same-view masked-particle
  distillation (eq. (1)), cross-view [CLS] distillation (eq. (2)), KoLeo on the raw
  student [CLS] of view u (eq. (3), lambda = 0.01).

Per-step state (EMA teacher, the two centres) is updated in :meth:`JBOT.on_step`,
which the training engine calls after each optimiser step and before any checkpoint,
so resumption replays it exactly. ``forward`` only *records* the teacher batch means
(in training mode); validation passes therefore never move the centres.

Augmentation and masking draw from the global torch RNG, which the engine checkpoints.
The teacher runs in eval mode (no dropout), as in the authors' code.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.methods import METHOD_NEEDS
from jetforge.methods.distill_ce import entropy, student_log_probs
from jetforge.methods.ema import ema_momentum, ema_update_
from jetforge.methods.jbot_augment import JetAugment, JetFeatures
from jetforge.methods.jbot_cls_loss import ClsDistillationLoss
from jetforge.methods.jbot_masking import pt_fraction_mask
from jetforge.methods.jbot_particle_loss import ParticleDistillationLoss
from jetforge.methods.koleo_loss import KoLeoLoss
from jetforge.models.interface import require

#: ``pretrain`` config keys read by :meth:`JBOT.from_config`, with their paper values.
DEFAULTS: dict[str, Any] = {
    "feature_names": None,  # required: preset (rs3l | jetnet | jetnet3) or list of names
    "jet_pt": None,  # GeV, only for relative-p_T feature sets (JetNet: ~1000, §4.1)
    "passive_features": [],  # extra names carried unchanged by the augmentations
    "d_proj": None,  # None -> d_model / 2 (Table 1)
    "head_hidden_mult": 8,  # projection head hidden width 8 d_proj (Table 1)
    "temp_teacher": 0.04,  # Table 1
    "temp_student": 0.1,  # Table 1
    "centre_momentum": 0.9,  # tau_c, Table 1
    "ema_momentum": [0.996, 1.0],  # tau_EMA cosine schedule, Table 1
    "koleo_weight": 0.01,  # lambda, Table 1
    "mask_ratio": [0.0, 0.5],  # p_T masking ratio ~ U[0, 0.5] per view, Table 1
    "mask_prob": 1.0,  # fraction of views masked at all (authors' code option; paper: all)
    "mask_hint": False,  # authors' code option: add Linear(deta, dphi) to [MASK] tokens
    "length_buckets": 4,  # compute only: encode views in length-sorted groups (less padding)
    "augment": {
        "rotate": True,  # §4.2
        "smear": True,  # §4.2
        "lambda_qcd": 0.1,  # GeV, §4.2
        "smear_pt_min": 0.1,  # GeV, JetCLR clip
        "split_below": 30,  # §4.2
        "split_fraction": [0.3, 0.7],  # authors' code
    },
}


def augment_from_config(cfg: Mapping[str, Any]) -> tuple[JetFeatures, JetAugment]:
    """The feature map and view-making chain of a ``pretrain`` block (also what jBOT's
    Fig. 3 draws, so the figure shows exactly the training augmentations)."""
    c = {**DEFAULTS, **{k: v for k, v in cfg.items() if k in DEFAULTS}}
    if c["feature_names"] is None:
        raise ValueError(
            "jbot needs pretrain.feature_names (a preset: rs3l | jetnet | jetnet3, or the "
            "dataset's feature_names list) to know how augmentations rewrite the inputs"
        )
    feats = JetFeatures.from_spec(c["feature_names"], c["jet_pt"], c["passive_features"])
    a = {**DEFAULTS["augment"], **(c["augment"] or {})}
    unknown = set(a) - set(DEFAULTS["augment"])
    if unknown:
        raise ValueError(f"unknown pretrain.augment keys {sorted(unknown)}")
    augment = JetAugment(
        feats,
        rotate=bool(a["rotate"]),
        smear=bool(a["smear"]),
        lambda_qcd=float(a["lambda_qcd"]),
        smear_pt_min=float(a["smear_pt_min"]),
        split_below=int(a["split_below"]),
        split_fraction=(float(a["split_fraction"][0]), float(a["split_fraction"][1])),
    )
    return feats, augment


class ProjectionHead(nn.Module):
    """MLP ``d -> hidden -> d_proj`` (GELU), l2-normalised output (Table 1, authors' code)."""

    def __init__(self, d_in: int, d_proj: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_proj))

    def forward(self, h: Tensor) -> Tensor:
        return F.normalize(self.mlp(h), dim=-1, eps=1e-8)


def _stack_views(views: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Concatenate views along the batch, padding the particle axis to the widest."""
    width = max(x.shape[1] for x, _ in views)
    xs, ms = [], []
    for x, m in views:
        pad = width - x.shape[1]
        xs.append(F.pad(x, (0, 0, 0, pad)))
        ms.append(F.pad(m, (0, pad), value=False))
    return torch.cat(xs), torch.cat(ms)


class JBOT(nn.Module):
    """jBOT pre-training module; ``self.backbone`` is the student encoder that is saved."""

    sampler = "jets"  # single jets; the method makes its own views
    #: :mod:`jetforge.models.interface`: [CLS] and particle tokens of one pass, [MASK]
    needs = METHOD_NEEDS["jbot"]

    last_momentum: Tensor

    def __init__(
        self,
        backbone: nn.Module,
        feats: JetFeatures,
        augment: JetAugment | None = None,
        *,
        d_proj: int | None = None,
        head_hidden_mult: int = 8,
        temp_teacher: float = 0.04,
        temp_student: float = 0.1,
        centre_momentum: float = 0.9,
        ema: Sequence[float] = (0.996, 1.0),
        koleo_weight: float = 0.01,
        mask_ratio: Sequence[float] = (0.0, 0.5),
        mask_prob: float = 1.0,
        mask_hint: bool = False,
        length_buckets: int = 4,
    ) -> None:
        super().__init__()
        require(backbone, self.needs, "jbot")
        d = int(backbone.embed_dim)
        if int(getattr(backbone, "in_dim", len(feats.names))) != len(feats.names):
            raise ValueError(
                f"backbone expects {backbone.in_dim} features but feature_names has "
                f"{len(feats.names)}: {feats.names}"
            )
        dp = int(d_proj) if d_proj else max(d // 2, 1)
        self.feats = feats
        self.augment = augment if augment is not None else JetAugment(feats)
        self.backbone = backbone
        self.head = ProjectionHead(d, dp, int(head_hidden_mult) * dp)
        self.mask_token = nn.Parameter(torch.randn(d) * 0.02)  # authors' init
        self.hint = nn.Linear(2, d) if mask_hint else None
        self.teacher_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.teacher_head = copy.deepcopy(self.head).requires_grad_(False)
        self.cls_loss = ClsDistillationLoss(dp, temp_teacher, temp_student, centre_momentum)
        self.part_loss = ParticleDistillationLoss(dp, temp_teacher, temp_student, centre_momentum)
        self.koleo = KoLeoLoss()
        self.koleo_weight = float(koleo_weight)
        self.ema = (float(ema[0]), float(ema[1]))
        self.mask_ratio = (float(mask_ratio[0]), float(mask_ratio[1]))
        self.mask_prob = float(mask_prob)
        self.length_buckets = max(int(length_buckets), 1)
        self.register_buffer("last_momentum", torch.tensor(self.ema[0], dtype=torch.float64))
        self._pending: tuple[Tensor, Tensor] | None = None

    @classmethod
    def from_config(cls, backbone: nn.Module, cfg: Mapping[str, Any]) -> JBOT:
        """Build from the ``pretrain`` block; missing keys take :data:`DEFAULTS`."""
        c = {**DEFAULTS, **{k: v for k, v in cfg.items() if k in DEFAULTS}}
        feats, augment = augment_from_config(cfg)
        return cls(
            backbone,
            feats,
            augment,
            d_proj=c["d_proj"],
            head_hidden_mult=int(c["head_hidden_mult"]),
            temp_teacher=float(c["temp_teacher"]),
            temp_student=float(c["temp_student"]),
            centre_momentum=float(c["centre_momentum"]),
            ema=c["ema_momentum"],
            koleo_weight=float(c["koleo_weight"]),
            mask_ratio=c["mask_ratio"],
            mask_prob=float(c["mask_prob"]),
            mask_hint=bool(c["mask_hint"]),
            length_buckets=int(c["length_buckets"]),
        )

    def train(self, mode: bool = True) -> JBOT:
        """As ``nn.Module.train``, but the teacher always stays in eval mode (no dropout)."""
        super().train(mode)
        self.teacher_backbone.eval()
        self.teacher_head.eval()
        return self

    def student_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(teacher, student) module pairs kept in EMA."""
        return [(self.teacher_backbone, self.backbone), (self.teacher_head, self.head)]

    @torch.no_grad()
    def on_step(self, step: int, total_steps: int) -> None:
        """After optimiser step ``step`` (1-based) of ``total_steps``: EMA teacher update with
        the scheduled momentum, then the centre updates recorded by the last forward."""
        m = ema_momentum(step - 1, total_steps, *self.ema, schedule="cosine")
        ema_update_(self.student_pairs(), m, fused=True)
        self.last_momentum.fill_(m)
        if self._pending is not None:
            cls_mean, part_mean = self._pending
            self.cls_loss.centre.update(cls_mean)
            self.part_loss.centre.update(part_mean)
            self._pending = None

    def _replacement(self, x: Tensor) -> Tensor:
        if self.hint is None:
            return self.mask_token
        deta, dphi = self.feats.eta_phi(x)
        return self.mask_token + self.hint(torch.stack([deta, dphi], dim=-1))

    def _encode(
        self,
        net: nn.Module,
        x: Tensor,
        mask: Tensor,
        replace: Tensor | None = None,
        rep: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(cls, tokens)`` of ``net.encode`` over views sorted by particle count in
        ``length_buckets`` groups, each trimmed to its own longest view (views carry ~50 %
        padding otherwise); the result equals one call up to float rounding (padding never
        changes outputs)."""
        N = mask.shape[0]
        if self.length_buckets == 1 or N < 2 * self.length_buckets:
            t, c = net.encode(x, mask, replace, rep)
            return c, t
        order = mask.sum(1).argsort(stable=True)
        cls_parts, tok_parts = [], []
        for idx in order.tensor_split(self.length_buckets):
            r = rep[idx] if rep is not None and rep.dim() == 3 else rep
            t, c = net.encode(x[idx], mask[idx], None if replace is None else replace[idx], r)
            cls_parts.append(c)
            tok_parts.append(t)
        inv = order.argsort()
        return torch.cat(cls_parts)[inv], torch.cat(tok_parts)[inv]

    def forward(self, x: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Loss terms of a batch of jets ``x [B, P, F]``, ``mask [B, P]``; ``loss`` = eq. (4)."""
        B = x.shape[0]
        mask = mask.bool()
        with torch.no_grad():
            xs, ms = _stack_views(
                [self.augment(x, mask), self.augment(x, mask)]
            )  # u: [:B], v: [B:]
            masked, _ = pt_fraction_mask(
                self.feats.pt_weight(xs), ms, self.mask_ratio, self.mask_prob
            )
            t_cls_raw, t_part_raw = self._encode(self.teacher_backbone, xs, ms)
            t_cls, t_part = self.teacher_head(t_cls_raw), self.teacher_head(t_part_raw)
        s_cls_raw, s_part_raw = self._encode(self.backbone, xs, ms, masked, self._replacement(xs))
        s_cls, s_part = self.head(s_cls_raw), self.head(s_part_raw)

        loss_cls = self.cls_loss(s_cls[:B], s_cls[B:], t_cls[:B], t_cls[B:])
        loss_part = self.part_loss(s_part, t_part, masked)
        loss_koleo = self.koleo(s_cls_raw[:B])
        loss = loss_part + loss_cls + self.koleo_weight * loss_koleo
        if self.training and torch.is_grad_enabled():
            self._pending = (
                self.cls_loss.batch_mean(t_cls[:B], t_cls[B:]),
                self.part_loss.batch_mean(t_part, ms),
            )
        with torch.no_grad():
            w = self.feats.pt_weight(xs) * ms
            frac = (w * masked).sum(1) / w.sum(1).clamp_min(1e-12)
            terms = {
                "entropy_teacher": entropy(self.cls_loss.teacher_probs(t_cls)),
                "entropy_student": entropy(
                    student_log_probs(s_cls.detach(), self.cls_loss.temp_student).exp()
                ),
                "centre_cls_norm": self.cls_loss.centre.center.norm(),
                "centre_part_norm": self.part_loss.centre.center.norm(),
                "masked_pt_fraction": frac.mean(),
                "ema_momentum": self.last_momentum.float(),
            }
        return {
            "loss": loss,
            "loss_cls": loss_cls,
            "loss_part": loss_part,
            "loss_koleo": loss_koleo,
            **terms,
        }
