"""Particle tokenizers that define the MPM targets (arXiv:2401.13537, §III B, §V A, App. B).

MPM predicts, for every masked particle, either a discrete token or its features (§III A).
Three target definitions are compared in Table I; each is one class here with the same
small interface (``kind``, ``n_codes``, ``targets(x, mask)``):

* :class:`VQVAE` (``vqvae``): transformer encoder/decoder VQ-VAE; the token of a particle is
  the index of its codebook vector, computed *conditionally on the whole jet* (App. B);
* :class:`KMeansTokenizer` (``kmeans``): K-means++ clusters of the standardised particle
  features (scikit-learn, §III B); context independent;
* :class:`Standardiser` (``regression``): no tokens, the target is the standardised
  feature vector itself (the "regression" rows of Table I).

Tokenizers are trained first, as their own step (:func:`train_tokenizer`, a workflow rule),
written to one file and loaded frozen by the MPM method (:func:`load_tokenizer`); "the
VQ-VAE model is only used during pretraining" (§III B).

Features are standardised (mean/std over real training particles) before clustering or
encoding: the 15 RS3L features span very different scales (log p_T ~ 2, Delta eta ~ 0.2,
flags in {0, 1}), and Euclidean distances in raw units would be dominated by the momenta.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from jetforge.methods.mpm_vq import VectorQuantiser, codebook_usage
from jetforge.models.normformer import NormformerNet

log = logging.getLogger(__name__)


class Standardiser(nn.Module):
    """Per-feature standardisation fitted on real training particles; the regression target."""

    kind = "regression"
    n_codes = 0

    def __init__(self, in_dim: int = 15) -> None:
        super().__init__()
        self.init_kwargs = {"in_dim": int(in_dim)}
        self.register_buffer("mean", torch.zeros(int(in_dim)))
        self.register_buffer("std", torch.ones(int(in_dim)))

    @torch.no_grad()
    def fit_(self, particles: np.ndarray) -> Standardiser:
        """Set mean/std from ``particles`` ``[N, F]`` (real particles only); std >= 1e-6
        (a constant feature keeps std 1 so it stays zero after standardisation)."""
        p = np.asarray(particles, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != self.mean.numel() or len(p) == 0:
            raise ValueError(f"expected [N>0, {self.mean.numel()}] particles, got {p.shape}")
        std = p.std(axis=0)
        self.mean.copy_(torch.from_numpy(p.mean(axis=0)))
        self.std.copy_(torch.from_numpy(np.where(std > 1e-6, std, 1.0)))
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def targets(self, x: Tensor, mask: Tensor) -> Tensor:
        """Standardised features ``[B, P, F]``, zero on padded slots."""
        z = self(x)
        return torch.where(
            mask[..., None].bool(), z, torch.zeros((), dtype=z.dtype, device=z.device)
        )


class KMeansTokenizer(nn.Module):
    """Context-independent tokens: nearest K-means++ centroid of the standardised features
    (§III B; 512 clusters as for the VQ-VAE, §V)."""

    kind = "kmeans"

    def __init__(self, in_dim: int = 15, n_codes: int = 512) -> None:
        super().__init__()
        self.init_kwargs = {"in_dim": int(in_dim), "n_codes": int(n_codes)}
        self.n_codes = int(n_codes)
        self.scaler = Standardiser(in_dim)
        self.register_buffer("centroids", torch.zeros(self.n_codes, int(in_dim)))

    @torch.no_grad()
    def fit_(self, particles: np.ndarray, seed: int, max_iter: int = 100) -> KMeansTokenizer:
        """Fit the scaler and scikit-learn's K-means++ (one initialisation, seeded)."""
        from sklearn.cluster import KMeans

        self.scaler.fit_(particles)
        z = self.scaler(torch.as_tensor(np.asarray(particles), dtype=torch.float64)).numpy()
        if len(z) < self.n_codes:
            raise ValueError(f"{len(z)} particles cannot define {self.n_codes} K-means clusters")
        km = KMeans(self.n_codes, init="k-means++", n_init=1, max_iter=max_iter, random_state=seed)
        km.fit(z)
        self.centroids.copy_(torch.from_numpy(km.cluster_centers_))
        return self

    @torch.no_grad()
    def targets(self, x: Tensor, mask: Tensor) -> Tensor:
        """Token ids ``[B, P]`` (long; 0 on padded slots, which losses ignore)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = self.scaler(x.float())
            c = self.centroids.float()
            d = (z * z).sum(-1, keepdim=True) - 2.0 * z @ c.t() + (c * c).sum(-1)
            ids = d.argmin(dim=-1)
        return torch.where(mask.bool(), ids, torch.zeros_like(ids))


class VQVAE(nn.Module):
    """Per-particle VQ-VAE with transformer encoder and decoder (App. B).

    ``x -> standardise -> Normformer encoder -> Linear(dim, n) -> quantise -> Linear(n, dim)
    -> Normformer decoder -> Linear(dim, F)``, trained on L_task + alpha L_cmt (eq. (B3)),
    L_task the mean squared Euclidean reconstruction error of real particles. Paper sizes:
    four blocks of dimension 256 each side, latent n = 16, m = 512 codes, alpha = 10,
    beta = 0.9, nu = 2, commitment "only every four steps" (``commit_every``; App. B).
    """

    kind = "vqvae"

    def __init__(
        self,
        in_dim: int = 15,
        dim: int = 256,
        n_blocks: int = 4,
        n_heads: int = 8,
        mlp_dim: int | None = None,
        dropout: float = 0.1,
        latent_dim: int = 16,
        n_codes: int = 512,
        alpha: float = 10.0,
        beta: float = 0.9,
        sync_nu: float = 2.0,
        affine: bool = True,
        commit_every: int = 4,
    ) -> None:
        super().__init__()
        self.init_kwargs = {
            "in_dim": int(in_dim), "dim": int(dim), "n_blocks": int(n_blocks),
            "n_heads": int(n_heads), "mlp_dim": int(mlp_dim or 2 * dim),
            "dropout": float(dropout), "latent_dim": int(latent_dim), "n_codes": int(n_codes),
            "alpha": float(alpha), "beta": float(beta), "sync_nu": float(sync_nu),
            "affine": bool(affine), "commit_every": int(commit_every),
        }  # fmt: skip
        if commit_every < 1:
            raise ValueError(f"commit_every must be >= 1, got {commit_every}")
        kw = self.init_kwargs
        self.n_codes, self.alpha, self.commit_every = int(n_codes), float(alpha), int(commit_every)
        self.scaler = Standardiser(in_dim)
        self.encoder = NormformerNet(in_dim, dim, n_blocks, n_heads, kw["mlp_dim"], dropout)
        self.to_latent = nn.Linear(dim, latent_dim)
        self.quantiser = VectorQuantiser(latent_dim, n_codes, beta, sync_nu, affine)
        self.decoder = NormformerNet(latent_dim, dim, n_blocks, n_heads, kw["mlp_dim"], dropout)
        self.to_features = nn.Linear(dim, in_dim)
        # optimiser steps taken; set by on_step so that commit_every survives a resume
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def on_step(self, step: int, total: int) -> None:
        """Engine hook (after each optimiser step): remember the step for ``commit_every``."""
        self.step.fill_(int(step))

    def encode(self, x: Tensor, mask: Tensor) -> Tensor:
        """Latents z_e ``[B, P, n]`` (context-dependent: the encoder sees the whole jet)."""
        return self.to_latent(self.encoder.tokens(self.scaler(x), mask))

    def forward(self, x: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Loss terms of eq. (B3) over the real particles of the batch."""
        mask = mask.bool()
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        z_e = self.encode(x, mask)
        q = self.quantiser(z_e[mask])
        z_q = torch.zeros_like(z_e).index_put((mask,), q.z_q.to(z_e.dtype))
        x_hat = self.to_features(self.decoder.tokens(z_q, mask))
        recon = ((x_hat[mask].float() - self.scaler(x)[mask].float()) ** 2).mean()
        use_cmt = not self.training or int(self.step) % self.commit_every == 0
        loss = recon + (self.alpha * q.commitment if use_cmt else 0.0 * q.commitment)
        return {"loss": loss, "recon": recon.detach(), "commitment": q.commitment.detach()}

    @torch.no_grad()
    def targets(self, x: Tensor, mask: Tensor) -> Tensor:
        """Token ids ``[B, P]`` (long; 0 on padded slots). Call in eval mode.

        Float32 with autocast off: bf16 latents would move particles across code borders,
        so targets would depend on the hardware.
        """
        mask = mask.bool()
        with torch.autocast(device_type=x.device.type, enabled=False):
            ids = self.quantiser.nearest(self.encode(x.float(), mask))
        return torch.where(mask, ids, torch.zeros_like(ids))


