"""Lazy, deterministic batch iterators over format-4 jet datasets (docs/data-contract.md).

Paper-scale files (RS3L: 5M pre-training pairs x 5 variants x 100 particles x 15 features)
do not fit in memory, and random row access into a chunked HDF5 file costs one chunk
decompression per row. The iterators here therefore use a *block shuffle*: the selected
items (pairs or jets, sorted by file row) are cut into blocks of consecutive items, the
block order is shuffled, ``buffer_blocks`` blocks are read with a few large contiguous
reads and shuffled together in memory, and batches are cut from the concatenated stream.
With small files one buffer holds everything, i.e. a full shuffle.

Everything random is drawn from ``numpy.random.default_rng([seed, epoch])`` before the
first read, so the batch sequence of an epoch is a pure function of (seed, epoch), and
``epoch(e, start_batch=n)`` reproduces batches n, n+1, ... exactly without reading the
skipped ones: a resumed training sees the same data order as an uninterrupted one.

**Prefetch.** With ``workers=0`` the next buffer is read in a background thread while the
current one is consumed. With ``workers=W > 0`` (config key ``loader_workers``, see
:func:`resolve_loader_workers`) W worker processes, kept from epoch to epoch until the
sampler is closed and each with its own ``h5py.File``, read the next W buffers
concurrently (:mod:`jetforge.training.h5loader`: no torch in them, no fork, results in
shared memory without a copy) and also cut and trim the batches that lie wholly in their
buffer; the main process consumes buffers strictly in order. Which rows form which batch
is decided in the main process before any read, and both paths produce their arrays with
the same function (:func:`~jetforge.training.h5loader.read_segments`), so batches are
identical whatever the number of workers.

**Why not torch's DataLoader** (measured 2026-12, ``bench/loader_torch.py --pairs 3000``,
batch 256, buffers of 4 blocks; 2 shared cores, load average 4-5, so absolute numbers
are low and noisy, the ratios are the point). A DataLoader over the same rows in the same
batch order (a sampler replaying this module's block-shuffle plan) reached, in jets/s:

====================  ========  =================  ===============
sampler, workers      ours      DataLoader, batch  DataLoader, row
====================  ========  =================  ===============
JetSampler, 0         152k      27k (18 %)         1.7k (1 %)
JetSampler, 2          74k      18k (24 %)         1.6k (2 %)
PairSampler, 0         45k      12k (25 %)         1.5k (3 %)
PairSampler, 2         60k      16k (27 %)         1.4k (2 %)
====================  ========  =================  ===============

("batch": one ``__getitem__`` per batch, read with :func:`read_inputs`; "row": one per
jet, default collation.) The DataLoader can resume bit-exactly mid-epoch (a sampler that
starts at ``start_batch``; checked tensor for tensor against ``epoch(e, start_batch)``)
-- but only when given its own ``generator``: otherwise creating its iterator draws from
the global torch RNG, which the engine checkpoints and jBOT's augmentations use, so an
iterator created mid-epoch at resumption would shift every later draw. It loses the
throughput because its unit of work is a batch (or a jet): the random rows of one batch
cost many small HDF5 reads, where this loader reads a whole buffer of consecutive blocks
once and cuts all its batches from memory. A Dataset indexed by buffer would recover
that, but then the DataLoader only contributes the worker processes, which
:mod:`~jetforge.training.h5loader` provides without fork, without re-importing torch and
without copying batches through a pipe. Decision rule (switch at >= 90 % of the
throughput with bit-exact resume): not met, so we keep this loader.

**Inputs.** What a batch carries per jet is set by the backbone, not by the sampler: a
backbone's ``inputs`` (:func:`jetforge.models.registry.backbone_inputs`) names the
datasets it takes, each a (values, mask) pair of :data:`INPUT_DATASETS` -- by default
``("particles",)``, i.e. ``forward(x, mask)``; the tracks + calorimeter-cells transformer
of Rieck et al. ("Self-Supervised Learning Strategies for Jet Physics") takes
``("particles", "cells")``, i.e. ``forward(tracks, tracks_mask, cells, cells_mask)``
(data contract §6: ``cells``/``cells_mask``). :func:`read_inputs`,
:func:`iter_rows`, :class:`JetSampler` and :class:`PairSampler` read exactly those and
hand them on in that order (``JetBatch.inputs``). A file without ``cells`` yields one
padded, all-masked cell per jet, so a cells backbone still runs on track-only files.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Self

import h5py
import numpy as np
import torch
from torch import Tensor

from jetforge.io.h5 import open_h5
from jetforge.training.h5loader import (  # noqa: F401  (read_rows, read_inputs re-exported)
    DEFAULT_CELL_FEATURES,
    INPUT_DATASETS,
    LoaderWorkerError,
    WorkerPool,
    _file_id,
    _names,
    read_inputs,
    read_rows,
    read_segments,
    trim_length,
)

#: attrs of a format-4 file that hold name lists
_NAME_ATTRS = ("feature_names", "class_names", "process_names", "variant_names")

#: what a backbone takes unless it declares ``inputs``
DEFAULT_INPUTS = ("particles",)


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and name lists of a format-4 file."""

    path: str
    n_rows: int
    n_particles: int
    n_features: int
    feature_names: list[str]
    class_names: list[str]
    process_names: list[str]
    variant_names: list[str]

    @property
    def n_variants(self) -> int:
        return len(self.variant_names)

    @property
    def n_pairs(self) -> int:
        return self.n_rows // self.n_variants

    @classmethod
    def read(cls, path: str) -> DatasetInfo:
        """The file's layout; every error names ``path`` (h5py's own do not: a truncated
        file reads "truncated file: eof = …" and nothing else)."""
        with open_h5(path) as f:
            missing = [k for k in ("particles", "mask", "jets") if k not in f]
            missing += [a for a in _NAME_ATTRS if a not in f.attrs]
            if missing:
                raise ValueError(f"{path} is not a format-4 jet dataset: missing {missing}")
            n, p, nf = f["particles"].shape
            info = cls(path, n, p, nf, *(_names(f.attrs[a]) for a in _NAME_ATTRS))
        if info.n_variants < 1 or n % info.n_variants:
            raise ValueError(f"{path}: {n} rows is not a multiple of V={info.n_variants} variants")
        return info

    def process_index(self, name: str) -> int:
        if name not in self.process_names:
            raise ValueError(f"process {name!r} not in {self.path} (has {self.process_names})")
        return self.process_names.index(name)

    def variant_index(self, name: str) -> int:
        if name not in self.variant_names:
            raise ValueError(f"variant {name!r} not in {self.path} (has {self.variant_names})")
        return self.variant_names.index(name)

    @property
    def nominal(self) -> str:
        """The nominal variant: by contract the first one (``variant_names[0]``)."""
        return self.variant_names[0]


