"""Is the HDF5 data loader the bottleneck? Loader-only jets/s vs training-step jets/s, CPU.

    .venv/bin/python bench/loader.py [--out results/bench/loader] [--pairs 12000]
                                     [--batch-sizes 64 256 1024] [--seconds 3]
                                     [--workers 0 1 2] [--train-workers 0]
                                     [--loader-buffer-blocks N] [--models small rs3l]

For each sampler (``PairSampler``: pre-training pairs, 2 jets per pair; ``JetSampler``:
labelled jets for fine-tuning) and batch size:

* **loader only**: iterate whole epochs of the sampler without training, with its
  background prefetch thread (as in training) and without it, and with each ``--workers``
  W > 0 loader worker processes (``loader_by_workers``; "0" is the prefetch thread).
  jets/s = jets / wall time, epoch start (first buffer read synchronously, worker start)
  included; ``first_batch_s`` is that epoch-start latency. ``--loader-buffer-blocks``
  shrinks the buffers so that a small file still has several per epoch (workers only
  help when there are buffers to read ahead: W is capped at buffers per epoch - 1).
* **in training**: :func:`jetforge.training.engine.fit` on the sampler for ~``--jets``
  jets after one warm-up step (buffers of ``--train-buffer-blocks`` blocks, so that the
  measured steps do wait on the prefetch thread's buffer reads), with a small EdgeConv
  (``small``) and the RS3L default backbone (``rs3l``, config/config.yaml; a third of the
  jets). From the engine's history: ``loader_jets_per_s`` (jets /
  time the loop waited for the next batch, prefetch thread running concurrently),
  ``step_jets_per_s`` (jets / forward+backward+step time) and the share of the loop spent
  waiting for data; "steady" leaves out the wait for the epoch's first batch (the first
  buffer is read synchronously: a full epoch amortises that over all its batches, the
  few measured steps here would not). ``--train-workers``: the loader worker counts to
  train with (``train_<model>`` for 0, ``train_<model>_w<W>`` otherwise).

Every measurement records the 1-minute load average (``os.getloadavg``) at its end: the
bench machines are shared, and a busy machine slows the loader and the step alike. The
CPU time per jet (``cpu_main_us_per_jet``, ``cpu_workers_us_per_jet``; a worker's start,
``worker_start_cpu_s``, is paid once per sampler) does not depend on the load: with free
cores, W workers deliver about ``W / cpu_workers`` jets per microsecond until this
process's share (``1 / cpu_main``) is the limit.

Data (``--files``, default both): the workflow's ``results/datasets/rs3l/{pretrain,
finetune}.h5`` when present (small, and written with the dataset layout of the time), and a
synthetic file with the current layout (:func:`jetforge.io.h5.write_jet_dataset`:
uncompressed, 256-row chunks; ``--pairs`` pairs x 5 variants x 100 particles x 15
features), large enough for several prefetch buffers per epoch. Multiplicities are drawn
from the real file's when present. Writes ``summary.json`` into ``--out``.

``bench/loader_torch.py`` compares this loader with torch's DataLoader over the same rows
(same batches, jets/s, mid-epoch resumption); its helpers come from here.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import yaml
from torch import nn

from jetforge.io.h5 import JET_COLUMNS, write_jet_dataset
from jetforge.methods import METHODS
from jetforge.models.registry import build_backbone
from jetforge.training.data import (
    DatasetInfo,
    JetSampler,
    PairSampler,
    select_labelled_rows,
    select_pairs,
)
from jetforge.training.engine import EngineConfig, fit

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "results" / "datasets" / "rs3l"
VARIANTS = ["nominal", "seed", "fsr_up", "fsr_down", "alt_shower"]
PROCESSES = ["qcd_zjet", "hbb_zh", "wqq_wjet"]
SMALL = {"name": "edgeconv", "embed": [32, 32], "k": 8, "n_conv": 2, "conv_dim": 32,
         "encoder": [16, 8]}  # fmt: skip


def rs3l_backbone() -> dict[str, Any]:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return dict(cfg["experiments"]["rs3l"]["backbone"])


# ----------------------------------------------------------------------------- data


def multiplicities(n: int, rng: np.random.Generator) -> np.ndarray:
    """Particles per jet: resampled from the real pre-training file, else 20..80."""
    path = REAL / "pretrain.h5"
    if path.exists():
        with h5py.File(path, "r") as f:
            real = f["mask"][: min(5000, f["mask"].shape[0])].sum(1)
        return rng.choice(real[real > 0], size=n)
    return rng.integers(20, 81, size=n)


def write_synthetic(path: Path, n_pairs: int, seed: int = 0, P: int = 100, F: int = 15) -> Path:
    """A format-4 paired file (row = pair * V + variant) in the current on-disk layout."""
    rng = np.random.default_rng(seed)
    V = len(VARIANTS)
    n = n_pairs * V
    proc = np.repeat(rng.integers(0, 3, size=n_pairs), V).astype(np.int8)
    n_real = np.clip(np.repeat(multiplicities(n_pairs, rng), V) + rng.integers(-3, 4, n), 1, P)
    mask = np.arange(P)[None, :] < n_real[:, None]
    x = np.zeros((n, P, F), np.float32)
    for s in range(0, n, 8192):  # chunked: float64 normals of the whole file would be 3 GB
        e = min(s + 8192, n)
        x[s:e] = rng.standard_normal((e - s, P, F), dtype=np.float32) * mask[s:e, :, None]
    jets = {k: np.zeros(n, dt) for k, dt in JET_COLUMNS.items()}
    jets.update(process=proc, label=proc, variant=np.tile(np.arange(V), n_pairs).astype(np.int8),
                pair_id=np.repeat(np.arange(n_pairs), V), event=np.repeat(np.arange(n_pairs), V),
                pt=rng.uniform(450, 600, n).astype(np.float32))  # fmt: skip
    attrs = {"feature_names": [f"f{i}" for i in range(F)], "class_names": ["qcd", "hbb", "wqq"],
             "process_names": PROCESSES, "variant_names": VARIANTS, "dataset": "synthetic",
             "split": "bench"}  # fmt: skip
    write_jet_dataset(path, x, mask, jets, attrs)
    return path


def _blocks(kw: dict[str, Any]) -> dict[str, Any]:
    """``buffer_blocks=None`` means the sampler's default."""
    return {k: v for k, v in kw.items() if not (k == "buffer_blocks" and v is None)}


