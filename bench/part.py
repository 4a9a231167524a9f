"""Our ParT (src/jetforge/models/part.py) vs weaver-core's ParticleTransformer; its speed levers.

    .venv/bin/python bench/part.py levers [--batch 64] [--threads 1]       # CPU levers
    .venv/bin/python bench/part.py weaver [--weaver-path DIR] [--device cuda]

``bench/gpu.py`` calls :func:`compare` for its ParT section. Why a separate file: the issue's
goal for JP-JEPA's backbone is a ratio to the reference implementation at the same outputs
(JetClass configuration: 17 inputs, ParT-Mini, batch 512, 128 particle slots, a 10-class
linear head and cross-entropy, AdamW), and the levers that could reach it -- variable-length
batching, fused attention with the pair bias as SDPA's float mask, ``torch.compile`` -- are
measured one at a time here, outputs checked equal.

weaver-core is not a dependency: it is imported when installed, or from ``--weaver-path`` (a
``pip install --no-deps --target DIR weaver-core`` directory; the module needs only torch).
Equality at the same weights: our state dict is copied into weaver's module (names map
one to one; its pair-embedding 1x1 convolutions take our Linear weights), batch norms get
random running statistics, and both run in eval mode on the same jets and four-vectors.
weaver orders the pair features (ln kT, ln z, ln dR, ln m^2), we (ln dR, ln kT, ln z,
ln m^2): the first pair batch norm and layer are permuted on copying. One semantic
difference is reported rather than hidden: weaver multiplies the per-head
scale ``c_attn`` into the attention output *after* ``out_proj`` (a reshape of the projected
features into heads), we multiply the heads before it, so the [CLS] agree only while
``c_attn`` = 1 (its initial value) -- ``cls_max_abs_diff_random_c_attn`` shows the gap.

Jets are synthetic (``gpu.synthetic_particles``: ~45 of 128 slots filled on average, the
JetClass-like regime where padding is most of the tensor).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import gpu  # noqa: E402

from jetforge.models import part as part_mod  # noqa: E402
from jetforge.models.part import ParticleTransformer  # noqa: E402

JETCLASS_FOURVEC = {"log_pt": ["part_pt_log", 1.7, 0.7], "eta": "part_deta", "phi": "part_dphi"}
N_CLASSES = 10
#: weaver's pair-feature channel c is our channel WEAVER_PAIR_ORDER[c]
WEAVER_PAIR_ORDER = (1, 2, 0, 3)


def ours(length_buckets: int = 1, **kw: Any) -> ParticleTransformer:
    """ParT-Mini on JetClass's 17 inputs (config/paper/jpjepa.yaml's backbone)."""
    return ParticleTransformer(17, "mini", feature_names=list(gpu.PART_17),
                               fourvec_features=JETCLASS_FOURVEC, length_buckets=length_buckets,
                               **kw)  # fmt: skip


def load_weaver(path: str | None) -> tuple[Any, str]:
    """weaver's ``ParticleTransformer`` class (or None) and where it came from / why not."""
    if path and Path(path).is_dir() and path not in sys.path:
        sys.path.insert(0, path)
    try:
        mod = importlib.import_module("weaver.nn.model.ParticleTransformer")
    except ImportError as err:
        return None, f"weaver-core not importable ({err}); pip install weaver-core to compare"
    import weaver

    version = getattr(weaver, "__version__", None)
    if version is None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as pkg_version

        try:
            version = pkg_version("weaver-core")
        except PackageNotFoundError:
            version = "unknown"
    return mod.ParticleTransformer, f"weaver-core {version} from {Path(mod.__file__).parent}"


def weaver_model(cls: Any, head: bool, **kw: Any) -> nn.Module:
    """weaver's ParT-Mini (its defaults = the paper's; ``head``: the 10-class linear head)."""
    return cls(17, num_classes=N_CLASSES if head else None, fc_params=[] if head else None,
               embed_dims=(128, 512, 128), pair_embed_dims=(64, 64, 64), num_heads=8,
               num_layers=8, num_cls_layers=2, **kw)  # fmt: skip


