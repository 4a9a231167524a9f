"""ViT-style particle encoder of jBOT (Tsoi & Rankin, §3 "Architecture", §4.2, Table 1).

Each particle's feature vector is one token (``Linear(F -> d_model)``), a learnable
[CLS] token is prepended, and ``n_blocks`` transformer blocks contextualise the
``N_p + 1`` tokens. There is **no positional encoding**: a jet is a set, so particle
tokens are permutation equivariant and the [CLS] output is permutation invariant.
The [CLS] output is the jet representation used downstream (paper Fig. 2).

Sizes (Table 1): jBOT-S d_model = 32, 2 blocks, 4 heads; jBOT-B d_model = 64, 4 blocks,
6 heads; feed-forward width 4 d_model; dropout 0.2 in the blocks (§4.2); GELU.

Choices the paper leaves open, and what we do:

* **Head width when d_model is not divisible by n_heads (jBOT-B: 64 / 6).** The
  authors' Keras code (github.com/hftsoi/jbot, ``utils.py``) builds
  ``MultiHeadAttention(n_heads, key_dim=d_model // n_heads)``, i.e. 6 heads of width 10:
  Q, K, V project 64 -> 60 and the output projection maps 60 -> 64. We do the same
  (``head_dim = d_model // n_heads``, attention width ``n_heads * head_dim``).
* **Norm placement.** Pre-norm blocks (``h + Drop(Attn(LN(h)))``, ``h + Drop(FFN(LN(h)))``)
  with a final LayerNorm, the ViT layout the paper cites ([29]). The authors' code uses
  post-norm; pre-norm is the more stable choice for the deeper jBOT-B and changes nothing
  else. LayerNorm eps 1e-6 as in the authors' code.
* **Padding.** The authors' model lets padded slots take part in attention (with a
  "valid" input feature). Here padded particles are key-masked in every attention
  (``F.scaled_dot_product_attention`` with a boolean mask), zeroed before the embedding
  (they may hold anything, even NaN) and zeroed in the output, so they never change any
  output. The particle axis is trimmed after the batch's last real particle, so compute
  follows real particle counts.
* **Dropout** acts on the attention and feed-forward outputs before each residual sum
  (as in the authors' blocks); attention probabilities are not dropped.
* **Input standardisation** ``(x - input_shift) / input_scale`` per feature, fixed
  constants from the config (default: identity), stored as buffers. JetNet's inputs
  (relative eta, phi, p_T) are O(0.1-1) and centred, but raw RS3L features are not
  (log p_T ~ 2 +- 1.5, log p_T,rel ~ -4.4): with them, the randomly initialised encoder
  maps every jet to almost the same [CLS] direction (mean pairwise cosine 0.99 on the
  default RS3L data, 0.6 after standardisation), and self-distillation starts from an
  already collapsed teacher (the centre absorbs the common output, the teacher becomes
  uniform). Flags (charge, particle-type one-hots) are best left unscaled (shift 0,
  scale 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.models import BACKBONE_CAPABILITIES
from jetforge.models.edgeconv import trim_padding
from jetforge.models.inputs import check_inputs, masked_slots, put_mask_token

#: Table 1 model sizes.
SIZES: Mapping[str, Mapping[str, int]] = {
    "S": {"d_model": 32, "n_blocks": 2, "n_heads": 4},  # jBOT-S
    "B": {"d_model": 64, "n_blocks": 4, "n_heads": 6},  # jBOT-B
}
LN_EPS = 1e-6


class SelfAttention(nn.Module):
    """Multi-head self-attention over real tokens only (SDPA with a key-padding mask)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if n_heads < 1 or d_model // n_heads < 1:
            raise ValueError(f"need 1 <= n_heads <= d_model, got {n_heads=} for {d_model=}")
        self.n_heads = int(n_heads)
        self.head_dim = d_model // n_heads  # Keras key_dim = d_model // n_heads (module doc)
        inner = self.n_heads * self.head_dim
        self.qkv = nn.Linear(d_model, 3 * inner)
        self.proj = nn.Linear(inner, d_model)

    def forward(self, h: Tensor, key_mask: Tensor) -> Tensor:
        B, T, _ = h.shape
        q, k, v = (
            self.qkv(h).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        )
        # boolean attn_mask: True = may attend; [B, 1, 1, T] broadcasts over heads, queries
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])
        return self.proj(o.transpose(1, 2).reshape(B, T, -1))


