"""RS3L pre-training (arXiv:2403.07066, §II A): contrastive learning on re-simulated pairs.

Each minibatch holds ``batch_size`` nominal jets of the QCD/Higgs admixture and, for
each, one augmentation drawn uniformly from the augmentation set (100 + 100 in RS3L).
After every epoch a held-out set of pairs gives the validation loss and the two
convergence diagnostics of RS3L Fig. 2: the mean cosine similarity of positive pairs per
class, and the cosine similarity between the class-mean vectors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jetforge.generation.seeds import derive_seed
from jetforge.methods import METHODS
from jetforge.models.registry import backbone_config, build_backbone, save_backbone
from jetforge.training.data import DatasetInfo, PairSampler, select_pairs, split_pairs
from jetforge.training.engine import EngineConfig, TrainState, fit, resolve_device

log = logging.getLogger(__name__)


def augset_variants(exp_cfg: Mapping[str, Any], augset: str) -> list[str]:
    """Variant names of augmentation set ``augset`` (``pretrain.augsets`` in the config).

    ``"none"`` is the empty set: single-jet methods (jBOT, MPM, JP-JEPA) fine-tune on the
    nominal jets only."""
    if augset == "none":
        return []
    sets = exp_cfg["pretrain"].get("augsets", {})
    if augset not in sets:
        raise KeyError(f"augset {augset!r} not in pretrain.augsets (have {sorted(sets)})")
    return list(sets[augset])


def to_plain(obj: Any) -> Any:
    """JSON round trip: tuples -> lists, so run keys compare equal across reloads."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


@torch.no_grad()
def pair_diagnostics(
    model: nn.Module,
    sampler: PairSampler,
    class_names: list[str],
    classes: list[int],
    device: torch.device,
) -> dict[str, float]:
    """Validation loss and RS3L Fig. 2 diagnostics over all pairs of ``sampler``.

    ``cos_pos_<class>``: mean cos(z_nominal, z_augmented) of the class's pairs.
    ``cos_class_means``: cosine between class means of the unit-normalised nominal
    embeddings (the loss only sees directions, so directions are averaged); with more
    than two classes, the mean over class pairs (each also logged as
    ``cos_means_<a>_<b>``).
    """
    loss_sum, loss_n = 0.0, 0
    cos, labels, zs = [], [], []
    for batch in sampler.epoch(0):
        b = batch.to(device)
        z_a, z_b = model.embed_pair(b.x_a, b.m_a, b.x_b, b.m_b)
        z_a, z_b = z_a.float(), z_b.float()
        if z_a.shape[0] >= 2:
            loss_sum += float(model.loss_from_embeddings(z_a, z_b)["loss"]) * z_a.shape[0]
            loss_n += z_a.shape[0]
        cos.append(F.cosine_similarity(z_a, z_b, dim=1, eps=1e-8).cpu())
        zs.append(F.normalize(z_a, dim=1, eps=1e-8).cpu())
        labels.append(b.labels.cpu())
    out: dict[str, float] = {"val_loss": loss_sum / loss_n if loss_n else float("nan")}
    if not cos:
        return out
    c, y, z = torch.cat(cos), torch.cat(labels), torch.cat(zs)
    means = {}
    for k in classes:
        sel = y == k
        out[f"cos_pos_{class_names[k]}"] = float(c[sel].mean()) if sel.any() else float("nan")
        means[k] = z[sel].mean(0) if sel.any() else None
    pair_cos = []
    for i, a in enumerate(classes):
        for b_ in classes[i + 1 :]:
            ma, mb = means[a], means[b_]
            v = (
                float(F.cosine_similarity(ma, mb, dim=0, eps=1e-8))
                if ma is not None and mb is not None
                else float("nan")
            )
            pair_cos.append(v)
            if len(classes) > 2:
                out[f"cos_means_{class_names[a]}_{class_names[b_]}"] = v
    if pair_cos:
        out["cos_class_means"] = float(np.mean(pair_cos))
    return out


