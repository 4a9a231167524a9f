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


def first_fraction(ids: np.ndarray, groups: np.ndarray, fraction: float | None) -> np.ndarray:
    """The first ``fraction`` of each group's ``ids`` in file order (``pretrain.subset``).

    JP-JEPA (Letellier et al., arXiv:2606.14813 §4.4) pre-trains its ablations on "the
    first X% of files for each class ... the same files are used across all runs". Our
    split files hold each process's chunks in chunk order (``merge_split``; imported
    releases: their files in order), so the first ``fraction`` of a process's rows is the
    first ``fraction`` of its files, rounded to whole jets (at least one per group). No
    random draw: every run and seed reads the same jets. ``ids`` (e.g. pair ids) must be
    sorted; ``groups`` is each id's process. None or 1 keeps everything.
    """
    if fraction is None or float(fraction) >= 1.0:
        return ids
    f = float(fraction)
    if not 0.0 < f <= 1.0:
        raise ValueError(f"pretrain.subset must lie in (0, 1], got {fraction!r}")
    keep = np.zeros(ids.size, bool)
    for g in np.unique(groups):
        where = np.flatnonzero(groups == g)
        # floor with a tolerance: 0.05 x 200 = 10.000000000000002 must keep 10, not 11
        n = min(where.size, max(1, int(np.floor(f * where.size + 1e-6))))
        keep[where[:n]] = True
    return ids[keep]


def subset_pairs(h5_path: str, pairs: np.ndarray, fraction: float | None) -> np.ndarray:
    """Of the sorted pair ids ``pairs`` (row ``pair * V + variant``), the first
    ``fraction`` of each process's pairs (:func:`first_fraction`): ``pretrain.subset``
    for pair methods, and for single-jet methods via :func:`subset_mask`."""
    if fraction is None or float(fraction) >= 1.0:
        return pairs
    V = DatasetInfo.read(h5_path).n_variants
    with h5py.File(h5_path, "r") as f:
        proc = read_column(f, "process")[pairs * V]
    return first_fraction(pairs, proc, fraction)


def subset_mask(h5_path: str, rows: np.ndarray, fraction: float | None) -> np.ndarray:
    """Which of the sorted ``rows`` (single jets, any variants) belong to the first
    ``fraction`` of each process's pairs: a pair's variants stay or go together."""
    if fraction is None or float(fraction) >= 1.0:
        return np.ones(rows.size, bool)
    V = DatasetInfo.read(h5_path).n_variants
    pair = rows // V
    return np.isin(pair, subset_pairs(h5_path, np.unique(pair), fraction))


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
