"""bench/gpu.py and bench/part.py on CPU at tiny sizes: the script a GPU session runs in one
device call must not first fail there on a bug a CPU finds (a few seconds)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import gpu  # noqa: E402
import part as part_bench  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quick_cpu_report(tmp_path: Path) -> None:
    argv = ["--device", "cpu", "--quick", "--threads", "1", "--min-s", "0.05", "--max-steps",
            "3", "--warm", "1", "--out", str(tmp_path)]  # fmt: skip
    report = gpu.main(argv)
    assert json.loads((tmp_path / "report.json").read_text())["cases"].keys() == gpu.CASES.keys()
    md = (tmp_path / "report.md").read_text()
    for name, case in report["cases"].items():
        assert name in md
        assert case["flops_per_step"] > 0 and case["backbone_params"] > 0
        fp32 = case["modes"]["fp32"]
        assert fp32["jets_per_s"] > 0 and fp32["steps"] >= 3 and fp32["mfu"] is None  # no peak
        assert case["loader"]["jets_per_s"] > 0 and case["loader"]["workers"] == 0
        agree = case["agreement"]
        assert len(agree["losses"]["cpu_fp32"]) == 20
        assert "skipped" in agree["cpu_vs_device_fp32"]  # the device is the CPU
        assert agree["fp32_vs_bf16"]["pass"], (name, agree["fp32_vs_bf16"])
    assert report["device"]["bf16"] is None and report["modes"] == ["fp32"]
    # the engine's own path (run_pretrain), trained and then resumed as finished
    eager = report["engine"]["eager"]
    assert eager["step_jets_per_s"] > 0 and eager["rerun_s"] < eager["wall_s"]


def test_flop_count_includes_cpu_attention() -> None:
    """FlopCounterMode has no entry for the CPU flash-attention kernels; gpu.py adds them."""
    q = torch.randn(2, 4, 16, 8, requires_grad=True)
    bias = torch.randn(2, 4, 16, 16)
    flops = gpu.count_flops(lambda: F.scaled_dot_product_attention(q, q, q, attn_mask=bias).sum())
    fwd = 4 * 2 * 4 * 16 * 16 * 8  # two [16 x 8] x [8 x 16]-sized products per head
    assert flops >= 3 * fwd


def test_peak_table_and_synthetic_jets() -> None:
    assert gpu.peak_flops(torch.device("cpu"))["bf16"] is None
    names = [k for k, _, _ in gpu.PEAK_FLOPS]
    assert names.index("H200 NVL") < names.index("H200") and "H100" in names
    gen = torch.Generator().manual_seed(0)
    x, mask = gpu.synthetic_particles(32, 128, gpu.PART_17, gen)
    assert mask.sum(1).min() >= 2 and (x[~mask] == 0).all()
    # ParT four-vectors from the standardised pT and the angles are finite
    p4 = part_bench.ours().fourvectors(x)
    assert torch.isfinite(p4).all()


def test_weaver_equality_if_installed() -> None:
    cls, origin = part_bench.load_weaver(None)
    if cls is None:
        pytest.skip(origin)
    eq = part_bench.cls_equality(cls, B=4)
    assert eq["cls_max_abs_diff_float64_fourvectors"] < 1e-4
