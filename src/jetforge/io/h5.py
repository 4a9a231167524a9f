"""HDF5 jet datasets (data contract 4 in docs/data-contract.md).

Files are written through ``atomic_path`` and merged chunk by chunk, so no step holds a
whole paper-scale dataset in memory. Per-particle arrays are stored uncompressed in chunks
of ``ROW_CHUNK`` jets: measured in ../shared/GENERATOR-NOTES.md, gzip/lzf decompression
(~50–70k jets/s single-threaded) would make the loader, not the GPU, the bottleneck.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from jetforge.io.atomic import atomic_path
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import h5py
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    h5py = lazy_module("h5py")


ROW_CHUNK = 256

JET_COLUMNS: dict[str, type] = {
    "pt": np.float32,
    "eta": np.float32,
    "phi": np.float32,
    "mass": np.float32,
    "n2": np.float32,
    "label": np.int8,
    "process": np.int8,
    "variant": np.int8,
    "pair_id": np.int64,
    "chunk": np.int32,
    "event": np.int32,
    "parton_pid": np.int32,
}

LIST_ATTRS = ("feature_names", "class_names", "process_names", "variant_names")


class DatasetFormatError(ValueError):
    """An HDF5 file that does not follow the jet data contract."""


def open_h5(path: str | os.PathLike[str], mode: str = "r") -> h5py.File:
    """``h5py.File(path, mode)``, with the file named in every error.

    h5py's own message for a truncated or foreign file ("Unable to synchronously open file
    (truncated file: eof = …)") names no file, and a job reading several leaves the user
    guessing which; a missing file stays a FileNotFoundError.
    """
    try:
        return h5py.File(path, mode)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: HDF5 file does not exist") from None
    except OSError as exc:
        raise DatasetFormatError(
            f"{path}: cannot be read as HDF5 ({exc}); a truncated or foreign file: delete it "
            "so Snakemake rebuilds it"
        ) from None


def _create(f: h5py.File, particles_shape: tuple[int, int, int]) -> None:
    n, p, nf = particles_shape
    f.create_dataset(
        "particles", shape=(n, p, nf), maxshape=(None, p, nf), dtype=np.float32,
        chunks=(min(ROW_CHUNK, max(n, 1)), p, nf), track_times=False,
    )
    f.create_dataset("mask", shape=(n, p), maxshape=(None, p), dtype=bool,
                     chunks=(min(ROW_CHUNK, max(n, 1)), p), track_times=False)
    g = f.create_group("jets")
    for name, dt in JET_COLUMNS.items():
        g.create_dataset(name, shape=(n,), maxshape=(None,), dtype=dt, track_times=False)


def _set_attrs(f: h5py.File, attrs: Mapping[str, object]) -> None:
    for key, value in attrs.items():
        if key in LIST_ATTRS or key.endswith("feature_names"):
            f.attrs[key] = np.array([str(v) for v in value], dtype=h5py.string_dtype())
        elif isinstance(value, (dict, list, tuple)):
            f.attrs[key] = json.dumps(value, sort_keys=True)
        else:
            f.attrs[key] = value


def write_jet_dataset(
    path: str | os.PathLike[str],
    particles: np.ndarray,
    mask: np.ndarray,
    jets: Mapping[str, np.ndarray],
    attrs: Mapping[str, object],
) -> None:
    """Write one complete dataset file atomically."""
    missing = set(JET_COLUMNS) - set(jets)
    if missing:
        raise DatasetFormatError(f"jet columns missing: {sorted(missing)}")
    if particles.shape[:2] != mask.shape:
        raise DatasetFormatError(f"particles {particles.shape} and mask {mask.shape} disagree")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _create(f, particles.shape)
        f["particles"][...] = particles
        f["mask"][...] = mask
        for name, dt in JET_COLUMNS.items():
            f["jets"][name][...] = np.asarray(jets[name], dtype=dt)
        _set_attrs(f, attrs)


def read_attrs(f: h5py.File) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in f.attrs.items():
        if key in LIST_ATTRS or key.endswith("feature_names"):
            out[key] = [
                v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)
            ]
        else:
            out[key] = value
    return out


def _row_datasets(f: h5py.File) -> list[str]:
    """Every dataset aligned with the jet rows: ``particles``/``mask``, any further
    constituent type (``cells``/``cells_mask`` …) and every ``jets/…`` column."""
    n = f["particles"].shape[0]
    top = [k for k, v in f.items() if isinstance(v, h5py.Dataset) and v.shape[:1] == (n,)]
    return sorted(top) + [f"jets/{k}" for k in sorted(f["jets"])]


def merge_jet_datasets(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    extra_attrs: Mapping[str, object] | None = None,
) -> int:
    """Concatenate chunk files into one split file, renumbering ``pair_id`` globally.

    Streams one input at a time and copies every row-aligned dataset of the first input
    (so constituent types beyond ``particles``, e.g. calorimeter cells, and extra jet
    columns travel too). The attributes that define the meaning of the columns (feature,
    class, process and variant names) must agree across inputs, else the merge refuses;
    and a NaN/inf constituent feature is refused, naming file, dataset and row. Every error
    names the input at fault. Returns the number of jets written.
    """
    if not inputs:
        raise DatasetFormatError(f"{output}: nothing to merge")
    with open_h5(inputs[0]) as f0:
        ref = read_attrs(f0)
        names = _row_datasets(f0)
        layout = {k: (f0[k].shape[1:], f0[k].dtype) for k in names}
    with atomic_path(output) as tmp, h5py.File(tmp, "w") as out:
        out.create_group("jets")
        for name, (shape, dt) in layout.items():
            out.create_dataset(
                name, shape=(0, *shape), maxshape=(None, *shape), dtype=dt,
                chunks=(ROW_CHUNK, *shape), track_times=False,
            )
        n_total, pair_offset = 0, 0
        for path in inputs:
            with open_h5(path) as f:
                _check_like_first(f, path, inputs[0], ref, names)
                n, pair_offset = _append_rows(out, f, path, names, n_total, pair_offset)
            n_total += n
        attrs = {k: v for k, v in ref.items() if k not in ("chunk",)}
        attrs.update(extra_attrs or {})
        _set_attrs(out, attrs)
    return n_total


def _check_like_first(
    f: h5py.File, path: object, first: object, ref: Mapping[str, object], names: list[str]
) -> None:
    """Refuse an input whose column meaning (feature, class, process, variant names) or
    row datasets differ from the first input's: chunks of one split must agree."""
    attrs = read_attrs(f)
    for key in (k for k in ref if k in LIST_ATTRS or k.endswith("feature_names")):
        if _plain(attrs.get(key)) != _plain(ref.get(key)):
            raise DatasetFormatError(
                f"{path}: attribute {key}={attrs.get(key)} differs from "
                f"{first}: {ref.get(key)}; chunks of one split must agree"
            )
    if _row_datasets(f) != names:
        raise DatasetFormatError(
            f"{path}: datasets {_row_datasets(f)} differ from {first}: {names}"
        )