TOKENIZERS: dict[str, type[nn.Module]] = {
    "vqvae": VQVAE,  # App. B
    "kmeans": KMeansTokenizer,  # §III B
    "regression": Standardiser,  # Table I "regression"
}


def save_tokenizer(path: str | os.PathLike[str], tok: nn.Module, **meta: Any) -> None:
    """Write ``{'kind', 'kwargs', 'state_dict', **meta}`` atomically and byte-reproducibly."""
    from jetforge.io.atomic import write_torch

    payload = {
        "kind": tok.kind,
        "kwargs": dict(tok.init_kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in tok.state_dict().items()},
        **meta,
    }
    write_torch(path, payload)


def load_tokenizer(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Frozen tokenizer (eval mode, no gradients) and the whole payload of ``path``.

    Loaded with ``weights_only=True``: the payload is tensors and plain values, so a
    tokenizer file from elsewhere cannot run code when it is read."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("kind") not in TOKENIZERS:
        raise ValueError(f"{path} is not a jetforge tokenizer (kinds: {sorted(TOKENIZERS)})")
    tok = TOKENIZERS[payload["kind"]](**payload["kwargs"])
    tok.load_state_dict(payload["state_dict"])
    tok.requires_grad_(False)
    return tok.eval().to(map_location), payload


def _real_particles(h5_path: str, rows: np.ndarray) -> np.ndarray:
    """Real particles ``[N, F]`` of the jets ``rows`` (sorted), read in one pass."""
    import h5py

    from jetforge.training.data import read_jets

    with h5py.File(h5_path, "r") as f:
        x, m = read_jets(f, np.sort(rows))
    return x[m]


@torch.no_grad()
def _latents(model: VQVAE, h5_path: str, rows: np.ndarray, device: torch.device) -> Tensor:
    """Encoder latents of the real particles of ``rows`` (eval mode, float32)."""
    import h5py

    from jetforge.training.data import iter_rows

    model.eval()
    out = []
    with h5py.File(h5_path, "r") as f:
        for _, x, m in iter_rows(f, rows, 512):
            m = m.to(device)
            out.append(model.encode(x.to(device), m)[m].float().cpu())
    return torch.cat(out)


@torch.no_grad()
def token_stats(
    tok: nn.Module, h5_path: str, rows: np.ndarray, device: torch.device
) -> dict[str, float]:
    """Codebook utilisation (used fraction, perplexity) of ``tok`` on the jets ``rows``."""
    import h5py

    from jetforge.training.data import iter_rows

    ids = []
    with h5py.File(h5_path, "r") as f:
        for _, x, m in iter_rows(f, rows, 512):
            m = m.to(device)
            ids.append(tok.targets(x.to(device), m)[m].cpu())
    return codebook_usage(torch.cat(ids), tok.n_codes)


def train_tokenizer(
    train_h5: str,
    out_path: str,
    cfg: Mapping[str, Any],
    seed: int,
    device: str = "auto",
    *,
    after_step: Callable[[Any], None] | None = None,
) -> dict[str, float]:
    """Fit the tokenizer ``cfg['kind']`` on ``train_h5`` and write it to ``out_path``.

    ``cfg`` is the experiment's ``tokenizer`` block. Standardisation and K-means use the
    real particles of ``n_fit_jets`` nominal jets (of ``processes``, default all). The
    VQ-VAE is then trained with the common engine (``epochs``, ``lr``, ``batch_size`` ...),
    resumable from ``<out stem>_checkpoint.pt``, history in ``<out stem>_history.csv``;
    its codebook is K-means initialised on latents of the random encoder (App. B).
    Returns (and stores in the file) the codebook utilisation on the held-out jets.
    """
    from jetforge.generation.seeds import derive_seed
    from jetforge.training.data import DatasetInfo, JetSampler
    from jetforge.training.engine import EngineConfig, fit, resolve_device
    from jetforge.training.run_key import to_plain
    from jetforge.training.selection import select_jet_rows

    kind = cfg.get("kind")
    if kind not in TOKENIZERS:
        raise ValueError(f"tokenizer kind must be one of {sorted(TOKENIZERS)}, got {kind!r}")
    dev = resolve_device(device)
    out = Path(out_path)
    info = DatasetInfo.read(train_h5)
    rows, labels = select_jet_rows(train_h5, cfg.get("processes"))
    rng = np.random.default_rng(derive_seed("tokenizer", kind, "split", base=seed))
    is_val = rng.random(rows.size) < float(cfg.get("val_fraction", 0.1))
    if is_val.all() or (~is_val).sum() < 1:
        raise ValueError(f"no training jets for the tokenizer in {train_h5}")
    train_rows = rows[~is_val]
    val_rows = rows[is_val] if is_val.any() else train_rows
    n_fit = min(int(cfg.get("n_fit_jets", 10000)), train_rows.size)
    fit_rows = np.sort(rng.choice(train_rows, size=n_fit, replace=False))
    particles = _real_particles(train_h5, fit_rows)
    fit_seed = derive_seed("tokenizer", kind, "fit", base=seed, modulus=2**31 - 1)
    meta: dict[str, Any] = {
        "feature_names": info.feature_names,
        "seed": seed,
        "cfg": to_plain(dict(cfg)),
    }

    if kind == "regression":
        tok: nn.Module = Standardiser(info.n_features).fit_(particles)
    elif kind == "kmeans":
        tok = KMeansTokenizer(info.n_features, int(cfg.get("n_codes", 512)))
        tok.fit_(particles, fit_seed, int(cfg.get("kmeans_iter", 100)))
    else:
        arch = {k: cfg[k] for k in ("dim", "n_blocks", "n_heads", "mlp_dim", "dropout",
                                    "latent_dim", "n_codes", "alpha", "beta", "sync_nu",
                                    "affine", "commit_every") if k in cfg}  # fmt: skip
        torch.manual_seed(derive_seed("tokenizer", "vqvae", "init", base=seed))
        tok = VQVAE(info.n_features, **arch)
        tok.scaler.fit_(particles)
        tok.to(dev)
        z = _latents(tok, train_h5, fit_rows, dev)
        tok.quantiser.kmeans_init_(z, fit_seed, int(cfg.get("kmeans_iter", 100)))
        meta["init_usage"] = codebook_usage(tok.quantiser.nearest(z.to(dev)), tok.n_codes)
        bs = int(cfg["batch_size"])
        data_seed = derive_seed("tokenizer", "vqvae", "data", base=seed)
        train = JetSampler(train_h5, train_rows, labels[~is_val], bs, data_seed, drop_last=True)

        def loss_fn(m: nn.Module, b: Any) -> dict[str, Tensor]:
            return m(b.x, b.mask)

        def evaluate(m: nn.Module, epoch: int) -> dict[str, float]:
            return token_stats(m, train_h5, val_rows, dev)

        run_key = to_plain({"stage": "tokenizer", "seed": seed, "cfg": dict(cfg),
                            "n_train": int(train_rows.size)})  # fmt: skip
        stem = out.with_suffix("")
        try:
            fit(
                tok, [{"params": [p for p in tok.parameters() if p.requires_grad]}], loss_fn,
                train.epoch, len(train), EngineConfig.from_dict(cfg), dev,
                Path(f"{stem}_checkpoint.pt"), Path(f"{stem}_history.csv"), evaluate=evaluate,
                run_key=run_key, after_step=after_step, desc="tokenizer[vqvae]",
            )  # fmt: skip
        finally:
            train.close()
    tok.eval()
    usage = token_stats(tok, train_h5, val_rows, dev) if tok.n_codes else {}
    meta["usage"] = usage
    save_tokenizer(out, tok.cpu(), **meta)
    log.info("wrote %s (%s, usage %s)", out, kind, usage)
    return usage
