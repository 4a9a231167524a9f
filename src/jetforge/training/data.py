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
The next buffer is read in a background thread while the current one is consumed.

**Inputs.** What a batch carries per jet is set by the backbone, not by the sampler: a
backbone's ``inputs`` (:func:`jetforge.models.registry.backbone_inputs`) names the
datasets it takes, each a (values, mask) pair of :data:`INPUT_DATASETS` -- by default
``("particles",)``, i.e. ``forward(x, mask)``; the tracks + calorimeter-cells transformer
of seed 001 takes ``("particles", "cells")``, i.e. ``forward(tracks, tracks_mask, cells,
cells_mask)`` (data contract §6: ``cells``/``cells_mask``). :func:`read_inputs`,
:func:`iter_rows`, :class:`JetSampler` and :class:`PairSampler` read exactly those and
hand them on in that order (``JetBatch.inputs``). A file without ``cells`` yields one
padded, all-masked cell per jet, so a cells backbone still runs on track-only files.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

#: attrs of a format-4 file that hold name lists
_NAME_ATTRS = ("feature_names", "class_names", "process_names", "variant_names")

#: backbone input name -> (values dataset, mask dataset) of a format-4 file (contract §4, §6)
INPUT_DATASETS = {"particles": ("particles", "mask"), "cells": ("cells", "cells_mask")}
#: what a backbone takes unless it declares ``inputs``
DEFAULT_INPUTS = ("particles",)
#: cell columns assumed when a file has no ``cells`` (the contract's order)
DEFAULT_CELL_FEATURES = ["E", "eta", "phi", "layer"]


def _names(value: Any) -> list[str]:
    if isinstance(value, (bytes, str)):
        value = [value]
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(value).ravel()]


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
        with h5py.File(path, "r") as f:
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
        with h5py.File(path, "r") as f:
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


