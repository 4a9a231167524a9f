"""Particle Transformer (ParT; Qu, Li, Qian, arXiv:2202.03772) as the JP-JEPA backbone.

Architecture (ParT §4, Fig. 3; sizes of JP-JEPA Table 6)::

    x [B, P, F] --BN--(LN, Linear, GELU) x len(embed_dims)--> h_i            particle embedding
    p4 [B, P, 4] --> U_ij = (ln dR, ln kT, ln z, ln m^2) --BN--(Linear, BN, GELU)... --> b_ij^h
    h <- PAB(h, bias=b)  x num_layers        particle attention blocks, pair bias per head
    c <- CAB(c, [c, h])  x num_cls_layers    class attention blocks on a [CLS] token
    z = LN(c)                                 jet representation ([CLS])

Each block is ParT's NormFormer-style block: pre-LN multi-head attention with learnable
per-head scales (``c_attn``) and a post-attention LN, then pre-LN FFN (GELU, LN on the
hidden layer) with learnable residual scaling (``w_resid``); dropout 0.1 in particle blocks,
0 in class blocks (reference defaults).

Why our own module rather than weaver-core's ``ParticleTransformer`` (hqucms/weaver-core,
``weaver/nn/model/ParticleTransformer.py``, which this file follows and credits):

* JEPA needs the per-particle tokens after the particle blocks (teacher targets, student
  context) *and* the [CLS] in one pass, and a predictor that reuses the encoder's pair
  embedder on a different particle set; the reference returns only the [CLS]/logits and
  builds its bias inside ``forward``.
* "Padding never affects outputs" (data contract): the reference's ``BatchNorm1d`` layers
  compute training-mode statistics over padded particles and padded pairs too, and its
  ``SequenceTrimmer`` randomly permutes and truncates jets in training. Here both batch
  norms see only real particles / real pairs (rows are packed before the MLPs and scattered
  back), and the particle axis is only trimmed after the last real particle.
* Attention goes through ``F.scaled_dot_product_attention`` with the pair bias as a float
  ``attn_mask`` ([B, H, P, P]) plus -inf on padded keys (``nn.MultiheadAttention`` in the
  reference). Padded query rows attend only to themselves, so no row is ever all -inf
  (no NaN, even for an empty jet) and real rows never see padding.

Kept from the reference: pairwise features computed from four-vectors with the same
formulas and eps clamps, self-pairs included (in float64 here, see
:func:`pairwise_features`), the symmetric pair embedding evaluated once per
unordered pair (i <= j), pre-activation pair outputs (no GELU after the last layer),
class attention whose query is the un-normalised [CLS] while keys/values are LN([CLS], h),
the [CLS] token drawn from a truncated normal with std 0.02.

Four-vectors
------------
Datasets store features by name (``feature_names`` attribute, data contract format 4), not
four-vectors. :func:`fourvec_from_features` builds (px, py, pz, E) *in the jet frame* from
``log p_T``, ``Delta eta`` and ``Delta phi`` (names configured by ``fourvec_features``):
``px = pT cos dphi, py = pT sin dphi, pz = pT sinh deta, E = pT cosh deta`` (massless).
The pairwise features are invariant under the rotation in phi and, for massless
particles, under the longitudinal boost that takes the lab frame to this one, so they
equal the lab-frame values ParT uses. The lab energy (``log_e``) is *not* used by default:
combined with jet-relative angles it is inconsistent (for a jet at eta_J it over-states E by
cosh(eta_J + deta) / cosh(deta)), and m^2_ij of a collinear pair (~ pT_i pT_j dR^2) is far
smaller than E_i E_j, so even a 1 % energy mismatch would dominate it. Set
``fourvec_features["log_e"]`` only for datasets whose eta/phi features are lab-frame.

A role may also be ``[name, centre, scale]`` for a feature stored weaver-standardised as
``(raw - centre) * scale`` (``jetforge.jets.featuresets``: ParT's ``part_pt_log`` is
``[part_pt_log, 1.7, 0.7]``); the raw value is ``stored / scale + centre``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.models import BACKBONE_CAPABILITIES
from jetforge.models.edgeconv import trim_padding
from jetforge.models.inputs import check_inputs, masked_slots, put_mask_token

#: JP-JEPA Table 6 (latent dim, particle-embedding MLP, heads, PAB / CAB depth); the
#: pair embedder is [64, 64, 64] for every size. "mini" is the original ParT (2.14 M params
#: for JetClass's 17 inputs and 10 classes, ParT Table 3).
PART_SIZES: dict[str, dict[str, Any]] = {
    "mini": {"embed_dims": [128, 512, 128], "num_heads": 8, "num_layers": 8, "num_cls_layers": 2},
    "small": {"embed_dims": [384, 512, 384], "num_heads": 8, "num_layers": 12, "num_cls_layers": 3},
}
#: Table 6 values in parentheses: the predictor of each size during pre-training.
PREDICTOR_SIZES: dict[str, dict[str, Any]] = {
    "mini": {"dim": 64, "num_heads": 8, "num_layers": 4, "num_cls_layers": 1},
    "small": {"dim": 64, "num_heads": 8, "num_layers": 6, "num_cls_layers": 1},
}

#: Feature names of the four-vector inputs; RS3L Table I names (jetforge.jets.features).
DEFAULT_FOURVEC_FEATURES: dict[str, str] = {"log_pt": "log_pt", "eta": "deta", "phi": "dphi"}


#: role -> feature name, or [name, centre, scale] for a standardised feature
FourvecSpec = Mapping[str, str | Sequence[Any]]


def fourvec_columns(
    feature_names: Sequence[str], fourvec_features: FourvecSpec | None = None
) -> dict[str, tuple[int, float, float]]:
    """Role -> ``(column, centre, scale)`` for roles ``log_pt, eta, phi`` (+ optional ``log_e``).

    Each role maps to a feature name, or to ``[name, centre, scale]`` for a standardised
    feature (raw = stored / scale + centre); plain names mean centre 0, scale 1.
    """
    spec = dict(DEFAULT_FOURVEC_FEATURES if fourvec_features is None else fourvec_features)
    unknown = set(spec) - {"log_pt", "eta", "phi", "log_e"}
    missing = {"log_pt", "eta", "phi"} - set(spec)
    if unknown or missing:
        raise ValueError(
            f"fourvec_features needs keys log_pt, eta, phi (+ optional log_e); "
            f"unknown {sorted(unknown)}, missing {sorted(missing)}"
        )
    out = {}
    for role, v in spec.items():
        name, centre, scale = (v, 0.0, 1.0) if isinstance(v, str) else (v[0], v[1], v[2])
        if name not in feature_names:
            raise KeyError(
                f"four-vector input {role!r} needs feature {name!r}, "
                f"not among {list(feature_names)}"
            )
        if float(scale) == 0.0:
            raise ValueError(f"four-vector input {role!r}: scale must be non-zero")
        out[role] = (list(feature_names).index(name), float(centre), float(scale))
    return out


def fourvec_indices(
    feature_names: Sequence[str], fourvec_features: FourvecSpec | None = None
) -> dict[str, int]:
    """Column of each four-vector input role (see :func:`fourvec_columns`)."""
    return {r: c[0] for r, c in fourvec_columns(feature_names, fourvec_features).items()}


def fourvec_from_features(
    x: Tensor, feature_names: Sequence[str], fourvec_features: FourvecSpec | None = None
) -> Tensor:
    """(px, py, pz, E) ``[..., 4]`` of every particle in the jet frame (see module docstring).

    ``x[..., F]`` holds the features named ``feature_names``; ``fourvec_features`` maps the
    roles ``log_pt`` (natural log of pT in GeV), ``eta`` (Delta eta to the jet axis), ``phi``
    (Delta phi) and optionally ``log_e`` (lab energy; only for lab-frame angles) to names
    (or ``[name, centre, scale]``). Returned in float64 (see :func:`pairwise_features`).
    """
    cols = fourvec_columns(feature_names, fourvec_features)
    with torch.autocast(device_type=x.device.type, enabled=False):
        xf = x.double()

        def raw(role: str) -> Tensor:
            i, centre, scale = cols[role]
            return xf[..., i] / scale + centre

        pt = torch.exp(raw("log_pt"))
        eta, phi = raw("eta"), raw("phi")
        pz = pt * torch.sinh(eta)
        e = torch.exp(raw("log_e")) if "log_e" in cols else pt * torch.cosh(eta)
        return torch.stack([pt * torch.cos(phi), pt * torch.sin(phi), pz, e], dim=-1)


def _delta_phi(a: Tensor, b: Tensor) -> Tensor:
    return torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi


def pairwise_features(pi: Tensor, pj: Tensor, eps: float = 1e-8) -> Tensor:
    """ParT interaction features ``(ln dR, ln kT, ln z, ln m^2)`` of four-vector pairs.

    ``pi``, ``pj``: ``[..., 4]`` (px, py, pz, E), broadcastable. ParT eqs. (3)-(6) and JP-JEPA
    App. B eqs. (14)-(17): dR in (rapidity, phi), kT = min(pT) dR, z = min(pT)/(pT_i+pT_j),
    m^2 = (E_i+E_j)^2 - |p_i+p_j|^2; every argument is clamped at ``eps`` before the log,
    as in the reference (so self-pairs and zero-mass pairs give ln(eps)).

    Float64, unlike the reference: m^2 of a collinear pair (~ pT_i pT_j dR^2) is a small
    difference of numbers ~ E^2, and in float32 the rounding of E and |p| (which even
    differs between vectorised and scalar ``exp``/``sinh``) leaves ~1e-7 E^2 of noise, so
    ln m^2 of self-pairs and photon pairs jumped by O(1) with the memory layout.
    """
    with torch.autocast(device_type=pi.device.type, enabled=False):
        pi, pj = pi.double(), pj.double()

        def pt_y_phi(p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            px, py, pz, e = p.unbind(-1)
            pt = torch.sqrt(px * px + py * py)
            y = 0.5 * torch.log1p(2 * pz / (e - pz).clamp(min=1e-20))
            return pt, y, torch.atan2(py, px)

        pt_i, y_i, phi_i = pt_y_phi(pi)
        pt_j, y_j, phi_j = pt_y_phi(pj)
        delta = torch.sqrt((y_i - y_j) ** 2 + _delta_phi(phi_i, phi_j) ** 2)
        ptmin = torch.minimum(pt_i, pt_j)
        lndelta = torch.log(delta.clamp(min=eps))
        lnkt = torch.log((ptmin * delta).clamp(min=eps))
        lnz = torch.log((ptmin / (pt_i + pt_j).clamp(min=eps)).clamp(min=eps))
        s = pi + pj
        m2 = s[..., 3] ** 2 - (s[..., :3] ** 2).sum(-1)
        lnm2 = torch.log(m2.clamp(min=eps))
        return torch.stack([lndelta, lnkt, lnz, lnm2], dim=-1)


class PackedBatchNorm(nn.BatchNorm1d):
    """BatchNorm over packed rows ``[N, C]`` of *real* entries only.

    Packing is what keeps padding out of the statistics. A training batch with a single row
    (one jet with one particle) falls back to the running statistics instead of failing.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] < 2:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


