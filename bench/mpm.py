"""Demonstration: masked particle modelling (arXiv:2401.13537) on the RS3L datasets, on CPU.

    .venv/bin/python bench/mpm.py [--out results/bench/mpm] [--targets kmeans,vqvae]

Runs the whole MPM chain at demo scale (a few CPU minutes) on the files of the default
workflow (``results/datasets/rs3l/{pretrain,finetune,test}.h5``):

1. tokenizers (``train_tokenizer``): K-means (512 clusters, scikit-learn) and a short VQ-VAE
   (512 codes, K-means-initialised); codebook utilisation on held-out jets;
2. MPM pre-training (``run_pretrain``, ordering = head) for each target; throughput and
   masked-token accuracy from its history;
3. probes of the frozen jet embedding (kNN k = 30 and linear, jBOT's
   ``evaluation.probes``) on the 3-class task qcd/hbb/wqq: pre-trained vs the *same*
   backbone at its random initialisation;
4. fine-tuned (each pre-trained backbone) vs from scratch (``training.finetune.run_finetune``,
   ``floating`` vs ``supervised``) on the same small
   labelled set.

Everything except the sizes comes from the ``experiments.mpm`` block of
``config/paper/mpm.yaml``; the demo overrides (a small backbone, a larger learning rate for
a few hundred steps, the RS3L 3-class task) are listed in ``DEMO``.
Writes ``summary.json`` into ``--out`` and prints the numbers.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import yaml

from jetforge.evaluation.probes import (
    classification_metrics,
    embed_rows,
    knn_probe,
    linear_probe,
)
from jetforge.generation.seeds import derive_seed
from jetforge.methods.mpm_tokenizer import train_tokenizer
from jetforge.models.registry import backbone_config, build_backbone, load_backbone
from jetforge.training.data import DatasetInfo
from jetforge.training.finetune import run_finetune, select_class_rows
from jetforge.training.pretrain import run_pretrain

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "results" / "datasets" / "rs3l"
SEED = 20240311

#: demo-scale overrides of config/paper/mpm.yaml (CPU minutes instead of GPU days)
DEMO: dict[str, dict[str, Any]] = {
    "backbone": {"dim": 64, "n_blocks": 4, "n_heads": 8, "mlp_dim": 128},
    "tokenizer": {"dim": 64, "n_blocks": 2, "mlp_dim": 128, "n_fit_jets": 5000,
                  "kmeans_iter": 50, "batch_size": 64, "epochs": 12, "lr": 1e-3,
                  "val_fraction": 0.1, "checkpoint_every": 10_000},
    "pretrain": {"head_mlp_dim": 128, "batch_size": 64, "epochs": 36, "lr": 5e-4,
                 "warmup_steps": 20, "schedule": "cosine", "val_fraction": 0.1,
                 "checkpoint_every": 10_000},
    "finetune": {"batch_size": 64, "epochs": 30, "lr": 5e-4, "lr_backbone": 5e-4,
                 "checkpoint_every": 10_000,
                 "tasks": {"jet3": {"classes": ["qcd_zjet", "hbb_zh", "wqq_wjet"]}}},
}  # fmt: skip


class Clock:
    """Wall and CPU (all threads of this process) seconds per stage."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    def __call__(self, name: str):
        clock = self

        class _Stage:
            def __enter__(self) -> None:
                self.w, self.c = time.perf_counter(), time.process_time()

            def __exit__(self, *exc: object) -> None:
                clock.stages[name] = {
                    "wall_s": time.perf_counter() - self.w,
                    "cpu_s": time.process_time() - self.c,
                }
                print(f"  [{name}] wall {clock.stages[name]['wall_s']:.0f} s, "
                      f"cpu {clock.stages[name]['cpu_s']:.0f} s", flush=True)  # fmt: skip

        return _Stage()


def demo_config() -> dict[str, Any]:
    """The ``experiments.mpm`` block of config/paper/mpm.yaml with the ``DEMO`` overrides."""
    exp = yaml.safe_load((REPO / "config" / "paper" / "mpm.yaml").read_text())["experiments"]["mpm"]
    exp = copy.deepcopy(exp)
    for block, over in DEMO.items():
        exp[block].update(over)
    return exp


