"""Convert a dataset split from one per-particle feature set to another (transfer learning).

Why: a backbone pre-trained on one input convention (JP-JEPA, Letellier et al.,
arXiv:2606.14813: a ParT on JetClass ``part17``) must be fine-tuned on datasets stored in
another (``toptag``: ``kinematic4`` four-momenta; ``quarkgluon``: ``pid_kin``, no track
displacement). Rather than a hand-written mapping per pair, the conversion goes through the
candidates: the source set's ``four_momenta`` gives back px, py, pz, E; every other
candidate field the destination set reads is *recovered* from the source where the source
stores it exactly, else set to 0; the destination set's own ``compute`` then produces its
features. So the output is by construction what the destination builder would have written
from those candidates.

Fields recovered from source features (``_RAW_FROM_FEATURE``):

- ``charge`` and the flags ``is_electron, is_muon, is_photon, is_ch, is_nh``: stored raw by
  ``rs3l`` (``charge``, ``is_*``) and ``part17``/``pid_kin`` (``part_charge``,
  ``part_is*``, standardisation None). Exact.
- ``d0, dz``: ``arctanh`` of ``rs3l`` ``tanh_d0/tanh_dz`` or ``part17`` ``part_d0/part_dz``.
  Exact for every destination, because every set reads them only through ``tanh``
  (|d0| beyond float32 saturation comes back as ±inf, and tanh(±inf) = ±1 as stored).
- ``d0_err, dz_err``: ``part17`` ``part_d0err/part_dzerr``, stored clipped to [0, 1]. The
  clipped value is recovered; exact for ``part17``, the only set that reads them (same clip).

Zero-filled: every other field the destination needs (e.g. PID from ``kinematic4``/``jetnet``,
track displacement from ``pid_kin``, ``d0_err/dz_err`` from ``rs3l``). The destination
features that depend on them get the value the destination computes for a zero raw input
(flags 0, tanh(0) = 0, clip(0, 0, 1) = 0): the "setting unused variables to zero" of
JP-JEPA §4 (fine-tuning on top tagging / quark–gluon). They are reported by name.

Limits, inherited from the inverse (``FeatureSet.four_momenta``): massless sources
(``kinematic4``, ``jetnet``) give E = |p|; standardisation clips of the source make the
kinematics of clipped constituents approximate (ParT ``part_pt_log`` clips below
p_T ≈ 4 MeV); float32 storage limits everything to ~1e-6 relative. Constituents keep
their p_T order: the destination sorts by the recovered p_T with a stable sort, which is
non-increasing in the source order (log p_T, p_T,rel rounding is monotone) up to float32 ties.
Converting a set to itself copies the features (bit-exact) and only re-pads to ``n_max``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import awkward as ak
import h5py
import numpy as np

from jetforge.io.atomic import atomic_path
from jetforge.io.h5 import ROW_CHUNK, DatasetFormatError, _set_attrs, read_attrs
from jetforge.jets.featuresets import (
    FEATURE_SETS,
    KINEMATIC_FIELDS,
    FeatureSet,
    FeatureSetError,
    get_feature_set,
    unstandardise,
)


def _same(v: np.ndarray) -> np.ndarray:
    return v


def _arctanh(v: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):  # tanh saturated in float32 → ±inf, tanh(±inf) = ±1
        return np.arctanh(v)


_FLAG_NAMES = {
    "is_electron": "part_isElectron",
    "is_muon": "part_isMuon",
    "is_photon": "part_isPhoton",
    "is_ch": "part_isChargedHadron",
    "is_nh": "part_isNeutralHadron",
}
#: source feature name → (candidate field, inverse of the *unstandardised* feature)
_RAW_FROM_FEATURE: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "charge": ("charge", _same),
    "part_charge": ("charge", _same),
    **{f: (f, _same) for f in _FLAG_NAMES},
    **{p: (f, _same) for f, p in _FLAG_NAMES.items()},
    "tanh_d0": ("d0", _arctanh),
    "tanh_dz": ("dz", _arctanh),
    "part_d0": ("d0", _arctanh),
    "part_dz": ("dz", _arctanh),
    "part_d0err": ("d0_err", _same),
    "part_dzerr": ("dz_err", _same),
}

#: value given to missing fields in the probe that finds which features depend on them
_PROBE_VALUE = 0.5


def recoverable_fields(src: str) -> list[str]:
    """Candidate fields (beyond px, py, pz, E) that ``src`` features give back exactly."""
    fs = get_feature_set(src)
    return [_RAW_FROM_FEATURE[n][0] for n in fs.feature_names if n in _RAW_FROM_FEATURE]


def zero_filled_features(src: str, dst: str) -> list[str]:
    """Destination features of a ``src`` → ``dst`` conversion that rest on zero-filled fields.

    Found by probing rather than by a hand-kept table, so a new feature set is covered
    automatically: one constituent is computed twice by ``dst``, with the missing fields at
    0 and at ``_PROBE_VALUE``; the features that change depend on them.
    """
    dst_fs = get_feature_set(dst)
    if src == dst:
        return []
    missing = _missing_fields(get_feature_set(src), dst_fs)
    if not missing:
        return []
    jets = ak.zip({"pt": [10.0], "eta": [0.0], "phi": [0.0], "E": [10.0]})
    base = {"px": [[10.0]], "py": [[0.0]], "pz": [[0.0]], "E": [[10.0]]}
    base |= {f: [[0.0]] for f in dst_fs.needs if f not in base}
    out = []
    for value in (0.0, _PROBE_VALUE):
        consts = ak.zip({**base, **{f: [[value]] for f in missing}})
        out.append(dst_fs.compute(jets, consts, 1)[0][0, 0])
    changed = out[0] != out[1]
    return [n for n, c in zip(dst_fs.feature_names, changed, strict=True) if c]


def _missing_fields(src: FeatureSet, dst: FeatureSet) -> list[str]:
    have = set(KINEMATIC_FIELDS) | set(recoverable_fields(src.name))
    return [f for f in dst.needs if f not in have]


def _resolve(src: str, dst: str) -> tuple[FeatureSet, FeatureSet]:
    try:
        return get_feature_set(src), get_feature_set(dst)
    except FeatureSetError as err:
        raise FeatureSetError(f"cannot convert feature set {src!r} to {dst!r}: {err}") from None


def _jet_energy(jets: Mapping[str, np.ndarray]) -> np.ndarray:
    """Jet energy: stored as ``E``, or from (p_T, η, mass) as the HDF5 files keep them."""
    if "E" in jets:
        return np.asarray(jets["E"], dtype=np.float64)
    if "mass" not in jets:
        raise FeatureSetError(f"jet columns need 'E' or 'mass'; have {sorted(jets)}")
    pt, eta, mass = (np.asarray(jets[k], dtype=np.float64) for k in ("pt", "eta", "mass"))
    return np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)


def _repad(x: np.ndarray, mask: np.ndarray, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Truncate or zero-pad already p_T-sorted particles to ``n_max`` slots."""
    n, p = mask.shape
    if n_max <= p:
        return np.ascontiguousarray(x[:, :n_max], np.float32), mask[:, :n_max].copy()
    xo = np.zeros((n, n_max, x.shape[2]), np.float32)
    mo = np.zeros((n, n_max), bool)
    xo[:, :p], mo[:, :p] = x, mask
    return xo, mo


