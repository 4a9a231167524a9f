"""JP-JEPA predictor: a narrow ParT over context tokens + mask tokens (§4.1; Tables 6, 7).

Input sequence (width ``dim`` = 64 for Mini and Small, Table 6 in parentheses)::

    [ W_cls c_ctx | W_in h_ctx,1 + pos_1 ... | m + pos_t1 ... ]
      context [CLS]  context tokens            one learned mask token per target slot

* The context encoder's [CLS] is fed in ("context [CLS] in predictor input: enabled",
  Table 7; ablated in Table 3). Its row and column of the pair bias are zero: "we pad the
  bias matrix so that it does not add any physical bias to this token" (§4.1).
* The pair bias over context ∪ target particles comes from the *student encoder's* pair
  embedder ("predictor use encoder pair embedder: enabled", Table 7; shared "to limit the
  FLOPs costs", App. D.1), so the predictor has the same number of heads as the encoder.
* ``pos`` is a linear embedding of each particle's (Delta eta, Delta phi): I-JEPA and
  Point-JEPA give mask tokens the position they must fill in; the pair bias already carries
  relative geometry, so this is a small, explicit addition of ours.
* ParT blocks (particle attention with the bias, then class attention with the predictor's
  own [CLS]), no dropout (I-JEPA's predictor has none). Outputs are mapped back to the
  encoder width: predicted target tokens (L_local) and the predictor [CLS] (L_global).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.models.part import (
    Block,
    attention_mask,
    class_attention_mask,
    trunc_normal_token,
)


class JEPAPredictor(nn.Module):
    """Context tokens/[CLS] + target positions -> (predicted target tokens, predicted [CLS])."""

    def __init__(
        self,
        enc_dim: int,
        dim: int = 64,
        num_heads: int = 8,
        num_layers: int = 4,
        num_cls_layers: int = 1,
        ffn_ratio: int = 4,
        pos_dim: int = 2,
    ) -> None:
        super().__init__()
        self.proj_in = nn.Linear(enc_dim, dim)
        self.cls_in = nn.Linear(enc_dim, dim)
        self.mask_token = trunc_normal_token(dim)
        self.pos_embed = nn.Linear(pos_dim, dim) if pos_dim > 0 else None
        blk = dict(dim=dim, num_heads=num_heads, ffn_ratio=ffn_ratio, dropout=0.0,
                   attn_dropout=0.0, activation_dropout=0.0)  # fmt: skip
        self.blocks = nn.ModuleList(Block(**blk) for _ in range(num_layers))
        self.cls_blocks = nn.ModuleList(Block(**blk) for _ in range(num_cls_layers))
        self.cls_token = trunc_normal_token(dim)
        self.token_norm = nn.LayerNorm(dim)
        self.cls_norm = nn.LayerNorm(dim)
        self.tokens_out = nn.Linear(dim, enc_dim)
        self.cls_out = nn.Linear(dim, enc_dim)
        self.num_heads = int(num_heads)

    def _pos(self, pos: Tensor | None, like: Tensor) -> Tensor | int:
        if self.pos_embed is None or pos is None:
            return 0
        return self.pos_embed(pos.to(like.dtype))

    def forward(
        self,
        ctx_tokens: Tensor,
        ctx_mask: Tensor,
        ctx_cls: Tensor,
        tgt_mask: Tensor,
        pair_bias: Tensor,
        ctx_pos: Tensor | None = None,
        tgt_pos: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Shapes: ``ctx_tokens [B, Lc, D]``, ``ctx_mask [B, Lc]``, ``ctx_cls [B, D]``,
        ``tgt_mask [B, Lt]``, ``pair_bias [B, H, Lc+Lt, Lc+Lt]`` (context slots first),
        positions ``[B, L, pos_dim]``. Returns ``([B, Lt, D], [B, D])``; predicted tokens
        are zero on padded target slots."""
        B, Lt = tgt_mask.shape
        h_ctx = self.proj_in(ctx_tokens) + self._pos(ctx_pos, ctx_tokens)
        h_tgt = self.mask_token.expand(B, Lt, -1).to(h_ctx.dtype)
        h_tgt = h_tgt + self._pos(tgt_pos, h_tgt)
        h = torch.cat([self.cls_in(ctx_cls)[:, None], h_ctx, h_tgt], dim=1)
        mask = torch.cat([torch.ones_like(ctx_mask[:, :1]), ctx_mask, tgt_mask], dim=1)
        amask = attention_mask(mask, F.pad(pair_bias, (1, 0, 1, 0)), self.num_heads, h.dtype)
        for blk in self.blocks:
            h = blk(h, amask)
        h = torch.where(mask[..., None], h, torch.zeros((), dtype=h.dtype, device=h.device))
        cls = self.cls_token.expand(B, 1, -1).to(h.dtype)
        cmask = class_attention_mask(mask, h.dtype)
        for blk in self.cls_blocks:
            cls = blk(h, cmask, x_cls=cls)
        pred = self.tokens_out(self.token_norm(h[:, -Lt:]))
        pred = torch.where(tgt_mask[..., None], pred, torch.zeros((), dtype=pred.dtype,
                                                                  device=pred.device))  # fmt: skip
        return pred, self.cls_out(self.cls_norm(cls.squeeze(1)))