class ParticleEmbed(nn.Module):
    """ParT particle embedding: BN on inputs, then (LN, Linear, GELU) per entry of ``dims``."""

    def __init__(self, in_dim: int, dims: Sequence[int]) -> None:
        super().__init__()
        self.input_bn = PackedBatchNorm(in_dim)
        layers: list[nn.Module] = []
        d = in_dim
        for out in dims:
            layers += [nn.LayerNorm(d), nn.Linear(d, int(out)), nn.GELU()]
            d = int(out)
        self.mlp = nn.Sequential(*layers)
        self.out_dim = d

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``[B, P, F]`` -> ``[B, P, D]``; the MLP runs on real particles only (zeros elsewhere)."""
        rows = self.mlp(self.input_bn(x[mask]))
        out = rows.new_zeros(*mask.shape, self.out_dim)
        out[mask] = rows
        return out


class PairEmbed(nn.Module):
    """ParT pair embedding: 4 interaction features -> one attention bias per head.

    BN on the inputs, then (Linear, BN, GELU) for each width in ``dims + [num_heads]`` with
    the last GELU dropped ("pre-activation" pair features, the reference default). The
    Linear layers are ParT's 1x1 convolutions. Evaluated once per unordered pair of real
    particles (the features are symmetric) and scattered into a dense ``[B, H, P, P]``.
    """

    def __init__(self, dims: Sequence[int], num_heads: int, in_dim: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [PackedBatchNorm(in_dim)]
        d = in_dim
        for out in [*map(int, dims), int(num_heads)]:
            layers += [nn.Linear(d, out), PackedBatchNorm(out), nn.GELU()]
            d = out
        self.mlp = nn.Sequential(*layers[:-1])
        self.num_heads = int(num_heads)

    def forward(self, p4: Tensor, mask: Tensor) -> Tensor:
        """Bias ``[B, H, P, P]`` (float32) from four-vectors ``[B, P, 4]``; zero off real pairs."""
        B, P, _ = p4.shape
        i, j = torch.triu_indices(P, P, device=p4.device)
        valid = mask[:, i] & mask[:, j]  # [B, n_pairs]
        b_idx, k = valid.nonzero(as_tuple=True)
        ii, jj = i[k], j[k]
        feats = pairwise_features(p4[b_idx, ii], p4[b_idx, jj]).float()
        with torch.autocast(device_type=p4.device.type, enabled=False):
            vals = self.mlp(feats)  # [n_real_pairs, H], float32
        out = vals.new_zeros(B, P, P, self.num_heads)
        out[b_idx, ii, jj] = vals
        out[b_idx, jj, ii] = vals
        return out.permute(0, 3, 1, 2)


def attention_mask(mask: Tensor, bias: Tensor | None, num_heads: int, dtype: torch.dtype) -> Tensor:
    """Float SDPA mask ``[B, H|1, P, P]``: pair bias on real keys, -inf on padded keys.

    A padded query attends to itself only, so no row is all -inf (SDPA would return NaN,
    whose gradient leaks even through ``torch.where``); real queries never see padding.
    """
    B, P = mask.shape
    eye = torch.eye(P, dtype=torch.bool, device=mask.device)
    allowed = mask[:, None, :] | (~mask[:, :, None] & eye)  # [B, P(query), P(key)]
    base = torch.zeros(B, 1, P, P, dtype=dtype, device=mask.device)
    base = base.masked_fill(~allowed[:, None], float("-inf"))
    return base if bias is None else base + bias.to(dtype)


class Attention(nn.Module):
    """Multi-head attention through SDPA, with ParT's learnable per-head output scale."""

    def __init__(self, dim: int, num_heads: int, attn_dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads, self.head_dim = int(num_heads), dim // num_heads
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.c_attn = nn.Parameter(torch.ones(num_heads))  # ParT "scale_heads"
        self.attn_dropout = float(attn_dropout)

    def forward(self, q_in: Tensor, kv_in: Tensor, attn_mask: Tensor) -> Tensor:
        B, Lq, D = q_in.shape
        w_q, w_kv = self.in_proj.weight.split([D, 2 * D])
        b_q, b_kv = self.in_proj.bias.split([D, 2 * D])
        q = F.linear(q_in, w_q, b_q)
        k, v = F.linear(kv_in, w_kv, b_kv).chunk(2, dim=-1)

        def heads(t: Tensor) -> Tensor:
            return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

        o = F.scaled_dot_product_attention(
            heads(q),
            heads(k),
            heads(v),
            attn_mask=attn_mask.to(q.dtype),
            dropout_p=self.attn_dropout if self.training else 0.0,
        )  # [B, H, Lq, hd]
        o = o * self.c_attn[None, :, None, None].to(o.dtype)
        return self.out_proj(o.transpose(1, 2).flatten(2))


class Block(nn.Module):
    """ParT block (particle attention without ``x_cls``, class attention with it)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_ratio: int = 4,
        dropout: float = 0.1,
        attn_dropout: float = 0.1,
        activation_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        ffn = dim * int(ffn_ratio)
        self.pre_attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, attn_dropout)
        self.post_attn_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.pre_fc_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn)
        self.act_dropout = nn.Dropout(activation_dropout)
        self.post_fc_norm = nn.LayerNorm(ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.w_resid = nn.Parameter(torch.ones(dim))  # ParT "scale_resids"

    def forward(self, x: Tensor, attn_mask: Tensor, x_cls: Tensor | None = None) -> Tensor:
        """Particle attention (``x_cls`` None) returns new ``x``; class attention returns new
        ``x_cls`` ``[B, 1, D]``, its keys/values being LN([x_cls, x]) (``attn_mask`` then
        covers the ``1 + P`` keys)."""
        if x_cls is None:
            residual = x
            h = self.pre_attn_norm(x)
            h = self.attn(h, h, attn_mask)
        else:
            residual = x_cls
            u = self.pre_attn_norm(torch.cat([x_cls, x], dim=1))
            h = self.attn(x_cls, u, attn_mask)  # un-normalised query, as in the reference
        h = self.dropout(self.post_attn_norm(h)) + residual
        residual = h
        f = self.act_dropout(F.gelu(self.fc1(self.pre_fc_norm(h))))
        f = self.dropout(self.fc2(self.post_fc_norm(f)))
        return f + self.w_resid * residual


def class_attention_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """``[B, 1, 1, 1 + P]`` float mask for class attention: [CLS] key always visible."""
    keys = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
    m = torch.zeros(keys.shape, dtype=dtype, device=mask.device)
    return m.masked_fill(~keys, float("-inf"))[:, None, None, :]


def trunc_normal_token(dim: int) -> nn.Parameter:
    """A learned ``[1, 1, dim]`` token drawn from N(0, 0.02^2) truncated at +-2 (reference init)."""
    p = nn.Parameter(torch.zeros(1, 1, dim))
    nn.init.trunc_normal_(p, std=0.02, a=-2.0, b=2.0)
    return p


class ParticleTransformer(nn.Module):
    """ParT backbone: jets ``[B, P, F]`` + mask ``[B, P]`` -> [CLS] ``[B, D]`` (JP-JEPA Table 6).

    ``size`` ("mini" | "small") fills every architecture argument left at None from
    :data:`PART_SIZES`. ``feature_names`` are the dataset's per-particle features (default:
    RS3L Table I, the features jetforge writes) and ``fourvec_features`` names the inputs
    of the four-vectors (see :func:`fourvec_from_features`); both are kept in the saved
    config so a ``model.pt`` is self-describing.

    ``length_buckets``: the particle blocks run on up to this many groups of jets of
    similar length, each trimmed to its own longest jet (jets never interact in the blocks,
    so outputs are unchanged; with ~30 of up to ~100 particles per jet it halves the work).
    The embeddings and their batch norms always see the whole batch.

    Offers every capability of :mod:`jetforge.models.interface` that reads particles
    (jet embedding = [CLS], tokens, encode, token masking, pair bias), so every
    pre-training method of :data:`jetforge.methods.METHODS` runs on it.
    """

    capabilities = BACKBONE_CAPABILITIES["part"]

    def __init__(
        self,
        in_dim: int = 15,
        size: str = "mini",
        embed_dims: Sequence[int] | None = None,
        pair_embed_dims: Sequence[int] = (64, 64, 64),
        num_heads: int | None = None,
        num_layers: int | None = None,
        num_cls_layers: int | None = None,
        ffn_ratio: int = 4,
        dropout: float = 0.1,
        attn_dropout: float = 0.1,
        activation_dropout: float = 0.1,
        feature_names: Sequence[str] | None = None,
        fourvec_features: FourvecSpec | None = None,
        length_buckets: int = 4,
    ) -> None:
        super().__init__()
        if size not in PART_SIZES:
            raise ValueError(f"unknown ParT size {size!r}; known: {sorted(PART_SIZES)}")
        preset = PART_SIZES[size]
        embed_dims = [int(d) for d in (embed_dims or preset["embed_dims"])]
        num_heads = int(num_heads or preset["num_heads"])
        num_layers = int(preset["num_layers"] if num_layers is None else num_layers)
        num_cls_layers = int(preset["num_cls_layers"] if num_cls_layers is None else num_cls_layers)
        if feature_names is None:
            from jetforge.jets.features import RS3L_FEATURES

            feature_names = RS3L_FEATURES
        self.feature_names = [str(f) for f in feature_names]
        self.in_dim = int(in_dim)
        if len(self.feature_names) != self.in_dim:
            raise ValueError(
                f"in_dim={self.in_dim} but {len(self.feature_names)} feature_names "
                f"{self.feature_names}; set backbone.feature_names to the dataset's features"
            )
        self.fourvec_features = dict(fourvec_features or DEFAULT_FOURVEC_FEATURES)
        fourvec_indices(self.feature_names, self.fourvec_features)  # validate early
        dim = embed_dims[-1]
        self.num_heads = num_heads
        self.embed = ParticleEmbed(self.in_dim, embed_dims)
        self.pair_embed = PairEmbed(pair_embed_dims, num_heads)
        block = dict(dim=dim, num_heads=num_heads, ffn_ratio=ffn_ratio)
        self.blocks = nn.ModuleList(
            Block(**block, dropout=dropout, attn_dropout=attn_dropout,
                  activation_dropout=activation_dropout)
            for _ in range(num_layers)
        )  # fmt: skip
        self.cls_blocks = nn.ModuleList(
            Block(**block, dropout=0.0, attn_dropout=0.0, activation_dropout=0.0)
            for _ in range(num_cls_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.cls_token = trunc_normal_token(dim)
        self._dim = dim
        self.length_buckets = max(int(length_buckets), 1)

    @property
    def embed_dim(self) -> int:
        """Dimension D of the [CLS] representation and of the particle tokens."""
        return self._dim

    def fourvectors(self, x: Tensor) -> Tensor:
        """Jet-frame (px, py, pz, E) of every slot, from the configured feature columns."""
        return fourvec_from_features(x, self.feature_names, self.fourvec_features)

    def pair_bias(self, p4: Tensor, mask: Tensor) -> Tensor:
        """Per-head attention bias ``[B, H, P, P]`` of the interaction features."""
        return self.pair_embed(p4, mask)

    def _check(self, x: Tensor, mask: Tensor) -> None:
        check_inputs(x, mask, self.in_dim)

    def cls_from_tokens(self, h: Tensor, mask: Tensor) -> Tensor:
        """Class-attention blocks and final LN on tokens ``h`` -> [CLS] ``[B, D]``."""
        cls = self.cls_token.expand(h.shape[0], 1, -1).to(h.dtype)
        cmask = class_attention_mask(mask, h.dtype)
        for blk in self.cls_blocks:
            cls = blk(h, cmask, x_cls=cls)
        return self.norm(cls).squeeze(1)

    def _particle_blocks(self, h: Tensor, mask: Tensor, bias: Tensor) -> Tensor:
        """Particle attention blocks, per group of jets of similar length (see class doc)."""
        B, P, _ = h.shape
        end = (torch.arange(1, P + 1, device=mask.device) * mask).amax(1).clamp(min=1)
        k = self.length_buckets if B >= 2 * self.length_buckets else 1
        order = end.argsort() if k > 1 else torch.arange(B, device=h.device)
        outs = []
        for idx in order.tensor_split(k):
            L = int(end[idx].max())
            hc, mc = h[idx, :L], mask[idx, :L]
            amask = attention_mask(mc, bias[idx][:, :, :L, :L], self.num_heads, h.dtype)
            for blk in self.blocks:
                hc = blk(hc, amask)
            outs.append(F.pad(hc, (0, 0, 0, P - L)))
        out = torch.cat(outs) if k > 1 else outs[0]
        return out[order.argsort()] if k > 1 else out

    def _encode_tokens(
        self,
        x: Tensor,
        mask: Tensor,
        replace: Tensor | None = None,
        replacement: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Tokens after the particle blocks and the mask, both trimmed after the batch's
        last real particle; tokens are zero on padded slots.

        ``replace`` (token masking, :mod:`jetforge.models.interface`): the embeddings of
        the marked real particles are replaced by ``replacement`` and their features reach
        nothing else: they are left out of the input batch norm and every pair involving
        them gets no bias (as JP-JEPA's predictor treats its [CLS], §4.1), so the pair
        features cannot leak a masked particle's kinematics.
        """
        self._check(x, mask)
        mask = mask.bool()
        x, mask = trim_padding(x, mask)
        # padded slots may hold anything (even NaN): zero them before any arithmetic
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        slots = masked_slots(mask, replace, replacement)
        seen = mask if slots is None else mask & ~slots
        h = self.embed(x, seen)
        if slots is not None:
            h = put_mask_token(h, slots, replacement)
        h = self._particle_blocks(h, mask, self.pair_bias(self.fourvectors(x), seen))
        h = torch.where(mask[..., None], h, torch.zeros((), dtype=h.dtype, device=h.device))
        return h, mask

    def encode(
        self,
        x: Tensor,
        mask: Tensor,
        replace: Tensor | None = None,
        replacement: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(tokens [B, P, D], cls [B, D])`` in one pass; tokens are zero on padded slots.

        Tokens are the outputs of the particle attention blocks (what the JEPA teacher
        predicts from and the [CLS] attends to). ``replace`` / ``replacement``: token
        masking (see :meth:`_encode_tokens`).
        """
        P = x.shape[1]
        h, mask = self._encode_tokens(x, mask, replace, replacement)
        cls = self.cls_from_tokens(h, mask)
        return F.pad(h, (0, 0, 0, P - h.shape[1])), cls

    def tokens(
        self,
        x: Tensor,
        mask: Tensor,
        replace: Tensor | None = None,
        replacement: Tensor | None = None,
    ) -> Tensor:
        """Per-particle tokens ``[B, P, D]`` (zero on padded slots; no class attention)."""
        h, _ = self._encode_tokens(x, mask, replace, replacement)
        return F.pad(h, (0, 0, 0, x.shape[1] - h.shape[1]))

    @property
    def width(self) -> int:
        """Dimension of the ``pooled`` view (the particle tokens' width)."""
        return self._dim

    def views(self, x: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """From one pass: ``output`` = the [CLS] (as :meth:`forward`) and ``pooled`` = the
        mean of the particle tokens over the real particles, both ``[B, D]``.

        JP-JEPA follows both this [mean] of the particle attention blocks and the [CLS]
        (Fig. 2(d)); I-JEPA evaluates average-pooled tokens. The local loss trains the tokens
        directly and the [CLS] only through the predictor, so frozen probes read both.
        """
        h, cls = self.encode(x, mask)
        keep = mask.bool()[..., None].to(h.dtype)
        return {"output": cls, "pooled": (h * keep).sum(1) / keep.sum(1).clamp_min(1)}

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Jet representation: the normalised [CLS] token ``[B, D]`` (what fine-tuning and
        the embed rule use, JP-JEPA §4.3)."""
        return self.encode(x, mask)[1]