def copy_into_weaver(src: ParticleTransformer, dst: nn.Module) -> None:
    """Load our weights into weaver's module (see the module docstring for the mapping)."""
    out = {}
    for k, v in src.state_dict().items():
        k2 = k.replace("embed.mlp.", "embed.embed.").replace("pair_embed.mlp.", "pair_embed.embed.")
        k2 = k2.replace("attn.c_attn", "c_attn")  # weaver keeps the head scale on the block
        out[k2] = v
    # weaver's pair features are (ln kT, ln z, ln dR, ln m^2), ours (ln dR, ln kT, ln z,
    # ln m^2) (the order of ParT eqs. (3)-(6)): permute the inputs of the first BN + layer
    perm = torch.tensor(WEAVER_PAIR_ORDER)
    for k in [k for k in out if k.startswith("pair_embed.embed.0.") and out[k].dim() == 1]:
        out[k] = out[k][perm]
    out["pair_embed.embed.1.weight"] = out["pair_embed.embed.1.weight"][:, perm]
    target = dst.state_dict()
    for k, v in list(out.items()):
        if k in target and target[k].dim() == 3 and v.dim() == 2:  # Conv1d(k=1) <- Linear
            out[k] = v[..., None]
    missing = [k for k in target if k not in out and not k.endswith("_counter")]
    if missing:
        raise KeyError(f"weaver parameters without a counterpart: {missing}")
    dst.load_state_dict({k: out[k] for k in target if k in out}, strict=False)


def randomise_norm_stats(model: nn.Module, gen: torch.Generator) -> None:
    """Random running statistics in every BatchNorm (fresh ones are the identity)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def weaver_inputs(model: ParticleTransformer, x: Tensor, mask: Tensor) -> tuple[Tensor, ...]:
    """weaver's ``(x [B, F, P], v [B, 4, P], mask [B, 1, P])`` of the same jets."""
    v = model.fourvectors(x).float() * mask[..., None]
    return x.transpose(1, 2), v.transpose(1, 2), mask[:, None].float()


@torch.no_grad()
def cls_equality(weaver_cls: Any, B: int = 64) -> dict[str, Any]:
    """Max |[CLS] ours - [CLS] weaver| at the same weights on CPU (eval mode).

    ``float64_fourvectors``: weaver's pair features computed from our float64 four-vectors
    (the like-for-like check); ``float32_fourvectors``: weaver as shipped, whose float32
    m^2 of self-pairs is rounding noise ~1e-7 E^2 instead of 0 (ln m^2 off by ~10 there,
    the reason ``pairwise_features`` is float64); ``random_c_attn``: like-for-like with
    per-head scales != 1 (see the module docstring).
    """
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    a = ours().eval()
    randomise_norm_stats(a, gen)
    for blk in [*a.blocks, *a.cls_blocks]:
        blk.w_resid.copy_(1 + 0.2 * torch.randn(blk.w_resid.shape, generator=gen))
    b = weaver_model(weaver_cls, head=False).eval()
    x, mask = gpu.synthetic_particles(B, 128, gpu.PART_17, gen)
    xw, v32, mw = weaver_inputs(a, x, mask)
    v64 = (a.fourvectors(x) * mask[..., None]).transpose(1, 2)
    copy_into_weaver(a, b)
    out: dict[str, Any] = {"batch": B}
    out["cls_max_abs_diff_float32_fourvectors"] = (a(x, mask) - b(xw, v32, mw)).abs().max().item()
    features = b.pair_embed.pairwise_lv_fts  # float64 in, float32 out to its float32 layers
    b.pair_embed.pairwise_lv_fts = lambda xi, xj: features(xi, xj).float()
    out["cls_max_abs_diff_float64_fourvectors"] = (a(x, mask) - b(xw, v64, mw)).abs().max().item()
    for blk in [*a.blocks, *a.cls_blocks]:
        blk.attn.c_attn.copy_(1 + 0.2 * torch.randn(blk.attn.c_attn.shape, generator=gen))
    copy_into_weaver(a, b)
    out["cls_max_abs_diff_random_c_attn"] = (a(x, mask) - b(xw, v64, mw)).abs().max().item()
    out["cls_max_abs"] = a(x, mask).abs().max().item()
    return out


# ----------------------------------------------------------------------------- speed


