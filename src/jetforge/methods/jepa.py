"""JP-JEPA (Letellier, Vacheret, Jurie, arXiv:2606.14813): latent prediction on particle clouds.

The meta-architecture (§4.1, Fig. 4) composes, per batch of single jets:

1. drop jets with fewer than 2 particles (one to predict, one to see; Table 7: "> V");
2. order the particles greedily by (Delta eta, Delta phi) proximity and sample one
   contiguous target block and a contiguous context block minus the target
   (:mod:`jetforge.methods.jepa_masking`; ratios of Table 7);
3. *student* = the backbone (ParT, Table 6) on the context particles only, after per-jet
   dropout of the PID (p = 0.3) and TD (p = 0.6) feature groups ("applied only to the
   context provided by the student", §4.1);
4. *teacher* = EMA copy of the student on the full jet with all features, no gradient;
   targets are its particle tokens at the target positions (layer-normalised, I-JEPA) and
   its [CLS];
5. *predictor* (:mod:`jetforge.methods.jepa_predictor`) = a narrow ParT over [context [CLS],
   context tokens, mask tokens], with the student's pair embedder giving the bias;
6. loss (eq. (8)) = L_local + lambda_1 L_global + lambda_5 L_{KoLeo|SIGReg} on the context
   [CLS] (Table 3 discussion: the context [CLS] is "optimized through the predictor and the
   KoLeo regularization"), plus the stop-gradient online probes (lambda_2..4 = 1), which only
   train their own heads.

The teacher follows eq. (9), theta_bar <- tau theta_bar + (1 - tau) theta, after every
optimiser step through the engine's ``on_step`` hook, with tau rising linearly from 0.9995
to 0.99999 over the run (Table 7); batch-norm running statistics are copied from the
student. The teacher is always in eval mode (deterministic targets, no dropout).

``sampler = "jets"``: :func:`jetforge.training.pretrain.run_pretrain` feeds single-jet
batches to ``forward(x, mask)``; ``.backbone`` (the student) is what gets saved.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.methods import METHOD_NEEDS
from jetforge.methods.ema import ema_momentum, ema_update_
from jetforge.methods.jepa_latent_loss import global_loss, local_loss
from jetforge.methods.jepa_masking import compact, gather_slots, greedy_sequence, sample_blocks
from jetforge.methods.jepa_predictor import JEPAPredictor
from jetforge.methods.jepa_probes import DEFAULT_PID_FEATURES, DEFAULT_TD_FEATURES, OnlineProbes
from jetforge.methods.koleo_loss import KoLeoLoss
from jetforge.methods.sigreg_loss import SIGRegLoss
from jetforge.models.edgeconv import trim_padding
from jetforge.models.interface import require
from jetforge.models.part import PREDICTOR_SIZES, fourvec_indices

#: Table 7 / §4.4: lambda_5 per regulariser.
DEFAULT_LAMBDA_REG = {"koleo": 0.1, "sigreg": 0.05}


def _indices(names: Sequence[str], wanted: Sequence[str]) -> list[int]:
    return [list(names).index(w) for w in wanted if w in names]


class JPJEPA(nn.Module):
    """Student ParT + EMA teacher + predictor + online probes; see module docstring."""

    sampler = "jets"
    #: :mod:`jetforge.models.interface`: tokens + [CLS] of one pass, and the pair embedder
    #: the predictor reuses (§4.1; ParT)
    needs = METHOD_NEEDS["jepa"]

    def __init__(
        self,
        backbone: nn.Module,
        *,
        predictor: Mapping[str, Any] | None = None,
        target_ratio: Sequence[float] = (0.25, 0.35),
        context_ratio: Sequence[float] | None = (0.4, 0.7),
        ema: Sequence[float] = (0.9995, 0.99999),
        regularizer: str = "koleo",
        lambda_global: float = 1.0,
        lambda_reg: float | None = None,
        lambda_pid: float = 1.0,
        lambda_td: float = 1.0,
        lambda_physics: float = 1.0,
        pid_dropout: float = 0.3,
        td_dropout: float = 0.6,
        pid_features: Mapping[str, str] | None = None,
        td_features: Sequence[str] | None = None,
        pos_features: Sequence[str] = ("deta", "dphi"),
        probes: bool = True,
        target_layernorm: bool = True,
        smooth_l1_beta: float = 1.0,
        sigreg_slices: int = 256,
        n_targets: int = 1,
        min_particles: int = 2,
        val_seed: int = 0,
    ) -> None:
        super().__init__()
        require(backbone, self.needs, "jepa")
        if n_targets != 1:
            raise ValueError(f"only V = 1 target block is implemented (Table 7), got {n_targets}")
        if regularizer not in DEFAULT_LAMBDA_REG:
            raise ValueError(
                f"regularizer must be one of {sorted(DEFAULT_LAMBDA_REG)}, got {regularizer!r}"
            )
        if min_particles < 2:
            raise ValueError(f"min_particles must be >= 2 (target + context), got {min_particles}")
        self.backbone = backbone
        self.teacher = copy.deepcopy(backbone).requires_grad_(False).eval()
        names = backbone.feature_names
        fv = fourvec_indices(names, backbone.fourvec_features)
        self.i_logpt, self.i_eta, self.i_phi = fv["log_pt"], fv["eta"], fv["phi"]
        pid_map = dict(DEFAULT_PID_FEATURES if pid_features is None else pid_features)
        has_pid = all(v in names for v in pid_map.values())
        pid_idx = {k: names.index(v) for k, v in pid_map.items()} if has_pid else None
        self.pid_group = sorted(pid_idx.values()) if pid_idx else []
        self.td_group = _indices(names, DEFAULT_TD_FEATURES if td_features is None else td_features)
        self.pos_idx = _indices(names, pos_features)
        if len(self.pos_idx) != len(pos_features):
            raise KeyError(f"pos_features {list(pos_features)} not all in {names}")
        pcfg = {**PREDICTOR_SIZES["mini"], **dict(predictor or {})}
        self.predictor = JEPAPredictor(backbone.embed_dim, pos_dim=len(self.pos_idx), **pcfg)
        if self.predictor.num_heads != backbone.num_heads:
            raise ValueError(
                f"the predictor reuses the encoder's pair embedder, so it needs as many heads "
                f"({self.predictor.num_heads} vs {backbone.num_heads})"
            )
        self.probes = OnlineProbes(backbone.embed_dim, pid_idx, self.td_group) if probes else None
        self.target_ratio = tuple(float(r) for r in target_ratio)
        self.context_ratio = (
            None if context_ratio is None else tuple(float(r) for r in context_ratio)
        )
        self.ema_start, self.ema_end = (float(e) for e in ema)
        self.regularizer = regularizer
        self.reg = KoLeoLoss() if regularizer == "koleo" else SIGRegLoss(num_slices=sigreg_slices)
        self.lambda_global = float(lambda_global)
        self.lambda_reg = float(
            DEFAULT_LAMBDA_REG[regularizer] if lambda_reg is None else lambda_reg
        )
        self.lambda_probe = {"pid": float(lambda_pid), "td": float(lambda_td),
                             "physics": float(lambda_physics)}  # fmt: skip
        self.pid_dropout, self.td_dropout = float(pid_dropout), float(td_dropout)
        self.target_layernorm = bool(target_layernorm)
        self.beta = float(smooth_l1_beta)
        self.min_particles = int(min_particles)
        self.val_seed = int(val_seed)
        # tau of the latest EMA update (logged); before the first one, the first update's
        self.register_buffer("ema_tau", torch.tensor(self.ema_start, dtype=torch.float64))

    # ------------------------------------------------------------------ construction
    _CONFIG_KEYS = (
        "predictor", "target_ratio", "context_ratio", "ema", "regularizer", "lambda_global",
        "lambda_reg", "lambda_pid", "lambda_td", "lambda_physics", "pid_dropout", "td_dropout",
        "pid_features", "td_features", "pos_features", "probes", "target_layernorm",
        "smooth_l1_beta", "sigreg_slices", "n_targets", "min_particles", "val_seed",
    )  # fmt: skip

    @classmethod
    def from_config(cls, backbone: nn.Module, cfg: Mapping[str, Any]) -> JPJEPA:
        """Build from the ``pretrain`` block; engine keys (epochs, lr ...) are ignored."""
        return cls(backbone, **{k: cfg[k] for k in cls._CONFIG_KEYS if k in cfg})

    def train(self, mode: bool = True) -> JPJEPA:
        """As ``nn.Module.train``, but the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def on_step(self, step: int, total: int) -> None:
        """EMA teacher update after optimiser step ``step`` of ``total`` (engine hook)."""
        tau = ema_momentum(step - 1, total, self.ema_start, self.ema_end, schedule="linear")
        ema_update_([(self.teacher, self.backbone)], tau)
        self.ema_tau.fill_(tau)

    # ------------------------------------------------------------------ forward
    def _drop_features(self, x: Tensor, gen: torch.Generator | None) -> Tensor:
        """Zero the PID / TD feature groups of whole jets with p = pid/td_dropout (§4.1)."""
        for group, p in ((self.pid_group, self.pid_dropout), (self.td_group, self.td_dropout)):
            if group and p > 0:
                drop = (torch.rand(x.shape[0], generator=gen) < p).to(x.device)
                cols = torch.zeros(x.shape[-1], dtype=torch.bool, device=x.device)
                cols[group] = True
                x = x.masked_fill(drop[:, None, None] & cols, 0.0)
        return x

    def forward(self, x: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Loss terms of a batch ``x [B, P, F]``, ``mask [B, P]``; ``loss`` is minimised.

        In eval mode the masks and dropouts come from a fixed seed (``val_seed``), so the
        validation loss of different epochs is measured on the same views.
        """
        gen = None if self.training else torch.Generator().manual_seed(self.val_seed)
        mask = mask.bool()
        keep = mask.sum(1) >= self.min_particles
        x, mask = trim_padding(x[keep], mask[keep])
        if x.shape[0] == 0:
            zero = sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)
            return {"loss": zero}
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        bb = self.backbone
        p4 = bb.fourvectors(x)
        start = x[..., self.i_logpt].masked_fill(~mask, float("-inf")).argmax(dim=1)
        order = greedy_sequence(x[..., self.i_eta], x[..., self.i_phi], mask, start)
        x, mask, p4 = gather_slots(x, order), gather_slots(mask, order), gather_slots(p4, order)
        tgt_sel, ctx_sel = sample_blocks(mask.sum(1), mask.shape[1], self.target_ratio,
                                         self.context_ratio, gen)  # fmt: skip
        ctx_idx, ctx_mask = compact(ctx_sel)
        tgt_idx, tgt_mask = compact(tgt_sel)
        x_ctx = gather_slots(x, ctx_idx).masked_fill(~ctx_mask[..., None], 0.0)
        x_tgt = gather_slots(x, tgt_idx)

        ctx_tokens, ctx_cls = bb.encode(self._drop_features(x_ctx, gen), ctx_mask)
        with torch.no_grad():
            t_tokens, t_cls = self.teacher.encode(x, mask)
            target = gather_slots(t_tokens, tgt_idx)
            if self.target_layernorm:
                target = F.layer_norm(target.float(), (target.shape[-1],))
        p4_ctx, p4_tgt = gather_slots(p4, ctx_idx), gather_slots(p4, tgt_idx)
        bias = bb.pair_bias(torch.cat([p4_ctx, p4_tgt], 1), torch.cat([ctx_mask, tgt_mask], 1))
        pos = self.pos_idx
        pred, pred_cls = self.predictor(
            ctx_tokens, ctx_mask, ctx_cls, tgt_mask, bias,
            x_ctx[..., pos] if pos else None, x_tgt[..., pos] if pos else None,
        )  # fmt: skip

        terms = {"local": local_loss(pred, target, tgt_mask, self.beta),
                 "global": global_loss(pred_cls, t_cls, self.beta),
                 self.regularizer: self.reg(ctx_cls) if self.regularizer == "koleo"
                 else self.reg(ctx_cls, generator=gen)}  # fmt: skip
        loss = (terms["local"] + self.lambda_global * terms["global"]
                + self.lambda_reg * terms[self.regularizer])  # fmt: skip
        if self.probes is not None:
            e_jet = (p4[..., 3] * mask).sum(1)
            probe = self.probes(pred, x_tgt, p4_tgt, e_jet, tgt_mask)
            for k, v in probe.items():
                if k in self.lambda_probe:
                    loss = loss + self.lambda_probe[k] * v
            terms.update(probe)
        if self.training:  # the schedule, logged every step (not a validation metric)
            terms["ema_tau"] = self.ema_tau.float()
        return {"loss": loss, **terms}
