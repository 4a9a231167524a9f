"""One leaderboard job: pre-train one entry with one seed, then run the whole protocol
in-process and write ``metrics.json``.

Why one job per (entry, seed) and not the per-experiment rules: each Snakemake job costs
5-8 s of Python and torch start-up, and the protocol is a dozen small evaluations; run as
separate jobs they would cost more than the evaluations themselves (the leaderboard's share
of the default run is ~10 min). Every evaluation is the library's own function:

* probes (:mod:`jetforge.evaluation.probes`): k-NN (cosine, k = ``probe.k``) and linear
  probe of the frozen embedding, accuracy and AUC on the nominal jets of the task;
* fine-tuning (:func:`jetforge.training.finetune.run_finetune`, mode ``floating``; the
  ``supervised`` baseline trains the same backbone from scratch) at each labelled size of
  ``finetune.n_train``, test AUC on the nominal jets; the labelled subset depends only on
  the global seed and size, so every entry fine-tunes on the same jets;
* robustness of the tagger fine-tuned on the most labels: the 1-d Wasserstein distance of
  its output between the nominal and each re-simulated variant over the test jets (RS3L
  Table III, Harris et al. arXiv:2403.07066), and its AUC lost when a share
  ``robustness.drop_fraction`` of each jet's particles is removed at test time (JP-JEPA
  §2.3, Letellier et al. arXiv:2606.14813; :mod:`jetforge.evaluation.robustness`);
* anomaly AUC: the k-NN distance score (jBOT eq. (5), Tsoi & Rankin arXiv:2601.11719) of
  the held-out class against the tagging classes' embeddings;
* effective rank (uncentred, :func:`jetforge.evaluation.ssl_metrics.effective_rank`) of
  the frozen test embeddings;
* pre-training cost: CPU seconds (all threads) and wall seconds of the pre-training alone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jetforge.generation.seeds import derive_seed
from jetforge.io.atomic import write_text
from jetforge.leaderboard import plan

log = logging.getLogger(__name__)


def _rows(h5: str, lb: Mapping[str, Any], n_max: int, seed: int, *ids: object
          ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Nominal jets of the task's two classes (label 1: signal), at most ``n_max``, drawn
    from the global seed only so every entry is probed on the same jets."""
    from jetforge.training.data import DatasetInfo, select_labelled_rows

    background, signal = (str(c) for c in lb["classes"])
    rows, y = select_labelled_rows(h5, signal, background, [DatasetInfo.read(h5).nominal])
    if rows.size > n_max:
        rng = np.random.default_rng(derive_seed("leaderboard", *ids, base=seed))
        pick = np.sort(rng.choice(rows.size, n_max, replace=False))
        rows, y = rows[pick], y[pick]
    return rows, y


def _anomaly_rows(h5: str, lb: Mapping[str, Any], n_max: int, seed: int) -> np.ndarray:
    from jetforge.training.selection import select_jet_rows

    rows, _ = select_jet_rows(h5, [str(lb["anomaly"])])
    if rows.size > n_max:
        rng = np.random.default_rng(derive_seed("leaderboard", "anomaly", base=seed))
        rows = np.sort(rng.choice(rows, n_max, replace=False))
    return rows


def pretrain(exp: dict, lb: Mapping[str, Any], entry: str, train_h5: str, out_dir: Path,
             repeat: int, seed: int, device: str) -> tuple[str, dict[str, float]]:  # fmt: skip
    """Pre-train (the library's :func:`run_pretrain`); returns ``model.pt`` and its cost."""
    from jetforge.training.pretrain import run_pretrain

    wall, cpu = time.perf_counter(), time.process_time()
    run_pretrain(train_h5, str(out_dir), exp, plan.augset_name(lb, entry), repeat, seed, device)
    cost = {"pretrain_cpu_s": time.process_time() - cpu,
            "pretrain_wall_s": time.perf_counter() - wall}  # fmt: skip
    return str(out_dir / "model.pt"), cost