@dataclass(frozen=True)
class CellsInfo:
    """Whether a file has calorimeter cells (contract §6), and their shape and column names."""

    present: bool
    n_cells: int
    feature_names: list[str]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @classmethod
    def read(cls, path: str) -> CellsInfo:
        with open_h5(path) as f:
            return cls.of(f)

    @classmethod
    def of(cls, f: h5py.File) -> CellsInfo:
        """From an open file; raises if ``cells``, ``cells_mask`` and the names disagree."""
        if "cells" not in f:
            return cls(False, 0, list(DEFAULT_CELL_FEATURES))
        if "cells_mask" not in f or "cells_feature_names" not in f.attrs:
            raise ValueError(f"{f.filename} has 'cells' but no 'cells_mask' / cells_feature_names")
        n, c, fc = f["cells"].shape
        names = _names(f.attrs["cells_feature_names"])
        if n != f["particles"].shape[0] or f["cells_mask"].shape != (n, c) or len(names) != fc:
            raise ValueError(
                f"{f.filename}: cells {f['cells'].shape}, cells_mask {f['cells_mask'].shape}, "
                f"{len(names)} cells_feature_names do not match {n} rows"
            )
        return cls(True, c, names)


def checked_inputs(inputs: Sequence[str], f: h5py.File | None = None) -> tuple[str, ...]:
    """``inputs`` as a tuple of known names (:data:`INPUT_DATASETS`); with ``f``, also
    checks that the file holds them consistently (missing cells are allowed)."""
    inputs = tuple(inputs)
    unknown = [n for n in inputs if n not in INPUT_DATASETS]
    if unknown or not inputs or inputs[0] != "particles":
        raise ValueError(
            f"backbone inputs must start with 'particles' and name datasets of "
            f"{sorted(INPUT_DATASETS)}, got {list(inputs)}"
        )
    if f is not None and "cells" in inputs:
        CellsInfo.of(f)
    return inputs


def check_model_features(payload: Mapping[str, Any], h5_path: str, model: object) -> None:
    """Refuse a ``model.pt`` payload whose recorded ``feature_names`` (and, if the file has
    cells, ``cells_feature_names``) differ from the file's columns."""
    info = DatasetInfo.read(h5_path)
    names = payload.get("feature_names")
    if names not in (None, info.feature_names):
        raise ValueError(
            f"{model} was trained on features {names}, {h5_path} has {info.feature_names}"
        )
    cell_names = payload.get("cells_feature_names")
    if cell_names is not None:
        cells = CellsInfo.read(h5_path)
        if cells.present and list(cell_names) != cells.feature_names:
            raise ValueError(
                f"{model} was trained on cell features {cell_names}, {h5_path} has "
                f"{cells.feature_names}"
            )


