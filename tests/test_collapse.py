"""Collapse detection of the training engine (issue 11): a pre-training whose embedding
collapses stops with :class:`TrainingCollapsed` instead of delivering a useless model.

The toy RS3L pre-training of ``test_training`` (SimCLR on a shrunken EdgeConv, 4 steps per
epoch) runs in about a second per call on CPU.
"""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from jetforge.evaluation.ssl_metrics import embedding_rank
from jetforge.training.data import JetBatch
from jetforge.training.engine import (
    EngineConfig,
    TrainingCollapsed,
    collapse_reason,
    fit,
)
from jetforge.training.pretrain import run_pretrain

from test_training import EXP, write_format4


@pytest.fixture(scope="module")
def h5(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("collapse")
    return str(write_format4(d / "pretrain.h5", {"qcd_zjet": 20, "hbb_zh": 20}, seed=1))


def _exp(**pretrain: Any) -> dict[str, Any]:
    exp = copy.deepcopy(EXP)
    exp["pretrain"].update(epochs=5, **pretrain)
    return exp


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_simclr_at_huge_lr_stops_with_a_clear_message(h5: str, tmp_path: Path) -> None:
    with pytest.raises(TrainingCollapsed) as err:
        run_pretrain(h5, str(tmp_path), _exp(lr=1e6), "all", repeat=0, seed=11, device="cpu")
    msg = str(err.value)
    assert "collapsed at epoch 1/5" in msg and "effective rank" in msg, msg
    assert "lower lr (now 1e+06)" in msg and "standardised" in msg, msg
    assert not (tmp_path / "model.pt").exists()
    rows = _rows(tmp_path / "history.csv")  # the collapsed epoch is logged for inspection
    assert float(rows[-1]["val_effective_rank"]) <= 1.05
    # the epoch-end checkpoint was not written: a rerun replays the epoch and stops again
    with pytest.raises(TrainingCollapsed, match="collapsed at epoch 1/5"):
        run_pretrain(h5, str(tmp_path), _exp(lr=1e6), "all", repeat=0, seed=11, device="cpu")


def test_simclr_at_huge_lr_flat_loss_is_caught_without_the_rank(h5: str, tmp_path: Path) -> None:
    exp = _exp(lr=1e6, collapse_rank=None)
    with pytest.raises(TrainingCollapsed, match=r"training loss has stayed at .* for 3 epochs"):
        run_pretrain(h5, str(tmp_path), exp, "all", repeat=0, seed=11, device="cpu")
    rows = _rows(tmp_path / "history.csv")
    assert math.isclose(float(rows[-1]["loss"]), math.log(2 * 8 - 1), rel_tol=1e-5)


def test_simclr_at_normal_lr_trains_and_logs_the_rank(h5: str, tmp_path: Path) -> None:
    run_pretrain(h5, str(tmp_path), _exp(), "all", repeat=0, seed=11, device="cpu")
    rows = _rows(tmp_path / "history.csv")
    assert len(rows) == 5 and (tmp_path / "model.pt").exists()
    assert all(float(r["val_effective_rank"]) > 1.5 for r in rows), rows


def test_both_checks_can_be_switched_off(h5: str, tmp_path: Path) -> None:
    exp = _exp(lr=1e6, collapse_rank=None, collapse_patience=None)
    run_pretrain(h5, str(tmp_path), exp, "all", repeat=0, seed=11, device="cpu")
    assert (tmp_path / "model.pt").exists()


# ----------------------------------------------------------------------------- the rule


def _hist(losses: list[float], rank: float | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"epoch": i + 1, "loss": v} for i, v in enumerate(losses)]
    if rank is not None:
        rows[-1]["val_effective_rank"] = rank
    return rows


def test_collapse_rule_thresholds() -> None:
    cfg = EngineConfig(epochs=10, lr=1e-3)
    assert collapse_reason(cfg, _hist([4.1], rank=1.0)) is not None
    assert "non-finite" in collapse_reason(cfg, _hist([4.1], rank=float("nan")))
    assert collapse_reason(cfg, _hist([4.1], rank=1.9)) is None  # AE+VICReg-like: legit
    flat = [4.2, 4.1, 4.1, 4.1, 4.1]  # epoch 1 still learning, then flat for 3 epochs
    assert "for 3 epochs (epochs 2-5" in collapse_reason(cfg, _hist(flat))
    assert collapse_reason(cfg, _hist(flat[:-1])) is None  # patience not reached yet
    assert collapse_reason(cfg, _hist([4.1, 4.1, 4.1, 4.1 * (1 + 1e-6)])) is not None
    assert collapse_reason(cfg, _hist([4.1, 4.1, 4.1, 4.1 * (1 + 1e-4)])) is None
    assert collapse_reason(EngineConfig(epochs=3, lr=1e-3), _hist(flat)) is None  # epochs<=3
    off = EngineConfig(epochs=10, lr=1e-3, collapse_rank=None, collapse_patience=None)
    assert collapse_reason(off, _hist(flat, rank=1.0)) is None
    with pytest.raises(ValueError, match="collapse_rank"):
        EngineConfig.from_dict({"epochs": 1, "lr": 1.0, "collapse_rank": 0.5})
    with pytest.raises(ValueError, match="collapse_patience"):
        EngineConfig.from_dict({"epochs": 1, "lr": 1.0, "collapse_patience": 0})


def test_embedding_rank_of_a_point_a_line_and_a_cloud() -> None:
    rng = np.random.default_rng(0)
    c = rng.normal(size=8)
    assert embedding_rank(np.zeros((50, 8))) == 1.0
    # one vector up to float32 rounding: the noise's spectrum is not a rank
    assert embedding_rank((c + 1e-7 * rng.normal(size=(50, 8))).astype(np.float32)) == 1.0
    assert embedding_rank(rng.normal(size=(50, 1)) * c) == pytest.approx(1.0, abs=1e-6)
    assert embedding_rank(rng.normal(size=(500, 8))) > 6
    assert math.isnan(embedding_rank(np.full((5, 8), np.nan)))


def test_a_data_independent_loss_stops_any_training(tmp_path: Path) -> None:
    """The flat-loss rule is the engine's, not a method's: here a loss that ignores the
    data (a constant plus zero times the output) on a plain model, 2 steps per epoch."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(8, 2, 3)

    def batches(epoch: int, start: int):
        for i in range(start, 2):
            yield JetBatch(x[4 * i : 4 * i + 4], torch.ones(4, 2, dtype=torch.bool), None)

    def loss(m: torch.nn.Module, b: JetBatch) -> dict[str, torch.Tensor]:
        return {"loss": 0.0 * m(b.x).sum() + 0.7}

    args = (model, [{"params": list(model.parameters())}], loss, batches, 2)
    paths = (torch.device("cpu"), tmp_path / "ck.pt", tmp_path / "h.csv")
    with pytest.raises(TrainingCollapsed, match=r"epoch 4/6 .*stayed at 0\.7 for 3 epochs"):
        fit(*args, EngineConfig(epochs=6, lr=1e-3, tensorboard=False), *paths)
    assert len(_rows(tmp_path / "h.csv")) == 4
    (tmp_path / "ck.pt").unlink()
    fit(*args, EngineConfig(epochs=3, lr=1e-3, tensorboard=False), *paths)  # epochs <= 3