def random_init(exp: dict, train_h5: str, out_dir: Path, repeat: int, seed: int) -> str:
    """The backbone randomly initialised, its input standardisation fitted as a
    pre-training would fit it (so it loses only for lack of training), as ``model.pt``."""
    import torch

    from jetforge.models.registry import build_backbone_for, save_backbone
    from jetforge.training.data import DatasetInfo
    from jetforge.training.selection import select_jet_rows

    rows, _ = select_jet_rows(train_h5, exp["pretrain"]["processes"])
    torch.manual_seed(derive_seed("leaderboard", "random-init", repeat, base=seed))
    backbone, cfg = build_backbone_for(exp["backbone"], train_h5, rows,
                                       int(exp["pretrain"].get("norm_jets", 20000)))  # fmt: skip
    info = DatasetInfo.read(train_h5)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.pt"
    save_backbone(path, backbone, cfg, method="random_init", repeat=repeat, seed=seed,
                  feature_names=info.feature_names, class_names=info.class_names)  # fmt: skip
    return str(path)


def frozen_metrics(lb: Mapping[str, Any], model_pt: str, files: Mapping[str, str], seed: int,
                   device: str) -> dict[str, float]:  # fmt: skip
    """Probes, anomaly AUC and effective rank of the frozen embedding."""
    from jetforge.evaluation.anomaly import anomaly_auc, knn_score
    from jetforge.evaluation.probes import embed_rows, knn_probe, linear_probe
    from jetforge.evaluation.ssl_metrics import effective_rank

    probe = {"k": 30, "n_jets": 2000, **lb.get("probe", {})}
    n = int(probe["n_jets"])
    tr, y_tr = _rows(files["probe_train"], lb, n, seed, "probe", "train")
    te, y_te = _rows(files["probe_test"], lb, n, seed, "probe", "test")
    anom = _anomaly_rows(files["probe_test"], lb, n, seed)
    z_tr = embed_rows(model_pt, files["probe_train"], tr, device=device)
    z_te = embed_rows(model_pt, files["probe_test"], te, device=device)
    z_an = embed_rows(model_pt, files["probe_test"], anom, device=device)
    k = min(int(probe["k"]), tr.size)
    knn = knn_probe(z_tr, y_tr, z_te, y_te, k=k)
    lin = linear_probe(z_tr, y_tr, z_te, y_te)
    return {
        "knn_auc": knn["auc"], "knn_acc": knn["accuracy"],
        "linear_auc": lin["auc"], "linear_acc": lin["accuracy"],
        "anomaly_auc": anomaly_auc(knn_score(z_tr, z_te, k=k), knn_score(z_tr, z_an, k=k)),
        "eff_rank": effective_rank(z_te),
        "n_probe_train": int(tr.size), "n_probe_test": int(te.size), "n_anomaly": int(anom.size),
    }  # fmt: skip


