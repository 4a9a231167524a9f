"""Normformer transformer encoder of MPM (Golling et al., arXiv:2401.13537, §V and App. A).

Why this architecture: MPM needs a *permutation-equivariant* map from a set of particles to
one representation per particle (§III A, f_theta: X -> R^{N x d}); self-attention without
positional encoding is exactly that. App. A specifies the block (Fig. 7), following
Normformer (Shleifer et al., arXiv:2110.09456):

    h <- h + W_o LN_post(MHA(LN(h)))                     residual attention, 8 heads
    h <- h + W_2 Dropout(LN_mid(SiLU(W_1 LN(h))))         residual dense network, SiLU, LN

with the *final* layer of both residual branches initialised to zero, so every block starts
as the identity ("the total Transformer-Encoder block is initialized to the identity").

Placement of the post-attention LayerNorm: Normformer applies it to the attention output;
we apply it before the zero-initialised output projection W_o. A LayerNorm placed *after* a
zero-initialised layer normalises an all-zero vector, whose gradient scales as
1/sqrt(eps) (~300 for eps = 1e-5) and destabilises the first steps; before W_o it sees the
non-zero attention output and the block is still the identity at initialisation.

Padding: particles are zero-padded sets (data contract, format 4). Padded keys are excluded
from attention through SDPA's boolean ``attn_mask``, padded slots are zeroed on input and
output and excluded from the pooled mean, and the particle axis is trimmed to the batch's
last real particle, so neither the amount nor the position of padding changes any output
for real particles.

Ordering (Table I, "order backbone"): with ``ordered=True`` a learned positional embedding
of each particle's p_T rank (§V B, refs [49, 50]) is added to the embedded inputs (box B of
Fig. 1). This breaks permutation equivariance on purpose and is off by default; ranks are
the index among *real* particles in slot order, which is descending p_T by the data
contract.

Quantized inputs (Table I rows "quantized"): with ``input_tokens`` (``{"kind": "kmeans" |
"vqvae", "kwargs": <tokenizer constructor arguments>}``) the backbone holds a frozen copy of
an MPM tokenizer and replaces each particle by the code vector it is assigned (K-means: the
centroid in standardised feature space; VQ-VAE: the effective codebook vector, whose token
depends on the whole jet) before the linear embedding: "the codebook vectors assigned by the
VQ-VAE are used to replace the input vectors from the data set in box B of Fig. 1" (§V B).
The tokenizer's weights are part of the backbone's state, so a ``model.pt`` rebuilds it from
its ``backbone_cfg`` alone and every downstream use sees the same quantized inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.models import BACKBONE_CAPABILITIES
from jetforge.models.edgeconv import trim_padding
from jetforge.models.inputs import check_inputs


def particle_rank(mask: Tensor) -> Tensor:
    """Index of every slot among the real particles of its jet (``[B, P]`` long).

    With p_T-sorted inputs (data contract) this is the p_T rank; padded slots get the rank
    of the preceding real particle, which is harmless because they are never used.
    """
    return (mask.long().cumsum(dim=1) - 1).clamp_min(0)


class NormformerBlock(nn.Module):
    """One Transformer-Encoder block of MPM App. A / Fig. 7 (identity at initialisation)."""

    def __init__(
        self, dim: int, n_heads: int = 8, mlp_dim: int | None = None, dropout: float = 0.1
    ):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim={dim} must be divisible by n_heads={n_heads}")
        mlp_dim = int(mlp_dim or 2 * dim)
        self.n_heads = int(n_heads)
        self.norm_attn_in = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.norm_attn_out = nn.LayerNorm(dim)  # Normformer post-attention LN
        self.attn_out = nn.Linear(dim, dim)
        self.norm_mlp_in = nn.LayerNorm(dim)
        self.mlp_in = nn.Linear(dim, mlp_dim)
        self.norm_mlp_mid = nn.LayerNorm(mlp_dim)  # Normformer FFN LN, after the activation
        self.drop = nn.Dropout(dropout)
        self.mlp_out = nn.Linear(mlp_dim, dim)
        for last in (self.attn_out, self.mlp_out):  # App. A: zero-initialised final layers
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def attention(self, h: Tensor, mask: Tensor) -> Tensor:
        """Multi-head self-attention of ``h`` [B, P, d] over the real particles only."""
        B, P, d = h.shape
        q, k, v = self.qkv(h).view(B, P, 3, self.n_heads, d // self.n_heads).unbind(dim=2)
        # a jet without any real particle would give an all -inf softmax row (NaN): let its
        # (padded, discarded) slots attend to each other instead
        keys = mask | ~mask.any(dim=1, keepdim=True)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=keys[:, None, None, :],
        )
        return out.transpose(1, 2).reshape(B, P, d)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        h = h + self.attn_out(self.norm_attn_out(self.attention(self.norm_attn_in(h), mask)))
        mid = self.norm_mlp_mid(F.silu(self.mlp_in(self.norm_mlp_in(h))))
        return h + self.mlp_out(self.drop(mid))


class NormformerNet(nn.Module):
    """MPM backbone: jets ``[B, P, F]`` + mask ``[B, P]`` -> per-particle tokens / jet vector.

    * ``tokens(x, mask)`` -> ``[B, P, dim]``: f_theta of §III A, zero on padded slots;
    * ``forward(x, mask)`` -> ``[B, dim]``: mean over real particles. MPM's fine-tuning head is
      "a linear transform applied independently to each particle representation and then
      averaged" (§V), which equals a linear map of this mean, and the t-SNE of App. C embeds
      the same particle average.

    Paper sizes (§V): 8 blocks, inputs "embedded linearly into a 512 dimensional space",
    "model dimension of 1024" (read here as the hidden width of the dense network).

    Capabilities (:mod:`jetforge.models.interface`): jet embedding, tokens, quantized
    inputs; no token masking, so MPM replaces the masked particles' *inputs* (§III A).
    """

    capabilities = BACKBONE_CAPABILITIES["normformer"]

    def __init__(
        self,
        in_dim: int = 15,
        dim: int = 512,
        n_blocks: int = 8,
        n_heads: int = 8,
        mlp_dim: int = 1024,
        dropout: float = 0.1,
        ordered: bool = False,
        max_particles: int = 128,
        input_tokens: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        self.in_dim, self.dim, self.ordered = int(in_dim), int(dim), bool(ordered)
        self.input_tokenizer: nn.Module | None = None
        self.embed = nn.Linear(self.in_dim, self.dim)
        if input_tokens is not None:
            self._set_input_tokenizer(_build_tokenizer(input_tokens))
        self.pos = nn.Embedding(int(max_particles), self.dim) if self.ordered else None
        self.blocks = nn.ModuleList(
            NormformerBlock(self.dim, n_heads, mlp_dim, dropout) for _ in range(n_blocks)
        )
        self.norm_out = nn.LayerNorm(self.dim)  # pre-LN stacks need a final norm

    @property
    def embed_dim(self) -> int:
        """Dimension D of the jet (and per-particle) representation."""
        return self.dim

    @property
    def code_dim(self) -> int:
        """Width of what the linear embedding reads: features, or code vectors."""
        return int(self.embed.in_features)

    def _set_input_tokenizer(self, tok: nn.Module) -> None:
        if tok.kind not in ("kmeans", "vqvae"):
            raise ValueError(f"quantized inputs need a kmeans or vqvae tokenizer, got {tok.kind!r}")
        if int(tok.init_kwargs["in_dim"]) != self.in_dim:
            raise ValueError(f"input tokenizer reads {tok.init_kwargs['in_dim']} features, the "
                             f"backbone {self.in_dim}")  # fmt: skip
        self.input_tokenizer = tok.eval().requires_grad_(False)
        code_dim = self.in_dim if tok.kind == "kmeans" else int(tok.init_kwargs["latent_dim"])
        self.embed = nn.Linear(code_dim, self.dim)

    def quantize_inputs_(self, tok: nn.Module) -> dict[str, Any]:
        """Read quantized inputs from now on (a frozen copy of ``tok``; fresh embedding);
        returns the ``backbone_cfg`` entry that rebuilds this backbone."""
        import copy

        self._set_input_tokenizer(copy.deepcopy(tok))
        return {"input_tokens": {"kind": tok.kind, "kwargs": dict(tok.init_kwargs)}}

    def train(self, mode: bool = True) -> NormformerNet:
        """Like ``nn.Module.train``; a quantizing tokenizer always stays in eval mode."""
        super().train(mode)
        if self.input_tokenizer is not None:
            self.input_tokenizer.eval()
        return self

    @torch.no_grad()
    def quantize(self, x: Tensor, mask: Tensor) -> Tensor:
        """Code vector of each particle ``[B, P, code_dim]`` (features where not quantizing)."""
        tok = self.input_tokenizer
        if tok is None:
            return x
        mask = mask.bool()
        with torch.autocast(device_type=x.device.type, enabled=False):
            ids = tok.targets(x.float(), mask)
            book = tok.centroids if tok.kind == "kmeans" else tok.quantiser.codes()
            v = book.float()[ids]
        return torch.where(mask[..., None], v, torch.zeros((), dtype=v.dtype, device=v.device))

    def tokens(self, x: Tensor, mask: Tensor, quantized: bool = False) -> Tensor:
        """Per-particle representations ``[B, P, dim]`` (same P as the input; zero on padding).

        ``quantized=True``: ``x`` already holds code vectors (:meth:`quantize`; MPM masks
        particles after quantizing)."""
        if quantized or self.input_tokenizer is None:
            check_inputs(x, mask, self.code_dim)
        else:
            check_inputs(x, mask, self.in_dim)
        P_full = x.shape[1]
        mask = mask.bool()
        x, mask = trim_padding(x, mask)
        # padded slots may hold anything (even NaN): zero them before any arithmetic
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        if not quantized:
            x = self.quantize(x, mask).to(x.dtype)
        h = self.embed(x)
        if self.pos is not None:
            rank = particle_rank(mask).clamp_max(self.pos.num_embeddings - 1)
            h = h + self.pos(rank)
        for block in self.blocks:
            h = block(h, mask)
        h = self.norm_out(h)
        h = torch.where(mask[..., None], h, torch.zeros((), dtype=h.dtype, device=h.device))
        if h.shape[1] < P_full:
            h = F.pad(h, (0, 0, 0, P_full - h.shape[1]))
        return h

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Jet representation: mean of the tokens over real particles (App. C, §V)."""
        mask = mask.bool()
        h = self.tokens(x, mask)
        n = mask.sum(dim=1, keepdim=True).clamp_min(1).to(h.dtype)
        return h.sum(dim=1) / n


def _build_tokenizer(spec: Mapping[str, Any]) -> nn.Module:
    """An untrained tokenizer of ``{"kind", "kwargs"}`` (its weights come with the state)."""
    from jetforge.methods.mpm_tokenizer import TOKENIZERS

    kind = spec.get("kind")
    if kind not in ("kmeans", "vqvae"):
        raise ValueError(f"input_tokens.kind must be kmeans or vqvae, got {kind!r}")
    return TOKENIZERS[kind](**dict(spec.get("kwargs") or {}))
