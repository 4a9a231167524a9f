"""Settings of the anomaly autoencoder, importable without torch: the config check (in the
Snakemake driver, which has no torch) validates ``anomaly.cosine_ae`` against them, and
:mod:`jetforge.evaluation.anomaly` trains with them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass
class CosineAEConfig:
    """Training settings of the anomaly autoencoder; the paper gives only the layout and
    the loss, so these are our defaults (Adam as for the backbone, Table 1)."""

    hidden: tuple[int, ...] = (128, 64, 32, 24)
    latent: int = 20
    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    standardise: bool = True
    seed: int = 0

    @classmethod
    def from_dict(cls, cfg: Mapping[str, object]) -> CosineAEConfig:
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in cfg.items() if k in names}
        if "hidden" in kw:
            kw["hidden"] = tuple(kw["hidden"])  # type: ignore[arg-type]
        return cls(**kw)  # type: ignore[arg-type]