def _nominal_scores(pred: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Scores per variant name, and the nominal jets' scores and labels, of a predictions
    file (format 5)."""
    import h5py

    with h5py.File(pred, "r") as f:
        score, label, variant = f["score"][:], f["label"][:], f["variant"][:]
        names = [str(v) for v in f.attrs["variant_names"]]
    by_variant = {n: score[variant == i] for i, n in enumerate(names) if (variant == i).any()}
    nominal = variant == 0
    return by_variant, score[nominal], label[nominal]


def robustness(pred: str, lb: Mapping[str, Any], test_h5: str, seed: int) -> dict[str, float]:
    """Wasserstein distances nominal vs each variant, and the AUC lost when particles are
    dropped, of the tagger that wrote ``pred`` (its classifier is stored beside it)."""
    from jetforge.evaluation.metrics import auc, wasserstein
    from jetforge.evaluation.robustness import (
        Perturbation,
        classifier_path,
        evaluate_perturbed,
        load_classifier,
    )  # fmt: skip

    by_variant, _, _ = _nominal_scores(pred)
    nominal = next(iter(by_variant))
    out = {f"w_{v}": wasserstein(by_variant[nominal], s)
           for v, s in by_variant.items() if v != nominal}  # fmt: skip
    out["w_mean"] = float(np.mean(list(out.values()))) if out else float("nan")
    frac = float((lb.get("robustness") or {}).get("drop_fraction", 0.5))
    n = int((lb.get("robustness") or {}).get("n_jets", 1000))
    rows, y = _rows(test_h5, lb, n, seed, "robustness")
    perts = [Perturbation("none", "none"), Perturbation("particles", f"{frac:g}", fraction=frac)]
    model = load_classifier(classifier_path(pred), scores=test_h5)
    scores = evaluate_perturbed(model, test_h5, rows, perts,
                                derive_seed("leaderboard", "drop", base=seed))  # fmt: skip
    aucs = [auc(s, y) for s in scores.values()]
    out["drop_auc_loss"] = aucs[0] - aucs[1]
    return out


def finetune_metrics(exp: dict, lb: Mapping[str, Any], model_pt: str | None,
                     files: Mapping[str, str], out_dir: Path, repeat: int, seed: int,
                     device: str) -> dict[str, float]:  # fmt: skip
    """Fine-tuned (or, without ``model_pt``, from-scratch) test AUC at each labelled size,
    and the robustness of the tagger trained on the most labels."""
    from jetforge.evaluation.metrics import auc
    from jetforge.experiment import NO_AUGSET
    from jetforge.training.finetune import run_finetune

    mode = "floating" if model_pt else "supervised"
    out: dict[str, float] = {}
    sizes = [int(n) for n in lb["finetune"]["n_train"]]
    pred = ""
    for n in sizes:
        pred = str(out_dir / "finetune" / f"n{n}" / "predictions.h5")
        Path(pred).parent.mkdir(parents=True, exist_ok=True)
        run_finetune(files["probe_train"], files["probe_test"], pred, exp, plan.TASK, mode,
                     NO_AUGSET, n, repeat, seed, model_pt, device)  # fmt: skip
        _, s, y = _nominal_scores(pred)
        out[f"ft_auc_n{n}"] = auc(s, y)
    return {**out, **robustness(pred, lb, files["probe_test"], seed)}


def run_entry(lb: Mapping[str, Any], entry: str, repeat: int, seed: int,
              files: Mapping[str, str], out_json: str, device: str = "auto"
              ) -> dict[str, Any]:  # fmt: skip
    """The whole protocol for one entry and pre-training seed ``repeat``; ``files`` are the
    dataset files by role (pretrain, probe_train, probe_test). Writes ``out_json``."""
    from jetforge.training.engine import resolve_device

    device = str(resolve_device(device))  # "auto" -> cuda | cpu, as the embedding loads to it
    exp = plan.experiment(lb, entry)
    out_dir = Path(out_json).parent
    base = plan.baseline_of(lb, entry)
    rec: dict[str, Any] = {"entry": entry, "label": plan.entry_label(lb, entry),
                           "repeat": int(repeat)}  # fmt: skip
    from jetforge.training.selection import select_jet_rows

    rec["n_pretrain_jets"] = int(select_jet_rows(files["pretrain"], lb["classes"])[0].size)
    model_pt: str | None = None
    if base is None:
        model_pt, cost = pretrain(exp, lb, entry, files["pretrain"], out_dir / "pretrain",
                                  int(repeat), seed, device)  # fmt: skip
        rec.update(cost)
    elif base == "random_init":
        model_pt = random_init(exp, files["pretrain"], out_dir / "pretrain", int(repeat), seed)
    if model_pt is not None:
        rec.update(frozen_metrics(lb, model_pt, files, seed, device))
    if base != "random_init":  # random init fine-tuned is the supervised baseline
        rec.update(finetune_metrics(exp, lb, model_pt, files, out_dir, int(repeat), seed,
                                    device))  # fmt: skip
    write_text(out_json, json.dumps(rec, indent=1, default=float) + "\n")
    log.info("wrote %s", out_json)
    return rec