class Block(nn.Module):
    """Pre-norm transformer block: attention and a GELU MLP (width ``mlp_ratio * d``)."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, eps=LN_EPS)
        self.attn = SelfAttention(d_model, n_heads)
        self.norm2 = nn.LayerNorm(d_model, eps=LN_EPS)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model),
            nn.GELU(),
            nn.Linear(mlp_ratio * d_model, d_model),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, key_mask: Tensor) -> Tensor:
        h = h + self.drop(self.attn(self.norm1(h), key_mask))
        return h + self.drop(self.mlp(self.norm2(h)))


class ParticleViT(nn.Module):
    """jBOT backbone: jets ``[B, P, F]`` + mask ``[B, P]`` -> [CLS] embedding ``[B, d_model]``.

    ``size`` picks a Table 1 preset; ``d_model``/``n_blocks``/``n_heads`` override it
    (tests use tiny models). Capabilities (:mod:`jetforge.models.interface`): jet
    embedding = [CLS], tokens, encode and token masking (jBOT's [MASK]).
    """

    capabilities = BACKBONE_CAPABILITIES["vit"]

    def __init__(
        self,
        in_dim: int = 4,
        size: str = "S",
        d_model: int | None = None,
        n_blocks: int | None = None,
        n_heads: int | None = None,
        mlp_ratio: int = 4,  # Table 1: feed-forward dim 4 d_model
        dropout: float = 0.2,  # §4.2
        input_shift: Sequence[float] | None = None,
        input_scale: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
        preset = SIZES[size]
        d = int(d_model if d_model is not None else preset["d_model"])
        n_blocks = int(n_blocks if n_blocks is not None else preset["n_blocks"])
        n_heads = int(n_heads if n_heads is not None else preset["n_heads"])
        if n_blocks < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"need n_blocks >= 1 and 0 <= dropout < 1, got {n_blocks=}, {dropout=}"
            )
        self.in_dim, self._embed_dim = int(in_dim), d
        shift = (
            torch.zeros(self.in_dim)
            if input_shift is None
            else torch.tensor(input_shift, dtype=torch.float32)
        )
        scale = (
            torch.ones(self.in_dim)
            if input_scale is None
            else torch.tensor(input_scale, dtype=torch.float32)
        )
        if shift.shape != (self.in_dim,) or scale.shape != (self.in_dim,) or not (scale > 0).all():
            raise ValueError(
                f"input_shift / input_scale need {self.in_dim} values (scale > 0), "
                f"got {input_shift}, {input_scale}"
            )
        self.register_buffer("input_shift", shift)
        self.register_buffer("input_scale", scale)
        self.embed = nn.Linear(self.in_dim, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))  # zeros as in the authors' code
        self.blocks = nn.ModuleList(
            Block(d, n_heads, int(mlp_ratio), float(dropout)) for _ in range(n_blocks)
        )
        self.norm = nn.LayerNorm(d, eps=LN_EPS)
        for m in self.modules():  # Keras defaults (glorot-uniform weights, zero biases)
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def embed_dim(self) -> int:
        """Dimension of the jet representation ([CLS] output), d_model."""
        return self._embed_dim

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Parameters from input to output: [embedding + CLS], block 0, ..., last block
        (+ final norm). Used for layer-wise learning-rate decay (jBOT §4.4)."""
        groups = [[self.embed.weight, self.embed.bias, self.cls_token]]
        groups += [list(b.parameters()) for b in self.blocks]
        groups[-1] += list(self.norm.parameters())
        return groups

    def encode(
        self,
        x: Tensor,
        mask: Tensor,
        replace: Tensor | None = None,
        replacement: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(particles [B, P, d], cls [B, d])``; padded particle rows are zero.

        ``replace`` (bool ``[B, P]``) marks particle tokens whose embedding is replaced by
        ``replacement`` (broadcastable to ``[B, P, d]``): the learnable [MASK] token of
        the jBOT student (§3, particle-level objective). Padded slots are never replaced.
        """
        check_inputs(x, mask, self.in_dim)
        B, P = mask.shape
        mask = mask.bool()
        xt, mt = trim_padding(x, mask)
        n = xt.shape[1]
        xt = (xt - self.input_shift.to(xt.dtype)) / self.input_scale.to(xt.dtype)
        xt = torch.where(mt[..., None], xt, torch.zeros((), dtype=xt.dtype, device=xt.device))
        h = self.embed(xt)
        slots = masked_slots(mt, replace, replacement)
        if slots is not None:
            h = put_mask_token(h, slots, replacement)
        h = torch.cat([self.cls_token.to(h.dtype).expand(B, 1, -1), h], dim=1)
        key_mask = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=mt.device), mt], dim=1)
        for blk in self.blocks:
            h = blk(h, key_mask)
        h = self.norm(h)
        parts = torch.where(
            mt[..., None], h[:, 1:], torch.zeros((), dtype=h.dtype, device=h.device)
        )
        if n < P:
            parts = torch.cat([parts, parts.new_zeros(B, P - n, parts.shape[-1])], dim=1)
        return parts, h[:, 0]

    def tokens(
        self,
        x: Tensor,
        mask: Tensor,
        replace: Tensor | None = None,
        replacement: Tensor | None = None,
    ) -> Tensor:
        """Particle tokens ``[B, P, d]`` of :meth:`encode` (the [CLS] attends with them:
        in this encoder the two come from the same blocks)."""
        return self.encode(x, mask, replace, replacement)[0]

    @classmethod
    def config_for_data(cls, cfg: dict[str, Any], h5_path: str) -> dict[str, Any]:
        """``in_dim`` from the file and, with ``standardise_inputs: true``, the fixed
        per-feature standardisation (``input_shift``/``input_scale``, saved with the model):
        without it raw O(1-10) features give every jet nearly the same [CLS] direction and
        self-distillation collapses within tens of steps (measured on the RS3L features)."""
        from jetforge.training.data import DatasetInfo

        cfg = dict(cfg)
        if cfg.pop("standardise_inputs", False) and "input_shift" not in cfg:
            cfg["input_shift"], cfg["input_scale"] = input_standardisation(h5_path)
        cfg["in_dim"] = DatasetInfo.read(h5_path).n_features
        return cfg

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Jet representation: the [CLS] output ``[B, d_model]`` (paper Fig. 2)."""
        return self.encode(x, mask)[1]


def input_standardisation(
    h5_path: str, n_jets: int = 20000, flags: Sequence[str] = ("charge", "mask", "valid")
) -> tuple[list[float], list[float]]:
    """``(input_shift, input_scale)`` for a format-4 file: mean and standard deviation of
    each feature over the real particles of its first ``n_jets`` jets, rounded to 3
    significant digits; flags (``flags`` and ``is_*`` one-hots) keep 0 / 1. Paste the
    result into the backbone config (it is part of the saved model)."""
    import h5py
    import numpy as np

    with h5py.File(h5_path, "r") as f:
        x, m = f["particles"][:n_jets], f["mask"][:n_jets].astype(bool)
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["feature_names"]]
    real = x[m].astype(np.float64)
    shift, scale = [], []
    for i, n in enumerate(names):
        if n in flags or n.startswith("is_"):
            shift.append(0.0)
            scale.append(1.0)
        else:
            shift.append(float(f"{real[:, i].mean():.3g}"))
            scale.append(float(f"{max(real[:, i].std(), 1e-6):.3g}"))
    return shift, scale
