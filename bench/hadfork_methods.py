"""Demonstration: contrastive (hadronization forks) vs autoencoder pre-training of the
tracks + cells transformer (Rieck et al. arXiv:2503.11632, §4, §5.2, §5.4, §5.5).

    .venv/bin/python bench/hadfork_methods.py [--data auto|real|chunk|toy] [--threads 1]

Data (``--data auto``): the real hadfork files when
``results/datasets/hadfork/{pretrain,finetune,test}.h5`` exist; else, when
:mod:`jetforge.datasets.hadfork` exists, small chunks built with it here (Pythia +
COCOA-like detector, no pile-up, <= 128 cells per jet: the CPU budget); else
(``--data toy``) a **synthetic toy** in exactly the same layout (contract 4, V = 2 forks,
tracks in ``particles``, cells in ``cells``), every number then labelled SYNTHETIC. The
toy draws a shared "parton shower" per pair (prong directions and energy shares, class
dependent: q narrow/few prongs, g wide/many, τ one narrow prong with 1 or 3 charged
tracks and displaced vertices, dark = many wide prongs with few tracks) and then, per
fork, independent "hadronization + detector": track and cell multiplicities, positions
around the prongs, energies, calorimeter layers. Only the prong structure is shared by a
pair, as the parton shower is in the paper's forks.

Steps: pre-train ``hadfork_contrastive`` and ``ae_vicreg`` briefly (paper backbone,
Table 1 sizes) with the workflow's :func:`~jetforge.training.pretrain.run_pretrain`;
embed labelled jets with both and with a random initialisation (same input
standardisation, :func:`~jetforge.training.pretrain.build_backbone_for`) through the
shared :func:`~jetforge.evaluation.probes.embed_rows`; k-NN (k = 30) and linear probes of
frozen y (q/g/τ), the per-class k-NN efficiencies that §5.2 quotes (71 % g, 97 % τ);
anomaly AUCs of SM vs dark jets for the cosine-loss autoencoder on x (§5.5) and the jBOT
reference scores; training/inference throughput, plus a paper-sized (8 tracks + 800
cells) training step timing. Writes ``results/bench/hadfork_methods.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import yaml

from jetforge.evaluation.anomaly import (
    CosineAEConfig,
    anomaly_auc,
    cosine_ae_score,
    evaluate_scores,
    fit_cosine_ae,
)
from jetforge.evaluation.probes import embed_rows, knn_probe, linear_probe
from jetforge.io.atomic import write_json
from jetforge.methods import HadforkContrastive
from jetforge.models.cells_tracks import CellsTracksNet
from jetforge.models.registry import load_backbone
from jetforge.training.data import DatasetInfo
from jetforge.training.multi_data import MultiPairBatch
from jetforge.training.pretrain import build_backbone_for, run_pretrain, select_jet_rows

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "results" / "datasets" / "hadfork"

# ----------------------------------------------------------------------------- toy data

CLASSES = ["q", "g", "tau", "dark"]
PROCESSES = ["qq", "gg", "tautau", "dark"]
#: per class: prongs = 1 + Poisson(extra) (dark: 3 +), lateral spread of the prongs,
#: mean charged multiplicity, mean cell count, EM fraction of cells, d0 resolution (mm)
STYLE = {
    "q": dict(base=1, extra=1.0, spread=0.05, n_ch=6.0, n_cells=45.0, em=0.55, d0=0.02),
    "g": dict(base=1, extra=2.5, spread=0.09, n_ch=10.0, n_cells=70.0, em=0.45, d0=0.02),
    "tau": dict(base=1, extra=0.0, spread=0.015, n_ch=0.0, n_cells=25.0, em=0.70, d0=0.08),
    "dark": dict(base=3, extra=2.0, spread=0.12, n_ch=4.0, n_cells=55.0, em=0.35, d0=0.03),
}
LAYER_WIDTH = np.array([0.02, 0.025, 0.035, 0.05, 0.07, 0.09])


def _shower(rng: np.random.Generator, cls: str) -> dict[str, Any]:
    """What a fork pair shares: jet kinematics, prongs (directions, energy shares), τ channel."""
    s = STYLE[cls]
    n = s["base"] + int(rng.poisson(s["extra"]))
    return {
        "pt": float(100.0 * math.exp(rng.normal(0, 0.3))),
        "eta": float(rng.uniform(-2.5, 2.5)),
        "phi": float(rng.uniform(-math.pi, math.pi)),
        "dirs": np.clip(rng.normal(0, s["spread"], (n, 2)), -0.35, 0.35),
        "shares": rng.dirichlet(np.full(n, 2.0)),
        "n_prong_ch": 1 if rng.random() < 0.75 else 3,  # τ decay channel, same in both forks
    }


def _split(rng: np.random.Generator, shares: np.ndarray, prong: np.ndarray) -> np.ndarray:
    """Each prong's energy share split among its constituents with exponential weights."""
    w = rng.exponential(1.0, prong.size)
    tot = np.bincount(prong, weights=w, minlength=shares.size)
    return shares[prong] * w / np.maximum(tot[prong], 1e-12)