def pair_sampler(h5: str, bs: int, prefetch: bool = True, **kw: Any) -> PairSampler:
    """As in pre-training (default block and buffer sizes unless ``kw`` says otherwise)."""
    return PairSampler(
        h5, ["qcd_zjet", "hbb_zh"], VARIANTS[1:], bs, 1, prefetch=prefetch, **_blocks(kw)
    )


def jet_sampler(h5: str, bs: int, prefetch: bool = True, **kw: Any) -> JetSampler:
    """As in fine-tuning: hbb vs qcd jets of every variant."""
    rows, labels = select_labelled_rows(h5, "hbb_zh", "qcd_zjet", None)
    return JetSampler(h5, rows, labels, bs, 1, drop_last=True, prefetch=prefetch, **_blocks(kw))


SAMPLERS: dict[str, Callable[..., Any]] = {"PairSampler": pair_sampler, "JetSampler": jet_sampler}


def n_items(kind: str, h5: str) -> int:
    if kind == "PairSampler":
        return int(select_pairs(h5, ["qcd_zjet", "hbb_zh"]).size)
    return int(select_labelled_rows(h5, "hbb_zh", "qcd_zjet", None)[0].size)


# ----------------------------------------------------------------------------- loader


def loader_only(
    kind: str, h5: str, bs: int, seconds: float, prefetch: bool, workers: int = 0,
    buffer_blocks: int | None = None,
) -> dict[str, float]:
    """Whole epochs (at least one) for at least ``seconds``: jets/s, epoch-start latency and
    CPU time per jet of this process (prefetch thread included) and of the workers (their
    start included; ``os.times`` counts them once the sampler's close has reaped them)."""
    c0 = os.times()
    with SAMPLERS[kind](h5, bs, prefetch, workers=workers, buffer_blocks=buffer_blocks) as s:
        jets, first, epochs = 0, [], 0
        t0 = time.perf_counter()
        while epochs == 0 or time.perf_counter() - t0 < seconds:
            t_e = time.perf_counter()
            for i, b in enumerate(s.epoch(epochs)):
                if i == 0:
                    first.append(time.perf_counter() - t_e)
                jets += len(b)
            epochs += 1
        dt = time.perf_counter() - t0
    c1 = os.times()
    main_s = c1.user + c1.system - c0.user - c0.system
    work_s = c1.children_user + c1.children_system - c0.children_user - c0.children_system
    return {"jets_per_s": jets / dt, "first_batch_s": float(np.median(first)),
            "epochs": epochs, "batches_per_epoch": len(s), "workers": workers,
            "cpu_main_us_per_jet": 1e6 * main_s / jets,
            "cpu_workers_us_per_jet": 1e6 * work_s / jets,
            "load_avg_1min": os.getloadavg()[0]}  # fmt: skip


