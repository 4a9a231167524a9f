"""Fine-tuning and fully-supervised training (RS3L arXiv:2403.07066, §II D and §III B).

The classifier is the backbone plus "one additional fully-connected layer with 8 input
dimensions and a single sigmoid activation function at the output" (§II D). Modes:

* ``fixed``: RS3L backbone loaded and frozen (eval mode, no gradients); only the head
  trains;
* ``floating``: RS3L backbone loaded as a hot start; everything trains, the backbone
  with its own learning rate ``lr_backbone``;
* ``supervised``: the same architecture from random initialisation.

All modes train on the nominal jets plus the augmentation variants of the chosen
augmentation set ("a sample comprising the same types of augmentations used for training
the respective RS3L space", §III B), with ``n_train`` jets drawn once per (task, augset,
n_train) from the labelled split, so fixed/floating/supervised and all repeats see the
same labelled jets and differ only in what the comparison is about.

The sigmoid is folded into the loss (``BCEWithLogits`` is the numerically stable form of
sigmoid + BCE); written scores are sigmoid outputs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.generation.seeds import derive_seed
from jetforge.io.atomic import atomic_path
from jetforge.models.registry import backbone_config, build_backbone, load_backbone
from jetforge.training.data import (
    DatasetInfo,
    JetSampler,
    iter_rows,
    read_column,
    select_labelled_rows,
    subsample,
)
from jetforge.training.engine import EngineConfig, TrainState, fit, resolve_device
from jetforge.training.pretrain import augset_variants, to_plain

log = logging.getLogger(__name__)

MODES = ("fixed", "floating", "supervised")
#: jets/* columns copied into predictions.h5 (data contract, format 5)
PREDICTION_COLUMNS = ("variant", "process", "parton_pid", "pair_id", "n2")


class Classifier(nn.Module):
    """Backbone + Linear(D -> 1) head returning logits; ``frozen`` = the ``fixed`` mode."""

    def __init__(self, backbone: nn.Module, frozen: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(int(backbone.embed_dim), 1)
        self.frozen = frozen
        if frozen:
            backbone.requires_grad_(False)
            backbone.eval()

    def train(self, mode: bool = True) -> Classifier:
        """Like ``nn.Module.train`` but a frozen backbone always stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.frozen:
            with torch.no_grad():
                z = self.backbone(x, mask)
        else:
            z = self.backbone(x, mask)
        return self.head(z).squeeze(-1)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@torch.no_grad()
def predict(
    model: nn.Module, h5_path: str, rows: np.ndarray, device: torch.device, chunk: int = 1024
) -> np.ndarray:
    """Sigmoid scores of ``rows`` (sorted), computed in float32 (no autocast: outputs
    are compared across trainings and bf16 would add noise at the 1e-3 level)."""
    model.eval()
    scores = np.empty(rows.size, np.float32)
    pos = 0
    with h5py.File(h5_path, "r") as f:
        for r, x, m in iter_rows(f, rows, chunk):
            scores[pos : pos + r.size] = (
                torch.sigmoid(model(x.to(device), m.to(device)).float()).cpu().numpy()
            )
            pos += r.size
    return scores


def write_predictions(
    out_path: str | Path,
    test_h5: str,
    rows: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    attrs: Mapping[str, Any],
) -> None:
    """Format-5 predictions file, written atomically."""
    info = DatasetInfo.read(test_h5)
    with h5py.File(test_h5, "r") as f:
        cols = {c: read_column(f, c)[rows] for c in PREDICTION_COLUMNS}
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w") as g:
            g.create_dataset("score", data=scores.astype(np.float32))
            g.create_dataset("label", data=labels.astype(np.int8))
            for c, v in cols.items():
                g.create_dataset(c, data=v)
            g.attrs["variant_names"] = info.variant_names
            g.attrs["process_names"] = info.process_names
            g.attrs["class_names"] = info.class_names
            for k, v in attrs.items():
                g.attrs[k] = v