def read_rows(ds: h5py.Dataset, rows: np.ndarray, max_gap: int = 64) -> np.ndarray:
    """``ds[rows]`` for sorted unique ``rows`` using few contiguous slice reads.

    Rows closer than ``max_gap`` are merged into one slice: reading a few unneeded rows
    is far cheaper than another HDF5 selection (and usually the same chunk anyway).
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((rows.size, *ds.shape[1:]), dtype=ds.dtype)
    if rows.size == 0:
        return out
    if np.any(np.diff(rows) <= 0):
        raise ValueError("read_rows needs strictly increasing row indices")
    cut = np.flatnonzero(np.diff(rows) > max_gap) + 1
    bounds = np.r_[0, cut, rows.size]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        lo, hi = int(rows[a]), int(rows[b - 1]) + 1
        if hi - lo == b - a:  # dense run: read straight into the output
            ds.read_direct(out, np.s_[lo:hi], np.s_[a:b])
        else:
            out[a:b] = ds[lo:hi][rows[a:b] - lo]
    return out


def read_inputs(
    f: h5py.File, rows: np.ndarray, inputs: Sequence[str] = DEFAULT_INPUTS
) -> list[np.ndarray]:
    """``[values, mask]`` of each of ``inputs`` (in order) for arbitrary rows (any order,
    duplicates allowed). Missing ``cells``: one padded, all-masked cell per jet."""
    uniq, inv = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
    out: list[np.ndarray] = []
    for name in inputs:
        values, mask = INPUT_DATASETS[name]
        if values in f:
            out.append(read_rows(f[values], uniq)[inv])
            out.append(read_rows(f[mask], uniq).astype(bool, copy=False)[inv])
        elif name == "cells":
            n_feat = len(_names(f.attrs.get("cells_feature_names", DEFAULT_CELL_FEATURES)))
            out.append(np.zeros((inv.size, 1, n_feat), np.float32))
            out.append(np.zeros((inv.size, 1), bool))
        else:
            raise ValueError(f"{f.filename} has no {values!r} dataset")
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
    real = np.flatnonzero(m.any(axis=0))
    n = int(real[-1]) + 1 if real.size else 1
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


def stream_batches(
    buffers: Sequence[np.ndarray],
    load: Callable[[np.ndarray], dict[str, np.ndarray]],
    batch_size: int,
    drop_last: bool,
    start_batch: int = 0,
    prefetch: bool = True,
) -> Iterator[dict[str, np.ndarray]]:
    """Cut the concatenated buffers into batches; ``load(items)`` reads one buffer.

    ``load`` returns arrays aligned with its ``items`` argument. Buffers wholly before
    ``start_batch`` are never read; the next buffer is prefetched in a thread.
    """
    sizes = np.array([len(b) for b in buffers], dtype=np.int64)
    total = int(sizes.sum())
    n_batches = total // batch_size if drop_last else math.ceil(total / batch_size)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    cache: dict[int, cf.Future[dict[str, np.ndarray]] | dict[str, np.ndarray]] = {}
    pool = cf.ThreadPoolExecutor(max_workers=1) if prefetch else None

    def get(j: int) -> dict[str, np.ndarray]:
        if j not in cache:
            cache[j] = load(buffers[j])
        if pool is not None and j + 1 < len(buffers) and j + 1 not in cache:
            cache[j + 1] = pool.submit(load, buffers[j + 1])
        v = cache[j]
        if isinstance(v, cf.Future):
            v = cache[j] = v.result()
        return v

    try:
        for b in range(start_batch, n_batches):
            lo, hi = b * batch_size, min((b + 1) * batch_size, total)
            j0 = int(np.searchsorted(ends, lo, side="right"))
            j1 = int(np.searchsorted(ends, hi - 1, side="right"))
            for old in [k for k in cache if k < j0]:
                del cache[old]
            parts = []
            for j in range(j0, j1 + 1):
                data = get(j)
                a, z = max(lo, starts[j]) - starts[j], min(hi, ends[j]) - starts[j]
                parts.append({k: v[a:z] for k, v in data.items()})
            yield {
                k: np.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k]
                for k in parts[0]
            }
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class _H5Sampler:
    """Shared plumbing: open file, batch accounting, context manager."""

    def __init__(self, h5_path: str, batch_size: int, drop_last: bool, prefetch: bool) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.info = DatasetInfo.read(h5_path)
        self.file = h5py.File(h5_path, "r")
        self.batch_size = int(batch_size)
        self.drop_last = drop_last
        self.prefetch = prefetch

    def _n_items(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        n = self._n_items()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> _H5Sampler:
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


def split_pairs(pairs: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted (train, validation) pair ids; ``val_fraction`` of the pairs validate."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * pairs.size))
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
    ) -> None:
        super().__init__(h5_path, batch_size, drop_last, prefetch)
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
        n_arrays = 2 * len(self.inputs)

        def load(items: np.ndarray) -> dict[str, np.ndarray]:
            base = self.pairs[items] * V
            rows = np.concatenate([base + self.nominal_variant, base + aug[items]])
            k = items.size
            out = {"labels": self.labels[items]}
            for i, arr in enumerate(read_inputs(self.file, rows, self.inputs)):
                out[f"a{i}"], out[f"b{i}"] = arr[:k], arr[k:]
            return out

        for d in stream_batches(
            buffers, load, self.batch_size, self.drop_last, start_batch, self.prefetch
        ):
            yield self._batch(
                _trimmed_all([d[f"a{i}"] for i in range(n_arrays)]),
                _trimmed_all([d[f"b{i}"] for i in range(n_arrays)]),
                torch.from_numpy(d["labels"].astype(np.int64)),
            )

    def _batch(self, a: list[Tensor], b: list[Tensor], labels: Tensor) -> Any:
        """One batch from the view tensors (values, mask per input) and the labels."""
        return PairBatch(*a, *b, labels)


def select_labelled_rows(
    h5_path: str, signal: str, background: str, variants: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``signal``/``background`` jets in ``variants`` (None: all) and 0/1 labels."""
    info = DatasetInfo.read(h5_path)
    sig, bkg = info.process_index(signal), info.process_index(background)
    if sig == bkg:
        raise ValueError(f"signal and background are the same process {signal!r}")
    with h5py.File(h5_path, "r") as f:
        proc = read_column(f, "process")
        var = read_column(f, "variant")
    keep = np.isin(proc, (sig, bkg))
    if variants is not None:
        keep &= np.isin(var, [info.variant_index(v) for v in variants])
    rows = np.flatnonzero(keep).astype(np.int64)
    return rows, (proc[rows] == sig).astype(np.int8)


def subsample(
    rows: np.ndarray, labels: np.ndarray, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic uniform subset of ``n`` rows (sorted); errors if fewer are available."""
    if n < 1:
        raise ValueError(f"n_train must be >= 1, got {n}")
    if n > rows.size:
        raise ValueError(f"n_train={n} labelled jets requested but only {rows.size} are available")
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
    ) -> None:
        super().__init__(h5_path, batch_size, drop_last, prefetch)
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

        n_arrays = 2 * len(self.inputs)

        def load(items: np.ndarray) -> dict[str, np.ndarray]:
            arrays = read_inputs(self.file, self.rows[items], self.inputs)
            return {"y": self.labels[items], **{f"i{k}": a for k, a in enumerate(arrays)}}

        for d in stream_batches(
            buffers, load, self.batch_size, self.drop_last, start_batch, self.prefetch
        ):
            x, m, *cells = _trimmed_all([d[f"i{k}"] for k in range(n_arrays)])
            yield JetBatch(x, m, torch.from_numpy(d["y"].astype(np.float32)), *cells)


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