def history(path: Path) -> list[dict[str, float]]:
    with open(path) as f:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def nominal_rows(h5: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    classes = ["qcd_zjet", "hbb_zh", "wqq_wjet"]
    rows, labels = select_class_rows(h5, classes, [DatasetInfo.read(h5).nominal])
    return rows, labels.astype(np.int64), classes


def probes(backbone: torch.nn.Module | str) -> dict[str, dict[str, float]]:
    """kNN (k = 30) and linear probes: train on the fine-tuning split, test on the test split."""
    tr, ytr, names = nominal_rows(str(DATA / "finetune.h5"))
    te, yte, _ = nominal_rows(str(DATA / "test.h5"))
    z_tr = embed_rows(backbone, str(DATA / "finetune.h5"), tr)
    z_te = embed_rows(backbone, str(DATA / "test.h5"), te)
    return {
        "knn30": knn_probe(z_tr, ytr, z_te, yte, k=30, class_names=names),
        "linear": linear_probe(z_tr, ytr, z_te, yte, class_names=names),
    }


def finetune(
    exp: dict[str, Any], mode: str, target: str | None, n_train: int, out: Path
) -> dict[str, float]:
    """Train on ``n_train`` labelled jets (the same subset for every mode and target) and
    return the test metrics; ``target`` names the pre-trained backbone (None: scratch)."""
    pred = out / "finetune" / (target or "scratch") / "predictions.h5"
    pre = str(out / "pretrain" / target / "model.pt") if target else None
    run_finetune(
        str(DATA / "finetune.h5"), str(DATA / "test.h5"), str(pred), exp, "jet3", mode,
        "nominal", n_train, 0, SEED, pre, "cpu",
    )  # fmt: skip
    with h5py.File(pred, "r") as f:
        return classification_metrics(f["score"][:], f["label"][:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "results" / "bench" / "mpm"))
    ap.add_argument("--targets", default="kmeans,vqvae", help="MPM targets to pre-train")
    ap.add_argument("--n-train", type=int, default=300, help="labelled jets for fine-tuning")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (1: tiny models on shared cores waste less)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    targets = args.targets.split(",")
    out = Path(args.out)
    for split in ("pretrain", "finetune", "test"):
        if not (DATA / f"{split}.h5").exists():
            raise SystemExit(
                f"missing {DATA / split}.h5: run the default workflow's datasets first"
            )
    for sub in ("tokenizers", "pretrain", "finetune"):  # a fresh run: no resumed checkpoints
        shutil.rmtree(out / sub, ignore_errors=True)
    exp = demo_config()
    clock, summary = Clock(), {"demo_overrides": DEMO, "targets": {}}
    pre_h5 = str(DATA / "pretrain.h5")

    tok_paths = {}
    for kind in sorted(set(targets)):  # regression: the feature standardiser
        print(f"tokenizer {kind}", flush=True)
        with clock(f"tokenizer_{kind}"):
            tcfg = dict(exp["tokenizer"], kind=kind)
            tok_paths[kind] = out / "tokenizers" / f"{kind}.pt"
            usage = train_tokenizer(pre_h5, str(tok_paths[kind]), tcfg, SEED, "cpu")
        summary[f"tokenizer_{kind}"] = usage
        print(f"  codebook utilisation {kind}: {usage}", flush=True)

    bb_cfg = backbone_config(exp["backbone"], in_dim=DatasetInfo.read(pre_h5).n_features)
    torch.manual_seed(derive_seed("pretrain", "mpm", 0, "init", base=SEED))
    random_init = build_backbone(bb_cfg)  # the initialisation every pre-training starts from
    with clock("probe_random"):
        summary["random_init"] = probes(random_init)
    print(f"  random init: {json.dumps(summary['random_init'], indent=None)}", flush=True)

    for target in targets:
        print(f"MPM pre-training, target {target}", flush=True)
        e = copy.deepcopy(exp)
        e["pretrain"].update(target=target, tokenizer_path=str(tok_paths.get(target, "")) or None)
        run_dir = out / "pretrain" / target
        with clock(f"pretrain_{target}"):
            run_pretrain(pre_h5, str(run_dir), e, "", repeat=0, seed=SEED, device="cpu")
        h = history(run_dir / "history.csv")
        res: dict[str, Any] = {
            "epochs": len(h), "steps": int(h[-1]["step"]),
            "loss_first": h[0]["loss"], "loss_last": h[-1]["loss"],
            "val_loss_first": h[0].get("val_loss"), "val_loss_last": h[-1].get("val_loss"),
            "val_accuracy_last": h[-1].get("val_accuracy"),
            "train_jets_per_s": float(np.mean([r["jets_per_s"] for r in h])),
        }  # fmt: skip
        with clock(f"probe_{target}"):
            res["probes"] = probes(str(run_dir / "model.pt"))
        backbone, _ = load_backbone(run_dir / "model.pt")
        te, _, _ = nominal_rows(str(DATA / "test.h5"))
        t = time.perf_counter()
        embed_rows(backbone, str(DATA / "test.h5"), te)
        res["embed_jets_per_s"] = te.size / (time.perf_counter() - t)
        summary["targets"][target] = res
        print(f"  {json.dumps(res, indent=None)}", flush=True)

    print(f"fine-tuned vs from scratch, {args.n_train} labelled jets", flush=True)
    summary["finetune"] = {"n_train": args.n_train}
    for mode, target in [("supervised", None)] + [("floating", t) for t in targets]:
        name = target or "scratch"
        with clock(f"finetune_{name}"):
            summary["finetune"][name] = finetune(exp, mode, target, args.n_train, out)
        print(f"  {name}: {json.dumps(summary['finetune'][name])}", flush=True)
    summary["timing"] = clock.stages
    summary["cpu_s_total"] = sum(s["cpu_s"] for s in clock.stages.values())
    summary["wall_s_total"] = sum(s["wall_s"] for s in clock.stages.values())
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")

    print("\n=== MPM demonstration (3 classes qcd/hbb/wqq; accuracy / macro AUC) ===")
    rnd = summary["random_init"]
    for name, r in [("random init", {"probes": rnd})] + list(summary["targets"].items()):
        p = r["probes"]
        print(f"{name:>12}: kNN30 acc {p['knn30']['accuracy']:.3f} auc {p['knn30']['auc']:.3f} | "
              f"linear acc {p['linear']['accuracy']:.3f} auc {p['linear']['auc']:.3f}")  # fmt: skip
    for target, r in summary["targets"].items():
        beats = all(r["probes"][k]["accuracy"] > rnd[k]["accuracy"] for k in ("knn30", "linear"))
        print(f"pre-trained ({target}) beats random init on both probes: {beats}")
    f = summary["finetune"]
    for name in ["scratch", *targets]:
        label = "from scratch" if name == "scratch" else f"fine-tuned ({name})"
        print(f"{label:>20}: acc {f[name]['accuracy']:.3f} auc {f[name]['auc']:.3f}")
    print(f"total: cpu {summary['cpu_s_total']:.0f} s, wall {summary['wall_s_total']:.0f} s; "
          f"wrote {out / 'summary.json'}")  # fmt: skip


if __name__ == "__main__":
    main()