def run_finetune(
    train_h5: str,
    test_h5: str,
    out_path: str,
    exp_cfg: dict,
    task: str,
    mode: str,
    augset: str,
    n_train: int,
    repeat: int,
    seed: int,
    pretrained: str | None,
    device: str = "auto",
    *,
    after_step: Callable[[TrainState], None] | None = None,
) -> None:
    """Train a tagger for ``task`` and write test-split predictions to ``out_path``.

    Side files next to ``out_path``: ``checkpoint.pt`` (resume state) and
    ``history.csv`` (per-epoch loss). ``pretrained`` is a ``model.pt`` from
    :func:`jetforge.training.pretrain.run_pretrain` (required for fixed/floating, must be
    None for supervised). ``after_step`` is a test hook.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "supervised" and pretrained is not None:
        raise ValueError(
            f"mode 'supervised' trains from scratch but pretrained={pretrained!r} was given"
        )
    if mode != "supervised" and not pretrained:
        raise ValueError(
            f"mode {mode!r} needs a pre-trained model.pt, got pretrained={pretrained!r}"
        )
    fcfg = exp_cfg["finetune"]
    tasks = fcfg["tasks"]
    if task not in tasks:
        raise KeyError(f"task {task!r} not in finetune.tasks (have {sorted(tasks)})")
    signal, background = tasks[task]["signal"], tasks[task]["background"]
    dev = resolve_device(device)
    out = Path(out_path)
    info = DatasetInfo.read(train_h5)
    variants = list(dict.fromkeys([info.nominal, *augset_variants(exp_cfg, augset)]))

    rows, labels = select_labelled_rows(train_h5, signal, background, variants)
    rows, labels = subsample(
        rows,
        labels,
        int(n_train),
        derive_seed("finetune", task, augset, n_train, "subset", base=seed),
    )

    torch.manual_seed(
        derive_seed("finetune", task, mode, augset, n_train, repeat, "init", base=seed)
    )
    if pretrained:
        backbone, payload = load_backbone(pretrained)
        bb_cfg = payload["backbone_cfg"]
        if payload.get("feature_names") not in (None, info.feature_names):
            raise ValueError(
                f"{pretrained} was trained on features {payload['feature_names']}, "
                f"{train_h5} has {info.feature_names}"
            )
    else:
        bb_cfg = backbone_config(exp_cfg["backbone"], in_dim=info.n_features)
        backbone = build_backbone(bb_cfg)
    model = Classifier(backbone, frozen=(mode == "fixed")).to(dev)
    lr = float(fcfg["lr"])
    groups: list[dict[str, Any]] = [{"params": list(model.head.parameters()), "lr": lr}]
    if mode == "floating":
        groups.append(
            {"params": list(model.backbone.parameters()), "lr": float(fcfg.get("lr_backbone", lr))}
        )
    elif mode == "supervised":
        groups.append({"params": list(model.backbone.parameters()), "lr": lr})

    bs = int(fcfg["batch_size"])
    sampler = JetSampler(
        train_h5,
        rows,
        labels,
        bs,
        derive_seed("finetune", task, mode, augset, n_train, repeat, "data", base=seed),
    )

    def loss_fn(m: nn.Module, b: Any) -> dict[str, Tensor]:
        return {"loss": F.binary_cross_entropy_with_logits(m(b.x, b.mask).float(), b.y)}

    run_key = to_plain(
        {
            "stage": "finetune",
            "task": task,
            "mode": mode,
            "augset": augset,
            "n_train": int(n_train),
            "repeat": repeat,
            "seed": seed,
            "backbone": bb_cfg,
            "finetune": fcfg,
            "pretrained_sha256": _sha256(pretrained) if pretrained else None,
        }
    )
    try:
        fit(
            model,
            groups,
            loss_fn,
            sampler.epoch,
            len(sampler),
            EngineConfig.from_dict(fcfg),
            dev,
            out.with_name("checkpoint.pt"),
            out.with_name("history.csv"),
            run_key=run_key,
            after_step=after_step,
            desc=f"{task}/{mode}/{augset}/n{n_train} r{repeat}",
        )
    finally:
        sampler.close()

    test_rows, test_labels = select_labelled_rows(test_h5, signal, background, None)
    if test_rows.size == 0:
        raise ValueError(f"{test_h5} has no {signal}/{background} jets to predict")
    scores = predict(model, test_h5, test_rows, dev)
    write_predictions(
        out,
        test_h5,
        test_rows,
        scores,
        test_labels,
        {
            "task": task,
            "mode": mode,
            "augset": augset,
            "n_train": int(n_train),
            "repeat": int(repeat),
            "signal": signal,
            "background": background,
            "train_variants": variants,
        },
    )
    log.info("wrote %s", out)
