"""Which rows of a dataset file a training or probe reads, with their labels.

Shared by pre-training (single-jet methods), fine-tuning (multi-class tasks), the
tokenizer fit and the probes, so every stage selects jets by process and variant alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import h5py
import numpy as np

from jetforge.training.data import DatasetInfo, read_column


def select_jet_rows(
    h5_path: str, processes: Sequence[str] | None, variants: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the given processes (None: all) and variants (None: the first, nominal one)
    with their class labels; the input of single-jet methods (masked modelling,
    self-distillation, JEPA), which make their own views of each jet."""
    info = DatasetInfo.read(h5_path)
    with h5py.File(h5_path, "r") as f:
        proc, var, label = (read_column(f, c) for c in ("process", "variant", "label"))
    keep = np.isin(var, [info.variant_index(v) for v in (variants or info.variant_names[:1])])
    if processes is not None:
        keep &= np.isin(proc, [info.process_index(p) for p in processes])
    rows = np.flatnonzero(keep).astype(np.int64)
    return rows, label[rows].astype(np.int64)


def select_class_rows(
    h5_path: str, classes: Sequence[str], variants: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the processes ``classes`` in ``variants`` (None: all); label = index in
    ``classes`` (int8)."""
    info = DatasetInfo.read(h5_path)
    idx = [info.process_index(c) for c in classes]
    with h5py.File(h5_path, "r") as f:
        proc = read_column(f, "process")
        var = read_column(f, "variant")
    keep = np.isin(proc, idx)
    if variants is not None:
        keep &= np.isin(var, [info.variant_index(v) for v in variants])
    rows = np.flatnonzero(keep).astype(np.int64)
    lut = np.full(max(int(proc.max(initial=0)), max(idx)) + 1, -1, np.int64)
    lut[idx] = np.arange(len(idx))
    return rows, lut[proc[rows]].astype(np.int8)
