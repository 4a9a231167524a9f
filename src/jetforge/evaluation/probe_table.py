"""The generic self-supervised experiment: pre-train one method on one dataset, then probe.

Every method of the registry (``jetforge.methods.METHODS``) that trains on single jets runs
through the same three steps, so methods are compared on equal terms (the leaderboard no
paper has): an optional tokenizer (MPM), pre-training, and frozen-embedding probes (k-NN
with k = 30 and a linear classifier, jBOT §4.4) of the pre-trained backbone *against the
same backbone randomly initialised*: pre-training has to beat it.
"""

from __future__ import annotations

import copy
import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from jetforge.generation.seeds import derive_seed
from jetforge.io.atomic import write_text

DEFAULT_SPLITS = {"pretrain": "train", "probe_train": "val", "probe_test": "test"}


def splits(exp_cfg: dict) -> dict[str, str]:
    """Split of the experiment's dataset for each role; fine-tuning defaults to the probe
    splits (labelled jets the pre-training never saw)."""
    s = {**DEFAULT_SPLITS, **exp_cfg.get("splits", {})}
    s.setdefault("finetune_train", s["probe_train"])
    s.setdefault("finetune_test", s["probe_test"])
    return s


def ssl_pretrain(
    exp_cfg: dict, train_h5: str, out_dir: str, repeat: int, seed: int, device: str,
    tokenizer: str | None = None,
) -> None:
    from jetforge.training.pretrain import run_pretrain

    cfg = copy.deepcopy(exp_cfg)
    if tokenizer:
        cfg["pretrain"]["tokenizer_path"] = tokenizer
    run_pretrain(train_h5, out_dir, cfg, augset=None, repeat=repeat, seed=seed, device=device)


def ssl_finetune(
    exp_cfg: dict, task: str, mode: str, n_train: int, repeat: int, train_h5: str,
    test_h5: str, out_path: str, pretrained: str | None, seed: int, device: str,
) -> None:
    """One fine-tuning (or from-scratch) training of an SSL experiment's downstream task,
    on the nominal jets (no augmentation variants: the single-jet methods have none)."""
    from jetforge.training.finetune import run_finetune

    run_finetune(
        train_h5, test_h5, out_path, exp_cfg, task, mode, "none", n_train, repeat, seed,
        pretrained if mode != "supervised" else None, device,
    )  # fmt: skip


def finetune_summary(
    experiment: str, exp_cfg: dict, predictions: list[str], out_csv: str, out_md: str,
    out_png: str,
) -> None:
    """Fine-tuned vs from-scratch table and accuracy-vs-labelled-jets figure."""
    from jetforge.reporting import finetune_scan

    rows = finetune_scan.summarise(predictions)
    title = (f"{experiment}: fine-tuning {exp_cfg['pretrain']['method']} "
             f"({exp_cfg['backbone']['name']}, pre-trained on {exp_cfg['dataset']}) vs from scratch")  # fmt: skip
    transfer = {t: s["dataset"] for t, s in exp_cfg["finetune"]["tasks"].items() if "dataset" in s}
    note = "; ".join(f"task {t} runs on dataset {d}" for t, d in transfer.items())
    finetune_scan.write_table(rows, out_csv, out_md, title, note + ("." if note else ""))
    finetune_scan.figure(rows, str(Path(out_png).with_suffix("")), title)


def train_tokenizer(exp_cfg: dict, train_h5: str, out_path: str, seed: int, device: str) -> None:
    from jetforge.methods.mpm_tokenizer import train_tokenizer as train

    train(train_h5, out_path, exp_cfg["tokenizer"], seed, device)


