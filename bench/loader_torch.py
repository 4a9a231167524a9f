"""Could torch's DataLoader replace our HDF5 loader? Same batches, jets/s, resume.

    .venv/bin/python bench/loader_torch.py [--pairs 3000] [--batch-size 256]
                                           [--seconds 8] [--out results/bench/loader_torch]

Our loader (:mod:`jetforge.training.data` + :mod:`jetforge.training.h5loader`, ~1.3k
lines: prefetch thread or worker processes, shared-memory slots, bit-exact resume) is
measured against two ``torch.utils.data.DataLoader`` variants over the *same HDF5 rows in
the same batch order* (the block-shuffle plan of the sampler, recomputed here from
``default_rng([seed, epoch])``), each with ``num_workers`` 0 and 2:

* ``dl_batch``: a map-style Dataset indexed by a whole batch (``batch_size=None``, the
  sampler yields each batch's rows per view), read with our
  :func:`~jetforge.training.h5loader.read_inputs` (few contiguous reads), trimmed like
  ours. The DataLoader only adds worker processes and the collation.
* ``dl_row``: the textbook form, one ``__getitem__`` per jet (one small HDF5 read per row
  and view), default-collated, trimmed in ``collate_fn``.

Resumption: :class:`PlanBatches` starts at ``start_batch`` (skips the consumed batches
without reading them), so a DataLoader resumed mid-epoch yields the same tensors as
our sampler's ``epoch(e, start_batch)``; checked bit for bit here. Also checked: whether
creating the DataLoader's iterator draws from the *global* torch RNG (it does unless the
DataLoader gets its own ``generator``), which the engine checkpoints and jBOT's
augmentations draw from: an iterator created mid-epoch at resumption would then shift
every later draw and break bit-exact resume.

Data: the synthetic format-4 file of ``bench/loader.py`` (:func:`write_synthetic`), no
network. Writes ``summary.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader import jet_sampler, pair_sampler, write_synthetic

from jetforge.training.data import JetSampler, PairSampler, block_shuffle
from jetforge.training.h5loader import read_inputs, trim_length

Sampler_ = JetSampler | PairSampler


# ----------------------------------------------------------------------------- batch plan


def epoch_rows(s: Sampler_, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Items in emission order and their file rows per view ``[n_views, n_items]``: the
    same random draws, in the same order, as ``s.epoch(epoch)``."""
    rng = np.random.default_rng([s.seed, int(epoch)])
    n = s._n_items()
    if isinstance(s, PairSampler):
        aug = s.aug_variants[rng.integers(s.aug_variants.size, size=n)]
        block = s.block_pairs
    else:
        block = s.block_rows
    if s.shuffle:
        buffers = block_shuffle(n, rng, block, s.buffer_blocks)
    else:
        step = block * s.buffer_blocks
        buffers = [np.arange(a, min(a + step, n)) for a in range(0, n, step)]
    items = np.concatenate(buffers) if buffers else np.zeros(0, np.int64)
    if isinstance(s, PairSampler):
        base = s.pairs[items] * s.info.n_variants
        return items, np.stack([base + s.nominal_variant, base + aug[items]])
    return items, s.rows[items][None]


class PlanBatches(Sampler[tuple[np.ndarray, np.ndarray]]):
    """Batches of an epoch as ``(items, rows per view)``, from ``start_batch`` on.

    ``set_epoch`` / ``start_batch`` are all a resumed run needs: the plan is a pure
    function of (seed, epoch), so skipped batches cost nothing.
    """

    def __init__(self, s: Sampler_, epoch: int = 0, start_batch: int = 0) -> None:
        self.s, self.epoch, self.start_batch = s, epoch, start_batch

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return max(len(self.s) - self.start_batch, 0)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        items, rows = epoch_rows(self.s, self.epoch)
        bs = self.s.batch_size
        for b in range(self.start_batch, len(self.s)):
            yield items[b * bs : (b + 1) * bs], rows[:, b * bs : (b + 1) * bs]