def worker_start_cpu(n: int = 3) -> float:
    """CPU seconds a loader worker needs to start (interpreter + numpy + h5py imports)."""
    c0 = os.times()
    for _ in range(n):
        subprocess.run([sys.executable, "-c", "import jetforge.training.h5loader"], check=True)
    c1 = os.times()
    return (c1.children_user + c1.children_system - c0.children_user - c0.children_system) / n


# ----------------------------------------------------------------------------- training


class _Clf(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.embed_dim, 1)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x, m)).squeeze(-1)


def _capped(
    epoch_fn: Callable[[int, int], Iterator[Any]], n: int, first: dict[str, float]
) -> Callable[[int, int], Iterator[Any]]:
    """The first ``n`` batches of each epoch; closes the sampler's generator (its thread).

    ``first`` receives the wait for the epoch's first batch (``s``) and its jets: the
    synchronous read of the first buffer, which a real epoch amortises over all its
    batches but a capped one over only ``n``.
    """

    def gen(epoch: int, start: int) -> Iterator[Any]:
        it = epoch_fn(epoch, start)
        try:
            for i in range(start, n):
                t = time.perf_counter()
                b = next(it, None)
                if b is None:
                    return
                if i == start:
                    first.update(s=time.perf_counter() - t, jets=len(b))
                yield b
        finally:
            it.close()

    return gen


