"""Benchmark / demonstration: jBOT-S on the default-workflow RS3L datasets, CPU only.

    .venv/bin/python bench/jbot.py [--cpu-minutes 5] [--threads 1] [--out results/bench/jbot]

1. **Pre-training** through the real stage (:func:`run_pretrain`, method ``jbot``) with
   the ``experiments.jbot_rs3l`` block of ``config/paper/jbot.yaml``, shrunk to CPU size:
   batch 128 (lr 5e-4 x 128/256, Table 1), 10 warm-up epochs (Table 1), as many epochs
   as fit in ``--cpu-minutes`` of process CPU time at a throughput measured on the first
   batches (CPU time, not wall time: the machine may be shared). Data: the QCD + H(bb)
   jets of ``pretrain.h5``, labels unused; by default all five shower variants of each
   event count as separate jets (5x the 736 nominal jets of the default workflow; the
   stage itself reads nominal jets only, so they are copied into a one-variant file
   first). ``--nominal-only`` restricts to the nominal jets.
2. **Probes** (jBOT §4.4) of the frozen [CLS] embedding: k-NN (k = 30, cosine) and
   linear, fit on all jets of ``finetune.h5`` (every variant: more labelled points for the
   probe) and scored on the nominal jets of ``test.h5``; three classes qcd / hbb / wqq
   (W never seen in pre-training). The same backbone with its random initialisation
   (same seed) is the baseline.
3. **Fine-tuning vs from scratch** (:func:`finetune_vs_scratch`) on the same ``--n-train``
   labelled nominal jets of ``finetune.h5``: floating backbone with LLRD and the Table 1
   MLP head vs the same architecture from random initialisation.
4. **Throughput**: pre-training jets/s (input jets; each is augmented twice and passes
   student and teacher) from ``history.csv``.

Prints a JSON summary and writes it to ``<out>/summary.json``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml

from jetforge.evaluation.probes import embed_rows, knn_probe, linear_probe
from jetforge.generation.seeds import derive_seed
from jetforge.methods import METHODS
from jetforge.models.registry import backbone_config, build_backbone, load_backbone
from jetforge.training.data import DatasetInfo
from jetforge.training.finetune import finetune_vs_scratch, select_class_rows
from jetforge.training.pretrain import run_pretrain, select_jet_rows

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "results" / "datasets" / "rs3l"


def as_single_variant(src: str, dst: Path) -> str:
    """Copy of a format-4 file in which every row is a ``nominal`` jet of its own (the
    shower variants become extra unlabelled jets for single-jet pre-training)."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for k in ("particles", "mask"):
            g.create_dataset(k, data=f[k][:])
        f.copy(f["jets"], g, "jets")
        g["jets/variant"][...] = 0
        for k, v in f.attrs.items():
            g.attrs[k] = v
        g.attrs["variant_names"] = ["nominal"]
    return str(dst)


def measure_rate(exp: dict, h5: str, batch: int, n_steps: int = 4) -> float:
    """Pre-training jets per CPU-second, from ``n_steps`` training steps on real jets."""
    info = DatasetInfo.read(h5)
    torch.manual_seed(0)
    bb = build_backbone(backbone_config(exp["backbone"], in_dim=info.n_features))
    model = METHODS["jbot"].from_config(bb, exp["pretrain"]).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    rows, _ = select_jet_rows(h5, exp["pretrain"]["processes"])
    with h5py.File(h5, "r") as f:
        x, m = (torch.from_numpy(f[k][np.sort(rows[:batch])]) for k in ("particles", "mask"))
    t = 0.0
    for i in range(n_steps + 1):
        t0 = time.process_time()
        out = model(x, m)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        model.on_step(1, 100)
        if i:  # first step warms up kernels
            t += time.process_time() - t0
    return n_steps * batch / t


