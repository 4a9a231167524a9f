"""One training loop for pre-training and fine-tuning.

Why one loop: checkpointing, resumption, device handling and logging are where training
code silently diverges between stages; keeping them in one place means a fix applies to
every paper reproduced here.

Guarantees:

* **Resumable, bit-for-bit on CPU.** A checkpoint (every ``checkpoint_every`` optimiser
  steps and at every epoch end) holds model, optimiser, scheduler, all RNG states, the
  position in the epoch and the partial sums of the epoch's loss terms. Batches are a
  pure function of (seed, epoch, batch index) (see :mod:`jetforge.training.data`), so a
  job killed at any point and restarted finishes with the same weights and the same
  history as an uninterrupted run (on CPU; CUDA kernels are not all deterministic).
* **Atomic files.** Checkpoints and the CSV history are written through
  :func:`jetforge.io.atomic.atomic_path`; a kill never leaves a truncated file.
* **Fail loudly on divergence.** A non-finite loss raises :class:`NonFiniteLossError`
  naming the epoch and step *before* the bad update is applied, so the last checkpoint
  on disk is the last good state.
* **Fail loudly on collapse.** A run whose validation embeddings span one direction or
  whose loss stopped depending on the data raises :class:`TrainingCollapsed` at the end
  of that epoch (see :func:`collapse_reason`), before its epoch-end checkpoint: a rerun
  replays the epoch and stops again, rather than delivering the collapsed model.
* **Checkpoints without pickle.** ``checkpoint.pt`` holds only tensors and plain lists,
  dicts, numbers and strings (the RNG states of Python and NumPy as lists of ints), so it
  loads with ``torch.load(weights_only=True)`` and loading one cannot run code. A
  checkpoint written by an older jetforge (pickled RNG states) does not load that way; it
  is ignored with a warning and the run starts afresh.

Logs (one run = one directory holding ``history.csv``):

* ``history.csv``: one row per epoch: epoch, step, mean of every loss term, ``val_*``
  terms, lr, further metrics of ``evaluate``, then throughput: ``jets_per_s`` (wall time
  of the epoch's training loop), ``loader_jets_per_s`` (jets / time spent waiting for the
  next batch, host-to-device copy included) and ``step_jets_per_s`` (jets / time in
  forward, backward and optimiser step). ``loader_jets_per_s`` well above
  ``step_jets_per_s`` means the data loader is not the bottleneck.
* ``tensorboard/`` next to it (``tensorboard/<name>`` for a ``<name>_history.csv``), see
  :func:`tensorboard_dir`: every loss term at every optimiser step (``train/<term>``), the
  applied learning rate(s) and gradient norm (``opt/...``), and at each epoch's last step
  the epoch means (``epoch/<term>``), validation terms (``val/<term>``), other metrics of
  ``evaluate`` (``metrics/<name>``) and throughput (``perf/...``). All points are keyed
  by the global optimiser step, and a resumed run starts its event file with a purge of
  every step after its checkpoint, so a killed-and-resumed run shows one curve.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import os
import pickle
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from jetforge.io.atomic import write_text, write_torch
from jetforge.training import distributed as D

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """Raised when a loss term is NaN/inf; the message names epoch and global step."""


class TrainingCollapsed(RuntimeError):
    """Raised when a training's embedding or loss collapsed; the message names the epoch,
    the measured rank or loss, and what to try."""


class Batch(Protocol):
    def to(self, device: torch.device | str, non_blocking: bool = False) -> Any: ...

    def __len__(self) -> int: ...


@dataclass
class EngineConfig:
    """Optimisation settings, read from an experiment's ``pretrain``/``finetune`` block.

    Keys not listed here (``tau``, ``processes`` ...) are ignored, so the config block
    can be passed as is. ``grad_clip`` (max global L2 norm; null disables) defaults to
    10, a guard against rare spikes that is inactive in normal training.
    """

    epochs: int
    lr: float
    weight_decay: float = 0.0
    grad_clip: float | None = 10.0
    checkpoint_every: int = 50
    schedule: str = "constant"  # constant | cosine (after linear warm-up)
    warmup_steps: int = 0
    min_lr: float = 0.0  # cosine floor (JP-JEPA §4.4: "cosine annealing down to 1e-6")
    # optimiser steps in all (JP-JEPA Table 4 counts fine-tuning steps): replaces `epochs`
    # by the epochs they need, training stops at the budget mid-epoch; null: `epochs`
    steps: int | None = None
    # no weight decay on biases, normalisation weights (1-d) and tokens (JP-JEPA §4.4)
    decay_exclude_norms: bool = False
    amp: bool = True  # bf16 autocast on CUDA (never on CPU)
    compile: bool = False  # torch.compile the model (CUDA speed-up; off by default)
    tensorboard: bool = True  # TensorBoard event files in tensorboard/ beside history.csv
    # collapse detection (see collapse_reason); None disables each test
    collapse_rank: float | None = 1.05  # max val_effective_rank of a collapsed embedding
    collapse_patience: int | None = 3  # epochs of a data-independent loss

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any], **overrides: Any) -> EngineConfig:
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in {**cfg, **overrides}.items() if k in names}
        out = cls(**kw)
        if out.epochs < 0 or out.lr <= 0 or out.checkpoint_every < 1:
            raise ValueError(
                f"bad engine config: epochs={out.epochs}, lr={out.lr}, "
                f"checkpoint_every={out.checkpoint_every}"
            )
        if out.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {out.schedule!r}")
        if (out.collapse_rank is not None and not out.collapse_rank >= 1) or (
            out.collapse_patience is not None and out.collapse_patience < 1
        ):
            raise ValueError(
                f"collapse_rank must be >= 1 or null, got {out.collapse_rank!r}; "
                f"collapse_patience an integer >= 1 or null, got {out.collapse_patience!r}"
            )
        return out


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} requested but torch sees no CUDA device")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    return torch.device(device)


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal and unless JETFORGE_NO_PROGRESS=1."""
    return (
        os.environ.get("JETFORGE_NO_PROGRESS", "0") not in ("1", "true", "yes")
        and sys.stderr.isatty()
    )


