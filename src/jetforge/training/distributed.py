"""Data-parallel pre-training over N processes (``pretrain.gpus: N``, one per GPU).

Rule: ``batch_size`` is the **global** batch. Every rank draws the same global batch
(the samplers are a pure function of seed, epoch and batch index) and keeps its slice of
``batch_size / N`` rows; gradients are averaged over ranks with one flat all-reduce per
step; the learning rate is unchanged. So N GPUs train the same model as one GPU with the
same config, N times faster in the step (not in reading: each rank reads the global
batch), and a run may be resumed with another N.

Why not ``torch.nn.parallel.DistributedDataParallel``: it synchronises gradients only for
calls through its ``forward``, while our methods train through other entry points
(``embed_pair``, EMA ``on_step``) and SimCLR needs the negatives of every rank.
Contrastive (``pairs``) losses are computed on the embeddings of the whole global batch,
gathered with gradient (:func:`gather`): the loss and its gradient equal the
single-process ones up to float summation order (tests/test_ddp.py). Methods whose loss
uses batch statistics or draws random views see their rank's slice and their rank's RNG
stream instead: standard data-parallel training, not bit-equal to one process.

Only rank 0 writes files (checkpoint, history, TensorBoard, model); the checkpoint holds
every rank's RNG state, so resuming under the same N is exact.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def world() -> int:
    """Number of ranks (1 without torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without torch.distributed)."""
    return dist.get_rank() if world() > 1 else 0


def init_from_env(device: str) -> str:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); NCCL with one GPU
    per rank (``LOCAL_RANK``) on CUDA, gloo on CPU. Returns the device of this rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        device = f"cuda:{torch.cuda.current_device()}"
    dist.init_process_group("nccl" if cuda else "gloo")
    return device


def shard(batch: Any) -> Any:
    """This rank's rows of a global batch (a dataclass of tensors, first axis = rows)."""
    n = world()
    if n == 1:
        return batch
    rows = next(getattr(batch, f.name) for f in fields(batch)).shape[0]
    if rows % n:
        raise ValueError(f"global batch of {rows} rows does not split over {n} ranks")
    lo, hi = rank() * rows // n, (rank() + 1) * rows // n

    def cut(v: Tensor | None) -> Tensor | None:
        return None if v is None else v[lo:hi]

    return type(batch)(**{f.name: cut(getattr(batch, f.name)) for f in fields(batch)})


def sharded(batches: Iterator[Any]) -> Iterator[Any]:
    """:func:`shard` of every batch; closing it closes ``batches`` (the engine closes the
    epoch's iterator to stop a prefetching sampler)."""
    try:
        for b in batches:
            yield shard(b)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def gather(z: Tensor) -> Tensor:
    """Rows of every rank concatenated in rank order, differentiable: the backward pass
    returns to each rank the gradient summed over ranks, which :func:`average_gradients`
    then divides by N, so a loss every rank computes on the gathered rows gets exactly its
    single-process gradient."""
    if world() == 1:
        return z
    return _Gather.apply(z.contiguous())


class _Gather(torch.autograd.Function):
    """all_gather with a backward: the gradient of each rank's rows, summed over ranks."""

    @staticmethod
    def forward(ctx: Any, z: Tensor) -> Tensor:
        parts = [torch.empty_like(z) for _ in range(world())]
        dist.all_gather(parts, z)
        ctx.rows = z.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[rank() * ctx.rows : (rank() + 1) * ctx.rows]


def average_gradients(params: list[Tensor]) -> None:
    """Mean of every parameter gradient over ranks (one flat all-reduce)."""
    n = world()
    grads = [p.grad for p in params if p.grad is not None]
    if n == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= n
    i = 0
    for g in grads:
        g.copy_(flat[i : i + g.numel()].view_as(g))
        i += g.numel()


def mean_values(values: Mapping[str, float]) -> dict[str, float]:
    """Loss terms averaged over ranks (the logged numbers; equal on every rank)."""
    if world() == 1:
        return dict(values)
    keys = sorted(values)
    nccl = dist.get_backend() == "nccl"  # NCCL reduces CUDA tensors only
    dev = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return {k: float(v) / world() for k, v in zip(keys, t.tolist(), strict=True)}


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order, on every rank."""
    if world() == 1:
        return [obj]
    out: list[Any] = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def from_rank0(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the epoch's history row, so every rank takes
    the same collapse decision)."""
    if world() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def torchrun_pretrain(n: int, args: Mapping[str, Any]) -> None:
    """Run :func:`jetforge.training.pretrain.run_pretrain` on ``n`` local ranks through
    ``torch.distributed.run`` (one Slurm job holding n GPUs); raises if a rank fails."""
    import subprocess
    import tempfile
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(dict(args), fh)
    try:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={n}", "-m", "jetforge.training.distributed", fh.name]  # fmt: skip
        subprocess.run(cmd, env=env, check=True)
    finally:
        os.unlink(fh.name)


def main(argv: list[str]) -> None:
    """One rank of :func:`torchrun_pretrain`: ``python -m jetforge.training.distributed
    ARGS.json`` under torchrun."""
    from jetforge.training.pretrain import run_pretrain

    with open(argv[0]) as fh:
        a = json.load(fh)
    try:
        run_pretrain(**a)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