def input_preprocessing(backbone: Any) -> dict[str, Any]:
    """The buffers that fix a backbone's input preprocessing from the data (ViT
    ``input_shift``/``input_scale``, the tracks + cells normalisation).

    Why: the random-init probe baseline must see the same standardised inputs as the
    pre-trained backbone, or it loses for the wrong reason. BatchNorm running statistics
    are excluded: they were accumulated *through the pre-trained weights*, so copying them
    would make the baseline depend on the pre-training run.
    """
    from torch import nn

    bn = {
        f"{name}.{b}" if name else b
        for name, m in backbone.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for b, _ in m.named_buffers(recurse=False)
    }
    return {k: v for k, v in backbone.named_buffers() if k not in bn}


def _probe_rows(h5_path: str, n_max: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from jetforge.training.pretrain import select_jet_rows

    rows, labels = select_jet_rows(h5_path, None)
    if rows.size > n_max:
        pick = np.sort(np.random.default_rng(seed).choice(rows.size, n_max, replace=False))
        rows, labels = rows[pick], labels[pick]
    return rows, labels


def probe_table(
    experiment: str, exp_cfg: dict, model_pts: list[str], train_h5: str, test_h5: str,
    out_csv: str, out_md: str, seed: int, device: str = "cpu",
) -> list[dict[str, Any]]:
    """k-NN and linear probes of each pre-trained backbone and of a random one (embedding
    on ``device``: "auto" takes the GPU when there is one)."""
    import torch

    from jetforge.training.engine import resolve_device

    device = str(resolve_device(device))

    from jetforge.evaluation.probes import embed_views, knn_probe, linear_probe
    from jetforge.evaluation.ssl_metrics import auc_emb, effective_rank
    from jetforge.models.registry import build_backbone, load_backbone
    from jetforge.training.data import DatasetInfo

    probe = {"k": 30, "n_jets": 5000, "random_inits": 3, **exp_cfg.get("probe", {})}
    info = DatasetInfo.read(test_h5)
    tr_rows, tr_y = _probe_rows(train_h5, int(probe["n_jets"]), derive_seed("probe", "train", base=seed))
    te_rows, te_y = _probe_rows(test_h5, int(probe["n_jets"]), derive_seed("probe", "test", base=seed))
    k = min(int(probe["k"]), tr_rows.size)
    # (group, name, model): the seed means are taken per group
    encoders: list[tuple[str, str, Any]] = [
        ("pre-trained", f"pre-trained r{i}", p) for i, p in enumerate(model_pts)
    ]
    pre, payload = load_backbone(model_pts[0], map_location="cpu")
    # several random inits: on ~1k test jets the probes of two random draws of the same
    # backbone differ by several binomial errors, so one draw is no baseline
    for i in range(int(probe["random_inits"])):
        torch.manual_seed(derive_seed("probe", "random-init", i, base=seed))
        rand = build_backbone(payload["backbone_cfg"])
        rand.load_state_dict(input_preprocessing(pre), strict=False)
        encoders.append(("random init", f"random init i{i}", rand))
    # "output": the backbone's jet representation (what fine-tuning reads); "pooled": the
    # mean of its particle tokens where it has one (JP-JEPA Fig. 2(d) [mean]; seed 001 x)
    views = ("output", "pooled") if hasattr(pre, "views") else ("output",)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for group, name, enc in encoders:
        z_tr = embed_views(enc, train_h5, tr_rows, views, device=device)
        z_te = embed_views(enc, test_h5, te_rows, views, device=device)
        for view in views:
            knn = knn_probe(z_tr[view], tr_y, z_te[view], te_y, k=k, class_names=info.class_names)
            lin = linear_probe(z_tr[view], tr_y, z_te[view], te_y, class_names=info.class_names)
            groups.setdefault((view, group), []).append({
                "embedding": view, "encoder": name, "method": exp_cfg["pretrain"]["method"],
                "backbone": exp_cfg["backbone"]["name"], "dataset": exp_cfg["dataset"],
                "knn_acc": knn["accuracy"], "knn_acc_err": knn["accuracy_err"],
                "knn_auc": knn["auc"],
                "linear_acc": lin["accuracy"], "linear_acc_err": lin["accuracy_err"],
                "linear_auc": lin["auc"],
                "effective_rank": effective_rank(z_te[view]), "auc_emb": auc_emb(z_te[view]),
                "n_train": int(tr_rows.size),
                "n_test": int(te_rows.size), "k": k,
            })  # fmt: skip
    rows: list[dict[str, Any]] = []
    for view in views:
        members = [groups[(view, g)] for g in ("pre-trained", "random init")]
        rows += [r for m in members for r in m]
        rows += [_seed_mean(m, label) for m, label in zip(members, ("pre-trained", "random init"))
                 if len(m) >= 2]  # fmt: skip
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_text(out_csv, buf.getvalue())
    md = [
        f"## {experiment}: frozen-embedding probes ({exp_cfg['pretrain']['method']} on "
        f"{exp_cfg['dataset']}, backbone {exp_cfg['backbone']['name']})",
        "",
        "| embedding | encoder | kNN acc | kNN AUC | linear acc | linear AUC | effective rank "
        "| AUC_emb |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    md += [
        f"| {r['embedding']} | {r['encoder']} | {r['knn_acc']:.3f} ± {r['knn_acc_err']:.3f} "
        f"| {r['knn_auc']:.3f} "
        f"| {r['linear_acc']:.3f} ± {r['linear_acc_err']:.3f} "
        f"| {r['linear_auc']:.3f} | {r['effective_rank']:.1f} | {r['auc_emb']:.3f} |"
        for r in rows
    ]
    md += ["", f"k-NN with k = {k} (cosine) and logistic regression on frozen embeddings "
           f"(jBOT §4.4); {rows[0]['n_train']} training and {rows[0]['n_test']} test jets; "
           "AUC = macro one-vs-rest; ± = binomial standard error of the test accuracy, "
           "on the mean rows the standard deviation over the seeds (pre-training repeats, "
           "random draws). The random-init rows are the same backbone untrained. "
           "Embedding: output = the backbone's jet representation, what fine-tuning reads "
           "([CLS] of ParT and ViT, y of seed 001); pooled = mean of its particle (node) tokens "
           "([mean] of JP-JEPA Fig. 2(d), x of seed 001 Fig. 3a). "
           "Effective rank and AUC_emb (JP-JEPA App. C) of the test embeddings measure "
           "dimensional collapse: AUC_emb near 1 = one direction, near 0.5 = isotropic."]
    write_text(out_md, "\n".join(md) + "\n")
    return rows


_SEED_MEAN_KEYS = ("knn_acc", "knn_auc", "linear_acc", "linear_auc", "effective_rank", "auc_emb")


def _seed_mean(group: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """Mean row of a group of seeds (pre-training repeats or random draws); the accuracies'
    ``_err`` is then the standard deviation over the seeds (sample, ddof = 1): the spread a
    new draw would show, which already holds the test-set noise."""
    mean = {**group[0], "encoder": f"{label} (mean of {len(group)})"}
    for key in _SEED_MEAN_KEYS:
        mean[key] = float(np.mean([r[key] for r in group]))
    for key in ("knn_acc", "linear_acc"):
        mean[f"{key}_err"] = float(np.std([r[key] for r in group], ddof=1))
    return mean


def loss_figure(history_csvs: list[str], out_png: str) -> None:
    """Pre-training loss curves (every logged term, train and validation) per repeat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jetforge.reporting.figures import save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, path in enumerate(history_csvs):
        rows = list(csv.DictReader(open(path)))
        epochs = [int(r["epoch"]) for r in rows]
        for key in ("loss", "val_loss"):
            if key in rows[0]:
                ax.plot(epochs, [float(r[key]) for r in rows], marker="o",
                        ls="-" if key == "loss" else "--", label=f"{key} (r{i})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("pre-training loss")
    ax.legend()
    save_figure(fig, str(Path(out_png).with_suffix("")))