def run_pretrain(
    train_h5: str,
    out_dir: str,
    exp_cfg: dict,
    augset: str,
    repeat: int,
    seed: int,
    device: str = "auto",
    *,
    after_step: Callable[[TrainState], None] | None = None,
) -> None:
    """Pre-train a backbone with the configured method; write ``model.pt``, ``history.csv``
    and ``checkpoint.pt`` into ``out_dir`` (data contract, format 5).

    ``exp_cfg`` is one ``experiments.<name>`` block (``backbone`` + ``pretrain``).
    ``repeat`` and the global ``seed`` give the initialisation and data order; the
    validation pairs depend on ``seed`` only, so repeats are validated on the same jets.
    Re-running after a kill resumes from ``checkpoint.pt``. ``after_step`` is a test hook.
    """
    pcfg, bcfg = exp_cfg["pretrain"], exp_cfg["backbone"]
    method = pcfg.get("method", "simclr")
    if method not in METHODS:
        raise KeyError(f"unknown pre-training method {method!r}; registered: {sorted(METHODS)}")
    sampler = getattr(METHODS[method], "sampler", "pairs")
    if sampler == "jets":
        return _run_pretrain_jets(train_h5, out_dir, exp_cfg, repeat, seed, device, after_step)
    if sampler == "multi_pairs":  # tracks + cells pairs (hadronization fork, seed 001)
        from jetforge.training.multi_data import run_pretrain_multi

        return run_pretrain_multi(
            train_h5, out_dir, exp_cfg, repeat, seed, device, after_step=after_step
        )
    variants = augset_variants(exp_cfg, augset)
    dev = resolve_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = DatasetInfo.read(train_h5)
    if info.n_variants < 2:
        raise ValueError(
            f"{train_h5} has no augmentation variants (variant_names={info.variant_names})"
        )

    pairs = select_pairs(train_h5, pcfg["processes"])
    train_pairs, val_pairs = split_pairs(
        pairs, float(pcfg.get("val_fraction", 0.0)), derive_seed("pretrain", "val-split", base=seed)
    )
    bs = int(pcfg["batch_size"])
    if train_pairs.size < bs:
        raise ValueError(
            f"only {train_pairs.size} training pairs of {pcfg['processes']} in {train_h5}, "
            f"fewer than batch_size={bs}"
        )

    torch.manual_seed(derive_seed("pretrain", augset, repeat, "init", base=seed))
    bb_cfg = backbone_config(bcfg, in_dim=info.n_features)
    backbone = build_backbone(bb_cfg)
    model = METHODS[method].from_config(backbone, pcfg).to(dev)

    data_seed = derive_seed("pretrain", augset, repeat, "data", base=seed)
    train = PairSampler(train_h5, pcfg["processes"], variants, bs, data_seed, pairs=train_pairs)
    val = None
    if val_pairs.size >= 2:
        val = PairSampler(
            train_h5,
            pcfg["processes"],
            variants,
            bs,
            derive_seed("pretrain", augset, "val", base=seed),
            pairs=val_pairs,
            drop_last=False,
        )
    present = sorted(
        {int(v) for v in np.unique(train.labels)}
        | ({int(v) for v in np.unique(val.labels)} if val else set())
    )

    def loss_fn(m: nn.Module, b: Any) -> dict[str, torch.Tensor]:
        return m(b.x_a, b.m_a, b.x_b, b.m_b)

    def evaluate(m: nn.Module, epoch: int) -> dict[str, float]:
        return pair_diagnostics(m, val, info.class_names, present, dev) if val is not None else {}

    run_key = to_plain(
        {
            "stage": "pretrain",
            "augset": augset,
            "variants": variants,
            "repeat": repeat,
            "seed": seed,
            "backbone": bb_cfg,
            "pretrain": pcfg,
            "n_train_pairs": int(train_pairs.size),
        }
    )
    try:
        fit(
            model,
            [{"params": list(model.parameters())}],
            loss_fn,
            train.epoch,
            len(train),
            EngineConfig.from_dict(pcfg),
            dev,
            out / "checkpoint.pt",
            out / "history.csv",
            evaluate=evaluate if val is not None else None,
            run_key=run_key,
            after_step=after_step,
            desc=f"pretrain[{augset} r{repeat}]",
        )
    finally:
        train.close()
        if val is not None:
            val.close()
    save_backbone(
        out / "model.pt",
        backbone,
        bb_cfg,
        method=method,
        augset=augset,
        variants=variants,
        repeat=repeat,
        seed=seed,
        feature_names=info.feature_names,
        class_names=info.class_names,
        processes=list(pcfg["processes"]),
        pretrain_cfg=to_plain(pcfg),
    )
    log.info("wrote %s", out / "model.pt")