def _lr_lambda(cfg: EngineConfig, total_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "cosine":
            span = max(total_steps - cfg.warmup_steps, 1)
            floor = min(cfg.min_lr / cfg.lr, 1.0)  # each group keeps its share of lr
            cos = 0.5 * (1.0 + math.cos(math.pi * min(step - cfg.warmup_steps, span) / span))
            return floor + (1.0 - floor) * cos
        return 1.0

    return f


def _rng_state() -> dict[str, Any]:
    """Every global RNG state as tensors and plain values (``weights_only``-loadable).

    torch's states are byte tensors already; NumPy's legacy generator (MT19937) becomes
    its 624 key words as ints plus position and cached Gaussian, Python's ``random``
    ``[version, 625 ints, gauss_next]``: exactly what ``set_state`` / ``setstate`` need.
    """
    np_state = np.random.get_state(legacy=False)
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": str(np_state["bit_generator"]),
            "key": [int(k) for k in np_state["state"]["key"]],
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": [int(version), [int(v) for v in internal], gauss_next],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`_rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": np.asarray(n["key"], dtype=np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainState:
    """Position of a run; what a hook sees after every optimiser step."""

    epoch: int = 0  # current epoch (0-based)
    batch: int = 0  # batches of this epoch already applied
    step: int = 0  # optimiser steps applied in total
    sums: dict[str, float] = field(default_factory=dict)  # per-term sums over this epoch
    n_steps_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


#: throughput columns, last in every history row (in this order)
PERF_COLUMNS = ("jets_per_s", "loader_jets_per_s", "step_jets_per_s")


def tensorboard_dir(history_path: str | os.PathLike[str]) -> Path:
    """TensorBoard log directory of the run whose CSV history is ``history_path``.

    ``<dir>/history.csv`` -> ``<dir>/tensorboard``; any other name, e.g. a tokenizer's
    ``<dir>/vq_history.csv``, -> ``<dir>/tensorboard/vq`` (its own run in TensorBoard).
    """
    p = Path(history_path)
    out = p.parent / "tensorboard"
    if p.name != "history.csv":
        out = out / (p.stem.removesuffix("_history") or p.stem)
    return out


_EVENTS_GLOB = "events.out.tfevents.*"


class _TensorBoard:
    """Step-keyed scalar logging that stays consistent across kills and resumptions.

    Fresh run (``resume_step == 0``): event files left in ``log_dir`` by an earlier run
    (whose checkpoint is gone or belongs to another config) are deleted. Resumed run: the
    new event file starts with ``purge_step = resume_step + 1``, so TensorBoard drops every
    point the killed process logged after its last checkpoint; the resumed process logs
    them again. For this to work, every point at step <= s is logged before the checkpoint
    at step s is written (see :func:`fit`), and the new file must sort after the old ones:
    TensorBoard reads a directory's files in name order and names start with the creation
    second, so a resume within the same second as the last file waits for the next one.
    """

    def __init__(self, log_dir: Path, resume_step: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # pragma: no cover - tensorboard is a dependency
            raise ImportError(
                "EngineConfig.tensorboard is true but the 'tensorboard' package is not "
                "installed: pip install tensorboard, or set tensorboard: false"
            ) from err
        log_dir.mkdir(parents=True, exist_ok=True)
        old = sorted(log_dir.glob(_EVENTS_GLOB))
        if resume_step == 0:
            for f in old:
                f.unlink()
        else:
            newest = max((_event_file_second(f) for f in old), default=-1)
            deadline = time.monotonic() + 2.0  # clock skew between hosts: do not hang
            while int(time.time()) <= newest and time.monotonic() < deadline:
                time.sleep(0.02)
        self.writer = SummaryWriter(
            str(log_dir),
            purge_step=resume_step + 1 if resume_step else None,
            max_queue=1000,
            flush_secs=30,
        )

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, v in values.items():
            if math.isfinite(v):
                self.writer.add_scalar(tag, v, global_step=step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _event_file_second(path: Path) -> int:
    """Creation second in an event file name ``events.out.tfevents.<sec>.<host>...``."""
    try:
        return int(path.name.split(".")[3])
    except (IndexError, ValueError):
        return -1


def _epoch_scalars(row: Mapping[str, Any], train_terms: Sequence[str]) -> dict[str, float]:
    """TensorBoard tags of one (unordered) history row; see the module docstring."""
    out: dict[str, float] = {}
    for k, v in row.items():
        if k in ("epoch", "step", "lr"):
            continue
        if k in PERF_COLUMNS:
            tag = f"perf/{k}"
        elif k.startswith("val_"):
            tag = f"val/{k[4:]}"
        elif k.startswith("@"):
            tag = f"metrics/{k[1:]}"
        elif k in train_terms:
            tag = f"epoch/{k}"
        else:  # pragma: no cover - every key of a row is one of the above
            tag = f"other/{k}"
        out[tag] = float(v)
    return out


def _write_history(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rewrite the whole CSV atomically (one row per finished epoch); rank 0 only."""
    if D.rank() != 0:
        return
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(float(v)) if isinstance(v, float) else v) for k, v in r.items()})
    write_text(path, buf.getvalue())


def _order_row(row: dict[str, Any]) -> dict[str, Any]:
    """Columns as in the data contract: epoch, step, loss terms, val_*, lr, metrics, then
    the throughput columns ``jets_per_s, loader_jets_per_s, step_jets_per_s``."""
    head = ["epoch", "step"]
    train = [
        k
        for k in row
        if k not in head
        and k != "lr"
        and k not in PERF_COLUMNS
        and not k.startswith("val_")
        and not k.startswith("@")
    ]
    val = [k for k in row if k.startswith("val_")]
    metrics = [k for k in row if k.startswith("@")]
    out = {k: row[k] for k in head + train + val}
    out["lr"] = row["lr"]
    out.update({k[1:]: row[k] for k in metrics})
    out.update({k: row[k] for k in PERF_COLUMNS})
    return out


@dataclass
class _Run:
    """What every phase of :func:`fit` shares: model, optimiser, device, logging, files."""

    model: nn.Module
    step_model: nn.Module  # ``model`` or its torch.compile'd wrapper (same parameters)
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    params: list[Tensor]  # for gradient clipping
    loss_fn: Callable[[nn.Module, Any], Mapping[str, Tensor]]
    cfg: EngineConfig
    device: torch.device
    steps_per_epoch: int
    ckpt_path: Path
    key: dict[str, Any]
    tb: _TensorBoard | None = None

    @property
    def use_amp(self) -> bool:
        return self.cfg.amp and self.device.type == "cuda"

    def autocast(self) -> torch.autocast:
        return torch.autocast(
            device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_amp
        )

    def save(self, state: TrainState) -> None:
        """Checkpoint everything a bit-exact resumption needs, atomically."""
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "rng": _rng_state(),
            "state": state.__dict__,
            "run_key": self.key,
        }
        if D.world() > 1:  # every rank's RNG streams (collective: all ranks call save)
            payload["rng_ranks"] = D.gather_objects(_rng_state())
        if D.rank() == 0:
            write_torch(self.ckpt_path, payload)


@dataclass
class _EpochTimes:
    """Jets and seconds of one epoch's training loop (the throughput columns).

    ``t_load``: waiting for the next batch and copying it to the device (the data
    loader); ``t_step``: forward, backward, optimiser step, per-step model updates.
    """

    n_jets: int = 0
    t_train: float = 0.0
    t_load: float = 0.0
    t_step: float = 0.0

    def columns(self) -> dict[str, float]:
        """``jets_per_s, loader_jets_per_s, step_jets_per_s`` (NaN where undefined)."""
        nan, n = float("nan"), self.n_jets
        return {
            "jets_per_s": n / self.t_train if self.t_train > 0 else nan,
            "loader_jets_per_s": n / self.t_load if n and self.t_load > 0 else nan,
            "step_jets_per_s": n / self.t_step if n and self.t_step > 0 else nan,
        }


def _resume(run: _Run) -> TrainState:
    """The state of ``run.ckpt_path`` loaded into model, optimiser, scheduler and RNGs, or
    a fresh state when there is no checkpoint or it was written under another run key."""
    if not run.ckpt_path.exists():
        return TrainState()
    try:
        ck = torch.load(run.ckpt_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # pickled RNG states of an older jetforge
        log.warning("ignoring %s: not loadable without pickle (%s)", run.ckpt_path, err)
        return TrainState()
    if ck.get("run_key") != run.key:
        log.warning(
            "ignoring %s: written for another run (%s != %s)",
            run.ckpt_path,
            ck.get("run_key"),
            run.key,
        )
        return TrainState()
    run.model.load_state_dict(ck["model"])
    run.opt.load_state_dict(ck["optimizer"])
    run.sched.load_state_dict(ck["scheduler"])
    ranks = ck.get("rng_ranks")  # written under torch.distributed (one state per rank)
    _set_rng_state(ranks[D.rank()] if ranks and len(ranks) == D.world() else ck["rng"])
    state = TrainState(**ck["state"])
    log.info(
        "resumed %s at epoch %d batch %d (step %d)",
        run.ckpt_path,
        state.epoch,
        state.batch,
        state.step,
    )
    return state


def _check_finite(values: Mapping[str, float], run: _Run, state: TrainState, epoch: int) -> None:
    """Raise :class:`NonFiniteLossError` before a NaN/inf loss reaches the weights."""
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise NonFiniteLossError(
            f"non-finite loss {bad} at step {state.step + 1} (epoch {epoch + 1}, "
            f"batch {state.batch + 1} of {run.steps_per_epoch}); update not applied; "
            "last good checkpoint: "
            f"{run.ckpt_path if run.ckpt_path.exists() else 'none written yet'}"
        )


def _optimiser_step(
    run: _Run, batch: Any, state: TrainState, epoch: int
) -> tuple[dict[str, float], list[float], Tensor | None]:
    """Forward, backward, clip, step, schedule and the method's ``on_step`` for one batch
    (already on the device). Returns the loss terms, the learning rates this step
    applied and the gradient norm before clipping (None without clipping)."""
    with run.autocast():
        terms = run.loss_fn(run.step_model, batch)
    # one device -> host copy for all terms (a GPU waits once per step, not once per term;
    # the finiteness check needs the numbers before the update anyway)
    names = list(terms)
    host = torch.stack([terms[k].detach().float().reshape(()) for k in names]).tolist()
    values = D.mean_values(dict(zip(names, host, strict=True)))
    _check_finite(values, run, state, epoch)
    run.opt.zero_grad(set_to_none=True)
    terms["loss"].backward()
    D.average_gradients(run.params)  # data-parallel: mean over ranks (no-op on one)
    grad_norm = None
    if run.cfg.grad_clip:
        grad_norm = torch.nn.utils.clip_grad_norm_(run.params, run.cfg.grad_clip)
    lrs = [float(g["lr"]) for g in run.opt.param_groups]  # applied by this step
    run.opt.step()
    run.sched.step()
    # per-step state updates owned by the method (EMA teachers, centring): done here,
    # before any checkpoint of this step, so resuming replays them exactly
    on_step = getattr(run.model, "on_step", None)
    if on_step is not None:
        on_step(state.step + 1, run.cfg.steps or run.cfg.epochs * run.steps_per_epoch)
    if run.device.type == "cuda":  # asynchronous: wait for the step before timing it
        torch.cuda.synchronize(run.device)
    return values, lrs, grad_norm


def _step_scalars(
    values: Mapping[str, float], lrs: Sequence[float], grad_norm: Tensor | None
) -> dict[str, float]:
    """TensorBoard points of one optimiser step: ``train/<term>`` and ``opt/...``."""
    scalars = {f"train/{k}": v for k, v in values.items()}
    scalars["opt/lr"] = lrs[0]
    scalars.update({f"opt/lr_group{i}": v for i, v in enumerate(lrs) if i})
    if grad_norm is not None:
        scalars["opt/grad_norm"] = float(grad_norm)
    return scalars


def _progress_bar(run: _Run, state: TrainState, epoch: int, desc: str) -> Any:
    """A tqdm bar for the epoch, or None off a terminal (see :func:`progress_enabled`)."""
    if not progress_enabled():
        return None
    from tqdm import tqdm

    return tqdm(
        total=run.steps_per_epoch,
        initial=state.batch,
        desc=f"{desc} {epoch + 1}/{run.cfg.epochs}",
        leave=False,
        dynamic_ncols=True,
    )


def _split_no_decay(model: nn.Module, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each group twice: its matrices with weight decay, its biases, normalisation weights
    (1-d parameters) and tokens (names ending ``token``) with none (JP-JEPA §4.4)."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = []
    for g in groups:
        free = [p for p in g["params"] if p.ndim <= 1 or names.get(id(p), "").endswith("token")]
        ids = {id(p) for p in free}
        out.append({**g, "params": [p for p in g["params"] if id(p) not in ids]})
        out.append({**g, "params": free, "weight_decay": 0.0})
    return [g for g in out if g["params"]]


def _train_epoch(
    run: _Run,
    batches: Iterator[Batch],
    state: TrainState,
    epoch: int,
    bar: Any,
    after_step: Callable[[TrainState], None] | None,
) -> _EpochTimes:
    """Apply the epoch's remaining ``batches``, updating ``state`` and writing the
    mid-epoch checkpoints that fall due; returns the epoch's throughput timings."""
    times, end = _EpochTimes(), object()
    t0 = time.perf_counter()
    while run.cfg.steps is None or state.step < run.cfg.steps:
        t_a = time.perf_counter()
        batch = next(batches, end)
        if batch is end:
            times.t_load += time.perf_counter() - t_a
            break
        batch = batch.to(run.device, non_blocking=True)  # type: ignore[union-attr]
        t_b = time.perf_counter()
        times.t_load += t_b - t_a
        values, lrs, grad_norm = _optimiser_step(run, batch, state, epoch)
        times.t_step += time.perf_counter() - t_b
        state.step += 1
        state.batch += 1
        state.n_steps_epoch += 1
        for k, v in values.items():
            state.sums[k] = state.sums.get(k, 0.0) + v
        times.n_jets += len(batch)  # type: ignore[arg-type]
        times.t_train = time.perf_counter() - t0
        if run.tb is not None:
            run.tb.scalars(_step_scalars(values, lrs, grad_norm), state.step)
        if bar is not None:
            _show_progress(bar, values["loss"], times)
        # the checkpoint due at an epoch's last batch is the epoch-end one of fit (same
        # step, written after the epoch's row and TensorBoard points)
        if state.step % run.cfg.checkpoint_every == 0 and state.batch < run.steps_per_epoch:
            if run.tb is not None:
                run.tb.flush()
            run.save(state)
        if after_step is not None:
            after_step(state)
    return times


def _show_progress(bar: Any, loss: float, t: _EpochTimes) -> None:
    bar.set_postfix_str(
        f"loss={loss:.4f} jets/s={t.n_jets / max(t.t_train, 1e-9):.0f} "
        f"(loader {t.n_jets / max(t.t_load, 1e-9):.0f}, "
        f"step {t.n_jets / max(t.t_step, 1e-9):.0f})",
        refresh=False,
    )
    bar.update(1)


def _epoch_row(
    run: _Run,
    state: TrainState,
    epoch: int,
    times: _EpochTimes,
    evaluate: Callable[[nn.Module, int], Mapping[str, float]] | None,
) -> dict[str, Any]:
    """The epoch's (unordered) history row: loss-term means, ``evaluate``'s numbers
    (``val_*`` as is, the rest prefixed ``@``), lr and throughput."""
    if state.n_steps_epoch == 0:
        raise RuntimeError(
            f"epoch {epoch + 1} produced no batches (expected {run.steps_per_epoch})"
        )
    row: dict[str, Any] = {"epoch": epoch + 1, "step": state.step}
    row.update({k: v / state.n_steps_epoch for k, v in state.sums.items()})
    if evaluate is not None:
        run.model.eval()
        with torch.no_grad(), run.autocast():
            extra = dict(evaluate(run.model, epoch))
        row.update({(k if k.startswith("val_") else "@" + k): float(v) for k, v in extra.items()})
    row["lr"] = float(run.sched.get_last_lr()[0])
    row.update(times.columns())
    return row


#: relative spread (max - min over the window, divided by the largest |loss|) below which
#: the epoch-mean training loss counts as flat. A live training's epoch means differ by at
#: least the sampling noise of a mean over one epoch's batches (~1e-4 relative, and more
#: while it learns); the loss of a constant or zero embedding is the same number for every
#: batch (NT-Xent: ln(2B - 1)), flat to float32 rounding (~1e-7).
FLAT_LOSS_RTOL = 1e-5


def collapse_reason(cfg: EngineConfig, history: Sequence[Mapping[str, Any]]) -> str | None:
    """Why the run whose per-epoch rows are ``history`` has collapsed, or None.

    * ``val_effective_rank`` (the method's validation embeddings, when its evaluation
      reports it) <= ``cfg.collapse_rank``, or not finite. The default 1.05 is met only
      when one direction holds all but ~1 % of the spectrum (two singular values in ratio
      1:0.01 already give 1.06): a constant or zero embedding gives exactly 1, while
      working low-rank models stay far above (the hadfork AE+VICReg y: ~2 of 8).
    * The epoch-mean ``loss`` of the last ``cfg.collapse_patience`` + 1 epochs (the first
      epoch and the next ``patience`` ones when checked first) within
      :data:`FLAT_LOSS_RTOL`: the loss no longer depends on the data. Only when
      ``cfg.epochs`` > patience.
    """
    row = history[-1]
    rank = row.get("val_effective_rank")
    if cfg.collapse_rank is not None and rank is not None and not rank > cfg.collapse_rank:
        why = "one direction for every jet" if math.isfinite(rank) else "non-finite entries"
        return (
            f"the effective rank of the validation embeddings is {float(rank):.4g}, "
            f"not above collapse_rank={cfg.collapse_rank:g} ({why})"
        )
    n = cfg.collapse_patience
    if n is None or cfg.epochs <= n or len(history) <= n:
        return None
    losses = [float(r["loss"]) for r in history[-(n + 1) :]]
    spread = max(losses) - min(losses)
    if spread <= FLAT_LOSS_RTOL * max(abs(v) for v in losses):
        return (
            f"the training loss has stayed at {losses[-1]:.6g} for {n} epochs (epochs "
            f"{len(history) - n}-{len(history)}, spread {spread:.2g} <= {FLAT_LOSS_RTOL:g} "
            "relative): it no longer depends on the data"
        )
    return None


def _check_collapse(run: _Run, state: TrainState, hist_path: Path, desc: str) -> None:
    """Raise :class:`TrainingCollapsed` if :func:`collapse_reason` finds one; the history
    (with the collapsed epoch's row) is written first so the numbers can be inspected."""
    reason = collapse_reason(run.cfg, state.history)
    if reason is None:
        return
    _write_history(hist_path, state.history)
    row = state.history[-1]
    raise TrainingCollapsed(
        f"{desc} collapsed at epoch {row['epoch']}/{run.cfg.epochs} (step {row['step']}, "
        f"training loss {float(row['loss']):.6g}): {reason}. Try a lower lr (now "
        f"{run.cfg.lr:g}) or a warm-up, and check that the inputs are standardised (no "
        "feature orders of magnitude larger than the others); history: "
        f"{hist_path}. collapse_rank / collapse_patience: null switch the checks off"
    )


def _run_epoch(
    run: _Run,
    state: TrainState,
    epoch: int,
    batches: Callable[[int, int], Iterator[Batch]],
    evaluate: Callable[[nn.Module, int], Mapping[str, float]] | None,
    after_step: Callable[[TrainState], None] | None,
    hist_path: Path,
    desc: str,
    epoch_end: Callable[[int], None] | None = None,
) -> None:
    """Train one epoch from ``state.batch`` on, then log its row and checkpoint its end."""
    run.model.train()
    bar = _progress_bar(run, state, epoch, desc)
    it = iter(batches(epoch, state.batch))
    try:
        times = _train_epoch(run, it, state, epoch, bar, after_step)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()  # stops a prefetching sampler's thread now, also on errors
        if bar is not None:
            bar.close()
    row = D.from_rank0(_epoch_row(run, state, epoch, times, evaluate))
    if run.tb is not None:  # before the checkpoint: a kill after it loses no point
        run.tb.scalars(_epoch_scalars(row, list(state.sums)), state.step)
        run.tb.flush()
    state.history.append(_order_row(row))
    _check_collapse(run, state, hist_path, desc)  # before the checkpoint: reruns stop too
    if epoch_end is not None:  # before the checkpoint: a kill between the two redoes the
        epoch_end(epoch + 1)  # epoch and rewrites the same bytes (bit-exact resume)
    state.epoch, state.batch, state.n_steps_epoch, state.sums = epoch + 1, 0, 0, {}
    run.save(state)
    _write_history(hist_path, state.history)
    log.info("%s epoch %d/%d: %s", desc, epoch + 1, run.cfg.epochs, state.history[-1])


def fit(
    model: nn.Module,
    param_groups: Sequence[dict[str, Any]],
    loss_fn: Callable[[nn.Module, Any], Mapping[str, Tensor]],
    batches: Callable[[int, int], Iterator[Batch]],
    steps_per_epoch: int,
    cfg: EngineConfig,
    device: torch.device,
    checkpoint_path: str | os.PathLike[str],
    history_path: str | os.PathLike[str],
    *,
    evaluate: Callable[[nn.Module, int], Mapping[str, float]] | None = None,
    run_key: Mapping[str, Any] | None = None,
    after_step: Callable[[TrainState], None] | None = None,
    desc: str = "train",
    stop: Callable[[Sequence[Mapping[str, Any]]], bool] | None = None,
    epoch_end: Callable[[int], None] | None = None,
) -> TrainState:
    """Train ``model`` (already on ``device``) for ``cfg.epochs`` epochs, resuming if possible.

    * ``param_groups``: optimiser groups (each may set its own ``lr``; the schedule
      scales all of them). AdamW with ``cfg.weight_decay``.
    * ``loss_fn(model, batch)``: loss terms of one batch already moved to ``device``;
      must contain ``loss`` (minimised); all terms are averaged per epoch into the CSV.
    * ``batches(epoch, start_batch)``: the epoch's batches from ``start_batch`` on; must
      be deterministic for resumption to be exact. ``len(batch)`` counts jets.
    * ``evaluate(model, epoch)``: extra per-epoch numbers, run in eval mode without
      gradients; keys starting ``val_`` go before ``lr`` in the CSV, the rest after.
    * ``run_key``: identifies the run; a checkpoint written under another key is
      ignored (a stale file from an edited config must not be resumed).
    * ``after_step(state)``: test hook, called after every optimiser step (and after a
      checkpoint due at that step was written; at an epoch's last batch that checkpoint
      is the epoch-end one, written after the hook).
    * ``cfg.tensorboard``: also log to :func:`tensorboard_dir` (see the module docstring).
    * ``stop(history)``: early stopping, asked before every epoch (also right after a
      resume, so a stopped run stays stopped): True ends training there.
    * ``epoch_end(n)``: called with the number of epochs done after each epoch, before its
      checkpoint (e.g. the pre-training's snapshots for jBOT Fig. 6).
    """
    hist_path = Path(history_path)
    if steps_per_epoch < 1 and cfg.epochs > 0:
        raise ValueError(
            f"no training batches per epoch (steps_per_epoch={steps_per_epoch}); "
            "dataset too small for the batch size?"
        )
    if cfg.steps is not None:  # a step budget: the epochs it needs, the last one cut short
        cfg = dataclasses.replace(cfg, epochs=-(-int(cfg.steps) // max(steps_per_epoch, 1)))
    groups = [dict(g) for g in param_groups]
    if cfg.decay_exclude_norms:
        groups = _split_no_decay(model, groups)
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, total))
    run = _Run(
        model=model,
        step_model=model,
        opt=opt,
        sched=sched,
        params=[p for g in groups for p in g["params"]],
        loss_fn=loss_fn,
        cfg=cfg,
        device=device,
        steps_per_epoch=steps_per_epoch,
        ckpt_path=Path(checkpoint_path),
        key=dict(run_key or {}),
    )
    state = _resume(run)
    if cfg.compile:
        run.step_model = torch.compile(model, dynamic=True)  # type: ignore[assignment]
    if cfg.tensorboard and state.epoch < cfg.epochs and D.rank() == 0:
        run.tb = _TensorBoard(tensorboard_dir(hist_path), state.step)
    try:
        for epoch in range(state.epoch, cfg.epochs):
            if stop is not None and stop(state.history):
                log.info("%s: early stop before epoch %d", desc, epoch + 1)
                break
            _run_epoch(run, state, epoch, batches, evaluate, after_step, hist_path, desc,
                       epoch_end)  # fmt: skip
    finally:
        if run.tb is not None:
            run.tb.close()
    # Always (re)write: a kill between the last checkpoint and its CSV update must not
    # leave a history that lacks the final epoch.
    _write_history(hist_path, state.history)
    return state