def convert_features(
    x: np.ndarray,
    mask: np.ndarray,
    jets: Mapping[str, np.ndarray],
    src: str,
    dst: str,
    n_max: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features ``x`` [N, P, F_src] of feature set ``src`` → (``dst`` features float32
    [N, n_max, F_dst], mask bool [N, n_max], names of the zero-filled ``dst`` features).

    ``jets``: columns ``pt, eta, phi`` and ``E`` or ``mass`` ([N] each, as the jet
    datasets store them). ``n_max`` defaults to P. See the module docstring for what is
    recovered and what is zero-filled.
    """
    src_fs, dst_fs = _resolve(src, dst)
    x = np.asarray(x)
    mask = np.asarray(mask, dtype=bool)
    if x.ndim != 3 or x.shape[:2] != mask.shape or x.shape[2] != len(src_fs.feature_names):
        raise ValueError(
            f"features {x.shape} and mask {mask.shape} do not fit feature set {src!r} "
            f"({len(src_fs.feature_names)} features)"
        )
    n_max = mask.shape[1] if n_max is None else n_max
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    if src == dst:
        return (*_repad(x, mask, n_max), [])
    if src_fs.four_momenta is None:
        raise FeatureSetError(
            f"cannot convert feature set {src!r} to {dst!r}: {src!r} has no four_momenta "
            "inverse, so its constituents' four-momenta cannot be recovered"
        )
    jet_cols = {k: np.asarray(jets[k], dtype=np.float64) for k in ("pt", "eta", "phi")}
    jet_cols["E"] = _jet_energy(jets)
    cols = dict(src_fs.four_momenta(x, mask, jet_cols))
    for i, name in enumerate(src_fs.feature_names):
        if name in _RAW_FROM_FEATURE:
            field, inverse = _RAW_FROM_FEATURE[name]
            z = x[..., i].astype(np.float64)
            cols[field] = inverse(unstandardise(z, src_fs.standardisation.get(name)))
    counts = mask.sum(axis=1)
    wanted = [*KINEMATIC_FIELDS, *(f for f in dst_fs.needs if f not in KINEMATIC_FIELDS)]
    flat = {
        f: cols[f][mask] if f in cols else np.zeros(int(counts.sum())) for f in wanted
    }  # missing fields: zero raw input
    consts = ak.unflatten(ak.zip(flat), counts)
    out_x, out_mask = dst_fs.compute(ak.zip(jet_cols), consts, n_max)
    return out_x, out_mask, zero_filled_features(src, dst)


def _file_feature_set(f: h5py.File, path: str | os.PathLike[str]) -> str:
    """The feature set of an open dataset: its ``feature_set`` attr, or (older files
    without it) the one registered set whose feature names equal the file's."""
    attrs = read_attrs(f)
    names = list(attrs.get("feature_names", []))
    if "feature_set" in attrs:
        name = str(attrs["feature_set"])
        if list(get_feature_set(name).feature_names) != names:
            raise DatasetFormatError(
                f"{path}: feature_names {names} do not match its feature_set {name!r}"
            )
        return name
    hits = [s.name for s in FEATURE_SETS.values() if list(s.feature_names) == names]
    if len(hits) != 1:
        raise DatasetFormatError(
            f"{path}: no feature_set attribute and feature_names {names} match "
            f"{hits or 'no registered feature set'}"
        )
    return hits[0]


def convert_file(
    src_h5: str | os.PathLike[str],
    dst_h5: str | os.PathLike[str],
    dst_set: str,
    n_max: int | None = None,
    chunk_rows: int = 8192,
) -> list[str]:
    """Write ``dst_h5``: ``src_h5`` with its particles converted to feature set ``dst_set``.

    Streams ``chunk_rows`` jets at a time (paper-scale splits do not fit in memory). Every
    other dataset (``jets/…``, extra constituent types) is copied unchanged, and every
    attribute, except ``feature_set``, ``feature_names``, ``feature_standardisation``
    (written as the dataset builders write them) and the added ``converted_from``
    ({path, feature_set} of the source) and ``zero_filled_features`` (JSON lists/dicts,
    as ``io.h5`` stores them). Written atomically: a failure leaves no file. Returns the
    zero-filled feature names.
    """
    dst_fs = get_feature_set(dst_set)  # fail before touching any file
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if Path(src_h5).resolve() == Path(dst_h5).resolve():
        raise ValueError(f"{dst_h5}: converting a file onto itself would destroy the source")
    with h5py.File(src_h5, "r") as src, atomic_path(dst_h5) as tmp, h5py.File(tmp, "w") as out:
        if "particles" not in src or "mask" not in src:
            raise DatasetFormatError(f"{src_h5}: no particles/mask datasets")
        src_set = _file_feature_set(src, src_h5)
        n, p = src["mask"].shape
        p_out = p if n_max is None else n_max
        zero_filled = zero_filled_features(src_set, dst_set)
        _copy_all_but_particles(src, out, n, chunk_rows)
        rows = (min(ROW_CHUNK, max(n, 1)),)
        nf = len(dst_fs.feature_names)
        xo = out.create_dataset("particles", shape=(n, p_out, nf), dtype=np.float32,
                                maxshape=(None, p_out, nf), chunks=(*rows, p_out, nf),
                                track_times=False)  # fmt: skip
        mo = out.create_dataset("mask", shape=(n, p_out), dtype=bool, maxshape=(None, p_out),
                                chunks=(*rows, p_out), track_times=False)  # fmt: skip
        jet_keys = [k for k in ("pt", "eta", "phi", "E", "mass") if k in src["jets"]]
        for start in range(0, n, chunk_rows):
            stop = min(n, start + chunk_rows)
            jets = {k: src["jets"][k][start:stop] for k in jet_keys}
            x, m, _ = convert_features(
                src["particles"][start:stop], src["mask"][start:stop], jets, src_set, dst_set,
                p_out,
            )  # fmt: skip
            xo[start:stop], mo[start:stop] = x, m
        for key, value in src.attrs.items():
            out.attrs[key] = value
        _set_attrs(out, {
            "feature_set": dst_set,
            "feature_names": dst_fs.feature_names,
            "feature_standardisation": {
                k: (None if v is None else list(v)) for k, v in dst_fs.standardisation.items()
            },
            "converted_from": {"path": str(src_h5), "feature_set": src_set},
            "zero_filled_features": zero_filled,
        })  # fmt: skip
    return zero_filled


def _copy_all_but_particles(src: h5py.File, out: h5py.File, n: int, chunk_rows: int) -> None:
    """Copy every dataset except particles/mask: row-aligned ones chunk by chunk, others
    whole (small by nature), keeping dtype, chunking, compression and attributes."""
    items: list[tuple[str, h5py.Dataset | h5py.Group]] = []
    src.visititems(lambda k, v: items.append((k, v)))
    for name, d in items:  # parents come before their members
        if isinstance(d, h5py.Group):
            g = out.require_group(name)
            g.attrs.update(d.attrs)
            continue
        if name in ("particles", "mask"):
            continue
        if d.shape[:1] != (n,):
            src.copy(d, out, name=name)
            continue
        o = out.create_dataset(
            name, shape=d.shape, dtype=d.dtype, chunks=d.chunks,
            maxshape=d.maxshape if d.chunks else None, compression=d.compression,
            compression_opts=d.compression_opts, track_times=False,
        )  # fmt: skip
        for start in range(0, n, chunk_rows):
            o[start : start + chunk_rows] = d[start : start + chunk_rows]
        for key, value in d.attrs.items():
            o.attrs[key] = value