def _read_rows(f: h5py.File, name: str, rows: slice, path: object) -> np.ndarray:
    """``f[name][rows]``; a read error inside a damaged file names the file and dataset."""
    try:
        return f[name][rows]
    except OSError as exc:
        raise DatasetFormatError(
            f"{path}: dataset {name!r} cannot be read ({exc}); a truncated or damaged file: "
            "delete it so Snakemake rebuilds it"
        ) from None


def _check_finite(block: np.ndarray, path: object, name: str, start: int) -> None:
    """Refuse NaN/inf constituent features where they enter a split file: downstream they
    surface only as a NaN loss deep inside a training that cannot say where they came from."""
    if block.dtype.kind != "f":
        return
    ok = np.isfinite(block).reshape(len(block), -1)
    if ok.all():
        return
    row = int(np.flatnonzero(~ok.all(axis=1))[0])
    value = block.reshape(len(block), -1)[row][~ok[row]][0]
    raise DatasetFormatError(
        f"{path}: dataset {name!r} row {start + row} holds a non-finite value ({value}); "
        "the job that wrote this chunk produced broken features: delete the file so "
        "Snakemake rebuilds it, or fix its builder"
    )


def _append_rows(
    out: h5py.File, f: h5py.File, path: object, names: list[str], n_total: int, pair_offset: int
) -> tuple[int, int]:
    """Append every row dataset of the input ``f`` to ``out`` (rows ``n_total`` on), block
    by block; pair ids renumbered from ``pair_offset``. Constituent datasets (``particles``,
    ``cells`` …) must be finite; jet columns may hold NaN by design (``n2`` when not
    computed). Returns (rows appended, next pair offset)."""
    n = f["particles"].shape[0]
    if n == 0:
        return 0, pair_offset
    for name in names:
        out[name].resize(n_total + n, axis=0)
        if name == "jets/pair_id":
            uniq, inv = np.unique(_read_rows(f, name, slice(None), path), return_inverse=True)
            out[name][n_total : n_total + n] = pair_offset + inv
            pair_offset += len(uniq)
            continue
        for start in range(0, n, 4 * ROW_CHUNK):
            stop = min(n, start + 4 * ROW_CHUNK)
            block = _read_rows(f, name, slice(start, stop), path)
            if not name.startswith("jets/"):
                _check_finite(block, path, name, start)
            out[name][n_total + start : n_total + stop] = block
    return n, pair_offset


def _plain(value: object) -> object:
    return value.tolist() if isinstance(value, np.ndarray) else value