def select_jet_rows(
    h5_path: str, processes: list[str] | None, variants: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the given processes (None: all) and variants (None: the first, nominal one)
    with their class labels; the input of single-jet methods (masked modelling,
    self-distillation, JEPA), which make their own views of each jet."""
    import h5py

    from jetforge.training.data import read_column

    info = DatasetInfo.read(h5_path)
    with h5py.File(h5_path, "r") as f:
        proc, var, label = (read_column(f, c) for c in ("process", "variant", "label"))
    keep = np.isin(var, [info.variant_index(v) for v in (variants or info.variant_names[:1])])
    if processes is not None:
        keep &= np.isin(proc, [info.process_index(p) for p in processes])
    rows = np.flatnonzero(keep).astype(np.int64)
    return rows, label[rows].astype(np.int64)


def _run_pretrain_jets(
    train_h5: str,
    out_dir: str,
    exp_cfg: dict,
    repeat: int,
    seed: int,
    device: str,
    after_step: Callable[[TrainState], None] | None,
) -> None:
    """Pre-training of a method whose ``sampler`` is ``"jets"``: batches of single jets.

    The method's ``forward(x, mask)`` returns its loss terms; EMA teachers and other
    per-step state are updated through its ``on_step`` hook (called by the engine).
    """
    from jetforge.training.data import JetSampler

    pcfg, bcfg = exp_cfg["pretrain"], exp_cfg["backbone"]
    method = pcfg["method"]
    dev = resolve_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = DatasetInfo.read(train_h5)
    rows, labels = select_jet_rows(train_h5, pcfg.get("processes"))
    rng = np.random.default_rng(derive_seed("pretrain", "val-split", base=seed))
    is_val = rng.random(rows.size) < float(pcfg.get("val_fraction", 0.0))
    bs = int(pcfg["batch_size"])
    if (~is_val).sum() < bs:
        raise ValueError(
            f"only {(~is_val).sum()} training jets in {train_h5}, fewer than batch_size={bs}"
        )
    torch.manual_seed(derive_seed("pretrain", method, repeat, "init", base=seed))
    bcfg = dict(bcfg)
    if bcfg.pop("standardise_inputs", False) and "input_shift" not in bcfg:
        # a fixed per-feature standardisation saved with the model: without it, raw O(1-10)
        # features give every jet nearly the same [CLS] direction and self-distillation
        # collapses within tens of steps (measured on the RS3L features)
        from jetforge.models.vit import input_standardisation

        bcfg["input_shift"], bcfg["input_scale"] = input_standardisation(train_h5)
    bb_cfg = backbone_config(bcfg, in_dim=info.n_features)
    backbone = build_backbone(bb_cfg)
    model = METHODS[method].from_config(backbone, pcfg).to(dev)
    data_seed = derive_seed("pretrain", method, repeat, "data", base=seed)
    train = JetSampler(train_h5, rows[~is_val], labels[~is_val], bs, data_seed, drop_last=True)
    val = (
        JetSampler(train_h5, rows[is_val], labels[is_val], bs, data_seed, shuffle=False)
        if is_val.sum() >= 2
        else None
    )

    def loss_fn(m: nn.Module, b: Any) -> dict[str, torch.Tensor]:
        return m(b.x, b.mask)

    def evaluate(m: nn.Module, epoch: int) -> dict[str, float]:
        totals: dict[str, float] = {}
        n = 0
        for b in val.epoch(0):
            b = b.to(dev)
            for k, v in m(b.x, b.mask).items():
                totals[k] = totals.get(k, 0.0) + float(v) * len(b)
            n += len(b)
        return {f"val_{k}": v / max(n, 1) for k, v in totals.items()}

    run_key = to_plain(
        {"stage": "pretrain", "method": method, "repeat": repeat, "seed": seed,
         "backbone": bb_cfg, "pretrain": pcfg, "n_train": int((~is_val).sum())}
    )
    try:
        fit(
            model, [{"params": [p for p in model.parameters() if p.requires_grad]}], loss_fn,
            train.epoch, len(train), EngineConfig.from_dict(pcfg), dev, out / "checkpoint.pt",
            out / "history.csv", evaluate=evaluate if val is not None else None,
            run_key=run_key, after_step=after_step, desc=f"pretrain[{method} r{repeat}]",
        )
    finally:
        train.close()
        if val is not None:
            val.close()
    save_backbone(
        out / "model.pt", backbone, bb_cfg, method=method, repeat=repeat, seed=seed,
        feature_names=info.feature_names, class_names=info.class_names,
        processes=pcfg.get("processes"), pretrain_cfg=to_plain(pcfg),
    )
    log.info("wrote %s", out / "model.pt")
