"""Frozen-embedding probes of an experiment's pre-trained backbones against random ones.

Every experiment is probed the same way (k-NN with k = 30 and a linear classifier on the
frozen embedding, jBOT, Tsoi & Rankin §4.4) *against the same backbone randomly
initialised*: pre-training has to beat it. Seed means over pre-training repeats and
random draws are reported, since on ~1-2k probe jets one draw moves kNN accuracy by a few
binomial errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jetforge.generation.seeds import derive_seed


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
    from jetforge.training.selection import select_jet_rows

    rows, labels = select_jet_rows(h5_path, None)
    if rows.size > n_max:
        pick = np.sort(np.random.default_rng(seed).choice(rows.size, n_max, replace=False))
        rows, labels = rows[pick], labels[pick]
    return rows, labels


def _augset_of(model_pt: str) -> str:
    """``results/pretrain/{experiment}/{augset}/r{repeat}/model.pt`` -> augset."""
    return Path(model_pt).parent.parent.name


def _encoders(
    model_pts: list[str], n_random: int, seed: int
) -> tuple[list[tuple[str, str, Any]], Any]:
    """(group, name, model or model.pt) of every backbone probed. Groups: one per
    pre-training augset ("pre-trained" when there is one), and "random init": several
    draws, since on ~1k test jets two random draws differ by several binomial errors."""
    import torch

    from jetforge.models.registry import build_backbone, load_backbone

    sets = list(dict.fromkeys(_augset_of(p) for p in model_pts))
    out: list[tuple[str, str, Any]] = []
    for a in sets:
        group = "pre-trained" if len(sets) == 1 else f"pre-trained {a}"
        out += [(group, f"{group} r{i}", p)
                for i, p in enumerate(p for p in model_pts if _augset_of(p) == a)]  # fmt: skip
    pre, payload = load_backbone(model_pts[0], map_location="cpu")
    for i in range(n_random):
        torch.manual_seed(derive_seed("probe", "random-init", i, base=seed))
        rand = build_backbone(payload["backbone_cfg"])
        rand.load_state_dict(input_preprocessing(pre), strict=False)
        out.append(("random init", f"random init i{i}", rand))
    return out, pre


def probe_table(
    experiment: str,
    exp_cfg: dict,
    model_pts: list[str],
    train_h5: str,
    test_h5: str,
    out_csv: str,
    out_md: str,
    seed: int,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """k-NN and linear probes of each pre-trained backbone and of random ones (embedding
    on ``device``: "auto" takes the GPU when there is one); seed-mean rows per group."""
    from jetforge.evaluation.probes import embed_views, knn_probe, linear_probe
    from jetforge.evaluation.ssl_metrics import auc_emb, effective_rank
    from jetforge.training.data import DatasetInfo
    from jetforge.training.engine import resolve_device

    device = str(resolve_device(device))
    probe = {"k": 30, "n_jets": 5000, "random_inits": 3, "metric": "cosine",
             **exp_cfg.get("probe", {})}
    # the logistic regression's iteration cap: linear_probe's own default unless configured
    lin_kw = {"max_iter": int(probe["linear_max_iter"])} if "linear_max_iter" in probe else {}
    info = DatasetInfo.read(test_h5)
    tr_rows, tr_y = _probe_rows(
        train_h5, int(probe["n_jets"]), derive_seed("probe", "train", base=seed)
    )
    te_rows, te_y = _probe_rows(
        test_h5, int(probe["n_jets"]), derive_seed("probe", "test", base=seed)
    )
    k = min(int(probe["k"]), tr_rows.size)
    encoders, pre = _encoders(model_pts, int(probe["random_inits"]), seed)
    # "output": the backbone's jet representation (what fine-tuning reads); "pooled": the
    # mean of its particle tokens where it has one (JP-JEPA Fig. 2(d) [mean]; Rieck et
    # al.'s x)
    views = ("output", "pooled") if hasattr(pre, "views") else ("output",)
    common = {"method": exp_cfg["pretrain"]["method"], "backbone": exp_cfg["backbone"]["name"],
              "dataset": exp_cfg["dataset"]}  # fmt: skip
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for group, name, enc in encoders:
        z_tr = embed_views(enc, train_h5, tr_rows, views, device=device)
        z_te = embed_views(enc, test_h5, te_rows, views, device=device)
        for view in views:
            knn = knn_probe(z_tr[view], tr_y, z_te[view], te_y, k=k, metric=probe["metric"],
                            class_names=info.class_names)
            lin = linear_probe(z_tr[view], tr_y, z_te[view], te_y,
                               class_names=info.class_names, **lin_kw)
            groups.setdefault((view, group), []).append({
                "embedding": view, "encoder": name, **common,
                "knn_acc": knn["accuracy"], "knn_acc_err": knn["accuracy_err"],
                "knn_auc": knn["auc"],
                "linear_acc": lin["accuracy"], "linear_acc_err": lin["accuracy_err"],
                "linear_auc": lin["auc"],
                "effective_rank": effective_rank(z_te[view]), "auc_emb": auc_emb(z_te[view]),
                "n_train": int(tr_rows.size), "n_test": int(te_rows.size), "k": k,
                **_per_class("knn", knn), **_per_class("linear", lin),
            })  # fmt: skip
    rows: list[dict[str, Any]] = []
    labels = list(dict.fromkeys(g for _, g in groups))
    for view in views:
        members = [groups[(view, g)] for g in labels]
        rows += [r for m in members for r in m]
        rows += [
            _seed_mean(m, label)
            for m, label in zip(members, labels, strict=True)
            if len(m) >= 2
        ]
    _write(experiment, exp_cfg, rows, k, out_csv, out_md)
    return rows


def _write(experiment: str, exp_cfg: dict, rows: list[dict[str, Any]], k: int, out_csv: str,
           out_md: str) -> None:  # fmt: skip
    """The table through the one writer (csv, md, tex): accuracies with their error."""
    import pandas as pd

    from jetforge.reporting.table_io import write_table

    df = pd.DataFrame(rows)
    display = pd.DataFrame({
        "embedding": df["embedding"], "encoder": df["encoder"],
        "kNN acc": [
            f"{a:.3f} ± {e:.3f}" for a, e in zip(df["knn_acc"], df["knn_acc_err"], strict=True)
        ],
        "kNN AUC": df["knn_auc"].map("{:.3f}".format),
        "linear acc": [
            f"{a:.3f} ± {e:.3f}"
            for a, e in zip(df["linear_acc"], df["linear_acc_err"], strict=True)
        ],
        "linear AUC": df["linear_auc"].map("{:.3f}".format),
        "effective rank": df["effective_rank"].map("{:.1f}".format),
        "AUC_emb": df["auc_emb"].map("{:.3f}".format),
    })  # fmt: skip
    title = (f"{experiment}: frozen-embedding probes ({exp_cfg['pretrain']['method']} on "
             f"{exp_cfg['dataset']}, backbone {exp_cfg['backbone']['name']})")  # fmt: skip
    note = (
        f"k-NN with k = {k} (cosine) and logistic regression on frozen embeddings (jBOT, "
        f"Tsoi & Rankin arXiv:2601.11719 §4.4); {rows[0]['n_train']} training and "
        f"{rows[0]['n_test']} test jets; AUC = macro one-vs-rest; ± = binomial standard error "
        "of the test accuracy, on the mean rows the standard deviation over the seeds "
        "(pre-training repeats, random draws). The random-init rows are the same backbone "
        "untrained. Embedding: output = the backbone's jet representation, what fine-tuning "
        "reads ([CLS] of ParT and ViT, y of Rieck et al.); pooled = mean of its particle "
        "(node) tokens ([mean] of JP-JEPA Fig. 2(d), x of Rieck et al. Fig. 3a). Effective "
        "rank and AUC_emb (JP-JEPA App. C) of the test embeddings measure dimensional "
        "collapse: AUC_emb near 1 = one direction, near 0.5 = isotropic."
    )
    write_table(df, {"csv": out_csv, "md": out_md}, title, note, display=display)


_SEED_MEAN_KEYS = ("knn_acc", "knn_auc", "linear_acc", "linear_auc", "effective_rank", "auc_emb")


def _per_class(probe: str, metrics: dict[str, float]) -> dict[str, float]:
    """Per-class AUC and efficiency columns (``knn_auc_g``, ``knn_eff_tau``, ...)."""
    return {f"{probe}_{k}": v for k, v in metrics.items() if k.startswith(("auc_", "eff_"))}


def _seed_mean(group: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """Mean row of a group of seeds (pre-training repeats or random draws); the accuracies'
    ``_err`` is then the standard deviation over the seeds (sample, ddof = 1): the spread a
    new draw would show, which already holds the test-set noise."""
    mean = {**group[0], "encoder": f"{label} (mean of {len(group)})"}
    per_class = [k for k in group[0] if k.startswith(("knn_auc_", "knn_eff_", "linear_auc_",
                                                          "linear_eff_"))]  # fmt: skip
    for key in (*_SEED_MEAN_KEYS, *per_class):
        mean[key] = float(np.mean([r[key] for r in group]))
    for key in ("knn_acc", "linear_acc"):
        mean[f"{key}_err"] = float(np.std([r[key] for r in group], ddof=1))
    return mean