class _H5:
    """An ``h5py.File`` opened lazily in each process (a forked worker must not share the
    parent's HDF5 handle)."""

    def __init__(self, path: str) -> None:
        self.path, self._pid, self._f = path, -1, None

    def file(self) -> h5py.File:
        if self._pid != os.getpid():
            self._f, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._f  # type: ignore[return-value]

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_pid": -1, "_f": None}


def _trim(x: np.ndarray, m: np.ndarray) -> list[torch.Tensor]:
    n = trim_length(m)
    return [torch.from_numpy(np.ascontiguousarray(x[:, :n])),
            torch.from_numpy(np.ascontiguousarray(m[:, :n]))]  # fmt: skip


class BatchDataset(Dataset):
    """``dataset[(items, rows)]``: one whole batch, read with our few-large-reads reader."""

    def __init__(self, s: Sampler_) -> None:
        self.h5, self.labels = _H5(s.path), np.asarray(s.labels)

    def __getitem__(self, key: tuple[np.ndarray, np.ndarray]) -> list[torch.Tensor]:
        items, rows = key
        out: list[torch.Tensor] = []
        for view in rows:
            x, m = read_inputs(self.h5.file(), view)
            out += _trim(x, m)
        return [*out, torch.from_numpy(self.labels[items].astype(np.int64))]


class RowDataset(Dataset):
    """``dataset[(item, row_view0, ...)]``: one jet per call (the textbook DataLoader)."""

    def __init__(self, s: Sampler_) -> None:
        self.h5, self.labels = _H5(s.path), np.asarray(s.labels)

    def __getitem__(self, key: tuple[int, ...]) -> tuple[np.ndarray, ...]:
        f = self.h5.file()
        out: list[np.ndarray] = []
        for r in key[1:]:
            out += [f["particles"][r], f["mask"][r]]
        return (*out, np.int64(self.labels[key[0]]))


class RowBatches(Sampler[list[tuple[int, ...]]]):
    """:class:`PlanBatches` as lists of per-jet keys (a ``batch_sampler``)."""

    def __init__(self, plan: PlanBatches) -> None:
        self.plan = plan

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[list[tuple[int, ...]]]:
        for items, rows in self.plan:
            yield [(int(i), *map(int, r)) for i, r in zip(items, rows.T, strict=True)]


def _collate_rows(jets: Sequence[tuple[np.ndarray, ...]]) -> list[torch.Tensor]:
    cols = list(zip(*jets, strict=True))
    out: list[torch.Tensor] = []
    for v in range(0, len(cols) - 1, 2):
        out += _trim(np.stack(cols[v]), np.stack(cols[v + 1]))
    return [*out, torch.from_numpy(np.array(cols[-1]))]


def torch_loader(
    s: Sampler_, kind: str, workers: int, epoch: int = 0, start_batch: int = 0
) -> tuple[DataLoader, PlanBatches]:
    """A DataLoader giving ``s``'s batches (``kind``: ``batch`` or ``row``)."""
    plan = PlanBatches(s, epoch, start_batch)
    common: dict[str, Any] = {
        "num_workers": workers,
        "persistent_workers": workers > 0,
        "generator": torch.Generator().manual_seed(0),  # keeps the global RNG untouched
    }
    if kind == "batch":
        dl = DataLoader(BatchDataset(s), sampler=plan, batch_size=None, **common)
    else:
        dl = DataLoader(
            RowDataset(s), batch_sampler=RowBatches(plan), collate_fn=_collate_rows, **common
        )
    return dl, plan


def ours(b: Any) -> list[torch.Tensor]:
    """Our batch as the same flat tensor list (labels as int64)."""
    if hasattr(b, "x_a"):
        return [b.x_a, b.m_a, b.x_b, b.m_b, b.labels]
    return [b.x, b.mask, b.y.long()]


# ----------------------------------------------------------------------------- checks


