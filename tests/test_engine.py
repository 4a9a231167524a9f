"""Training engine logs: TensorBoard event files (every loss term per step, resume-safe)
and the data-loader vs training-step throughput split in ``history.csv``.

A tiny MLP on in-memory batches: every test runs in about a second on CPU.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from jetforge.training import engine
from jetforge.training.data import JetBatch
from jetforge.training.engine import (
    PERF_COLUMNS,
    EngineConfig,
    TrainState,
    fit,
    tensorboard_dir,
)

N, P, F, BS = 40, 6, 5, 8  # 40 jets / batch 8 = 5 steps per epoch
SPE = N // BS


class _Kill(RuntimeError):
    pass


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, P, F, generator=g)
    m = torch.arange(P)[None] < torch.randint(2, P + 1, (N, 1), generator=g)
    y = (x[:, 0, 0] > 0).float()
    return x, m, y


def _batches(
    delay: float = 0.0,
) -> Callable[[int, int], Iterator[JetBatch]]:
    """Deterministic in (epoch, batch); ``delay`` seconds of 'loading' before each batch."""
    x, m, y = _data()

    def gen(epoch: int, start: int) -> Iterator[JetBatch]:
        perm = torch.randperm(N, generator=torch.Generator().manual_seed(epoch))
        for i in range(start, SPE):
            if delay:
                time.sleep(delay)
            sel = perm[i * BS : (i + 1) * BS]
            yield JetBatch(x[sel], m[sel], y[sel])

    return gen


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(F, 16), torch.nn.ReLU())
        self.head = torch.nn.Linear(16, 1)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        h = (self.body(x) * m[..., None]).sum(1) / m.sum(1, keepdim=True)
        return self.head(h).squeeze(-1)


def _loss(delay: float = 0.0) -> Callable[[torch.nn.Module, Any], dict[str, torch.Tensor]]:
    def loss(model: torch.nn.Module, b: JetBatch) -> dict[str, torch.Tensor]:
        if delay:
            time.sleep(delay)
        logit = model(b.x, b.mask)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, b.y)
        l2 = 1e-2 * (logit**2).mean()
        return {"loss": bce + l2, "bce": bce, "l2": l2}

    return loss


def _evaluate(model: torch.nn.Module, epoch: int) -> dict[str, float]:
    x, m, y = _data()
    logit = model(x, m)
    acc = float(((logit > 0).float() == y).float().mean())
    bce = float(torch.nn.functional.binary_cross_entropy_with_logits(logit, y))
    return {"val_loss": bce, "val_bce": bce, "accuracy": acc}


def _run(
    out: Path,
    *,
    epochs: int = 2,
    after_step: Callable[[TrainState], None] | None = None,
    evaluate: Callable[[torch.nn.Module, int], dict[str, float]] | None = _evaluate,
    run_key: dict[str, Any] | None = None,
    batch_delay: float = 0.0,
    step_delay: float = 0.0,
    **cfg: Any,
) -> TrainState:
    torch.manual_seed(0)
    model = _Net()
    groups = [
        {"params": list(model.head.parameters())},
        {"params": list(model.body.parameters()), "lr": 5e-3},
    ]
    conf = {"epochs": epochs, "lr": 1e-2, "checkpoint_every": 3, "schedule": "cosine",
            "warmup_steps": 2, **cfg}  # fmt: skip
    return fit(
        model,
        groups,
        _loss(step_delay),
        _batches(batch_delay),
        SPE,
        EngineConfig.from_dict(conf),
        torch.device("cpu"),
        out / "checkpoint.pt",
        out / "history.csv",
        evaluate=evaluate,
        run_key=run_key or {"run": "test"},
        after_step=after_step,
    )


def _scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard shows: (step, value) per tag, after its purge logic."""
    log_dir = tensorboard_dir(run_dir / "history.csv")
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def _raw_steps(run_dir: Path, tag: str) -> list[int]:
    """Every step logged for ``tag`` in every event file, purged or not."""
    steps = []
    for f in sorted(tensorboard_dir(run_dir / "history.csv").glob("events.out.tfevents.*")):
        for ev in EventFileLoader(str(f)).Load():
            steps += [ev.step for v in ev.summary.value if v.tag == tag]
    return steps


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv") as fh:
        return list(csv.DictReader(fh))