def probes(bb: torch.nn.Module | str, pcfg: dict) -> dict[str, dict[str, float]]:
    classes = list(pcfg["classes"])
    names = [c.split("_")[0] for c in classes]
    tr_rows, tr_y = select_class_rows(str(DATA / "finetune.h5"), classes, None)
    te_rows, te_y = select_class_rows(str(DATA / "test.h5"), classes, ["nominal"])
    z_tr = embed_rows(bb, str(DATA / "finetune.h5"), tr_rows)
    z_te = embed_rows(bb, str(DATA / "test.h5"), te_rows)
    return {
        "knn": knn_probe(
            z_tr, tr_y, z_te, te_y, k=int(pcfg["k"]), metric=pcfg["metric"], class_names=names
        ),
        "linear": linear_probe(
            z_tr, tr_y, z_te, te_y, max_iter=int(pcfg["linear_max_iter"]), class_names=names
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-minutes", type=float, default=5.0, help="pre-training CPU budget")
    ap.add_argument("--nominal-only", action="store_true", help="pre-train on nominal jets only")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=500, help="labelled jets for fine-tuning")
    ap.add_argument("--ft-epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20240311)
    ap.add_argument("--out", default=str(REPO / "results" / "bench" / "jbot"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for split in ("pretrain", "finetune", "test"):
        if not (DATA / f"{split}.h5").exists():
            raise SystemExit(f"{DATA / f'{split}.h5'} missing: run the default workflow first")

    cfg = yaml.safe_load((REPO / "config" / "paper" / "jbot.yaml").read_text())
    exp = copy.deepcopy(cfg["experiments"]["jbot_rs3l"])
    pre_h5 = str(DATA / "pretrain.h5")
    if not args.nominal_only:
        pre_h5 = as_single_variant(pre_h5, out / "pretrain_all_variants.h5")
    bs = int(args.batch)
    n_jets = select_jet_rows(pre_h5, exp["pretrain"]["processes"])[0].size
    n_train = int(n_jets * (1 - exp["pretrain"]["val_fraction"]))
    steps_per_epoch = n_train // bs
    rate = measure_rate(exp, pre_h5, bs)
    epochs = max(11, int(args.cpu_minutes * 60 * rate / (steps_per_epoch * bs)))
    exp["pretrain"].update(
        batch_size=bs,
        lr=5e-4 * bs / 256,  # Table 1 scaling
        warmup_steps=10 * steps_per_epoch,  # 10 epochs (Table 1)
        epochs=epochs,
        checkpoint_every=10_000,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    run_pretrain(pre_h5, str(out / "pretrain"), exp, "none", repeat=0, seed=args.seed, device="cpu")
    t_pre, c_pre = time.perf_counter() - t0, time.process_time() - c0
    with open(out / "pretrain" / "history.csv") as f:
        hist = list(csv.DictReader(f))
    jets_per_s = float(np.median([float(r["jets_per_s"]) for r in hist]))

    model_pt = str(out / "pretrain" / "model.pt")
    pretrained, payload = load_backbone(model_pt)
    # the random baseline: same architecture and the very initialisation run_pretrain started from
    torch.manual_seed(derive_seed("pretrain", "jbot", 0, "init", base=args.seed))
    random_bb = build_backbone(payload["backbone_cfg"])
    t1 = time.perf_counter()
    probe = {
        "pretrained": probes(pretrained, exp["probe"]),
        "random_init": probes(random_bb, exp["probe"]),
    }
    t_probe = time.perf_counter() - t1

    exp["finetune"].update(epochs=args.ft_epochs, batch_size=64, lr=1e-3, checkpoint_every=10_000)
    t2 = time.perf_counter()
    ft = finetune_vs_scratch(
        str(DATA / "finetune.h5"), str(DATA / "test.h5"), str(out / "finetune"), exp, "three_class",
        model_pt, args.n_train, "none", repeat=0, seed=args.seed, device="cpu",
    )  # fmt: skip
    t_ft = time.perf_counter() - t2

    last = hist[-1]
    summary = {
        "machine": {"threads": args.threads, "cpu_count": os.cpu_count(), "load_avg_1m": _load()},
        "pretrain": {
            "file": Path(pre_h5).name,
            "jets": n_train,
            "batch_size": bs,
            "epochs": epochs,
            "steps": int(last["step"]),
            "wall_s": round(t_pre, 1),
            "cpu_s": round(c_pre, 1),
            "jets_per_cpu_s": round(epochs * steps_per_epoch * bs / c_pre, 1),  # incl. validation
            "jets_per_s_median_epoch": round(jets_per_s, 1),
            "jets_per_cpu_s_calibration": round(rate, 1),
            "first_epoch": {k: round(float(v), 4) for k, v in hist[0].items() if k != "epoch"},
            "last_epoch": {k: round(float(v), 4) for k, v in last.items() if k != "epoch"},
        },
        "probes": _round(probe),
        "probe_wall_s": round(t_probe, 1),
        "finetune_vs_scratch": {"n_train": args.n_train, "epochs": args.ft_epochs, **_round(ft)},
        "finetune_wall_s": round(t_ft, 1),
    }
    summary["total_cpu_s"] = round(time.process_time(), 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


def _load() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return math.nan


def _round(d: dict) -> dict:
    return {k: _round(v) if isinstance(v, dict) else round(float(v), 4) for k, v in d.items()}


if __name__ == "__main__":
    main()