def read_column(f: h5py.File, name: str, chunk: int = 1 << 22) -> np.ndarray:
    """A whole 1-d ``jets/<name>`` column, read in chunks (columns are small)."""
    ds = f[f"jets/{name}"]
    out = np.empty(ds.shape, ds.dtype)
    for s in range(0, ds.shape[0], chunk):
        ds.read_direct(out, np.s_[s : s + chunk], np.s_[s : s + chunk])
    return out


def read_jets(f: h5py.File, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Particles and mask of arbitrary rows (any order, duplicates allowed)."""
    x, m = read_inputs(f, rows)
    return x, m


def _trimmed_all(arrays: Sequence[np.ndarray]) -> list[Tensor]:
    """Tensors of ``[values, mask, values, mask, ...]``, each pair cut by :func:`_trimmed`."""
    out: list[Tensor] = []
    for i in range(0, len(arrays), 2):
        out += _trimmed(arrays[i], arrays[i + 1])
    return out


def _trimmed(x: np.ndarray, m: np.ndarray) -> tuple[Tensor, Tensor]:
    """Tensors cut after the batch's last real particle (less to copy and to compute)."""
    n = trim_length(m)
    return torch.from_numpy(np.ascontiguousarray(x[:, :n])), torch.from_numpy(
        np.ascontiguousarray(m[:, :n])
    )


class _Batch:
    """Dataclass mixin: move every tensor field (``None`` stays ``None``) to a device."""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Any:
        def move(v: Tensor | None) -> Tensor | None:
            return None if v is None else v.to(device, non_blocking=non_blocking)

        return type(self)(**{f.name: move(getattr(self, f.name)) for f in fields(self)})


@dataclass
class PairBatch(_Batch):
    """B nominal jets (view a), their augmentations (view b) and the nominal class labels."""

    x_a: Tensor
    m_a: Tensor
    x_b: Tensor
    m_b: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return 2 * self.x_a.shape[0]  # jets processed


@dataclass
class JetBatch(_Batch):
    """Labelled jets; ``y`` is float (1 = signal for BCE, the class index otherwise).

    ``cells``/``cells_mask`` are set when the sampler reads cells (backbone inputs
    ``("particles", "cells")``); :attr:`inputs` are the backbone's positional arguments.
    """

    x: Tensor
    mask: Tensor
    y: Tensor
    cells: Tensor | None = None
    cells_mask: Tensor | None = None

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        """``(x, mask)`` or ``(x, mask, cells, cells_mask)``."""
        if self.cells is None:
            return (self.x, self.mask)
        return (self.x, self.mask, self.cells, self.cells_mask)  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.x.shape[0]


def block_shuffle(
    n_items: int, rng: np.random.Generator, block: int, buffer_blocks: int
) -> list[np.ndarray]:
    """Emission order of items ``0..n-1`` as a list of buffers (see module docstring)."""
    if n_items == 0:
        return []
    n_blocks = math.ceil(n_items / block)
    order = rng.permutation(n_blocks)
    buffers = []
    for g in range(0, n_blocks, buffer_blocks):
        items = np.concatenate(
            [
                np.arange(b * block, min((b + 1) * block, n_items))
                for b in order[g : g + buffer_blocks]
            ]
        )
        buffers.append(items[rng.permutation(items.size)])
    return buffers


def buffer_segments(
    j: int, sizes: np.ndarray, batch_size: int, n_batches: int, start_batch: int
) -> np.ndarray:
    """What of buffer ``j`` the batches ``start_batch .. n_batches-1`` use.

    Batches are cut from the concatenated buffers (``sizes``: items per buffer). One
    ``(a, z, whole)`` row per batch overlapping the buffer, in batch order from batch
    ``max(start_batch, first item of the buffer // batch_size)``: its item range ``[a, z)``
    within the buffer and whether it lies wholly inside the buffer (trimmed where it is
    read) or spans buffers (joined and trimmed by the consumer).
    """
    total = int(sizes.sum())
    s = int(sizes[:j].sum())
    e = s + int(sizes[j])
    b = np.arange(max(start_batch, s // batch_size), min(n_batches - 1, (e - 1) // batch_size) + 1)
    lo, hi = b * batch_size, np.minimum((b + 1) * batch_size, total)
    whole = (lo >= s) & (hi <= e)
    seg = np.stack([np.maximum(lo, s) - s, np.minimum(hi, e) - s, whole.astype(np.int64)], 1)
    return seg.astype(np.int64).reshape(-1, 3)


def _join(parts: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """The pieces of a batch that spans buffers, concatenated and trimmed like a batch."""
    joined = [np.concatenate(p) for p in zip(*parts, strict=True)]
    out: list[np.ndarray] = []
    for i in range(0, len(joined), 2):
        x, m = joined[i], joined[i + 1]
        n = trim_length(m)
        out += [np.ascontiguousarray(x[:, :n]), np.ascontiguousarray(m[:, :n])]
    return out


def resolve_loader_workers(value: Any = "auto", device: torch.device | str = "cpu") -> int:
    """Loader worker processes for a config value (``loader_workers`` of a ``pretrain`` /
    ``finetune`` block): an integer >= 0 is taken as is; ``"auto"`` (or absent / null)
    reads ``JETFORGE_LOADER_WORKERS`` if set, else picks

    * 0 on CPU: the training step is 100-1000x slower than the prefetch thread (loader
      wait <= 3 %), and worker processes would only take cores from it;
    * ``min(4, cores - 2)`` (at least 1) on CUDA, ``cores`` being the CPUs this process
      may use: a worker reads ~100-200k jets/s (5-10 us of CPU per jet), while the main
      process then spends ~1-2 us per jet, so more workers would not help.

    Measurements: bench/loader.py (``--workers``)."""
    if value is None or value == "auto":
        env = os.environ.get("JETFORGE_LOADER_WORKERS", "").strip()
        if env and env != "auto":
            value = env
        elif torch.device(device).type != "cuda":
            return 0
        else:
            try:
                cores = len(os.sched_getaffinity(0))
            except AttributeError:  # pragma: no cover - not Linux
                cores = os.cpu_count() or 1
            return max(1, min(4, cores - 2))
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if n < 0 or isinstance(value, bool) or (isinstance(value, float) and value != n):
        raise ValueError(f"loader_workers must be an integer >= 0 or 'auto', got {value!r}")
    return n


@dataclass
class _StreamPlan:
    """Where the batches ``start_batch .. n_batches-1`` of an epoch lie in its buffers.

    Decided before any read, in the main process, so that which rows form which batch
    does not depend on the number of loader workers. ``order``: the buffers to read, in
    consumption order (buffers wholly before ``start_batch`` and items after the last
    batch are never read).
    """

    buffers: Sequence[np.ndarray]
    views: Callable[[np.ndarray], list[np.ndarray]]
    batch_size: int
    n_batches: int
    start_batch: int
    sizes: np.ndarray  # items per buffer
    ends: np.ndarray  # cumulative item count at each buffer's end
    order: list[int]

    @classmethod
    def make(
        cls,
        buffers: Sequence[np.ndarray],
        views: Callable[[np.ndarray], list[np.ndarray]],
        batch_size: int,
        drop_last: bool,
        start_batch: int,
    ) -> _StreamPlan | None:
        """The plan, or None when no batch is left from ``start_batch`` on."""
        sizes = np.array([len(b) for b in buffers], dtype=np.int64)
        total = int(sizes.sum())
        bs = batch_size
        n_batches = total // bs if drop_last else math.ceil(total / bs)
        if start_batch >= n_batches:
            return None
        ends = np.cumsum(sizes)
        first = int(np.searchsorted(ends, start_batch * bs, side="right"))
        last = int(np.searchsorted(ends, min(n_batches * bs, total) - 1, side="right"))
        order = list(range(first, last + 1))
        return cls(buffers, views, bs, n_batches, start_batch, sizes, ends, order)

    @property
    def total(self) -> int:
        return int(self.ends[-1])

    @property
    def starts(self) -> np.ndarray:
        return self.ends - self.sizes

    def task(self, j: int) -> tuple[list[np.ndarray], np.ndarray]:
        """Rows of each view and batch segments of buffer ``j``, relative to the buffer's
        first used item (what :func:`read_segments` takes)."""
        seg = buffer_segments(j, self.sizes, self.batch_size, self.n_batches, self.start_batch)
        a0, z1 = int(seg[0, 0]), int(seg[-1, 1])
        seg[:, :2] -= a0
        return self.views(self.buffers[j][a0:z1]), seg

    def span(self, b: int) -> tuple[int, int, int, int]:
        """Item range ``[lo, hi)`` of batch ``b`` and its first and last buffer."""
        lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self.total)
        j0 = int(np.searchsorted(self.ends, lo, side="right"))
        j1 = int(np.searchsorted(self.ends, hi - 1, side="right"))
        return lo, hi, j0, j1

    def items(self, b: int) -> np.ndarray:
        """Item ids of batch ``b``, in emission order."""
        lo, hi, j0, j1 = self.span(b)
        starts, ends = self.starts, self.ends
        return np.concatenate(
            [self.buffers[j][max(lo, starts[j]) - starts[j] : min(hi, ends[j]) - starts[j]]
             for j in range(j0, j1 + 1)]
        )  # fmt: skip

    def first_batch(self, j: int) -> int:
        """The first batch whose segment :meth:`task` puts first in buffer ``j``'s result."""
        return max(self.start_batch, int(self.starts[j]) // self.batch_size)


class _BufferReader:
    """Reads an epoch's buffers ahead of their use: in ``pool`` (W worker processes,
    round-robin), in ``thread`` (one prefetch thread), or here when neither is set.

    ``cache`` holds the read buffers still needed; ``pending`` the buffers being read
    (buffer -> Future of the thread, or index of the worker). ``read_first_here``: the
    pool is starting, so this process reads the first buffer meanwhile.
    """

    def __init__(self, plan: _StreamPlan, file: h5py.File, inputs: Sequence[str], path: str):
        self.plan, self.file, self.inputs, self.path = plan, file, tuple(inputs), path
        self.n_workers = 0
        self.pool: WorkerPool | None = None
        self.thread: cf.ThreadPoolExecutor | None = None
        self.shared = False  # ``pool`` is the sampler's kept pool (else its own, if any)
        self.read_first_here = True
        self.pending: dict[int, Any] = {}
        self.cache: dict[int, list[np.ndarray]] = {}

    def read_here(self, j: int) -> list[np.ndarray]:
        try:
            v, seg = self.plan.task(j)
            return read_segments(self.file, v, self.inputs, seg)[0]
        except Exception as err:
            err.add_note(f"while reading buffer {j} of {self.path}")
            raise

    def submit_ahead(self, i: int) -> None:
        """Keep the buffers after ``order[i]`` being read: W in the workers (and
        ``order[i]`` itself if not read yet), else 1 in the thread."""
        order = self.plan.order
        if self.pool is not None:
            skip = 1 if self.read_first_here else 0
            for t in range(max(i, skip), min(i + 1 + self.n_workers, len(order))):
                j = order[t]
                if j not in self.pending and j not in self.cache:
                    v, seg = self.plan.task(j)
                    self.pool.submit((t - skip) % self.n_workers, j, v, seg)  # round-robin
                    self.pending[j] = (t - skip) % self.n_workers
        elif self.thread is not None and i + 1 < len(order) and order[i + 1] not in self.pending:
            self.pending[order[i + 1]] = self.thread.submit(self.read_here, order[i + 1])

    def get(self, j: int) -> list[np.ndarray]:
        """The segment arrays of buffer ``j`` (see :meth:`_StreamPlan.task`)."""
        if j not in self.cache:
            i = j - self.plan.order[0]
            if self.pool is not None:
                self.submit_ahead(i)
                if j in self.pending:
                    self.cache[j] = self.pool.result(self.pending.pop(j), j)
                else:  # the first buffer of a pool that is starting
                    self.cache[j] = self.read_here(j)
            elif j in self.pending:  # queue the next read, then wait for this one
                self.submit_ahead(i)
                self.cache[j] = self.pending.pop(j).result()
            else:
                self.cache[j] = self.read_here(j)
                self.submit_ahead(i)
        return self.cache[j]

    def forget_before(self, j: int) -> None:
        for old in [k for k in self.cache if k < j]:
            del self.cache[old]


class _H5Sampler:
    """Shared plumbing: open file, batch accounting, streaming, context manager.

    ``workers`` loader worker processes (0: a prefetch thread if ``prefetch``, see the
    module docstring). They start with the first epoch that has buffers for them, serve
    the following epochs too, and stop at :meth:`close` -- or at once when an epoch ends
    early (generator closed, exception), so that nothing is left running after an error.
    ``pin_memory`` (only where CUDA is available): batch tensors in page-locked memory, so
    that ``batch.to("cuda", non_blocking=True)`` is asynchronous.
    """

    #: datasets read per view (:data:`INPUT_DATASETS`)
    inputs: tuple[str, ...] = DEFAULT_INPUTS

    def __init__(
        self,
        h5_path: str,
        batch_size: int,
        drop_last: bool,
        prefetch: bool,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if int(workers) < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.info = DatasetInfo.read(h5_path)
        self.path = os.path.abspath(h5_path)
        self.file = open_h5(h5_path)
        self._file_id = _file_id(self.path)
        self.batch_size = int(batch_size)
        self.drop_last = drop_last
        self.prefetch = prefetch
        self.workers = int(workers)
        self.pin_memory = bool(pin_memory) and torch.cuda.is_available()
        self._pool: WorkerPool | None = None  # kept from epoch to epoch
        self._pool_in_use = False

    def _n_items(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        n = self._n_items()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _tensors(self, arrays: Sequence[np.ndarray]) -> list[Tensor]:
        out = [torch.from_numpy(a) for a in arrays]
        return [t.pin_memory() for t in out] if self.pin_memory else out

    def _stream(
        self,
        buffers: Sequence[np.ndarray],
        views: Callable[[np.ndarray], list[np.ndarray]],
        n_views: int,
        start_batch: int,
    ) -> Iterator[tuple[np.ndarray, list[list[np.ndarray]]]]:
        """Cut the concatenated ``buffers`` (item ids) into batches from ``start_batch``.

        ``views(items)``: the file rows of each of the ``n_views`` views of ``items``.
        Yields each batch's items and, per view, its trimmed ``[values, mask, ...]``
        arrays of :attr:`inputs`. Buffers wholly before ``start_batch`` and items after
        the last batch are never read.
        """
        plan = _StreamPlan.make(buffers, views, self.batch_size, self.drop_last, start_batch)
        if plan is None:
            return
        reader = _BufferReader(plan, self.file, self.inputs, self.path)
        completed = False
        try:
            self._start_reading(reader)
            for b in range(start_batch, plan.n_batches):
                yield plan.items(b), self._cut(reader, b, n_views)
            completed = True
        finally:
            self._stop_reading(reader, completed)

    def _cut(self, reader: _BufferReader, b: int, n_views: int) -> list[list[np.ndarray]]:
        """Per view, the ``[values, mask, ...]`` arrays of batch ``b`` (joined and trimmed
        here if the batch spans buffers)."""
        plan, m = reader.plan, 2 * len(self.inputs)
        per_seg = n_views * m  # arrays per batch (piece) of a buffer
        _, _, j0, j1 = plan.span(b)
        reader.forget_before(j0)
        parts = []
        for j in range(j0, j1 + 1):
            s = (b - plan.first_batch(j)) * per_seg
            parts.append(reader.get(j)[s : s + per_seg])
        arrays = parts[0] if len(parts) == 1 else _join(parts)
        return [list(arrays[v * m : (v + 1) * m]) for v in range(n_views)]

    def _start_reading(self, reader: _BufferReader) -> None:
        """Give ``reader`` the sampler's kept worker pool (started now if need be), a pool
        of its own while another epoch holds that one, or a prefetch thread."""
        n_workers = min(self.workers, len(reader.plan.order) - 1)
        reader.n_workers = n_workers
        if n_workers > 0 and not self._pool_in_use:
            if self._pool is None:
                self._pool = WorkerPool(self.path, self.inputs, self.workers, self._file_id)
            else:
                reader.read_first_here = False  # running already: it reads every buffer
            reader.pool, reader.shared, self._pool_in_use = self._pool, True, True
            reader.pool.trim(keep=n_workers + 2)  # slots an earlier epoch's kept batches needed
        elif n_workers > 0:  # another epoch of this sampler is being read at the same time
            reader.pool = WorkerPool(self.path, self.inputs, n_workers, self._file_id)
        elif self.prefetch and len(reader.plan.order) > 1:
            reader.thread = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="h5-prefetch")

    def _stop_reading(self, reader: _BufferReader, completed: bool) -> None:
        """Stop the thread; close the pool unless it is the kept one and the epoch was read
        to its end (an epoch ended early leaves nothing running)."""
        if reader.thread is not None:
            reader.thread.shutdown(wait=True, cancel_futures=True)
        if reader.pool is not None and not (reader.shared and completed):
            reader.pool.close()
            if reader.shared:
                self._pool = None
        if reader.shared:
            self._pool_in_use = False

    def close(self) -> None:
        """Stop the loader workers (if any) and close the file."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self.file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def select_pairs(h5_path: str, processes: Sequence[str]) -> np.ndarray:
    """Sorted ids of the pairs whose process is in ``processes`` (pairing layout checked)."""
    info = DatasetInfo.read(h5_path)
    V = info.n_variants
    wanted = [info.process_index(p) for p in processes]
    with h5py.File(h5_path, "r") as f:
        proc = read_column(f, "process").reshape(-1, V)
        var = read_column(f, "variant").reshape(-1, V)
    if not (var == np.arange(V)).all():
        bad = int(np.flatnonzero((var != np.arange(V)).any(1))[0])
        raise ValueError(
            f"{h5_path}: pair {bad} breaks the layout row = pair*V + variant "
            f"(variants {var[bad].tolist()})"
        )
    if not (proc == proc[:, :1]).all():
        bad = int(np.flatnonzero((proc != proc[:, :1]).any(1))[0])
        raise ValueError(f"{h5_path}: pair {bad} mixes processes {proc[bad].tolist()}")
    return np.flatnonzero(np.isin(proc[:, 0], wanted)).astype(np.int64)


def balance_pairs(h5_path: str, pairs: np.ndarray, seed: int) -> np.ndarray:
    """Equal numbers of pairs of each process among ``pairs`` (sorted): every process is
    cut, at random, to the count of the rarest. RS3L pre-trains on "a 50%/50% admixture" of
    QCD and H->bb (§II A), while the generated yields differ (~10 % vs ~4 % of hard events
    give a selected jet), so the chunk counts alone never give the admixture."""
    info = DatasetInfo.read(h5_path)
    with h5py.File(h5_path, "r") as f:
        proc = read_column(f, "process")[pairs * info.n_variants]
    kinds, counts = np.unique(proc, return_counts=True)
    rng = np.random.default_rng(seed)
    keep = [rng.choice(pairs[proc == k], size=int(counts.min()), replace=False) for k in kinds]
    return np.sort(np.concatenate(keep)) if keep else pairs


def split_pairs(pairs: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted (train, validation) pair ids; ``val_fraction`` of the pairs validate."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = round(val_fraction * pairs.size)
    if val_fraction > 0 and pairs.size >= 2:
        n_val = max(n_val, 1)
    perm = np.random.default_rng(seed).permutation(pairs.size)
    return np.sort(pairs[perm[n_val:]]), np.sort(pairs[perm[:n_val]])


class PairSampler(_H5Sampler):
    """Pre-training batches: nominal jet + one augmentation per pair (RS3L §II A).

    For every pair and epoch the augmentation is drawn uniformly from ``augset`` (variant
    names), so over the epochs a nominal jet meets all its re-simulations. Each view
    carries the datasets named by :attr:`inputs`; subclasses choose other inputs and
    batch types through :attr:`inputs` and :meth:`_batch` (the order is the same).
    """

    #: datasets read per view (:data:`INPUT_DATASETS`)
    inputs: tuple[str, ...] = DEFAULT_INPUTS

    def __init__(
        self,
        h5_path: str,
        processes: Sequence[str],
        augset: Sequence[str],
        batch_size: int,
        seed: int,
        *,
        pairs: np.ndarray | None = None,
        shuffle: bool = True,
        drop_last: bool = True,
        block_pairs: int = 256,
        buffer_blocks: int = 32,
        prefetch: bool = True,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(h5_path, batch_size, drop_last, prefetch, workers, pin_memory)
        if not augset:
            raise ValueError("augset is empty: need at least one augmentation variant")
        self.aug_variants = np.array([self.info.variant_index(v) for v in augset], dtype=np.int64)
        self.nominal_variant = 0
        self.pairs = (
            select_pairs(h5_path, processes)
            if pairs is None
            else np.sort(np.asarray(pairs, np.int64))
        )
        if self.pairs.size and self.pairs[-1] >= self.info.n_pairs:
            raise ValueError(
                f"pair id {int(self.pairs[-1])} out of range for {self.info.n_pairs} pairs"
            )
        V = self.info.n_variants
        self.labels = (
            read_column(self.file, "label")[self.pairs * V]
            if self.pairs.size
            else np.zeros(0, np.int8)
        )
        self.seed, self.shuffle = int(seed), shuffle
        self.block_pairs, self.buffer_blocks = int(block_pairs), int(buffer_blocks)
        checked_inputs(self.inputs, self.file)

    def _n_items(self) -> int:
        return int(self.pairs.size)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[PairBatch]:
        """Batches of epoch ``epoch`` (a pure function of seed and epoch)."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        n = self._n_items()
        aug = self.aug_variants[rng.integers(self.aug_variants.size, size=n)]
        if self.shuffle:
            buffers = block_shuffle(n, rng, self.block_pairs, self.buffer_blocks)
        else:
            buffers = [
                np.arange(s, min(s + self.block_pairs * self.buffer_blocks, n))
                for s in range(0, n, self.block_pairs * self.buffer_blocks)
            ]
        V = self.info.n_variants

        def views(items: np.ndarray) -> list[np.ndarray]:
            base = self.pairs[items] * V
            return [base + self.nominal_variant, base + aug[items]]

        for items, (a, b) in self._stream(buffers, views, 2, start_batch):
            yield self._batch(
                self._tensors(a),
                self._tensors(b),
                torch.from_numpy(self.labels[items].astype(np.int64)),
            )

    def _batch(self, a: list[Tensor], b: list[Tensor], labels: Tensor) -> Any:
        """One batch from the view tensors (values, mask per input) and the labels."""
        return PairBatch(*a, *b, labels)


def select_labelled_rows(
    h5_path: str, signal: str, background: str | Sequence[str], variants: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``signal``/``background`` jets in ``variants`` (None: all) and 0/1 labels.

    ``background`` may list several processes, pooled as label 0 (jBOT Table 3: top vs
    QCD = q and g jets together)."""
    info = DatasetInfo.read(h5_path)
    bkgs = [background] if isinstance(background, str) else list(background)
    sig, bkg = info.process_index(signal), [info.process_index(b) for b in bkgs]
    if sig in bkg or not bkg:
        raise ValueError(f"signal {signal!r} must not be among the background {bkgs}")
    with h5py.File(h5_path, "r") as f:
        proc = read_column(f, "process")
        var = read_column(f, "variant")
    keep = np.isin(proc, (sig, *bkg))
    if variants is not None:
        keep &= np.isin(var, [info.variant_index(v) for v in variants])
    rows = np.flatnonzero(keep).astype(np.int64)
    return rows, (proc[rows] == sig).astype(np.int8)


def subsample(
    rows: np.ndarray, labels: np.ndarray, n: int, seed: int, *, what: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic uniform subset of ``n`` rows (sorted); errors if fewer are available.

    Drawn before the model is built, so a grid's ``n_train`` larger than the generated
    split (unknowable before generation) stops the fine-tuning at its start; ``what``
    (task and file) goes into that message.
    """
    where = f" for {what}" if what else ""
    if n < 1:
        raise ValueError(f"n_train must be >= 1{where}, got {n}")
    if n > rows.size:
        raise ValueError(
            f"n_train={n} labelled jets requested{where} but only {rows.size} are available; "
            f"lower finetune.n_train to at most {rows.size} or generate more chunks"
        )
    pick = np.sort(np.random.default_rng(seed).choice(rows.size, size=n, replace=False))
    return rows[pick], labels[pick]


class JetSampler(_H5Sampler):
    """Labelled-jet batches for fine-tuning / supervised training (block-shuffled), with
    the datasets ``inputs`` of the backbone (default: particles only)."""

    def __init__(
        self,
        h5_path: str,
        rows: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        seed: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        block_rows: int = 1024,
        buffer_blocks: int = 32,
        prefetch: bool = True,
        inputs: Sequence[str] = DEFAULT_INPUTS,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(h5_path, batch_size, drop_last, prefetch, workers, pin_memory)
        self.inputs = checked_inputs(inputs, self.file)
        order = np.argsort(rows, kind="stable")
        self.rows, self.labels = np.asarray(rows, np.int64)[order], np.asarray(labels)[order]
        self.seed, self.shuffle = int(seed), shuffle
        self.block_rows, self.buffer_blocks = int(block_rows), int(buffer_blocks)

    def _n_items(self) -> int:
        return int(self.rows.size)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[JetBatch]:
        rng = np.random.default_rng([self.seed, int(epoch)])
        n = self._n_items()
        if self.shuffle:
            buffers = block_shuffle(n, rng, self.block_rows, self.buffer_blocks)
        else:
            step = self.block_rows * self.buffer_blocks
            buffers = [np.arange(s, min(s + step, n)) for s in range(0, n, step)]

        def views(items: np.ndarray) -> list[np.ndarray]:
            return [self.rows[items]]

        for items, (arrays,) in self._stream(buffers, views, 1, start_batch):
            x, m, *cells = self._tensors(arrays)
            yield JetBatch(x, m, torch.from_numpy(self.labels[items].astype(np.float32)), *cells)


def iter_rows(
    f: h5py.File, rows: np.ndarray, chunk: int = 4096, inputs: Sequence[str] = DEFAULT_INPUTS
) -> Iterator[tuple[Any, ...]]:
    """Sequential inference batches over sorted ``rows``: ``(rows, x, mask)``, or
    ``(rows, x, mask, cells, cells_mask)`` for ``inputs = ("particles", "cells")`` --
    i.e. ``(rows, *backbone_arguments)``."""
    inputs = checked_inputs(inputs, f)
    rows = np.sort(np.asarray(rows, np.int64))
    for s in range(0, rows.size, chunk):
        r = rows[s : s + chunk]
        yield (r, *_trimmed_all(read_inputs(f, r, inputs)))
