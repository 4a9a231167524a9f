"""The shared EMA teacher helper (jetforge.methods.ema): schedules and the in-place update."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from jetforge.methods.ema import ema_momentum, ema_update_


def test_cosine_schedule_matches_byol_formula_and_endpoints() -> None:
    K = 10
    for k in range(K + 1):
        want = 1.0 - (1.0 - 0.996) * (1.0 + math.cos(math.pi * k / K)) / 2.0
        assert ema_momentum(k, K, 0.996, 1.0) == want
    assert ema_momentum(0, K, 0.996, 1.0) == pytest.approx(0.996)
    assert ema_momentum(K + 5, K, 0.996, 1.0) == 1.0  # clamped after the run
    assert ema_momentum(3, 0, 0.996, 1.0) == 0.996


def test_linear_schedule_is_exact_at_first_and_last_update() -> None:
    K = 7
    taus = [ema_momentum(k, K, 0.9995, 0.99999, schedule="linear") for k in range(K)]
    assert taus[0] == 0.9995 and taus[-1] == 0.99999
    assert all(b > a for a, b in itertools.pairwise(taus))
    assert ema_momentum(K + 3, K, 0.9995, 0.99999, schedule="linear") == 0.99999
    assert ema_momentum(0, 1, 0.9995, 0.99999, schedule="linear") == 0.99999
    with pytest.raises(ValueError, match="cosine"):
        ema_momentum(0, K, 0.9, 1.0, schedule="step")  # type: ignore[arg-type]


def _pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
    teacher = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8)).requires_grad_(False)
    student.train()(torch.randn(16, 4))  # moves the student's running statistics
    return teacher, student


@pytest.mark.parametrize("fused", [False, True])
def test_update_is_bit_identical_to_the_written_out_formula(fused: bool) -> None:
    teacher, student = _pair()
    before = [p.clone() for p in teacher.parameters()]
    m = 0.99731
    ema_update_([(teacher, student)], m, fused=fused)
    for t, t0, s in zip(teacher.parameters(), before, student.parameters(), strict=True):
        want = t0.clone().mul_(m)
        want = want.add_(s, alpha=1.0 - m) if fused else want.add_((1.0 - m) * s)
        assert torch.equal(t, want)
        assert not t.requires_grad
    for bt, bs in zip(teacher.buffers(), student.buffers(), strict=True):
        assert torch.equal(bt, bs)  # running statistics copied, not averaged


def test_update_works_under_autograd_and_leaves_no_graph() -> None:
    teacher, student = _pair()
    ema_update_([(teacher, student)], 0.5)
    assert all(p.grad_fn is None for p in teacher.parameters())