def _no_perf(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k not in PERF_COLUMNS} for r in rows]


STEP_TAGS = {"train/loss", "train/bce", "train/l2", "opt/lr", "opt/lr_group1", "opt/grad_norm"}
EPOCH_TAGS = {"epoch/loss", "epoch/bce", "epoch/l2", "val/loss", "val/bce", "metrics/accuracy"}
EPOCH_TAGS |= {f"perf/{c}" for c in PERF_COLUMNS}


def test_tensorboard_has_every_term_at_every_step(tmp_path: Path) -> None:
    _run(tmp_path)
    assert tensorboard_dir(tmp_path / "history.csv") == tmp_path / "tensorboard"
    assert tensorboard_dir(tmp_path / "vq_history.csv") == tmp_path / "tensorboard" / "vq"
    sc = _scalars(tmp_path)
    assert set(sc) == STEP_TAGS | EPOCH_TAGS
    for tag in STEP_TAGS:
        assert [s for s, _ in sc[tag]] == list(range(1, 2 * SPE + 1)), tag
    for tag in EPOCH_TAGS:
        assert [s for s, _ in sc[tag]] == [SPE, 2 * SPE], tag
    rows = _history(tmp_path)
    for e, row in enumerate(rows):
        for term in ("loss", "bce", "l2"):  # epoch mean = mean of the per-step points
            per_step = [v for s, v in sc[f"train/{term}"] if e * SPE < s <= (e + 1) * SPE]
            assert sum(per_step) / SPE == pytest.approx(float(row[term]), rel=1e-5)
            assert sc[f"epoch/{term}"][e][1] == pytest.approx(float(row[term]), rel=1e-6)
        assert sc["val/loss"][e][1] == pytest.approx(float(row["val_loss"]), rel=1e-6)
        assert sc["metrics/accuracy"][e][1] == pytest.approx(float(row["accuracy"]), rel=1e-6)
        for c in PERF_COLUMNS:
            assert sc[f"perf/{c}"][e][1] == pytest.approx(float(row[c]), rel=1e-6)
    # lr applied at each step: linear warm-up over 2 steps, then cosine; group 1 its own lr
    lr = dict(sc["opt/lr"])
    assert lr[1] == pytest.approx(0.5e-2) and lr[2] == pytest.approx(1e-2)
    assert lr[2 * SPE] < lr[4] < lr[3] == lr[2]
    assert dict(sc["opt/lr_group1"])[2] == pytest.approx(5e-3)
    assert all(v > 0 for _, v in sc["opt/grad_norm"])


def test_history_columns_keep_contract_and_add_throughput_split(tmp_path: Path) -> None:
    _run(tmp_path, epochs=1)
    rows = _history(tmp_path)
    cols = list(rows[0])
    assert cols[:3] == ["epoch", "step", "loss"]
    assert cols == ["epoch", "step", "loss", "bce", "l2", "val_loss", "val_bce", "lr",
                    "accuracy", *PERF_COLUMNS]  # fmt: skip
    assert PERF_COLUMNS == ("jets_per_s", "loader_jets_per_s", "step_jets_per_s")
    for c in PERF_COLUMNS:
        assert math.isfinite(float(rows[0][c])) and float(rows[0][c]) > 0


def test_loader_and_step_throughput_are_told_apart(tmp_path: Path) -> None:
    delay = 0.08  # per batch: 8 jets / 0.08 s = 100 jets/s; the bare step is ~10x faster
    _run(tmp_path / "warm_up", epochs=1, evaluate=None)  # one-off costs of a first step
    _run(tmp_path / "slow_loader", epochs=1, batch_delay=delay, evaluate=None)
    _run(tmp_path / "slow_step", epochs=1, step_delay=delay, evaluate=None)
    (a,), (b,) = _history(tmp_path / "slow_loader"), _history(tmp_path / "slow_step")
    limit = BS / delay * 1.05
    assert float(a["loader_jets_per_s"]) < limit < float(a["step_jets_per_s"])
    assert float(b["step_jets_per_s"]) < limit < float(b["loader_jets_per_s"])
    for r in (a, b):  # the wall-time rate includes both (and the bookkeeping)
        assert float(r["jets_per_s"]) < limit