def _fork(rng: np.random.Generator, cls: str, sh: dict[str, Any], T: int, C: int):
    """One hadronization + detector response of a shared shower -> padded tracks, cells."""
    s, pt = STYLE[cls], sh["pt"]
    scale = (pt / 100.0) ** 0.3
    n_ch = sh["n_prong_ch"] if cls == "tau" else int(rng.poisson(s["n_ch"] * scale))
    prong = rng.choice(len(sh["shares"]), size=n_ch, p=sh["shares"])
    tr = np.zeros((n_ch, 5), np.float32)
    tr[:, 0] = 0.6 * pt * _split(rng, sh["shares"], prong)  # charged energy fraction ~ 0.6
    tr[:, 1:3] = sh["dirs"][prong] + rng.normal(0, 0.02, (n_ch, 2))
    tr[:, 3] = rng.normal(0, s["d0"], n_ch)
    tr[:, 4] = rng.normal(0, 0.05, n_ch)
    tr = tr[tr[:, 0] > 1.0]  # primaries below 1 GeV are not simulated (§3)
    tr = tr[np.argsort(-tr[:, 0])][:T]
    n_c = min(int(rng.poisson(s["n_cells"] * scale)) + 1, C)
    prong = rng.choice(len(sh["shares"]), size=n_c, p=sh["shares"])
    em = rng.random(n_c) < s["em"]
    layer = np.where(
        em, rng.choice(3, n_c, p=[0.3, 0.5, 0.2]), 3 + rng.choice(3, n_c, p=[0.4, 0.4, 0.2])
    )
    ce = np.zeros((n_c, 4), np.float32)
    ce[:, 0] = 0.4 * pt * _split(rng, sh["shares"], prong)  # visible calorimeter fraction
    ce[:, 1:3] = sh["dirs"][prong] + rng.normal(0, 1, (n_c, 2)) * LAYER_WIDTH[layer, None]
    ce[:, 3] = layer
    ce = ce[np.argsort(-ce[:, 0])]
    t, c = np.zeros((T, 5), np.float32), np.zeros((C, 4), np.float32)
    t[: len(tr)], c[:n_c] = tr, ce
    return t, np.arange(T) < len(tr), c, np.arange(C) < n_c


