"""Every pre-training path on one accelerator: step rate, FLOPs, MFU, memory, loader, agreement.

    python bench/gpu.py [--device cuda] [--out results/bench/gpu] [--quick] [--budget-s 330]
    python bench/gpu.py --device cpu --quick          # the CPU smoke run (tests/test_gpu_bench.py)

Why: every CUDA path of the engine (bf16 autocast, ``torch.compile``, SDPA, pinned memory,
the worker loader's CUDA default) was written without a GPU; this script runs each
backbone / method pair of :data:`CASES` through them in one call (< 8 min on one H100/H200)
and writes ``report.json`` + ``report.md`` into ``--out``:

* **step rate** (jets/s): steady-state AdamW training steps (forward under the engine's
  autocast, backward, clipping, step, the method's ``on_step``), the same device-resident
  batch every step, after warm-up; for ``fp32``, ``bf16`` (autocast) and ``bf16_compile``
  (+ ``torch.compile(dynamic=True)`` as ``EngineConfig.compile`` does; compile time reported
  apart). Batches are synthetic (:func:`synthetic_particles`), shaped like the paper's
  datasets, at the paper's batch size (``config/paper/*.yaml``; ``--quick``: tiny sizes).
* **FLOPs per step**: ``torch.utils.flop_counter.FlopCounterMode`` over one fp32 forward +
  backward (matrix products, convolutions and attention only, the usual MFU convention; the
  CPU flash-attention kernels are added to its table here); **MFU** = FLOPs x steps/s / the
  device's dense peak (:data:`PEAK_FLOPS`, fp32 vs fp32 peak, bf16 vs bf16 peak).
* **peak memory** (``torch.cuda.max_memory_allocated``; CUDA only).
* **loader rate vs step rate**: the pipeline's own sampler (``JetSampler`` /
  ``PairSampler`` / ``MultiPairSampler``) over a synthetic HDF5 file with the loader
  workers and pinned memory ``run_pretrain`` picks for the device, batches copied to it.
* **agreement**: 20 AdamW steps from the same weights on the same 20 batches (dropout 0,
  RNGs seeded per step), per-step losses compared CPU vs device in fp32 (TF32 off) and
  fp32 vs bf16 on the device, against :data:`TOLERANCE`. Methods whose random draws are
  made on the device (jBOT, MPM in training) cannot match step by step across devices:
  for them the mean loss of the 20 steps is compared (``criterion: "mean"``).
* **ParT vs weaver-core** (``bench/part.py``): our ParT and weaver's
  ``ParticleTransformer`` at JetClass size (batch 512, 128 particles) in the same modes,
  and their [CLS] at the same weights; weaver is imported only if installed (or found
  under ``--weaver-path``).

Everything runs on CPU too (``--device cpu``; bf16 and compile only with ``--modes``), so the
test suite smokes the whole script on tiny sizes.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from jetforge.methods import METHODS  # noqa: E402
from jetforge.models import BACKBONES  # noqa: E402
from jetforge.models.registry import backbone_inputs, build_backbone  # noqa: E402
from jetforge.training.data import JetBatch, PairBatch  # noqa: E402
from jetforge.training.multi_data import MultiPairBatch  # noqa: E402
from jetforge.training.pretrain import SAMPLERS, method_sampler  # noqa: E402

#: dense (no sparsity) peak FLOP/s by device-name substring: (bf16 tensor core, fp32 without
#: tensor cores), vendor datasheets: NVIDIA H100 Tensor Core GPU datasheet (SXM: 989.4 /
#: 66.9 TFLOPS; PCIe: 756 / 51.2), NVIDIA H200 datasheet (SXM: 989 / 67; NVL: 835 / 60), NVIDIA
#: A100 datasheet (312 / 19.5), NVIDIA L40S datasheet (362.05 / 91.6). First match wins.
PEAK_FLOPS: list[tuple[str, float, float]] = [
    ("H200 NVL", 835e12, 60e12),
    ("H200", 989e12, 67e12),
    ("GH200", 989e12, 67e12),
    ("H100 PCIe", 756e12, 51.2e12),
    ("H100", 989.4e12, 66.9e12),
    ("A100", 312e12, 19.5e12),
    ("L40S", 362.05e12, 91.6e12),
]

#: agreement tolerances on |loss_a - loss_b| / max(|loss_b|, 1e-3): per step (max over the 20
#: steps) where both runs draw the same random numbers, else on the mean of the 20 losses
TOLERANCE = {
    "cpu_vs_device_fp32": {"step": 1e-3, "mean": 5e-2},
    "fp32_vs_bf16": {"step": 5e-2, "mean": 1e-1},
}


@dataclass(frozen=True)
class Case:
    """One backbone / method pair: where its config lives and what its data look like."""

    name: str
    paper: str  # config/paper/<paper>.yaml (experiments.<exp> merged over config.yaml)
    exp: str
    particles: int  # particle slots per jet (tracks for cells_tracks)
    features: tuple[str, ...] | None  # particle feature names (None: the backbone's own)
    cells: int = 0  # calorimeter cells per jet (cells_tracks)
    rng_on_device: bool = False  # the method's training draws on the device (see module doc)


RS3L_15 = (
    "log_pt", "log_pt_rel", "log_e", "log_e_rel", "deta", "dphi", "dr", "tanh_d0", "tanh_dz",
    "charge", "is_photon", "is_muon", "is_electron", "is_ch", "is_nh",
)  # fmt: skip
JETNET_4 = ("etarel", "phirel", "ptrel", "mask")
PART_17 = ("part_pt_log", "part_e_log", "part_logptrel", "part_logerel", "part_deltaR",
           "part_charge", "part_isChargedHadron", "part_isNeutralHadron", "part_isPhoton",
           "part_isElectron", "part_isMuon", "part_d0", "part_d0err", "part_dz", "part_dzerr",
           "part_deta", "part_dphi")  # fmt: skip
CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("edgeconv_simclr", "rs3l", "rs3l", 100, RS3L_15),
        Case("vit_jbot", "jbot", "jbot", 30, JETNET_4, rng_on_device=True),
        Case("normformer_mpm", "mpm", "mpm", 128, PART_17, rng_on_device=True),
        Case("part_jepa", "jpjepa", "jpjepa", 128, PART_17),
        Case("cells_tracks_hadfork", "hadfork", "hadfork", 32, None, cells=512),
    )
}
#: --quick: sizes that run in seconds on one CPU core (every architectural branch kept)
QUICK: dict[str, dict[str, dict[str, Any]]] = {
    "edgeconv_simclr": {"backbone": {"embed": [16, 16], "k": 4, "n_conv": 1, "conv_dim": 16,
                                     "encoder": [8, 8]}},
    "vit_jbot": {"backbone": {"size": "S", "d_model": 16, "n_blocks": 1, "n_heads": 2},
                 "pretrain": {"d_proj": 32}},
    "normformer_mpm": {"backbone": {"dim": 16, "n_blocks": 1, "n_heads": 2, "mlp_dim": 32},
                       "tokenizer": {"kind": "kmeans", "n_codes": 8},
                       "pretrain": {"target": "kmeans", "head_mlp_dim": 32, "head_heads": 2}},
    "part_jepa": {"backbone": {"embed_dims": [16, 32, 16], "pair_embed_dims": [8, 8],
                               "num_heads": 2, "num_layers": 1, "num_cls_layers": 1},
                  "pretrain": {"predictor": {"dim": 16, "num_heads": 2, "num_layers": 1,
                                             "num_cls_layers": 1}}},
    "cells_tracks_hadfork": {"backbone": {"width": 16, "n_blocks": 1, "n_heads": 2,
                                          "out_hidden": 16}},
}  # fmt: skip
QUICK_SHAPE = {"batch": 8, "particles": 12, "cells": 24}
DROPOUT_KEYS = ("dropout", "attn_dropout", "activation_dropout", "head_dropout")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict update (Snakemake's merge of ``--configfile`` files)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def case_config(case: Case, quick: bool) -> dict[str, Any]:
    """``experiments.<exp>`` of config.yaml with config/paper/<paper>.yaml merged over it."""
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["experiments"]
    paper = yaml.safe_load((REPO / "config" / "paper" / f"{case.paper}.yaml").read_text())
    exp = _merge(base.get(case.exp, {}), (paper.get("experiments") or {}).get(case.exp, {}))
    if quick:
        exp = _merge(exp, QUICK[case.name])
    return exp


# ----------------------------------------------------------------------------- data


def synthetic_particles(
    B: int, P: int, names: tuple[str, ...], gen: torch.Generator, n_mean: float | None = None
) -> tuple[Tensor, Tensor]:
    """Jets ``[B, P, F]`` + mask whose named features are kinematically consistent.

    Multiplicities ~ Gamma(4, n_mean / 4) (mean ``n_mean``, default 0.35 P), clipped to
    [2, P]; pT-ordered particles at (deta, dphi) ~ N(0, 0.3); each feature filled by its
    name (log pT and energy, standardised ParT forms, relative pT, dR, PID one-hots,
    JetNet's ``mask`` column); unknown names N(0, 0.5). Padding is zero.
    """
    n_mean = n_mean or 0.35 * P
    g = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    n = torch.from_numpy(np.clip(np.round(g.gamma(4.0, n_mean / 4.0, B)), 2, P)).long()
    mask = torch.arange(P)[None] < n[:, None]
    pt = torch.from_numpy(np.sort(g.exponential(20.0, (B, P)) + 1.0, axis=1)[:, ::-1].copy())
    pt = pt.float() * mask
    deta = torch.from_numpy(g.normal(0, 0.3, (B, P))).float()
    dphi = torch.from_numpy(g.normal(0, 0.3, (B, P))).float()
    e = pt * torch.cosh(deta)
    ptsum = pt.sum(1, keepdim=True).clamp_min(1e-6)
    lrel = (pt / ptsum).clamp_min(1e-6).log()
    lp, le = pt.clamp_min(1e-3).log(), e.clamp_min(1e-3).log()
    flags = [i for i, f in enumerate(names) if f.startswith(("is_", "part_is"))]
    which = torch.from_numpy(g.integers(0, max(len(flags), 1), (B, P)))
    by_name = {
        "log_pt": lp, "part_pt_log": 0.7 * (lp - 1.7), "log_e": le, "part_e_log": 0.7 * (le - 2.0),
        "log_pt_rel": lrel, "part_logptrel": lrel,
        "log_e_rel": (e / e.sum(1, keepdim=True).clamp_min(1e-6)).clamp_min(1e-6).log(),
        "deta": deta, "part_deta": deta, "etarel": deta, "eta_rel": deta,
        "dphi": dphi, "part_dphi": dphi, "phirel": dphi, "phi_rel": dphi,
        "dr": torch.hypot(deta, dphi), "part_deltaR": torch.hypot(deta, dphi),
        "ptrel": pt / ptsum, "pt_rel": pt / ptsum, "mask": torch.ones(B, P),
        "charge": torch.from_numpy(g.integers(-1, 2, (B, P))).float(),
    }  # fmt: skip
    by_name["part_charge"], by_name["part_logerel"] = by_name["charge"], by_name["log_e_rel"]
    cols = []
    for i, f in enumerate(names):
        if i in flags:
            cols.append((which == flags.index(i)).float())
        else:
            cols.append(by_name.get(f, torch.from_numpy(g.normal(0, 0.5, (B, P))).float()))
    x = torch.stack(cols, -1) * mask[..., None]
    return x.float(), mask


def synthetic_cells(B: int, T: int, C: int, gen: torch.Generator) -> tuple[Tensor, ...]:
    """Tracks ``(pT, eta, phi, d0, z0)`` and cells ``(E, eta, phi, layer)`` of one view."""
    g = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    nt = torch.from_numpy(g.integers(2, T + 1, B))
    nc = torch.from_numpy(g.integers(C // 4, C + 1, B))
    tm, cm = torch.arange(T)[None] < nt[:, None], torch.arange(C)[None] < nc[:, None]
    t = np.stack([g.exponential(5, (B, T)) + 0.5, g.normal(0, 0.2, (B, T)),
                  g.normal(0, 0.2, (B, T)), g.normal(0, 0.05, (B, T)),
                  g.normal(0, 0.5, (B, T))], -1)  # fmt: skip
    c = np.stack([g.exponential(1, (B, C)) + 0.05, g.normal(0, 0.2, (B, C)),
                  g.normal(0, 0.2, (B, C)), g.integers(0, 6, (B, C)) * 1.0], -1)  # fmt: skip
    t, c = torch.from_numpy(t).float() * tm[..., None], torch.from_numpy(c).float()
    return t, tm, c * cm[..., None], cm


def make_batch(case: Case, kind: str, B: int, P: int, C: int, gen: torch.Generator) -> Any:
    """One synthetic batch of the method's sampler kind (``len`` = jets processed)."""
    if kind == "multi_pairs":
        a, b = synthetic_cells(B, P, C, gen), synthetic_cells(B, P, C, gen)
        return MultiPairBatch(*a, *b, labels=torch.zeros(B, dtype=torch.long))
    names = case.features or ()
    x, m = synthetic_particles(B, P, names, gen)
    if kind == "pairs":
        x2, m2 = synthetic_particles(B, P, names, gen)
        return PairBatch(x, m, x2, m2, torch.zeros(B, dtype=torch.long))
    return JetBatch(x, m, torch.zeros(B))


# ----------------------------------------------------------------------------- models


def build_method(case: Case, exp: dict[str, Any], tmp: Path, no_dropout: bool = False) -> nn.Module:
    """The method module of ``exp`` as ``run_pretrain`` builds it (a random tokenizer for
    MPM: token targets cost the same whether fitted or not)."""
    exp = copy.deepcopy(exp)
    bcfg, pcfg = exp["backbone"], exp["pretrain"]
    if no_dropout:
        for block in (bcfg, pcfg):
            block.update({k: 0.0 for k in DROPOUT_KEYS if k in block})
    if case.features is not None:
        bcfg["in_dim"] = len(case.features)
        if bcfg["name"] == "part":
            bcfg["feature_names"] = list(case.features)
    if bcfg["name"] == "cells_tracks":
        bcfg.update(track_dim=5, cell_dim=4)
        bcfg.pop("in_dim", None)
    if pcfg.get("method") == "mpm":
        pcfg["tokenizer_path"] = str(_random_tokenizer(exp, len(case.features or ()), tmp))
    # keys the constructor does not take are data-fitted options (``config_for_data``,
    # e.g. the ViT's standardise_inputs): the synthetic jets need no fitted preprocessing
    takes = inspect.signature(BACKBONES[bcfg["name"]].__init__).parameters
    backbone = build_backbone({k: v for k, v in bcfg.items() if k == "name" or k in takes})
    return METHODS[pcfg["method"]].from_config(backbone, pcfg)


def _random_tokenizer(exp: dict[str, Any], in_dim: int, tmp: Path) -> Path:
    from jetforge.methods.mpm_tokenizer import VQVAE, KMeansTokenizer, save_tokenizer

    tcfg = dict(exp["tokenizer"])
    kind = exp["pretrain"].get("target", tcfg.get("kind"))
    if kind == "kmeans":
        tok: nn.Module = KMeansTokenizer(in_dim, int(tcfg.get("n_codes", 512)))
        tok.centroids.normal_()  # type: ignore[operator]
    else:
        keys = set(VQVAE.__init__.__code__.co_varnames) - {"self", "in_dim"}
        tok = VQVAE(in_dim, **{k: v for k, v in tcfg.items() if k in keys})
    path = tmp / f"tokenizer_{kind}.pt"
    save_tokenizer(path, tok)
    return path


def _cpu_sdpa_flops() -> dict[Any, Callable[..., int]]:
    """FlopCounterMode entries for the CPU flash-attention kernels (not in torch's table)."""
    aten = torch.ops.aten

    def fwd(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
        return sdpa_flop_count(q, k, v)  # FlopCounterMode passes shapes

    def bwd(go: Any, q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
        return sdpa_backward_flop_count(go, q, k, v)

    table: dict[Any, Callable[..., int]] = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        table[aten._scaled_dot_product_flash_attention_for_cpu] = fwd
        table[aten._scaled_dot_product_flash_attention_for_cpu_backward] = bwd
    return table


def count_flops(fn: Callable[..., Tensor], *args: Any) -> int:
    """FLOPs of ``fn(*args)`` (a loss) and its backward, as FlopCounterMode counts them."""
    with FlopCounterMode(display=False, custom_mapping=_cpu_sdpa_flops()) as fc:
        fn(*args).backward()
    return int(fc.get_total_flops())


def peak_flops(device: torch.device) -> dict[str, Any]:
    """Datasheet peaks of ``device`` (:data:`PEAK_FLOPS`), None when not in the table."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    for key, bf16, fp32 in PEAK_FLOPS:
        if device.type == "cuda" and key in name:
            return {"device_name": name, "table_key": key, "bf16": bf16, "fp32": fp32}
    return {"device_name": name or "cpu", "table_key": None, "bf16": None, "fp32": None}


# ----------------------------------------------------------------------------- training steps


class Trainer:
    """The engine's optimiser step (``engine._optimiser_step``) without its bookkeeping:
    forward under bf16 autocast (``amp``), backward, clipping, AdamW, ``on_step``."""

    def __init__(
        self, model: nn.Module, kind: str, device: torch.device, amp: bool, compiled: bool,
        lr: float, grad_clip: float | None,
    ) -> None:  # fmt: skip
        self.model = model.to(device).train()
        self.step_model = torch.compile(model, dynamic=True) if compiled else model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=lr)
        self.loss_fn = SAMPLERS[kind][1]
        self.device, self.amp, self.grad_clip, self.n = device, amp, grad_clip, 0

    def loss(self, batch: Any) -> Tensor:
        ctx = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()
        with ctx:
            return self.loss_fn(self.step_model, batch)["loss"]

    def step(self, batch: Any, seed: int | None = None) -> float:
        """One optimiser step; returns the loss (a host sync, as the engine's logging)."""
        if seed is not None:
            torch.manual_seed(seed)  # CPU and every CUDA generator
        loss = self.loss(batch)
        value = float(loss.detach().float().item())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.opt.step()
        self.n += 1
        on_step = getattr(self.model, "on_step", None)
        if on_step is not None:
            on_step(self.n, 10_000)
        return value


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(tr: Trainer, batch: Any, warm: int, min_s: float, max_steps: int) -> dict[str, Any]:
    """Steady-state rate of ``tr`` on one device-resident batch (first step timed apart:
    it holds the compilation when compiled)."""
    dev = tr.device
    t0 = time.perf_counter()
    tr.step(batch)
    _sync(dev)
    first_s = time.perf_counter() - t0
    for _ in range(max(warm - 1, 0)):
        tr.step(batch)
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    n, t0 = 0, time.perf_counter()
    while n < max_steps and (n < 3 or time.perf_counter() - t0 < min_s):
        tr.step(batch)
        n += 1
    _sync(dev)
    dt = time.perf_counter() - t0
    out = {"steps": n, "step_ms": 1e3 * dt / n, "jets_per_s": len(batch) * n / dt,
           "first_step_s": first_s}  # fmt: skip
    if dev.type == "cuda":
        out["peak_mem_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
    return out


# ----------------------------------------------------------------------------- loader


def loader_rate(case: Case, kind: str, B: int, device: torch.device, tmp: Path,
                quick: bool, min_s: float) -> dict[str, Any]:  # fmt: skip
    """Jets/s of the pipeline's sampler over a synthetic file, batches copied to ``device``
    with the workers and pinned memory ``run_pretrain`` uses there (one warm epoch first)."""
    from jetforge.training.data import JetSampler, PairSampler, resolve_loader_workers

    workers = resolve_loader_workers(None, device)
    kw = {"workers": workers, "pin_memory": device.type == "cuda"}
    if kind == "multi_pairs":
        import hadfork_methods as hm

        from jetforge.training.data import DatasetInfo
        from jetforge.training.multi_data import MultiPairSampler

        per = max(2 * B // len(hm.PROCESSES), 4)
        h5 = hm.write_toy(tmp / f"{case.name}.h5", dict.fromkeys(hm.PROCESSES, per), 0,
                          T=case.particles, C=case.cells)  # fmt: skip
        info = DatasetInfo.read(str(h5))
        s: Any = MultiPairSampler(str(h5), list(info.process_names), info.variant_names[1:], B,
                                  0, drop_last=True, **kw)  # fmt: skip
    else:
        import loader as lb

        F = len(case.features or ())
        rows = int(min(8 * B * (2 if kind == "pairs" else 1), 60e6 / (case.particles * F * 4)))
        n_pairs = max(rows // 5, 3 * B) if kind == "pairs" else max(rows // 5, B)
        h5 = str(lb.write_synthetic(tmp / f"{case.name}.h5", n_pairs, P=case.particles, F=F))
        if kind == "pairs":
            s = PairSampler(h5, ["qcd_zjet", "hbb_zh"], lb.VARIANTS[1:], B, 0, drop_last=True, **kw)
        else:
            all_rows = np.arange(n_pairs * len(lb.VARIANTS))
            s = JetSampler(h5, all_rows, np.zeros(all_rows.size), B, 0, drop_last=True, **kw)
    try:
        for b in s.epoch(0):  # warm: worker start, first buffer, page cache
            b.to(device, non_blocking=True)
        n, epoch, t0 = 0, 1, time.perf_counter()
        while time.perf_counter() - t0 < min_s or n == 0:
            for b in s.epoch(epoch):
                b.to(device, non_blocking=True)
                n += len(b)
            epoch += 1
        _sync(device)
        dt = time.perf_counter() - t0
    finally:
        s.close()
    return {"jets_per_s": n / dt, "workers": workers, "pin_memory": kw["pin_memory"],
            "batches_per_epoch": len(s)}  # fmt: skip


# ----------------------------------------------------------------------------- agreement


def _compare(a: list[float], b: list[float], criterion: str, tol: float) -> dict[str, Any]:
    """Relative loss differences of two 20-step runs and the verdict under ``criterion``."""
    rel = [abs(x - y) / max(abs(y), 1e-3) for x, y in zip(a, b, strict=True)]
    mean_rel = abs(float(np.mean(a)) - float(np.mean(b))) / max(abs(float(np.mean(b))), 1e-3)
    value = max(rel) if criterion == "step" else mean_rel
    ok = bool(math.isfinite(value) and value <= tol)
    return {"criterion": criterion, "tolerance": tol, "max_step_rel": max(rel),
            "mean_rel": mean_rel, "pass": ok}  # fmt: skip


def agreement(
    case: Case, exp: dict[str, Any], kind: str, device: torch.device,
    shape: tuple[int, int, int], tmp: Path, steps: int = 20,
) -> dict[str, Any]:  # fmt: skip
    """20-step losses: CPU vs ``device`` in fp32 (TF32 off) and fp32 vs bf16 on ``device``."""
    B, P, C = shape
    torch.manual_seed(0)
    ref = build_method(case, exp, tmp, no_dropout=True)
    state = copy.deepcopy(ref.state_dict())
    gen = torch.Generator().manual_seed(1)
    batches = [make_batch(case, kind, B, P, C, gen) for _ in range(steps)]
    pcfg = exp["pretrain"]
    runs = {"cpu_fp32": (torch.device("cpu"), False)}
    if device.type != "cpu":
        runs["device_fp32"] = (device, False)
    runs["device_bf16"] = (device, True)
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    losses: dict[str, list[float]] = {}
    try:
        for label, (dev, amp) in runs.items():
            model = copy.deepcopy(ref)
            model.load_state_dict(state)
            tr = Trainer(model, kind, dev, amp, False, float(pcfg.get("lr", 1e-4)),
                         pcfg.get("grad_clip", 10.0))  # fmt: skip
            losses[label] = [tr.step(b.to(dev), seed=1000 + i) for i, b in enumerate(batches)]
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    fp32 = losses.get("device_fp32", losses["cpu_fp32"])
    out: dict[str, Any] = {"losses": losses}
    if "device_fp32" in losses:
        crit = "mean" if case.rng_on_device else "step"
        tol = TOLERANCE["cpu_vs_device_fp32"][crit]
        out["cpu_vs_device_fp32"] = _compare(losses["device_fp32"], losses["cpu_fp32"], crit, tol)
    else:
        out["cpu_vs_device_fp32"] = {"skipped": "device is the CPU"}
    tol = TOLERANCE["fp32_vs_bf16"]["step"]
    out["fp32_vs_bf16"] = _compare(losses["device_bf16"], fp32, "step", tol)
    return out


# ----------------------------------------------------------------------------- engine


def engine_run(
    quick: bool, device: torch.device, tmp: Path, deadline: float = math.inf
) -> dict[str, Any]:
    """The engine's own CUDA path end to end: ``run_pretrain`` of the default config's
    RS3L experiment (EdgeConv / SimCLR) on a synthetic paired file, with what a GPU node
    gets -- bf16 autocast, pinned memory, the CUDA default of loader workers, CUDA RNG
    states in the checkpoint -- eager and compiled (CUDA only); the throughput columns of
    each run's last history row, and a rerun that must resume as finished."""
    import csv

    import loader as lb

    from jetforge.training.pretrain import run_pretrain

    case = CASES["edgeconv_simclr"]
    exp = case_config(case, quick)
    bs = QUICK_SHAPE["batch"] if quick else int(exp["pretrain"]["batch_size"])
    P = QUICK_SHAPE["particles"] if quick else case.particles
    h5 = lb.write_synthetic(tmp / "engine.h5", (6 if quick else 40) * bs, P=P, F=15)
    out: dict[str, Any] = {"batch_pairs": bs}
    for compiled in (False, True) if device.type == "cuda" else (False,):
        if compiled and time.perf_counter() > deadline:
            out["compile"] = {"skipped": "time budget (--budget-s) spent"}
            continue
        e = copy.deepcopy(exp)
        e["pretrain"].update(epochs=2, batch_size=bs, compile=compiled, tensorboard=False,
                             checkpoint_every=10**6)  # fmt: skip
        run_dir = tmp / f"engine_{'compile' if compiled else 'eager'}"
        t0 = time.perf_counter()
        try:
            run_pretrain(str(h5), str(run_dir), e, "all", 0, 1, device=str(device))
            wall = time.perf_counter() - t0
            t0 = time.perf_counter()
            run_pretrain(str(h5), str(run_dir), e, "all", 0, 1, device=str(device))  # resumes
            rerun = time.perf_counter() - t0
        except Exception as err:  # a failing path is a finding, not a crash
            out["compile" if compiled else "eager"] = {"error": f"{type(err).__name__}: {err}"}
            continue
        with open(run_dir / "history.csv") as f:
            last = list(csv.DictReader(f))[-1]
        keys = ("loss", "val_loss", "jets_per_s", "loader_jets_per_s", "step_jets_per_s")
        out["compile" if compiled else "eager"] = {
            "wall_s": wall, "rerun_s": rerun, **{k: float(last[k]) for k in keys if k in last},
        }  # fmt: skip
    return out


# ----------------------------------------------------------------------------- one case


def run_case(case: Case, args: argparse.Namespace, device: torch.device, tmp: Path,
             deadline: float) -> dict[str, Any]:  # fmt: skip
    """Every measurement of one backbone / method pair (see the module docstring)."""
    exp = case_config(case, args.quick)
    kind = method_sampler(exp["pretrain"]["method"], backbone_inputs(exp["backbone"]))
    if args.quick:
        B, P, C = QUICK_SHAPE["batch"], QUICK_SHAPE["particles"], QUICK_SHAPE["cells"]
    else:
        B, P, C = int(args.batch or exp["pretrain"]["batch_size"]), case.particles, case.cells
    gen = torch.Generator().manual_seed(0)
    batch = make_batch(case, kind, B, P, C, gen)
    torch.manual_seed(0)
    method = build_method(case, exp, tmp)
    n_params = sum(p.numel() for p in method.backbone.parameters())
    out: dict[str, Any] = {
        "method": exp["pretrain"]["method"], "backbone": exp["backbone"]["name"],
        "sampler": kind, "batch": B, "particles": P, "cells": C if kind == "multi_pairs" else None,
        "jets_per_batch": len(batch), "backbone_params": n_params, "modes": {},
    }  # fmt: skip
    pcfg, dev_batch = exp["pretrain"], batch.to(device)
    lr, clip = float(pcfg.get("lr", 1e-4)), pcfg.get("grad_clip", 10.0)
    out["flops_per_step"] = count_flops(
        Trainer(copy.deepcopy(method), kind, device, False, False, lr, clip).loss, dev_batch
    )
    peaks = peak_flops(device)
    for mode in args.modes:
        if mode.endswith("compile") and time.perf_counter() > deadline:
            out["modes"][mode] = {"skipped": "time budget (--budget-s) spent"}
            continue
        amp, compiled = mode.startswith("bf16"), mode.endswith("compile")
        try:
            tr = Trainer(copy.deepcopy(method), kind, device, amp, compiled, lr, clip)
            r = time_steps(tr, dev_batch, args.warm, args.min_s, args.max_steps)
        except Exception as err:  # a failing path is a finding, not a crash
            out["modes"][mode] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
            continue
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        peak = peaks["bf16" if amp else "fp32"]
        r["mfu"] = out["flops_per_step"] * r["steps"] / (r["step_ms"] * r["steps"] / 1e3) / peak \
            if peak else None  # fmt: skip
        out["modes"][mode] = r
        print(f"  {case.name} {mode}: {r['jets_per_s']:.0f} jets/s", flush=True)
    out["loader"] = _guarded(loader_rate, case, kind, B, device, tmp, args.quick, args.min_s)
    if not args.no_agreement:
        shape = (min(B, args.agree_batch), P, C)
        out["agreement"] = _guarded(agreement, case, exp, kind, device, shape, tmp)
    return out


def _guarded(fn: Callable[..., dict[str, Any]], *args: Any, **kw: Any) -> dict[str, Any]:
    """``fn(*args)``, or ``{"error": ...}``: one broken section must not cost the device
    call the others."""
    try:
        return fn(*args, **kw)
    except Exception as err:  # a failing path is a finding, not a crash
        return {"error": f"{type(err).__name__}: {str(err)[:300]}"}


# ----------------------------------------------------------------------------- report


def _fmt(v: Any, spec: str = ".0f") -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}%"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables (what docs/performance.md quotes)."""
    d = report["device"]
    lines = [f"# bench/gpu.py on {d['device_name']} ({report['device_type']}, torch "
             f"{report['torch']}, {'quick' if report['quick'] else 'paper'} sizes)", "",
             "| case | batch (jets) | GFLOP/step | mode | jets/s | step ms | MFU | peak GiB | "
             "loader jets/s |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, c in report["cases"].items():
        for mode, r in c["modes"].items():
            if "jets_per_s" not in r:
                lines.append(f"| {name} | {c['jets_per_batch']} | | {mode} | "
                             f"{r.get('error') or r.get('skipped')} | | | | |")  # fmt: skip
                continue
            mfu = None if r.get("mfu") is None else 100 * r["mfu"]
            lines.append(
                f"| {name} | {c['jets_per_batch']} | {_fmt(c['flops_per_step'] / 1e9, '.2f')} | "
                f"{mode} | {_fmt(r['jets_per_s'])} | {_fmt(r['step_ms'], '.1f')} | "
                f"{_pct(mfu)} | {_fmt(r.get('peak_mem_gib'), '.2f')} | "
                f"{_fmt(c['loader'].get('jets_per_s'))} |"
            )
    lines += ["", "| case | CPU vs device fp32 | fp32 vs bf16 |", "|---|---|---|"]
    for name, c in report["cases"].items():
        a = c.get("agreement", {})
        if "error" in a:
            lines.append(f"| {name} | {a['error']} | |")
            continue
        cells = []
        for key in ("cpu_vs_device_fp32", "fp32_vs_bf16"):
            r = a.get(key, {"skipped": "not run"})
            cells.append(r.get("skipped") or f"{'pass' if r['pass'] else 'FAIL'} ({r['criterion']}"
                         f" {r['max_step_rel' if r['criterion'] == 'step' else 'mean_rel']:.1e}"
                         f" <= {r['tolerance']:.0e})")  # fmt: skip
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    if report.get("engine"):
        lines += ["", f"run_pretrain (EdgeConv / SimCLR, {report['engine']['batch_pairs']} pairs"
                  " per batch, 2 epochs, synthetic file):"]  # fmt: skip
        for k, r in report["engine"].items():
            if isinstance(r, dict):
                lines.append(f"- {k}: " + (r.get("error") or r.get("skipped") or ", ".join(
                    f"{n} {v:.4g}" for n, v in r.items())))  # fmt: skip
    if report.get("part_vs_weaver"):
        import part as part_bench

        pw = report["part_vs_weaver"]
        lines += [
            "",
            f"ParT vs weaver: {pw['error']}" if "error" in pw else part_bench.markdown(pw),
        ]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path, t_start: float) -> None:
    """``report.json`` + ``report.md`` as measured so far."""
    report["wall_s"] = time.perf_counter() - t_start
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (out / "report.md").write_text(markdown(report))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=str(REPO / "results" / "bench" / "gpu"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes (the CPU smoke test)")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument(
        "--modes",
        nargs="+",
        default=None,
        help="fp32 bf16 bf16_compile (default: all three on CUDA, fp32 on CPU)",
    )
    ap.add_argument("--batch", type=int, default=None, help="override the paper batch size")
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--min-s", type=float, default=2.0, help="seconds timed per measurement")
    ap.add_argument("--max-steps", type=int, default=200)
    ap.add_argument(
        "--agree-batch",
        type=int,
        default=32,
        help="batch of the 20-step runs (their CPU half runs at paper model size)",
    )
    ap.add_argument("--no-agreement", action="store_true")
    ap.add_argument("--no-engine", action="store_true", help="skip the run_pretrain section")
    ap.add_argument(
        "--part",
        choices=["auto", "on", "off"],
        default="auto",
        help="ParT vs weaver-core (auto: on unless --quick)",
    )
    ap.add_argument(
        "--weaver-path",
        default=str(REPO / "results" / "weaver-core"),
        help="a pip --target dir holding weaver-core (added to sys.path if present)",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=330.0,
        help="after this many seconds compile modes are skipped",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (CPU runs)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.modes is None:
        args.modes = ["fp32", "bf16", "bf16_compile"] if device.type == "cuda" else ["fp32"]
    report: dict[str, Any] = {
        "device": peak_flops(device), "device_type": device.type, "torch": torch.__version__,
        "quick": args.quick, "modes": args.modes, "tolerance": TOLERANCE,
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32,
                 "cudnn": torch.backends.cudnn.allow_tf32},
        "cases": {},
    }  # fmt: skip
    deadline = t_start + args.budget_s
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.part == "on" or (args.part == "auto" and not args.quick):  # the headline: first
        import part as part_bench

        print("ParT vs weaver-core", flush=True)
        report["part_vs_weaver"] = _guarded(
            part_bench.compare,
            device, args.modes, args.weaver_path, quick=args.quick, min_s=args.min_s,
            deadline=deadline,
        )  # fmt: skip
        write_report(report, out, t_start)
    with tempfile.TemporaryDirectory(prefix="jetforge-gpu-bench-") as tmp:
        if not args.no_engine:
            print("engine: run_pretrain (EdgeConv / SimCLR)", flush=True)
            report["engine"] = engine_run(args.quick, device, Path(tmp), deadline)
            write_report(report, out, t_start)
        for name in args.cases:
            print(f"{name}", flush=True)
            report["cases"][name] = run_case(CASES[name], args, device, Path(tmp), deadline)
            write_report(report, out, t_start)  # a killed run still leaves what it measured
    print(markdown(report))
    print(f"wrote {out / 'report.json'} and report.md in {report['wall_s']:.0f} s")
    return report


if __name__ == "__main__":
    os.environ.setdefault("JETFORGE_NO_PROGRESS", "1")
    main()