class _Tagger(nn.Module):
    """Backbone + 10-class linear head on the [CLS]; one signature for ours and weaver's."""

    def __init__(self, net: nn.Module, is_weaver: bool) -> None:
        super().__init__()
        self.net, self.is_weaver = net, is_weaver
        self.head = nn.Identity() if is_weaver else nn.Linear(net.embed_dim, N_CLASSES)

    def forward(self, x: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        if self.is_weaver:
            return self.net(x.transpose(1, 2), v.transpose(1, 2), mask[:, None].float())
        return self.head(self.net(x, mask))


def step_rate(model: nn.Module, x: Tensor, v: Tensor, mask: Tensor, y: Tensor, mode: str,
              min_s: float, warm: int = 3) -> dict[str, Any]:  # fmt: skip
    """Steady-state jets/s of AdamW steps on one device-resident batch in ``mode``."""
    dev = x.device
    amp = mode.startswith("bf16")
    step_model = torch.compile(model, dynamic=True) if mode.endswith("compile") else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if amp else nullcontext()
        with ctx:
            loss = F.cross_entropy(step_model(x, v, mask).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(warm):
        step()
    gpu._sync(dev)
    warm_s = time.perf_counter() - t0
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while n < 3 or time.perf_counter() - t0 < min_s:
        step()
        n += 1
    gpu._sync(dev)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"jets_per_s": x.shape[0] * n / dt, "step_ms": 1e3 * dt / n, "warm_s": warm_s,
           "jets_per_cpu_s": x.shape[0] * n / cpu}  # fmt: skip
    if dev.type == "cuda":
        out["peak_mem_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
    return out


def _flops(model: nn.Module, x: Tensor, v: Tensor, mask: Tensor, y: Tensor) -> int:
    def loss() -> Tensor:
        return F.cross_entropy(model(x, v, mask).float(), y)

    return gpu.count_flops(loss)


def compare(device: torch.device, modes: list[str], weaver_path: str | None, quick: bool = False,
            min_s: float = 2.0, deadline: float = float("inf"), B: int = 512,
            P: int = 128) -> dict[str, Any]:  # fmt: skip
    """Ours (length buckets 1 and 4) and weaver's ParT in every mode; [CLS] equality on CPU."""
    if quick:
        B = 16
    cls, origin = load_weaver(weaver_path)
    gen = torch.Generator().manual_seed(0)
    x, mask = gpu.synthetic_particles(B, P, gpu.PART_17, gen)
    torch.manual_seed(0)
    base = ours()
    v = base.fourvectors(x).float() * mask[..., None]
    y = torch.randint(0, N_CLASSES, (B,), generator=gen)
    x, v, mask, y = (t.to(device) for t in (x, v, mask, y))
    peaks = gpu.peak_flops(device)
    models: dict[str, Callable[[], nn.Module]] = {
        "ours_buckets1": lambda: _Tagger(ours(1), False),
        "ours_buckets4": lambda: _Tagger(ours(4), False),
    }
    if cls is not None:
        models["weaver"] = lambda: _Tagger(weaver_model(cls, head=True), True)
    out: dict[str, Any] = {
        "batch": B, "particles": P, "mean_real": float(mask.sum(1).float().mean()),
        "weaver": origin, "models": {},
    }  # fmt: skip
    if cls is not None:
        out["equality_cpu"] = cls_equality(cls, B=8 if quick else 64)
    # the MFU convention (weaver's ~2 % at 9.5k jets/s): FLOPs of all P slots; ours
    # without trimming does exactly the padded work, so it counts them
    torch.manual_seed(0)
    with _patched({"trim": _no_trim}):
        padded = _Tagger(ours(1), False).to(device).train()
        out["padded_flops_per_step"] = _flops(padded, x, v, mask, y)
    for name, make in models.items():
        torch.manual_seed(0)
        m = make().to(device).train()
        res: dict[str, Any] = {"flops_per_step": _flops(copy.deepcopy(m), x, v, mask, y)}
        for mode in modes:
            if mode.endswith("compile") and name == "ours_buckets4":  # device time: one is enough
                res[mode] = {"skipped": "not run (4 buckets: host syncs; GPU configs use 1)"}
                continue
            if mode.endswith("compile") and time.perf_counter() > deadline:
                res[mode] = {"skipped": "time budget (--budget-s) spent"}
                continue
            try:
                r = step_rate(copy.deepcopy(m), x, v, mask, y, mode, min_s)
            except Exception as err:
                res[mode] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
                continue
            peak = peaks["bf16" if mode.startswith("bf16") else "fp32"]
            step_s = r["step_ms"] / 1e3
            r["mfu"] = res["flops_per_step"] / step_s / peak if peak else None
            r["mfu_padded"] = out["padded_flops_per_step"] / step_s / peak if peak else None
            res[mode] = r
            print(f"  ParT {name} {mode}: {r['jets_per_s']:.0f} jets/s", flush=True)
        out["models"][name] = res
    out["ratio_ours_best_to_weaver_best"] = _ratio(out["models"])
    return out


def _best(res: dict[str, Any]) -> float | None:
    rates = [r["jets_per_s"] for r in res.values() if isinstance(r, dict) and "jets_per_s" in r]
    return max(rates) if rates else None


def _ratio(models: dict[str, Any]) -> float | None:
    if "weaver" not in models:
        return None
    w = _best(models["weaver"])
    o = [b for k, r in models.items() if k != "weaver" and (b := _best(r)) is not None]
    return max(o) / w if o and w else None


def _times100(v: float | None) -> float | None:
    return None if v is None else 100 * v


def markdown(r: dict[str, Any]) -> str:
    """The ParT section of the report."""
    lines = [f"ParT-Mini, JetClass configuration: batch {r['batch']}, {r['particles']} slots "
             f"({r['mean_real']:.0f} real on average); {r['weaver']}", "",
             f"MFU: counted FLOPs of each model / padded: {r['padded_flops_per_step'] / 1e9:.0f}"
             f" GFLOP per step (all {r['particles']} slots, the issue's convention)", "",
             "| model | GFLOP/step | mode | jets/s | step ms | MFU | MFU (padded) | peak GiB |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, res in r["models"].items():
        for mode, m in res.items():
            if mode == "flops_per_step":
                continue
            if "jets_per_s" not in m:
                lines.append(
                    f"| {name} | | {mode} | {m.get('error') or m.get('skipped')} | | | | |"
                )
                continue
            mfu = _times100(m.get("mfu"))
            lines.append(f"| {name} | {res['flops_per_step'] / 1e9:.1f} | {mode} | "
                         f"{m['jets_per_s']:.0f} | {m['step_ms']:.1f} | {gpu._pct(mfu)} | "
                         f"{gpu._pct(_times100(m.get('mfu_padded')))} | "
                         f"{gpu._fmt(m.get('peak_mem_gib'), '.2f')} |")  # fmt: skip
    if r.get("ratio_ours_best_to_weaver_best") is not None:
        lines.append(f"\nours (best mode) / weaver (best mode): "
                     f"{r['ratio_ours_best_to_weaver_best']:.2f}x")  # fmt: skip
    if "equality_cpu" in r:
        e = r["equality_cpu"]
        lines.append(f"[CLS] at the same weights, CPU, {e['batch']} jets (|[CLS]| <= "
                     f"{e['cls_max_abs']:.1f}): max |diff| "
                     f"{e['cls_max_abs_diff_float64_fourvectors']:.1e} (float64 four-vectors), "
                     f"{e['cls_max_abs_diff_float32_fourvectors']:.1e} (weaver's float32), "
                     f"{e['cls_max_abs_diff_random_c_attn']:.1e} (c_attn != 1)")  # fmt: skip
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CPU levers


def _math_sdpa(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None,
               dropout_p: float = 0.0, **kw: Any) -> Tensor:  # fmt: skip
    """Unfused attention (softmax(q k^T / sqrt(d) + mask) v): the "no fused kernel" lever."""
    s = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if attn_mask is not None:
        s = s + attn_mask
    p = s.softmax(-1)
    if dropout_p:
        p = F.dropout(p, dropout_p)
    return p @ v


def _no_trim(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    return x, mask


@contextmanager
def _patched(v: dict[str, Any]) -> Iterator[None]:
    """Swap ``trim_padding`` / SDPA of jetforge.models.part for one lever, then restore."""
    saved_trim, saved_sdpa = part_mod.trim_padding, part_mod.F.scaled_dot_product_attention
    part_mod.trim_padding = v.get("trim", saved_trim)
    part_mod.F.scaled_dot_product_attention = v.get("sdpa", saved_sdpa)
    try:
        yield
    finally:
        part_mod.trim_padding, part_mod.F.scaled_dot_product_attention = saved_trim, saved_sdpa


LEVERS: dict[str, dict[str, Any]] = {
    "baseline (trim to batch max, 4 length buckets, SDPA)": {},
    "no trimming (all slots, 1 bucket)": {"trim": _no_trim, "buckets": 1},
    "trim, 1 bucket": {"buckets": 1},
    "trim, 8 buckets": {"buckets": 8},
    "unfused attention (matmul + softmax)": {"sdpa": _math_sdpa},
    "torch.compile (inductor)": {"mode": "fp32_compile"},
}


def levers(B: int = 64, P: int = 128, min_s: float = 1.5, rounds: int = 3,
           compile_: bool = True, dropout: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """CPU training-step rate of our ParT-Mini (10-class head, AdamW) with one lever changed
    at a time, each checked to give the baseline's logits (eval mode, max |diff|). Ranked
    by jets per CPU second of this process (one thread): the bench machines are shared and
    their load drifts over minutes, which moves wall-clock rates by 2x; medians over
    ``rounds`` interleaved rounds."""
    gen = torch.Generator().manual_seed(0)
    x, mask = gpu.synthetic_particles(B, P, gpu.PART_17, gen)
    y = torch.randint(0, N_CLASSES, (B,), generator=gen)
    drop = {"dropout": dropout, "attn_dropout": dropout, "activation_dropout": dropout}
    names = [n for n, v in LEVERS.items() if compile_ or "mode" not in v]
    out: dict[str, Any] = {
        "batch": B, "particles": P, "dropout": dropout,
        "mean_real": float(mask.sum(1).float().mean()), "max_real": int(mask.sum(1).max()),
        "threads": torch.get_num_threads(), "rounds": rounds,
        "variants": {n: {"jets_per_s_rounds": []} for n in names},
    }  # fmt: skip
    ref, models = None, {}
    for name in names:
        v = LEVERS[name]
        torch.manual_seed(0)
        models[name] = _Tagger(ours(v.get("buckets", 4), **drop), False)
        with _patched(v), torch.no_grad():
            logits = models[name].eval()(x, None, mask)
        ref = logits if ref is None else ref
        out["variants"][name]["max_abs_diff_vs_baseline"] = float((logits - ref).abs().max())
    for _ in range(rounds):
        for name in names:
            v = LEVERS[name]
            with _patched(v):
                r = step_rate(models[name].train(), x, x, mask, y, v.get("mode", "fp32"), min_s,
                              warm=1)  # fmt: skip
            out["variants"][name]["jets_per_s_rounds"].append(r["jets_per_s"])
            out["variants"][name].setdefault("jets_per_cpu_s_rounds", []).append(
                r["jets_per_cpu_s"]
            )
    # one thread: CPU seconds per step hardly depend on the machine's load, wall seconds do
    base = float(np.median(out["variants"][names[0]]["jets_per_cpu_s_rounds"]))
    for name in names:
        r = out["variants"][name]
        r["jets_per_s"] = float(np.median(r["jets_per_s_rounds"]))
        r["jets_per_cpu_s"] = float(np.median(r["jets_per_cpu_s_rounds"]))
        r["speedup_vs_baseline"] = r["jets_per_cpu_s"] / base
        print(f"  {name}: {r['jets_per_cpu_s']:.1f} jets per CPU s "
              f"({r['speedup_vs_baseline']:.2f}x, diff {r['max_abs_diff_vs_baseline']:.1e})",
              flush=True)  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["levers", "weaver"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-s", type=float, default=1.5, help="seconds per timing")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (levers)")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--weaver-path", default=str(REPO / "results" / "weaver-core"))
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "levers":
        res = levers(args.batch, min_s=args.min_s, rounds=args.rounds,
                     compile_=not args.no_compile, dropout=args.dropout)  # fmt: skip
    else:
        dev = torch.device(args.device)
        modes = ["fp32", "bf16", "bf16_compile"] if dev.type == "cuda" else ["fp32"]
        res = compare(dev, modes, args.weaver_path, min_s=args.min_s, B=args.batch)
        print(markdown(res))
    text = json.dumps(res, indent=2, default=float)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