def write_toy(path: Path, n_pairs: dict[str, int], seed: int, T: int = 16, C: int = 96) -> Path:
    """SYNTHETIC hadfork-layout file (contract 4 + cells), deterministic in ``seed``."""
    arrays: dict[str, list] = {k: [] for k in ("t", "tm", "c", "cm")}
    cols: dict[str, list] = {
        k: [] for k in ("process", "variant", "label", "pair_id", "event", "pt", "eta", "phi")
    }
    pair = 0
    for p, cls in enumerate(CLASSES):
        for ev in range(n_pairs.get(PROCESSES[p], 0)):
            sh = _shower(np.random.default_rng([seed, p, ev]), cls)
            for v in range(2):
                fork = _fork(np.random.default_rng([seed, p, ev, v + 1]), cls, sh, T, C)
                for k, a in zip(("t", "tm", "c", "cm"), fork, strict=True):
                    arrays[k].append(a)
                jet_pt = sh["pt"] * (1 + 0.1 * np.random.default_rng([seed, p, ev, v, 9]).normal())
                for k, val in (("process", p), ("variant", v), ("label", p), ("pair_id", pair),
                               ("event", ev), ("pt", jet_pt), ("eta", sh["eta"]),
                               ("phi", sh["phi"])):
                    cols[k].append(val)
            pair += 1
    N = len(arrays["t"])
    with h5py.File(path, "w") as f:
        ch = min(N, 256)
        f.create_dataset(
            "particles", data=np.stack(arrays["t"]), chunks=(ch, T, 5), compression="lzf"
        )
        f.create_dataset("mask", data=np.stack(arrays["tm"]), chunks=(ch, T))
        f.create_dataset("cells", data=np.stack(arrays["c"]), chunks=(ch, C, 4), compression="lzf")
        f.create_dataset("cells_mask", data=np.stack(arrays["cm"]), chunks=(ch, C))
        g = f.create_group("jets")
        for k, dt in (("process", np.int8), ("variant", np.int8), ("label", np.int8),
                      ("pair_id", np.int64), ("event", np.int32), ("pt", np.float32),
                      ("eta", np.float32), ("phi", np.float32)):
            g.create_dataset(k, data=np.asarray(cols[k], dt))
        for k in ("mass", "n2"):
            g.create_dataset(k, data=np.zeros(N, np.float32))
        g.create_dataset("chunk", data=np.zeros(N, np.int32))
        g.create_dataset("parton_pid", data=np.zeros(N, np.int32))
        f.attrs["feature_names"] = ["pt", "deta", "dphi", "d0", "z0"]
        f.attrs["cells_feature_names"] = ["E", "deta", "dphi", "layer"]
        f.attrs["class_names"], f.attrs["process_names"] = CLASSES, PROCESSES
        f.attrs["variant_names"] = ["fork_a", "fork_b"]
        f.attrs["dataset"], f.attrs["split"] = "hadfork_SYNTHETIC_toy", path.stem
    return path


# ----------------------------------------------------------------------------- helpers


def _per_class_knn_efficiency(zt, yt, zs, ys, k: int) -> dict[str, float]:
    """Fraction of each class's test jets whose k-NN majority is their class (§5.2)."""
    from sklearn.neighbors import KNeighborsClassifier

    def unit(z: np.ndarray) -> np.ndarray:
        return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)

    pred = KNeighborsClassifier(n_neighbors=k).fit(unit(zt), yt).predict(unit(zs))
    return {CLASSES[c]: float((pred[ys == c] == c).mean()) for c in np.unique(ys)}


def _probe(zt, yt, zs, ys, k: int) -> dict[str, Any]:
    names = CLASSES[: int(max(yt.max(), ys.max())) + 1]
    return {
        "knn_eff": _per_class_knn_efficiency(zt, yt, zs, ys, k),
        "knn": knn_probe(zt, yt, zs, ys, k=k, class_names=names),
        "linear": linear_probe(zt, yt, zs, ys, class_names=names),
    }


