"""Tracks + calorimeter-cells transformer of Rieck et al., "SSL strategies for jet physics"
(Rieck et al., §4, Fig. 3a and Table 1).

    tracks (p_T, η, φ, d0, z0)  --log/standardise-->  track MLP  5 -> 128 -> 128
    cells  (E, η, φ, layer)     --log/standardise-->  cell MLP  (3 + 4) -> 128 -> 128
                                                      (layer: Embedding(6, 4))
    one node set  ->  LayerNorm  ->  3 x masked multi-head attention (pre-LN, residual)
                  ->  LayerNorm  ->  mean over real nodes = x (128-d)
                  ->  output MLP 128 -> 64 -> 8 = y (the representation of the loss)

Why these sizes: Table 1 lists the trainable parameters per block, and the defaults here
reproduce every one of them exactly: cell-layer embedding 24 (6 layers x 4), cell MLP
17,536 (7 -> 128 -> 128), track MLP 17,280 (5 -> 128 -> 128), transformer 199,424 (input
LayerNorm + 3 x [LayerNorm + q/k/v/out projections] + final LayerNorm; i.e. attention
blocks *without* a feed-forward sub-layer, which is the only width-128 layout that gives
that count), output network 8,776 (128 -> 64 -> 8). ``ff_dim > 0`` adds the usual
feed-forward sub-layer as an option. The paper does not name the activation; ReLU here.

Attention mask (§4: "graph nodes ... connected according to their degree of proximity,
as outlined in [14] (COCOA)"; "the attention masking is based on the edges"): node i may
attend to node j iff both are real and ΔR_ij < ``r_edge`` in (η, φ) (φ wrapped), and a
node always attends to itself. Padded nodes never attend to real nodes and are never
attended to; their states are reset to zero after every block, so padding cannot reach
the output by any route. ΔR uses the *raw* (η, φ) columns, so tracks and cells must be
given in the same frame (both jet-relative or both absolute; ΔR is translation invariant).
``r_edge = 0.1`` is our stand-in for COCOA's proximity graph (about the lateral size of
an HCAL cell); ``r_edge: null`` gives full attention (an ablation).

Pre-processing lives *inside* the model (§4: "track p_T, impact parameters and cell
energy are transformed using a logarithmic function, and all features normalised to zero
mean and unit standard deviation over the training dataset"): the shift/scale are
buffers set once from training data (:func:`fit_normalisation`) and saved with the
weights, so a ``model.pt`` embeds raw files correctly without extra state. Impact
parameters are signed, hence ``sign(d) log(1 + |d| / ip_scale)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.models import BACKBONE_CAPABILITIES


def mlp(dims: Sequence[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def delta_r(eta: Tensor, phi: Tensor) -> Tensor:
    """Pairwise ΔR ``[B, N, N]`` with Δφ wrapped into (-π, π]; float32 even under autocast."""
    eta, phi = eta.float(), phi.float()
    deta = eta[:, :, None] - eta[:, None, :]
    dphi = torch.remainder(phi[:, :, None] - phi[:, None, :] + math.pi, 2 * math.pi) - math.pi
    return torch.sqrt(deta * deta + dphi * dphi)


def proximity_mask(eta: Tensor, phi: Tensor, valid: Tensor, r_edge: float | None) -> Tensor:
    """Boolean attention mask ``[B, N, N]`` (True = query i may attend to key j).

    Edges join real nodes closer than ``r_edge`` (all real pairs if ``None``); the
    diagonal is always allowed, so no query row is empty (an all-masked row would make
    softmax return NaN), and a padded query therefore sees only itself.
    """
    pair = valid[:, :, None] & valid[:, None, :]
    if r_edge is not None:
        pair = pair & (delta_r(eta, phi) < float(r_edge))
    eye = torch.eye(valid.shape[1], dtype=torch.bool, device=valid.device)
    return pair | eye


class MaskedAttentionBlock(nn.Module):
    """Pre-LN multi-head self-attention with an explicit boolean mask (SDPA), residual;
    optional feed-forward sub-layer (``ff_dim > 0``)."""

    def __init__(self, width: int, n_heads: int, ff_dim: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        if width % n_heads:
            raise ValueError(f"width {width} is not divisible by n_heads {n_heads}")
        self.n_heads, self.dropout = n_heads, float(dropout)
        self.norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ff = (
            nn.Sequential(
                nn.LayerNorm(width), nn.Linear(width, ff_dim), nn.ReLU(), nn.Linear(ff_dim, width)
            )
            if ff_dim > 0
            else None
        )

    def forward(self, h: Tensor, attn_mask: Tensor) -> Tensor:
        """``h`` ``[B, N, D]``, ``attn_mask`` ``[B, N, N]`` bool -> ``[B, N, D]``."""
        B, N, D = h.shape
        q, k, v = self.qkv(self.norm(h)).view(B, N, 3, self.n_heads, D // self.n_heads).unbind(2)
        a = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=attn_mask[:, None],
            dropout_p=self.dropout if self.training else 0.0,
        )
        h = h + self.proj(a.transpose(1, 2).reshape(B, N, D))
        if self.ff is not None:
            h = h + self.ff(h)
        return h


class CellsTracksNet(nn.Module):
    """Backbone ``forward(tracks, tracks_mask, cells, cells_mask) -> y [B, embed_dim]``.

    ``tracks`` ``[B, T, track_dim]`` and ``cells`` ``[B, C, cell_dim]`` are the raw
    columns of the dataset (contract 4 ``particles`` and ``cells``); masks are bool,
    True for real constituents. Column roles are given by index (defaults: tracks
    ``p_T, η, φ, d0, z0``; cells ``E, η, φ, layer``). :meth:`represent` returns the
    pooled transformer output x (the autoencoder's target, Fig. 7).

    ``inputs`` tells the generic training / evaluation code (probes, fine-tuning,
    embedding export) to read ``cells``/``cells_mask`` as well as ``particles``/``mask``
    and pass them in this order (:func:`jetforge.models.registry.backbone_inputs`).
    """

    #: datasets of the file this backbone takes, each as (values, mask), in order
    inputs = ("particles", "cells")
    #: :mod:`jetforge.models.interface`: y = head(x) with x = represent(...) (Fig. 3)
    capabilities = BACKBONE_CAPABILITIES["cells_tracks"]
    #: jets per inference chunk (registry.eval_chunk): 32 jets x 8 heads x (1000 tokens)^2
    #: float32 scores = 1 GB, the most a CPU evaluation job should hold
    max_eval_jets = 32

    @classmethod
    def config_for_data(cls, cfg: dict[str, Any], h5_path: str) -> dict[str, Any]:
        """Track and cell feature counts from the file (tracks are its ``particles``)."""
        from jetforge.training.data import CellsInfo, DatasetInfo

        cfg = {k: v for k, v in cfg.items() if k != "in_dim"}
        cfg["track_dim"] = DatasetInfo.read(h5_path).n_features
        cfg["cell_dim"] = CellsInfo.read(h5_path).n_features
        return cfg

    def fit_preprocessing(self, h5_path: str, rows: np.ndarray | None, norm_jets: int) -> None:
        """Check that tracks and cells share an (η, φ) frame, then fit the log /
        standardisation on the first ``norm_jets`` of the sorted training ``rows`` (None:
        all): Rieck et al. §4, inputs "normalised ... over the training dataset"."""
        from jetforge.training.data import CellsInfo, DatasetInfo
        from jetforge.training.multi_data import check_same_frame, normalisation_sample

        info = DatasetInfo.read(h5_path)
        check_same_frame(info.feature_names, CellsInfo.read(h5_path).feature_names,
                         self.track_eta_phi, self.cell_eta_phi)  # fmt: skip
        norm_rows = np.arange(info.n_rows) if rows is None else rows
        fit_normalisation(self, *normalisation_sample(h5_path, norm_rows, int(norm_jets)))

    def __init__(
        self,
        track_dim: int = 5,
        cell_dim: int = 4,
        width: int = 128,
        n_blocks: int = 3,
        n_heads: int = 8,
        ff_dim: int = 0,
        dropout: float = 0.0,
        n_cell_layers: int = 6,
        layer_embed_dim: int = 4,
        out_hidden: int = 64,
        embed_dim: int = 8,
        r_edge: float | None = 0.1,
        track_eta_phi: Sequence[int] = (1, 2),
        cell_eta_phi: Sequence[int] = (1, 2),
        cell_layer: int = 3,
        track_log: Sequence[int] = (0,),
        track_signed_log: Sequence[int] = (3, 4),
        cell_log: Sequence[int] = (0,),
        ip_scale: float = 0.01,
        in_dim: int | None = None,
    ) -> None:
        super().__init__()
        if in_dim is not None and in_dim != track_dim:
            # ``in_dim`` is what generic tools (finetune, registry) set from ``particles``.
            track_dim = int(in_dim)
        for name, idx, dim in (
            ("track_eta_phi", track_eta_phi, track_dim),
            ("cell_eta_phi", cell_eta_phi, cell_dim),
            ("track_log", track_log, track_dim),
            ("track_signed_log", track_signed_log, track_dim),
            ("cell_log", cell_log, cell_dim),
            ("cell_layer", [cell_layer], cell_dim),
        ):
            if any(not 0 <= int(i) < dim for i in idx):
                raise ValueError(f"{name}={list(idx)} out of range for {dim} features")
        if r_edge is not None and not r_edge > 0:
            raise ValueError(f"r_edge must be > 0 or null, got {r_edge}")
        self.track_dim, self.cell_dim = int(track_dim), int(cell_dim)
        self.width, self.embed_dim, self.n_cell_layers = int(width), int(embed_dim), n_cell_layers
        self.r_edge = None if r_edge is None else float(r_edge)
        self.track_eta_phi = [int(i) for i in track_eta_phi]
        self.cell_eta_phi = [int(i) for i in cell_eta_phi]
        self.cell_layer = int(cell_layer)
        self.track_log, self.track_signed_log = list(track_log), list(track_signed_log)
        self.cell_log, self.ip_scale = list(cell_log), float(ip_scale)
        #: continuous cell columns (all but the layer index), in order
        self.cell_cont = [i for i in range(cell_dim) if i != self.cell_layer]

        self.layer_embed = nn.Embedding(n_cell_layers, layer_embed_dim)
        self.cell_mlp = mlp([len(self.cell_cont) + layer_embed_dim, width, width])
        self.track_mlp = mlp([track_dim, width, width])
        self.in_norm = nn.LayerNorm(width)
        self.blocks = nn.ModuleList(
            MaskedAttentionBlock(width, n_heads, ff_dim, dropout) for _ in range(n_blocks)
        )
        self.out_norm = nn.LayerNorm(width)
        self.head = mlp([width, out_hidden, embed_dim])
        # standardisation of the log-transformed features (identity until fitted)
        self.register_buffer("track_shift", torch.zeros(track_dim))
        self.register_buffer("track_scale", torch.ones(track_dim))
        self.register_buffer("cell_shift", torch.zeros(cell_dim))
        self.register_buffer("cell_scale", torch.ones(cell_dim))

    # ------------------------------------------------------------------ pre-processing

    def _log(self, x: Tensor, logs: Sequence[int], signed: Sequence[int]) -> Tensor:
        if not logs and not signed:
            return x
        x = x.clone()
        if logs:
            x[..., logs] = torch.log(x[..., logs].clamp_min(1e-6))
        if signed:
            s = x[..., signed]
            x[..., signed] = torch.sign(s) * torch.log1p(s.abs() / self.ip_scale)
        return x

    def log_tracks(self, tracks: Tensor) -> Tensor:
        """Tracks after the log transforms, before standardisation (§4)."""
        return self._log(tracks.float(), self.track_log, self.track_signed_log)

    def log_cells(self, cells: Tensor) -> Tensor:
        """Cells after the log transform of the energy, before standardisation (§4)."""
        return self._log(cells.float(), self.cell_log, ())

    @torch.no_grad()
    def set_normalisation(
        self, track_shift: Tensor, track_scale: Tensor, cell_shift: Tensor, cell_scale: Tensor
    ) -> None:
        """Store per-feature shift/scale of the log-transformed inputs (zero scales -> 1)."""
        for buf, val in (
            (self.track_shift, track_shift),
            (self.track_scale, track_scale),
            (self.cell_shift, cell_shift),
            (self.cell_scale, cell_scale),
        ):
            v = torch.as_tensor(val, dtype=buf.dtype)
            if v.shape != buf.shape or not torch.isfinite(v).all():
                raise ValueError(f"bad normalisation vector {v.tolist()} for shape {buf.shape}")
            buf.copy_(v)
        for buf in (self.track_scale, self.cell_scale):
            buf[buf <= 1e-8] = 1.0
        self.cell_shift[self.cell_layer], self.cell_scale[self.cell_layer] = 0.0, 1.0

    # ------------------------------------------------------------------ network

    def nodes(
        self,
        tracks: Tensor,
        tracks_mask: Tensor,
        cells: Tensor,
        cells_mask: Tensor,
        n_blocks: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Node states ``[B, T + C, width]`` after ``n_blocks`` attention blocks (all by
        default, then also the final LayerNorm) and the node mask ``[B, T + C]``.

        Tracks come first, then cells. Padded nodes are zero.
        """
        tm, cm = tracks_mask.bool(), cells_mask.bool()
        t = (self.log_tracks(tracks) - self.track_shift) / self.track_scale
        c = (self.log_cells(cells) - self.cell_shift) / self.cell_scale
        layer = cells[..., self.cell_layer].round().long()
        bad = cm & ((layer < 0) | (layer >= self.n_cell_layers))
        if bad.any():
            raise ValueError(
                f"cell layer index outside 0..{self.n_cell_layers - 1}: "
                f"{sorted(set(layer[bad].tolist()))[:10]}"
            )
        layer = layer.clamp(0, self.n_cell_layers - 1) * cm
        c_in = torch.cat([c[..., self.cell_cont], self.layer_embed(layer)], dim=-1)
        h = torch.cat([self.track_mlp(t * tm[..., None]), self.cell_mlp(c_in * cm[..., None])], 1)
        valid = torch.cat([tm, cm], dim=1)
        eta = torch.cat([tracks[..., self.track_eta_phi[0]], cells[..., self.cell_eta_phi[0]]], 1)
        phi = torch.cat([tracks[..., self.track_eta_phi[1]], cells[..., self.cell_eta_phi[1]]], 1)
        mask = proximity_mask(eta, phi, valid, self.r_edge)
        keep = valid[..., None].to(h.dtype)
        h = self.in_norm(h) * keep
        n = len(self.blocks) if n_blocks is None else int(n_blocks)
        for block in self.blocks[:n]:
            h = block(h, mask) * keep
        if n_blocks is None:
            h = self.out_norm(h) * keep
        return h, valid

    def represent(
        self, tracks: Tensor, tracks_mask: Tensor, cells: Tensor, cells_mask: Tensor
    ) -> Tensor:
        """Pooled transformer output x ``[B, width]``: mean over real nodes (Fig. 3a)."""
        h, valid = self.nodes(tracks, tracks_mask, cells, cells_mask)
        n = valid.sum(1, keepdim=True).clamp_min(1).to(h.dtype)
        return h.sum(1) / n

    def forward(
        self, tracks: Tensor, tracks_mask: Tensor, cells: Tensor, cells_mask: Tensor
    ) -> Tensor:
        """The 8-d representation y entering the loss (Fig. 3b)."""
        return self.head(self.represent(tracks, tracks_mask, cells, cells_mask))

    def views(
        self, tracks: Tensor, tracks_mask: Tensor, cells: Tensor, cells_mask: Tensor
    ) -> dict[str, Tensor]:
        """From one pass: ``output`` = y (as :meth:`forward`), ``pooled`` = x."""
        x = self.represent(tracks, tracks_mask, cells, cells_mask)
        return {"output": self.head(x), "pooled": x}


def fit_normalisation(
    model: CellsTracksNet,
    tracks: np.ndarray,
    tracks_mask: np.ndarray,
    cells: np.ndarray,
    cells_mask: np.ndarray,
) -> None:
    """Set ``model``'s input standardisation from a training sample (real entries only).

    Mean and standard deviation of every log-transformed column over the real tracks
    and cells of the sample (§4: "normalized ... over the entire training dataset"; a
    sample of it here, see ``norm_jets`` in the config).
    """

    def stats(x: Tensor, m: np.ndarray) -> tuple[Tensor, Tensor]:
        v = x[torch.from_numpy(np.asarray(m, bool))]
        if v.shape[0] < 2:
            return torch.zeros(x.shape[-1]), torch.ones(x.shape[-1])
        return v.mean(0), v.std(0)

    with torch.no_grad():
        ts, tc = stats(model.log_tracks(torch.as_tensor(tracks)), tracks_mask)
        cs, cc = stats(model.log_cells(torch.as_tensor(cells)), cells_mask)
    model.set_normalisation(ts, tc, cs, cc)