def in_training(
    kind: str, h5: str, bs: int, backbone_cfg: dict[str, Any], target_jets: int, tmp: Path,
    buffer_blocks: int, workers: int = 0,
) -> dict[str, float]:
    info = DatasetInfo.read(h5)
    torch.manual_seed(0)
    bb = build_backbone(backbone_cfg, in_dim=info.n_features)
    with SAMPLERS[kind](h5, bs, buffer_blocks=buffer_blocks, workers=workers) as s:
        if kind == "PairSampler":
            model: nn.Module = METHODS["simclr"].from_config(bb, {"tau": 0.1})

            def loss_fn(m: nn.Module, b: Any) -> dict[str, torch.Tensor]:
                return m(b.x_a, b.m_a, b.x_b, b.m_b)
        else:
            model = _Clf(bb)

            def loss_fn(m: nn.Module, b: Any) -> dict[str, torch.Tensor]:
                return {"loss": nn.functional.binary_cross_entropy_with_logits(m(b.x, b.mask), b.y)}

        # warm-up step outside the timed loop (first-call allocations, lazy layers)
        warm = s.epoch(99)
        b0 = next(warm)
        warm.close()
        loss_fn(model, b0)["loss"].backward()
        model.zero_grad(set_to_none=True)
        jets_per_batch = len(b0)
        n = max(2, min(len(s), math.ceil(target_jets / jets_per_batch)))
        out = tmp / f"{kind}_{bs}_{backbone_cfg['embed'][0]}_w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        first: dict[str, float] = {}
        t0 = time.perf_counter()
        state = fit(
            model, [{"params": list(model.parameters())}], loss_fn, _capped(s.epoch, n, first), n,
            EngineConfig(epochs=1, lr=1e-3, checkpoint_every=10**9, tensorboard=False),
            torch.device("cpu"), out / "checkpoint.pt", out / "history.csv",
        )  # fmt: skip
        wall = time.perf_counter() - t0
    row = state.history[-1]
    load, step, jets = row["loader_jets_per_s"], row["step_jets_per_s"], n * jets_per_batch
    # steady state: without the epoch-start read (see _capped)
    steady = (jets - first["jets"]) / max(jets / load - first["s"], 1e-9)
    return {"steps": n, "jets": jets, "wall_s": wall, "first_batch_s": first["s"],
            "loader_jets_per_s": load, "loader_steady_jets_per_s": steady,
            "step_jets_per_s": step, "jets_per_s": row["jets_per_s"],
            "wait_share": (1 / load) / (1 / load + 1 / step),
            "wait_share_steady": (1 / steady) / (1 / steady + 1 / step),
            "workers": workers, "load_avg_1min": os.getloadavg()[0]}  # fmt: skip


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "results" / "bench" / "loader"))
    ap.add_argument("--pairs", type=int, default=12000, help="pairs in the synthetic file")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--seconds", type=float, default=3.0, help="per loader-only measurement")
    ap.add_argument("--jets", type=int, default=6000,
                    help="jets per in-training measurement (rs3l model: a third)")
    ap.add_argument("--train-buffer-blocks", type=int, default=4,
                    help="sampler buffer_blocks in training (default 32 = 8192 pairs / 32768 "
                         "jets per buffer: the few measured steps would never reach the "
                         "second buffer, i.e. never wait on the prefetch thread)")
    ap.add_argument("--models", nargs="*", default=["small", "rs3l"], choices=["small", "rs3l"])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2],
                    help="loader worker processes for the loader-only runs (0: prefetch thread)")
    ap.add_argument("--train-workers", type=int, nargs="+", default=[0],
                    help="loader worker processes for the in-training runs")
    ap.add_argument("--loader-buffer-blocks", type=int, default=None,
                    help="sampler buffer_blocks of the loader-only runs (default: the sampler's)")
    ap.add_argument("--files", nargs="+", default=["synthetic", "rs3l"],
                    choices=["synthetic", "rs3l"], help="which files to measure (rs3l: if present)")
    ap.add_argument("--tmp", default=None, help="where the synthetic file goes (deleted)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("JETFORGE_NO_PROGRESS", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = {"small": SMALL, "rs3l": rs3l_backbone()}
    tmp = Path(tempfile.mkdtemp(prefix="jetforge-loader-", dir=args.tmp))
    summary: dict[str, Any] = {"torch_threads": torch.get_num_threads(),
                               "cpu_count": os.cpu_count(), "args": vars(args),
                               "load_avg_start": os.getloadavg(),
                               "worker_start_cpu_s": worker_start_cpu(),
                               "results": []}  # fmt: skip
    try:
        files: dict[str, dict[str, str]] = {}
        if "synthetic" in args.files:
            t = time.perf_counter()
            synth = write_synthetic(tmp / "synthetic.h5", args.pairs)
            print(f"synthetic file: {args.pairs} pairs, {synth.stat().st_size / 2**20:.0f} MiB, "
                  f"written in {time.perf_counter() - t:.1f} s")  # fmt: skip
            files["synthetic"] = {"PairSampler": str(synth), "JetSampler": str(synth)}
        if "rs3l" in args.files and (REAL / "pretrain.h5").exists() and (
            REAL / "finetune.h5"
        ).exists():
            files["rs3l"] = {"PairSampler": str(REAL / "pretrain.h5"),
                             "JetSampler": str(REAL / "finetune.h5")}  # fmt: skip
        for name, by_kind in files.items():
            for kind, h5 in by_kind.items():
                with h5py.File(h5, "r") as f:
                    chunks = f["particles"].chunks
                items = n_items(kind, h5)
                summary.setdefault("files", {})[f"{name}/{kind}"] = {
                    "path": h5, "particles_chunks": chunks, "items": items}
                for bs in args.batch_sizes:
                    res: dict[str, Any] = {"file": name, "sampler": kind, "batch_size": bs,
                                           "chunks": chunks, "items": items}  # fmt: skip
                    if items < bs:
                        res["skipped"] = f"{items} items < batch size"
                        summary["results"].append(res)
                        print(f"{name:9s} {kind:11s} bs={bs:5d}: skipped ({res['skipped']})")
                        continue
                    blocks = args.loader_buffer_blocks
                    by_w = res["loader_by_workers"] = {}
                    for w in args.workers:
                        by_w[str(w)] = loader_only(kind, h5, bs, args.seconds, True, w, blocks)
                    res["loader_no_prefetch"] = loader_only(kind, h5, bs, args.seconds, False,
                                                            0, blocks)  # fmt: skip
                    if "0" in by_w:
                        res["loader"] = by_w["0"]
                    lo_np = res["loader_no_prefetch"]
                    line = f"{name:9s} {kind:11s} bs={bs:5d}: loader jets/s "
                    line += ", ".join(
                        f"W={w} {r['jets_per_s']:7.0f} (start {1e3 * r['first_batch_s']:.0f} ms,"
                        f" cpu us/jet {r['cpu_main_us_per_jet']:.1f}+"
                        f"{r['cpu_workers_us_per_jet']:.1f})"
                        for w, r in by_w.items()
                    )
                    line += (f", no prefetch {lo_np['jets_per_s']:7.0f}; load avg "
                             f"{os.getloadavg()[0]:.1f}")  # fmt: skip
                    for model, w in ((m, w) for m in args.models for w in args.train_workers):
                        jets = args.jets if model == "small" else args.jets // 3
                        r = in_training(kind, h5, bs, models[model], jets, tmp,
                                        args.train_buffer_blocks, w)  # fmt: skip
                        res[f"train_{model}" + (f"_w{w}" if w else "")] = r
                        line += (f" | {model} W={w}: step {r['step_jets_per_s']:6.0f} jets/s, "
                                 f"loader in "
                                 f"training {r['loader_jets_per_s']:6.0f} (steady "
                                 f"{r['loader_steady_jets_per_s']:6.0f}), wait "
                                 f"{100 * r['wait_share']:4.1f} % (steady "
                                 f"{100 * r['wait_share_steady']:4.1f} %)")  # fmt: skip
                    print(line, flush=True)
                    summary["results"].append(res)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(f"wrote {out / 'summary.json'}")


if __name__ == "__main__":
    main()