def _paper_size_step(threads: int, n_pairs: int = 6, n_steps: int = 2) -> dict[str, float]:
    """Seconds per training step of the Table 1 backbone on paper-sized jets (8 tracks,
    800 cells, §3), random inputs; jets/s extrapolated. ``n_pairs`` kept small on CPU
    because the masked attention materialises [B, 8, 808, 808] weights."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = HadforkContrastive(CellsTracksNet())
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def view() -> list[torch.Tensor]:
        t = np.zeros((n_pairs, 8, 5), np.float32)
        t[..., 0] = rng.exponential(10, (n_pairs, 8)) + 1
        t[..., 1:3] = rng.normal(0, 0.1, (n_pairs, 8, 2))
        c = np.zeros((n_pairs, 800, 4), np.float32)
        c[..., 0] = rng.exponential(1, (n_pairs, 800))
        c[..., 1:3] = rng.normal(0, 0.12, (n_pairs, 800, 2))
        c[..., 3] = rng.integers(0, 6, (n_pairs, 800))
        return [torch.from_numpy(t), torch.ones(n_pairs, 8, dtype=torch.bool),
                torch.from_numpy(c), torch.ones(n_pairs, 800, dtype=torch.bool)]

    batch = MultiPairBatch(*view(), *view(), torch.zeros(n_pairs, dtype=torch.long))
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n_steps):
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    dt, dc = (time.perf_counter() - t0) / n_steps, (time.process_time() - c0) / n_steps
    return {"s_per_step": dt, "cpu_s_per_step": dc, "jets_per_s": 2 * n_pairs / dt,
            "jets_per_cpu_s": 2 * n_pairs / dc, "pairs_per_step": n_pairs, "threads": threads}


# ----------------------------------------------------------------------------- data sources

#: bench-only stand-in for the hadfork dataset block (owned by the dataset stage): pile-up
#: off and at most 128 cells per jet (highest energy first) to fit the 6-CPU-minute budget.
SMALL_REAL_DS = {
    "sqrt_s": 13000.0,
    "processes": ["hadfork_qq", "hadfork_gg", "hadfork_tautau", "hadfork_dark_a"],
    "events_per_chunk": 100,
    "hard_cuts": {"pt_min": 100.0, "eta_max": 3.0},  # §3: p_T > 100 GeV, |η| < 3
    "shower": {"base_settings": []},
    "detector": "cocoa_cells",
    "jets": {"R": 0.4, "pt_min": 25.0, "hadron_pt_min": 50.0, "eta_max": 3.0,  # §3
             "match_dr": 0.3, "parton_match_dr": 0.4},
    "tracks": {"assoc_dr": 0.4, "max_dz": 2.0},  # §3
    "pairs": {"max_rel_dpt": 0.5, "max_dr": 0.2},
    "n_tracks": 32, "n_cells": 128, "pileup": {"mu": 0.0},
}


def build_small_real(tmp: Path, events: int) -> tuple[dict[str, Path], Path]:
    """Tiny Pythia + COCOA-like chunks (q:g:τ = 3:3:1 hard events, plus dark jets) merged
    per split with :mod:`jetforge.datasets.hadfork`."""
    from jetforge.datasets.hadfork import build_hadfork_chunk, merge_hadfork_chunks

    n = {
        "hadfork_qq": 3 * events // 7, "hadfork_gg": 3 * events // 7,
        "hadfork_tautau": events // 7,
    }
    files: dict[str, Path] = {}
    for i, split in enumerate(("pretrain", "finetune", "test")):
        scale = 1.0 if split == "pretrain" else 0.5
        parts = []
        for proc, k in n.items():
            out = tmp / f"{split}_{proc}.h5"
            ds = dict(SMALL_REAL_DS, events_per_chunk=max(int(k * scale), 1))
            build_hadfork_chunk(None, out, ds, "hadfork_bench", proc, split, 0, 100 + i)
            parts.append(out)
        merge_hadfork_chunks(parts, tmp / f"{split}.h5")
        files[split] = tmp / f"{split}.h5"
    dark = tmp / "dark.h5"
    build_hadfork_chunk(None, dark, dict(SMALL_REAL_DS, events_per_chunk=max(events // 7, 1)),
                        "hadfork_bench", "hadfork_dark_a", "test", 0, 200)
    return files, dark


def toy_files(tmp: Path, pairs: int, labelled: int) -> tuple[dict[str, Path], Path]:
    def split(n: int) -> dict[str, int]:
        return {"qq": 3 * n // 7, "gg": 3 * n // 7, "tautau": n - 6 * (n // 7)}

    files = {
        "pretrain": write_toy(tmp / "pretrain.h5", split(pairs), seed=1),
        "finetune": write_toy(tmp / "finetune.h5", split(labelled), seed=2),
        "test": write_toy(tmp / "test.h5", split(labelled), seed=3),
    }
    return files, write_toy(tmp / "dark.h5", {"dark": labelled // 2}, seed=4)


# ----------------------------------------------------------------------------- main


def _embed_xy(bb: torch.nn.Module, path: Path, rows: np.ndarray) -> dict[str, np.ndarray]:
    """x (pooled, 128-d) and y = head(x) (8-d) from one backbone pass."""
    x = embed_rows(bb, str(path), rows, chunk=512, represent=True)
    with torch.no_grad():
        y = bb.head(torch.from_numpy(x)).numpy()
    return {"x": x, "y": y}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=["auto", "real", "chunk", "toy"], default="auto",
                    help="auto: real files, else a small Pythia+COCOA-like chunk, else toy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument(
        "--pairs", type=int, default=2400, help="toy pre-training pairs (q:g:τ = 3:3:1)"
    )
    ap.add_argument("--labelled", type=int, default=1400, help="toy labelled jets per split")
    ap.add_argument(
        "--events", type=int, default=1050, help="hard events for --data chunk (pretrain)"
    )
    ap.add_argument("--out", default=str(REPO / "results" / "bench" / "hadfork_methods.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="hadfork_bench_") as tmp:
        _bench(args, Path(tmp))


def _bench(args: argparse.Namespace, tmp: Path) -> None:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    hadfork_yaml = REPO / "config" / "paper" / "hadfork.yaml"
    exp_all = yaml.safe_load(hadfork_yaml.read_text())["experiments"]
    mode = args.data
    if mode == "auto":
        import importlib.util

        if all((REAL / f"{s}.h5").exists() for s in ("pretrain", "finetune", "test")):
            mode = "real"
        elif importlib.util.find_spec("jetforge.datasets.hadfork") is not None:
            mode = "chunk"
        else:
            mode = "toy"
    if mode == "real":
        files = {s: REAL / f"{s}.h5" for s in ("pretrain", "finetune", "test")}
        dark_file = next(iter(sorted(REAL.glob("dark*.h5"))), None)
        label = f"REAL hadfork dataset ({REAL})"
    elif mode == "chunk":
        files, dark_file = build_small_real(tmp, args.events)
        label = (f"SMALL SIMULATED hadfork chunks (Pythia + COCOA-like cells, {args.events} hard "
                 "events for pre-training, no pile-up, <= 128 cells/jet)")
    else:
        files, dark_file = toy_files(tmp, args.pairs, args.labelled)
        label = "SYNTHETIC toy data (hadfork layout; not physics)"
    print(f"# hadfork methods benchmark on {label}; threads={args.threads}")
    results: dict[str, Any] = {"data": label, "threads": args.threads, "epochs": args.epochs,
                               "cpu_s_data": time.process_time() - cpu0}
    with h5py.File(files["pretrain"], "r") as f:
        n_rows = f["mask"].shape[0]
        results["pretrain_pairs"] = n_rows // 2
        results["mean_tracks"] = float(f["mask"][:].sum(1).mean())
        results["mean_cells"] = float(f["cells_mask"][:].sum(1).mean())

    backbones: dict[str, torch.nn.Module] = {}
    for name in ("hadfork", "hadfork_ae"):
        exp = exp_all[name]
        bs = int(exp["pretrain"]["batch_size"])
        steps = args.epochs * (results["pretrain_pairs"] * 15 // 16) // bs
        pcfg = dict(exp["pretrain"], epochs=args.epochs, warmup_steps=max(steps // 10, 1),
                    val_fraction=1 / 16, checkpoint_every=10**9)
        out = tmp / name
        c0 = time.process_time()
        run_pretrain(str(files["pretrain"]), str(out), {**exp, "pretrain": pcfg}, None, 0, 7, "cpu")
        cpu = time.process_time() - c0
        with open(out / "history.csv") as fh:
            hist = list(csv.DictReader(fh))
        backbones[pcfg["method"]], _ = load_backbone(out / "model.pt")
        results[pcfg["method"]] = {
            "cpu_s": cpu,
            # all training jets over all epochs / CPU time incl. validation: a lower bound
            "train_jets_per_cpu_s": 2 * bs * int(hist[-1]["step"]) / cpu,
            "train_jets_per_s": float(np.mean([float(h["jets_per_s"]) for h in hist])),
            "history": [{k: float(v) for k, v in h.items()} for h in hist],
        }
        print(f"pretrain {pcfg['method']}: {len(hist)} epochs, last {hist[-1]}")

    # random initialisation with the same input standardisation (only training differs)
    torch.manual_seed(123)
    backbones["random"], _ = build_backbone_for(
        exp_all["hadfork"]["backbone"], str(files["pretrain"]), np.arange(n_rows), 20000
    )

    k = int(exp_all["hadfork"]["probe"]["k"])
    rows_tr, y_tr = select_jet_rows(str(files["finetune"]), None, ["fork_a"])
    rows_te, y_te = select_jet_rows(str(files["test"]), None, ["fork_a"])
    sm = [0, 1, 2]  # q, g, tau
    keep_tr, keep_te = np.isin(y_tr, sm), np.isin(y_te, sm)
    rows_tr, y_tr, rows_te, y_te = rows_tr[keep_tr], y_tr[keep_tr], rows_te[keep_te], y_te[keep_te]
    results["labelled_jets"] = {"train": int(rows_tr.size), "test": int(rows_te.size)}
    dark_rows = None
    if dark_file:
        d_rows, d_lab = select_jet_rows(str(dark_file), None, ["fork_a"])
        names = DatasetInfo.read(str(dark_file)).class_names
        dark_rows = d_rows[d_lab == names.index("dark")] if "dark" in names else d_rows
    if dark_rows is not None:
        results["labelled_jets"]["dark"] = int(dark_rows.size)
    acfg = exp_all["hadfork"]["anomaly"]
    rep = acfg["representation"]
    for name, bb in backbones.items():
        c0, w0 = time.process_time(), time.perf_counter()
        tr, te = _embed_xy(bb, files["finetune"], rows_tr), _embed_xy(bb, files["test"], rows_te)
        r = results.setdefault(name, {})
        r["infer_jets_per_cpu_s"] = (rows_tr.size + rows_te.size) / (time.process_time() - c0)
        r["infer_jets_per_s"] = (rows_tr.size + rows_te.size) / (time.perf_counter() - w0)
        r["probe_y"] = _probe(tr["y"], y_tr, te["y"], y_te, min(k, rows_tr.size))
        if dark_rows is not None and dark_rows.size:
            dark = _embed_xy(bb, dark_file, dark_rows)
            ae, ae_hist = fit_cosine_ae(tr[rep], CosineAEConfig.from_dict(acfg["cosine_ae"]))
            r["anomaly"] = {
                "cosine_ae_auc": anomaly_auc(
                    cosine_ae_score(ae, te[rep]), cosine_ae_score(ae, dark[rep])
                ),
                "cosine_ae_loss_first_last": [ae_hist[0], ae_hist[-1]],
                "scores_on_y": {s: v["dark"] for s, v in evaluate_scores(
                    tr["y"], y_tr, te["y"], {"dark": dark["y"]}, acfg["scores"]).items()},
            }
        r["eval_cpu_s"] = time.process_time() - c0
        summary = {k2: v for k2, v in r.items() if k2 != "history"}
        print(f"{name}: {json.dumps(summary, default=float)}")

    results["paper_size_step"] = _paper_size_step(args.threads)
    results["cpu_s_total"] = time.process_time() - cpu0
    results["wall_s_total"] = time.perf_counter() - wall0
    results["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_json(args.out, results)
    _summary(results)
    print(f"wrote {args.out}")


def _summary(r: dict[str, Any]) -> None:
    print(f"\n## Summary ({r['data']}; {r['epochs']} epochs; {r['threads']} thread(s))\n")
    print(f"pre-training pairs {r['pretrain_pairs']} (mean {r['mean_tracks']:.1f} tracks, "
          f"{r['mean_cells']:.1f} cells per jet); labelled jets {r['labelled_jets']}\n")
    print("| backbone | kNN acc | kNN eff q/g/τ | linear acc | linear AUC | AE(cos) dark AUC "
          "| best jBOT score AUC | train jets/CPU-s | infer jets/CPU-s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("hadfork_contrastive", "ae_vicreg", "random"):
        x = r.get(name, {})
        p = x.get("probe_y", {})
        eff = p.get("knn_eff", {})
        effs = "/".join(f"{eff.get(c, float('nan')):.2f}" for c in ("q", "g", "tau"))
        an = x.get("anomaly", {})
        best = max(
            an.get("scores_on_y", {}).items(), key=lambda kv: kv[1], default=("-", float("nan"))
        )
        print(
            f"| {name} | {p.get('knn', {}).get('accuracy', float('nan')):.3f} | "
            f"{effs} | "
            f"{p.get('linear', {}).get('accuracy', float('nan')):.3f} | "
            f"{p.get('linear', {}).get('auc', float('nan')):.3f} | "
            f"{an.get('cosine_ae_auc', float('nan')):.3f} | {best[1]:.3f} ({best[0]}) | "
            f"{x.get('train_jets_per_cpu_s', float('nan')):.0f} | "
            f"{x.get('infer_jets_per_cpu_s', float('nan')):.0f} |"
        )
    ps = r["paper_size_step"]
    print(f"\npaper-size step (8 tracks + 800 cells, {ps['pairs_per_step']} pairs): "
          f"{ps['cpu_s_per_step']:.2f} CPU-s/step = {ps['jets_per_cpu_s']:.1f} jets/CPU-s "
          f"(wall {ps['s_per_step']:.2f} s/step)")
    print(f"total CPU {r['cpu_s_total']:.0f} s, wall {r['wall_s_total']:.0f} s, "
          f"max RSS {r['max_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
