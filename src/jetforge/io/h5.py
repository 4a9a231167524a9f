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

import h5py
import numpy as np

from jetforge.io.atomic import atomic_path

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
    class, process and variant names) must agree across inputs, else the merge refuses.
    Returns the number of jets written.
    """
    if not inputs:
        raise DatasetFormatError(f"{output}: nothing to merge")
    with h5py.File(inputs[0], "r") as f0:
        ref = read_attrs(f0)
        names = _row_datasets(f0)
        layout = {k: (f0[k].shape[1:], f0[k].dtype) for k in names}
    meaning = [k for k in ref if k in LIST_ATTRS or k.endswith("feature_names")]
    with atomic_path(output) as tmp, h5py.File(tmp, "w") as out:
        out.create_group("jets")
        for name, (shape, dt) in layout.items():
            out.create_dataset(
                name, shape=(0, *shape), maxshape=(None, *shape), dtype=dt,
                chunks=(ROW_CHUNK, *shape), track_times=False,
            )
        n_total, pair_offset = 0, 0
        for path in inputs:
            with h5py.File(path, "r") as f:
                attrs = read_attrs(f)
                for key in meaning:
                    if _plain(attrs.get(key)) != _plain(ref.get(key)):
                        raise DatasetFormatError(
                            f"{path}: attribute {key}={attrs.get(key)} differs from "
                            f"{inputs[0]}: {ref.get(key)}; chunks of one split must agree"
                        )
                if _row_datasets(f) != names:
                    raise DatasetFormatError(
                        f"{path}: datasets {_row_datasets(f)} differ from {inputs[0]}: {names}"
                    )
                n = f["particles"].shape[0]
                if n == 0:
                    continue
                for name in names:
                    out[name].resize(n_total + n, axis=0)
                    if name == "jets/pair_id":
                        uniq, inv = np.unique(f[name][:], return_inverse=True)
                        out[name][n_total : n_total + n] = pair_offset + inv
                        pair_offset += len(uniq)
                        continue
                    for start in range(0, n, 4 * ROW_CHUNK):
                        stop = min(n, start + 4 * ROW_CHUNK)
                        out[name][n_total + start : n_total + stop] = f[name][start:stop]
                n_total += n
        attrs = {k: v for k, v in ref.items() if k not in ("chunk",)}
        attrs.update(extra_attrs or {})
        _set_attrs(out, attrs)
    return n_total


def _plain(value: object) -> object:
    return value.tolist() if isinstance(value, np.ndarray) else value