def test_kill_and_resume_leaves_one_point_per_step(tmp_path: Path) -> None:
    ref, run = tmp_path / "ref", tmp_path / "killed"
    _run(ref)

    def kill_at_4(state: TrainState) -> None:  # checkpoints at 3, 5 (epoch end), 6, 9, 10
        if state.step == 4:
            raise _Kill

    with pytest.raises(_Kill):
        _run(run, after_step=kill_at_4)

    def eval_kill_in_epoch_2(model: torch.nn.Module, epoch: int) -> dict[str, float]:
        if epoch == 1:  # killed at step 10 after its points, before the epoch-end checkpoint
            raise _Kill
        return _evaluate(model, epoch)

    with pytest.raises(_Kill):
        _run(run, evaluate=eval_kill_in_epoch_2)
    _run(run)
    # the killed processes did log the steps they redo: 4 and 10 are twice in the files ...
    raw = _raw_steps(run, "train/loss")
    assert sorted(raw) == sorted([*range(1, 2 * SPE + 1), 4, 10])
    assert len(list(tensorboard_dir(run / "history.csv").glob("events.out.tfevents.*"))) == 3
    # ... but TensorBoard shows one point per step, identical to the uninterrupted run
    got, want = _scalars(run), _scalars(ref)
    assert set(got) == set(want) == STEP_TAGS | EPOCH_TAGS
    for tag in STEP_TAGS | EPOCH_TAGS:
        steps = [s for s, _ in got[tag]]
        assert steps == [s for s, _ in want[tag]] and len(set(steps)) == len(steps), tag
        if not tag.startswith("perf/"):
            assert got[tag] == want[tag], tag  # bit-identical resume on CPU
    assert _no_perf(_history(run)) == _no_perf(_history(ref))
    # a finished run called again changes nothing
    _run(run)
    assert len(list(tensorboard_dir(run / "history.csv").glob("events.out.tfevents.*"))) == 3


def test_fresh_run_replaces_stale_events_and_switch_off(tmp_path: Path) -> None:
    _run(tmp_path, epochs=1, lr=3e-2)
    old = _scalars(tmp_path)["train/loss"]
    # another config: the checkpoint is ignored, the run restarts, the old curve goes
    _run(tmp_path, epochs=1, run_key={"run": "other"})
    new = _scalars(tmp_path)["train/loss"]
    assert [s for s, _ in new] == list(range(1, SPE + 1)) and new != old
    off = tmp_path / "off"
    _run(off, epochs=1, tensorboard=False)
    assert (off / "history.csv").exists() and not (off / "tensorboard").exists()
    assert EngineConfig.from_dict({"epochs": 1, "lr": 1.0}).tensorboard is True


def test_progress_bar_shows_loader_and_step_rates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(engine, "progress_enabled", lambda: True)
    _run(tmp_path, epochs=1, step_delay=0.06, evaluate=None, tensorboard=False)
    err = capsys.readouterr().err
    assert "jets/s=" in err and "(loader " in err and ", step " in err


def test_checkpoint_loads_without_pickle_and_restores_every_rng(tmp_path: Path) -> None:
    _run(tmp_path, epochs=1)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # no pickled objects
    assert isinstance(ck["rng"]["torch"], torch.Tensor)
    assert len(ck["rng"]["numpy"]["key"]) == 624 and len(ck["rng"]["python"][1]) == 625
    # the plain form (through a weights_only round trip) restores each generator exactly,
    # cached Gaussians included
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    random.gauss(0.0, 1.0)  # each leaves its second Gaussian cached
    np.random.standard_normal()
    buf = io.BytesIO()
    torch.save(engine._rng_state(), buf)

    def draw() -> list[Any]:
        return [random.gauss(0.0, 1.0), random.random(), np.random.standard_normal(),
                np.random.random(3).tolist(), torch.rand(3).tolist()]  # fmt: skip

    want = draw()
    buf.seek(0)
    engine._set_rng_state(torch.load(buf, weights_only=True))
    assert draw() == want


def test_pickled_checkpoint_of_an_older_version_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = {"rng": {"numpy": np.random.get_state()}, "run_key": {"run": "test"}}
    torch.save(old, tmp_path / "checkpoint.pt")  # a NumPy array needs pickle to load
    with caplog.at_level(logging.WARNING, logger=engine.__name__):
        state = _run(tmp_path, epochs=1)
    assert state.step == SPE and "not loadable without pickle" in caplog.text
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["state"]["step"] == SPE