def same_batches(s: Sampler_, kind: str, workers: int, epoch: int, start: int) -> bool:
    """DataLoader resumed at ``start`` == our ``s.epoch(epoch, start)``, bit for bit."""
    dl, _ = torch_loader(s, kind, workers, epoch, start)
    a = [ours(b) for b in s.epoch(epoch, start)]
    c = list(dl)
    return len(a) == len(c) > 0 and all(
        len(p) == len(q) and all(torch.equal(x, y) for x, y in zip(p, q, strict=True))
        for p, q in zip(a, c, strict=True)
    )


def iterator_draws_global_rng(s: Sampler_) -> bool:
    """Does creating a DataLoader iterator (no ``generator`` given) move torch's RNG?"""
    dl = DataLoader(BatchDataset(s), sampler=PlanBatches(s), batch_size=None)
    torch.manual_seed(0)
    iter(dl)
    after = torch.rand(1)
    torch.manual_seed(0)
    return not torch.equal(after, torch.rand(1))


# ----------------------------------------------------------------------------- speed


def _rate(epochs: Iterator[Iterator[Any]], seconds: float) -> dict[str, float]:
    jets, n_epochs, t0 = 0, 0, time.perf_counter()
    for it in epochs:
        for b in it:
            jets += len(b[0]) * (2 if len(b) == 5 else 1)
        n_epochs += 1
        if time.perf_counter() - t0 >= seconds:
            break
    dt = time.perf_counter() - t0
    return {"jets_per_s": jets / dt, "epochs": n_epochs, "load_avg_1min": os.getloadavg()[0]}


def speed_ours(
    make: Any, h5: str, bs: int, workers: int, seconds: float, **kw: Any
) -> dict[str, float]:
    with make(h5, bs, True, workers=workers, **kw) as s:
        return _rate((map(ours, s.epoch(e)) for e in range(10**6)), seconds)


def speed_torch(
    make: Any, h5: str, bs: int, kind: str, workers: int, seconds: float, **kw: Any
) -> dict[str, float]:
    with make(h5, bs, False, **kw) as s:
        dl, plan = torch_loader(s, kind, workers)

        def epochs() -> Iterator[Iterator[Any]]:
            for e in range(10**6):
                plan.set_epoch(e)
                yield iter(dl)

        return _rate(epochs(), seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=3000, help="pairs in the synthetic file")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=6.0, help="per measurement")
    ap.add_argument("--buffer-blocks", type=int, default=4,
                    help="blocks per prefetch buffer: several buffers per epoch, so that "
                    "our workers have buffers to read ahead")  # fmt: skip
    ap.add_argument("--kinds", nargs="+", default=["JetSampler", "PairSampler"])
    ap.add_argument("--out", default="results/bench/loader_torch")
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    makers = {"PairSampler": pair_sampler, "JetSampler": jet_sampler}
    tmp = Path(tempfile.mkdtemp(dir=args.tmp))
    h5 = str(write_synthetic(tmp / "synthetic.h5", args.pairs))
    res: dict[str, Any] = {"pairs": args.pairs, "batch_size": args.batch_size,
                           "buffer_blocks": args.buffer_blocks,
                           "cores": len(os.sched_getaffinity(0))}  # fmt: skip
    kw = {"buffer_blocks": args.buffer_blocks}
    for kind in args.kinds:
        make = makers[kind]
        with make(h5, args.batch_size, False, **kw) as s:
            half = len(s) // 2
            r: dict[str, Any] = {
                "batches_per_epoch": len(s),
                "iterator_draws_global_rng_without_generator": iterator_draws_global_rng(s),
                "resume_bit_exact": {
                    f"{k}_w{w}": same_batches(s, k, w, 3, half)
                    for k in ("batch", "row")
                    for w in (0, 2)
                },
            }
        for w in (0, 2):
            r[f"ours_w{w}"] = speed_ours(make, h5, args.batch_size, w, args.seconds, **kw)
            for k in ("batch", "row"):
                r[f"dl_{k}_w{w}"] = speed_torch(make, h5, args.batch_size, k, w, args.seconds, **kw)
        res[kind] = r
        print(kind, json.dumps(r, indent=1), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(res, indent=1) + "\n")
    os.remove(h5)
    tmp.rmdir()


if __name__ == "__main__":
    main()
