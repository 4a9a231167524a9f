"""Importers: the papers' public jet datasets, read as their publishers lay them out.

A dataset of ``kind: import`` reads files instead of generating events and writes the same
split files as every generated dataset (``results/datasets/{name}/{split}.h5``, data
contract 4, V = 1 variant ``nominal``), in the feature set its format implies. So every
method, probe, fine-tuning and table runs on the real JetClass, JetNet, top-tagging or
quark–gluon files by switching an experiment's ``dataset:``; the processes keep our names
(``qcd_zjet``, ``hbb_zh`` …) so the fine-tuning tasks stay the same.

Formats (the layouts as the publishers' own readers open them):

- ``jetclass_root`` (Qu, Li, Qian, arXiv:2202.03772; ``dataloader.py`` and
  ``data/JetClass/JetClass_full.yaml`` of jet-universe/particle_transformer): ROOT files,
  TTree ``tree``, jagged ``part_px, part_py, part_pz, part_energy, part_charge,
  part_isChargedHadron, part_isNeutralHadron, part_isPhoton, part_isElectron, part_isMuon,
  part_d0val, part_d0err, part_dzval, part_dzerr``, scalars ``jet_pt, jet_eta, jet_phi,
  jet_energy`` and one-hot ``label_QCD, label_Hbb, label_Hcc, label_Hgg, label_H4q,
  label_Hqql, label_Zqq, label_Wqq, label_Tbqq, label_Tbl``. Features ``part17``, computed
  from the four-momenta with the file's jet axis (the ParT config's ``new_variables``).
- ``jetnet_h5`` (Kansal et al., arXiv:2106.11535; zenodo 6975118, the ``jetnet`` package's
  ``JetNet.getData``): one HDF5 file per class (``g, q, t, w, z``.hdf5, or ``…150``),
  ``particle_features`` [N, 30, 4] = (η_rel, φ_rel, p_T,rel, mask) and ``jet_features``
  [N, 4] = (p_T, η, mass, n_particles); the class is the file (the package prepends it).
  Features ``jetnet``, as stored; the jet φ is not stored (0 here: every feature is
  relative).
- ``toptag_h5`` (Kasieczka et al., arXiv:1902.09914; zenodo 2603256): a pandas HDFStore,
  key ``table``, columns ``E_i, PX_i, PY_i, PZ_i`` (i < 200, zero-padded, p_T-ordered),
  ``truthE…``, ``ttv``, ``is_signal_new`` (1 top, 0 QCD). Read with h5py from the fixed
  format (pandas' default, no PyTables needed); a ``format="table"`` store through pandas.
  Features ``kinematic4``: the stored (E, p_x, p_y, p_z) as published; the jet is the sum
  of the stored constituents (ParT's ``utils/convert_top_datasets.py``).
- ``quarkgluon_npz`` (Komiske, Metodiev, Thaler, arXiv:1810.05165; zenodo 3164691,
  EnergyFlow's ``qg_jets``): ``QG_jets*.npz`` with ``X`` [N, M, 4] = (p_T, y, φ, PDG id),
  zero-padded, and ``y`` (1 quark, 0 gluon). Features ``pid_kin`` with the four-momenta and
  PID flags of ParT's ``utils/convert_qg_datasets.py`` (massless, the rapidity taken as η;
  the jet is the sum of all its particles).

Refusals name the file and what is wrong: a missing tree, branch, key or column, a label
that is not one-hot, a file listed under a process whose class it does not hold (the
mislabelled file), a PDG id the format does not know. :func:`parse_config` runs them on
the first file of every pattern when the config is checked, i.e. before any job (where
the reader's package is installed: the Snakemake driver's env has none of them, and then
the job makes the same checks before it writes anything).
"""

from __future__ import annotations

import glob
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jetforge.datasets import IMPORT_FEATURE_SETS
from jetforge.jets.featuresets import get_feature_set
from jetforge.jets.kinematics import mass as invariant_mass
from jetforge.jets.kinematics import pt_eta_phi
from jetforge.lazy import lazy_module

# the Snakemake driver imports this module (file patterns, config checks) without the
# physics stack (envs/snakemake.yaml): awkward, h5py, uproot, pandas load on first use
ak = lazy_module("awkward")

#: the one variant of an imported dataset (data contract 4: V = 1)
NOMINAL = "nominal"
#: jets read and written per part file when the config names no ``jets_per_chunk``: bounds
#: a job's memory (100k JetClass jets in part17 are ~0.9 GB of features)
DEFAULT_JETS_PER_CHUNK = 100_000


class ImportFileError(ValueError):
    """A source file that does not hold what its format promises; names file and item."""


class ImportConfigError(ValueError):
    """An import dataset config that cannot be read; names the key, the value and the fix."""


@dataclass(frozen=True)
class Block:
    """Jets of one class read from rows ``[start, stop)`` of one file, in our contract."""

    x: np.ndarray  # float32 [n, P, F], zero-padded, p_T-ordered
    mask: np.ndarray  # bool [n, P]
    jets: dict[str, np.ndarray]  # pt, eta, phi, mass (float64)
    rows: np.ndarray  # int64 row of each jet in the source file


@dataclass(frozen=True)
class ImportFormat:
    """One publisher's layout: its classes, what it holds, and how to read it."""

    name: str
    feature_set: str
    #: native class names in the publisher's label order
    classes: tuple[str, ...]
    #: our process name -> native class, for configs that name no ``labels``
    default_labels: Mapping[str, str]
    R: float  # anti-k_t radius of the release
    detector: str  # the release's detector ("none" = particle level)
    n_rows: Callable[[Path], int]
    #: layout + the class present in rows [0, n): cheap, run at config time
    check: Callable[[Path, str], None]
    read: Callable[[Path, int, int, str, int], Block]


def _refuse_empty_class(
    labels: np.ndarray, want: int, names: Sequence[str], path: Path, start: int, where: str
) -> np.ndarray:
    """Rows of class ``want``; none at all means a file listed under the wrong process."""
    keep = labels == want
    if not keep.any():
        counts = np.bincount(labels, minlength=len(names))
        found = {names[i]: int(n) for i, n in enumerate(counts) if n}
        raise ImportFileError(
            f"{path}: no {names[want]!r} jets ({where}) in rows {start}-{start + labels.size}; "
            f"it holds {found}: a mislabelled file, or listed under the wrong process"
        )
    return keep


def _jet_columns(px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray) -> dict:
    """Jet p_T, η, φ, mass and E from summed four-momenta (float64)."""
    pt, eta, phi = pt_eta_phi(px, py, pz)
    return {"pt": pt, "eta": eta, "phi": phi, "mass": invariant_mass(px, py, pz, e), "E": e}


def _pt_order(pt: np.ndarray, mask: np.ndarray, n_max: int) -> np.ndarray:
    """Indices [n, min(M, n_max)] of each row's particles by p_T (descending), padding last."""
    order = np.argsort(np.where(mask, -pt, np.inf), axis=1, kind="stable")
    return order[:, :n_max]


# ----------------------------------------------------------------------------- JetClass

JETCLASS_TREE = "tree"
JETCLASS_CLASSES = ("QCD", "Hbb", "Hcc", "Hgg", "H4q", "Hqql", "Zqq", "Wqq", "Tbqq", "Tbl")
#: our candidate field (data contract 3) -> JetClass branch
JETCLASS_PARTICLE = {
    "px": "part_px", "py": "part_py", "pz": "part_pz", "E": "part_energy",
    "charge": "part_charge", "is_ch": "part_isChargedHadron",
    "is_nh": "part_isNeutralHadron", "is_photon": "part_isPhoton",
    "is_electron": "part_isElectron", "is_muon": "part_isMuon",
    "d0": "part_d0val", "d0_err": "part_d0err", "dz": "part_dzval", "dz_err": "part_dzerr",
}  # fmt: skip
JETCLASS_JET = {"pt": "jet_pt", "eta": "jet_eta", "phi": "jet_phi", "E": "jet_energy"}
JETCLASS_LABELS = tuple(f"label_{c}" for c in JETCLASS_CLASSES)


def _root_tree(path: Path) -> Any:
    """The file's ``tree``, every branch the importer reads present, or a refusal naming
    the file and the missing branches."""
    import uproot

    try:
        f = uproot.open(path)
    except FileNotFoundError:
        raise ImportFileError(f"{path}: file does not exist") from None
    except Exception as exc:  # uproot raises several types for a foreign file
        raise ImportFileError(f"{path}: cannot be read as a ROOT file ({exc})") from None
    if JETCLASS_TREE not in f:
        keys = sorted({k.split(";")[0] for k in f})
        f.close()
        raise ImportFileError(
            f"{path}: no TTree {JETCLASS_TREE!r} (JetClass keeps its jets there); it holds {keys}"
        )
    tree = f[JETCLASS_TREE]
    need = [*JETCLASS_PARTICLE.values(), *JETCLASS_JET.values(), *JETCLASS_LABELS]
    missing = [b for b in need if b not in tree]
    if missing:
        f.close()
        raise ImportFileError(f"{path}: tree {JETCLASS_TREE!r} lacks the branches {missing}")
    return f, tree


def _jetclass_rows(path: Path) -> int:
    f, tree = _root_tree(path)
    with f:
        return int(tree.num_entries)


def _jetclass_labels(arrays: Any, path: Path, start: int) -> np.ndarray:
    """Class index per jet from the one-hot ``label_*`` branches; refuses any other count."""
    onehot = np.stack([ak.to_numpy(arrays[b]).astype(np.int64) for b in JETCLASS_LABELS], axis=1)
    bad = np.flatnonzero(onehot.sum(axis=1) != 1)
    if bad.size:
        raise ImportFileError(
            f"{path}: row {start + bad[0]} has {int(onehot[bad[0]].sum())} of the branches "
            f"{list(JETCLASS_LABELS)} set ({bad.size} such rows); JetClass labels are one-hot"
        )
    return onehot.argmax(axis=1)


def _jetclass_check(path: Path, cls: str) -> None:
    f, tree = _root_tree(path)
    with f:
        labels = tree.arrays(list(JETCLASS_LABELS), library="ak")
    want = JETCLASS_CLASSES.index(cls)
    _refuse_empty_class(_jetclass_labels(labels, path, 0), want, JETCLASS_CLASSES, path, 0,
                        f"label_{cls} == 1")  # fmt: skip


def _read_jetclass(path: Path, start: int, stop: int, cls: str, n_max: int) -> Block:
    f, tree = _root_tree(path)
    branches = [*JETCLASS_PARTICLE.values(), *JETCLASS_JET.values(), *JETCLASS_LABELS]
    with f:
        arr = tree.arrays(branches, entry_start=start, entry_stop=stop, library="ak")
    labels = _jetclass_labels(arr, path, start)
    keep = _refuse_empty_class(labels, JETCLASS_CLASSES.index(cls), JETCLASS_CLASSES, path,
                               start, f"label_{cls} == 1")  # fmt: skip
    consts = ak.zip({k: arr[b][keep] for k, b in JETCLASS_PARTICLE.items()})
    jet = {k: ak.to_numpy(arr[b][keep]).astype(np.float64) for k, b in JETCLASS_JET.items()}
    x, mask = get_feature_set("part17").compute(ak.zip(jet), consts, n_max)
    pz = jet["pt"] * np.sinh(jet["eta"])
    m2 = jet["E"] ** 2 - jet["pt"] ** 2 - pz**2
    cols = {k: jet[k] for k in ("pt", "eta", "phi")}
    cols["mass"] = np.sqrt(np.maximum(m2, 0.0))
    return Block(x, mask, cols, start + np.flatnonzero(keep))


# ----------------------------------------------------------------------------- JetNet

JETNET_CLASSES = ("g", "q", "t", "w", "z")  # jetnet.datasets.JetNet.JET_TYPES
JETNET_PARTICLE = ("etarel", "phirel", "ptrel", "mask")
JETNET_JET = ("pt", "eta", "mass", "num_particles")


def _open_h5(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise ImportFileError(f"{path}: file does not exist") from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot be read as HDF5 ({exc})") from None


def _jetnet_datasets(f: Any, path: Path) -> tuple[Any, Any]:
    missing = [k for k in ("particle_features", "jet_features") if k not in f]
    if missing:
        raise ImportFileError(f"{path}: lacks the JetNet datasets {missing}; it holds {list(f)}")
    pf, jf = f["particle_features"], f["jet_features"]
    if pf.ndim != 3 or pf.shape[2] != len(JETNET_PARTICLE):
        raise ImportFileError(f"{path}: particle_features has shape {pf.shape}; JetNet stores "
                              f"[jets, particles, 4] = {JETNET_PARTICLE}")  # fmt: skip
    if jf.ndim != 2 or jf.shape != (pf.shape[0], len(JETNET_JET)):
        raise ImportFileError(f"{path}: jet_features has shape {jf.shape}; JetNet stores "
                              f"[{pf.shape[0]} jets, 4] = {JETNET_JET}")  # fmt: skip
    return pf, jf


def _jetnet_rows(path: Path) -> int:
    with _open_h5(path) as f:
        return int(_jetnet_datasets(f, path)[0].shape[0])


def _jetnet_check(path: Path, cls: str) -> None:
    """Layout, and the class the file name gives (the release names each file by its class:
    ``q.hdf5`` listed under a gluon process is refused)."""
    with _open_h5(path) as f:
        _jetnet_datasets(f, path)
    named = path.name.split(".")[0].removesuffix("150")
    if named in JETNET_CLASSES and named != cls:
        raise ImportFileError(
            f"{path}: the file name says JetNet class {named!r}, but it is listed under a "
            f"process of class {cls!r}: a mislabelled file, or listed under the wrong process"
        )


def _read_jetnet(path: Path, start: int, stop: int, cls: str, n_max: int) -> Block:
    _jetnet_check(path, cls)
    with _open_h5(path) as f:
        pf_ds, jf_ds = _jetnet_datasets(f, path)
        pf = pf_ds[start:stop].astype(np.float64)
        jf = jf_ds[start:stop].astype(np.float64)
    if not np.isin(pf[..., 3], (0.0, 1.0)).all():
        raise ImportFileError(
            f"{path}: particle_features[..., 3] holds values other than 0 and 1; it must be "
            f"the mask, the feature order {JETNET_PARTICLE}"
        )
    real = pf[..., 3] > 0.5
    order = _pt_order(pf[..., 2], real, n_max)
    x = np.take_along_axis(pf, order[..., None], axis=1)
    mask = np.take_along_axis(real, order, axis=1)
    if order.shape[1] < n_max:  # fewer stored particles than asked for: zero-pad
        x = np.pad(x, ((0, 0), (0, n_max - x.shape[1]), (0, 0)))
        mask = np.pad(mask, ((0, 0), (0, n_max - mask.shape[1])))
    x[~mask] = 0.0
    cols = {"pt": jf[:, 0], "eta": jf[:, 1], "phi": np.zeros(len(jf)), "mass": jf[:, 2]}
    return Block(x.astype(np.float32), mask, cols, np.arange(start, start + len(jf)))


# ----------------------------------------------------------------------------- top tagging

TOPTAG_KEY = "table"
TOPTAG_LABEL = "is_signal_new"
TOPTAG_CLASSES = ("qcd", "top")  # is_signal_new = 0, 1
TOPTAG_P4 = ("E", "PX", "PY", "PZ")


def _decode(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _toptag_layout(path: Path) -> tuple[str, list[str], int]:
    """(pandas storage format, column names, rows) of the store's ``table`` key."""
    with _open_h5(path) as f:
        if TOPTAG_KEY not in f:
            raise ImportFileError(f"{path}: no pandas key {TOPTAG_KEY!r}; it holds {list(f)}")
        g = f[TOPTAG_KEY]
        kind = _decode(g.attrs.get("pandas_type", b""))
        if kind == "frame":
            names = [_decode(n) for i in range(int(g.attrs["nblocks"]))
                     for n in g[f"block{i}_items"][:]]  # fmt: skip
            return kind, names, int(g["axis1"].shape[0])
    if kind == "frame_table":
        import pandas as pd

        with pd.HDFStore(path, "r") as store:
            storer = store.get_storer(TOPTAG_KEY)
            return kind, list(store.select(TOPTAG_KEY, start=0, stop=0).columns), storer.nrows
    raise ImportFileError(f"{path}: key {TOPTAG_KEY!r} is not a pandas DataFrame "
                          f"(pandas_type {kind!r})")  # fmt: skip


def _toptag_columns(path: Path) -> tuple[str, list[str], int, int]:
    """Storage format, columns, constituents M and rows; refuses missing columns by name."""
    kind, names, n = _toptag_layout(path)
    have = set(names)
    m = 0
    while f"E_{m}" in have:
        m += 1
    need = [f"{p}_{i}" for i in range(max(m, 1)) for p in TOPTAG_P4] + [TOPTAG_LABEL]
    missing = [c for c in need if c not in have]
    if missing:
        raise ImportFileError(
            f"{path}: table {TOPTAG_KEY!r} lacks the columns {missing[:8]}"
            + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        )
    return kind, names, m, n


def _toptag_frame(path: Path, start: int, stop: int) -> tuple[dict[str, np.ndarray], int]:
    """Rows [start, stop) of every column (name -> 1-d array) and M."""
    kind, names, m, _ = _toptag_columns(path)
    if kind == "frame_table":
        import pandas as pd

        df = pd.read_hdf(path, TOPTAG_KEY, start=start, stop=stop)
        return {c: df[c].to_numpy() for c in df.columns}, m
    out: dict[str, np.ndarray] = {}
    with _open_h5(path) as f:
        g = f[TOPTAG_KEY]
        for i in range(int(g.attrs["nblocks"])):
            values = g[f"block{i}_values"][start:stop]
            for j, name in enumerate(g[f"block{i}_items"][:]):
                out[_decode(name)] = values[:, j]
    return out, m


def _toptag_labels(col: Mapping[str, np.ndarray], path: Path, start: int) -> np.ndarray:
    label = np.asarray(col[TOPTAG_LABEL])
    bad = np.flatnonzero(~np.isin(label, (0, 1)))
    if bad.size:
        raise ImportFileError(f"{path}: column {TOPTAG_LABEL!r} is {label[bad[0]]} in row "
                              f"{start + bad[0]}; it must be 1 (top) or 0 (QCD)")  # fmt: skip
    return label.astype(np.int64)


def _toptag_rows(path: Path) -> int:
    return _toptag_columns(path)[3]


def _toptag_check(path: Path, cls: str) -> None:
    kind, _, _, n = _toptag_columns(path)
    if kind == "frame":
        with _open_h5(path) as f:
            g = f[TOPTAG_KEY]
            for i in range(int(g.attrs["nblocks"])):
                items = [_decode(v) for v in g[f"block{i}_items"][:]]
                if TOPTAG_LABEL in items:
                    col = {TOPTAG_LABEL: g[f"block{i}_values"][:, items.index(TOPTAG_LABEL)]}
    else:
        col = _toptag_frame(path, 0, n)[0]
    labels = _toptag_labels(col, path, 0)
    _refuse_empty_class(labels, TOPTAG_CLASSES.index(cls), TOPTAG_CLASSES, path, 0,
                        f"{TOPTAG_LABEL} == {TOPTAG_CLASSES.index(cls)}")  # fmt: skip


def _read_toptag(path: Path, start: int, stop: int, cls: str, n_max: int) -> Block:
    col, m = _toptag_frame(path, start, stop)
    want = TOPTAG_CLASSES.index(cls)
    keep = _refuse_empty_class(_toptag_labels(col, path, start), want, TOPTAG_CLASSES, path,
                               start, f"{TOPTAG_LABEL} == {want}")  # fmt: skip
    p4 = np.stack(
        [np.stack([col[f"{p}_{i}"][keep] for p in TOPTAG_P4], axis=-1) for i in range(m)], axis=1
    ).astype(np.float64)  # [n, M, (E, px, py, pz)]
    real = p4[..., 0] > 0  # ParT's conversion: a constituent is real where E > 0
    p4[~real] = 0.0
    e, px, py, pz = (p4[..., k].sum(axis=1) for k in range(4))
    order = _pt_order(np.hypot(p4[..., 1], p4[..., 2]), real, n_max)
    x = np.take_along_axis(p4, order[..., None], axis=1)
    mask = np.take_along_axis(real, order, axis=1)
    if x.shape[1] < n_max:
        x = np.pad(x, ((0, 0), (0, n_max - x.shape[1]), (0, 0)))
        mask = np.pad(mask, ((0, 0), (0, n_max - mask.shape[1])))
    x[~mask] = 0.0
    jets = _jet_columns(px, py, pz, e)
    cols = {k: jets[k] for k in ("pt", "eta", "phi", "mass")}
    return Block(x.astype(np.float32), mask, cols, start + np.flatnonzero(keep))


# ----------------------------------------------------------------------------- quark-gluon

QG_CLASSES = ("gluon", "quark")  # y = 0, 1
QG_COLUMNS = ("pt", "y", "phi", "pid")
#: |PDG id| -> flag of ParT's utils/convert_qg_datasets.py; charge = sign for the + list
_QG_POSITIVE = (211, 321, 2212, -11, -13)
_QG_NEGATIVE = (-211, -321, -2212, 11, 13)
_QG_FLAGS = {
    "is_ch": (211, 321, 2212), "is_nh": (130, 2112), "is_photon": (22,),
    "is_electron": (11,), "is_muon": (13,),
}  # fmt: skip
QG_PIDS = tuple(sorted({p for ids in _QG_FLAGS.values() for a in ids for p in (a, -a)} - {-22}))


def _npz(path: Path) -> Any:
    try:
        return np.load(path)
    except FileNotFoundError:
        raise ImportFileError(f"{path}: file does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ImportFileError(f"{path}: cannot be read as a numpy .npz file ({exc})") from None


def _qg_layout(npz: Any, path: Path) -> None:
    missing = [k for k in ("X", "y") if k not in npz.files]
    if missing:
        raise ImportFileError(f"{path}: lacks the arrays {missing}; it holds {npz.files}")


def _qg_rows(path: Path) -> int:
    """Rows of ``X`` from its .npy header alone (a 100k-jet file is ~0.4 GB inflated)."""
    with _npz(path) as npz:
        _qg_layout(npz, path)
    with zipfile.ZipFile(path) as z, z.open("X.npy") as fh:
        version = np.lib.format.read_magic(fh)
        read = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}.get(version)  # fmt: skip
        if read is not None:
            return int(read(fh)[0][0])
    with _npz(path) as npz:
        return int(npz["X"].shape[0])


def _qg_arrays(path: Path, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    with _npz(path) as npz:
        _qg_layout(npz, path)
        X, y = npz["X"], npz["y"]
    if X.ndim != 3 or X.shape[2] != len(QG_COLUMNS) or len(y) != len(X):
        raise ImportFileError(f"{path}: X has shape {X.shape} and y {np.shape(y)}; the release "
                              f"stores X [N, M, 4] = {QG_COLUMNS} and y [N]")  # fmt: skip
    y = np.asarray(y[start:stop])
    bad = np.flatnonzero(~np.isin(y, (0, 1)))
    if bad.size:
        raise ImportFileError(f"{path}: y is {y[bad[0]]} in row {start + bad[0]}; it must be "
                              "1 (quark) or 0 (gluon)")  # fmt: skip
    return np.asarray(X[start:stop], dtype=np.float64), y.astype(np.int64)


def _qg_check(path: Path, cls: str) -> None:
    with _npz(path) as npz:
        _qg_layout(npz, path)
        y = np.asarray(npz["y"])
    _refuse_empty_class(y.astype(np.int64), QG_CLASSES.index(cls), QG_CLASSES, path, 0,
                        f"y == {QG_CLASSES.index(cls)}")  # fmt: skip


def _read_qg(path: Path, start: int, stop: int, cls: str, n_max: int) -> Block:
    X, y = _qg_arrays(path, start, stop)
    want = QG_CLASSES.index(cls)
    keep = _refuse_empty_class(y, want, QG_CLASSES, path, start, f"y == {want}")
    X = X[keep]
    real = X[..., 0] > 0
    pt, rap, phi = X[..., 0][real], X[..., 1][real], X[..., 2][real]
    pid = np.rint(X[..., 3][real]).astype(np.int64)
    unknown = np.setdiff1d(pid, QG_PIDS)
    if unknown.size:
        raise ImportFileError(f"{path}: X[..., 3] holds PDG ids {unknown[:8].tolist()} the "
                              f"release does not use (known {list(QG_PIDS)}); column 3 must "
                              "be the PDG id")  # fmt: skip
    counts = real.sum(axis=1)
    flat = {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(rap),
            "E": pt * np.cosh(rap)}  # fmt: skip
    flat["charge"] = np.isin(pid, _QG_POSITIVE).astype(float) - np.isin(pid, _QG_NEGATIVE)
    for name, ids in _QG_FLAGS.items():
        flat[name] = np.isin(np.abs(pid), ids).astype(np.float64)
    consts = ak.zip({k: ak.unflatten(v, counts) for k, v in flat.items()})
    sums = {k: ak.to_numpy(ak.sum(consts[k], axis=1)) for k in ("px", "py", "pz", "E")}
    jets = _jet_columns(sums["px"], sums["py"], sums["pz"], sums["E"])
    x, mask = get_feature_set("pid_kin").compute(ak.zip(jets), consts, n_max)
    cols = {k: jets[k] for k in ("pt", "eta", "phi", "mass")}
    return Block(x, mask, cols, start + np.flatnonzero(keep))


# ----------------------------------------------------------------------------- registry

FORMATS: dict[str, ImportFormat] = {
    f.name: f
    for f in [
        ImportFormat(
            "jetclass_root", "part17", JETCLASS_CLASSES,
            dict(zip(("qcd_zjet", "hbb_zh", "hcc_zh", "hgg_zh", "h4q_zh", "hlvqq_zh",
                      "zqq_zjet", "wqq_wjet", "tbqq_tt", "tblv_tt"), JETCLASS_CLASSES,
                     strict=True)),
            0.8, "delphes_cms", _jetclass_rows, _jetclass_check, _read_jetclass,
        ),
        ImportFormat(
            "jetnet_h5", "jetnet", JETNET_CLASSES,
            {"zjet_g": "g", "zjet_q": "q", "tbqq_tt": "t", "wqq_wjet": "w", "zqq_zjet": "z"},
            0.8, "none", _jetnet_rows, _jetnet_check, _read_jetnet,
        ),
        ImportFormat(
            "toptag_h5", "kinematic4", TOPTAG_CLASSES, {"qcd_dijet": "qcd", "tbqq_tt": "top"},
            0.8, "delphes_atlas", _toptag_rows, _toptag_check, _read_toptag,
        ),
        ImportFormat(
            "quarkgluon_npz", "pid_kin", QG_CLASSES, {"zjet_g": "gluon", "zjet_q": "quark"},
            0.4, "none", _qg_rows, _qg_check, _read_qg,
        ),
    ]
}  # fmt: skip
assert {n: f.feature_set for n, f in FORMATS.items()} == IMPORT_FEATURE_SETS


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ImportConfig:
    """The validated keys of an import dataset config."""

    format: ImportFormat
    labels: dict[str, str]  # process -> native class
    files: dict[str, dict[str, list[str]]]  # split -> process -> patterns
    n_particles: int
    jets_per_chunk: int
    max_jets_per_file: int | None


def _patterns(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def source_files(patterns: Sequence[str]) -> list[Path]:
    """Files matched by ``patterns`` (globs or plain paths), each pattern sorted, in order,
    without repeats."""
    out: dict[Path, None] = {}
    for pat in patterns:
        if glob.has_magic(pat):
            hits = sorted(glob.glob(pat))
        else:
            hits = [pat] if Path(pat).exists() else []
        out.update(dict.fromkeys(Path(h) for h in hits))
    return list(out)


def parse_config(ds: Mapping[str, Any], check_files: bool = True) -> ImportConfig:
    """Check an import dataset config; with ``check_files`` every pattern must match a file
    and the first file of each must hold the format's layout and the process's class (run
    at config time, so a wrong path or file is refused before any job)."""
    fmt_name = ds.get("format")
    if fmt_name not in FORMATS:
        raise ImportConfigError(f"config key format: value {fmt_name!r} is not an import "
                                f"format; known: {sorted(FORMATS)}")  # fmt: skip
    fmt = FORMATS[fmt_name]
    processes = list(ds.get("processes", []))
    labels = {p: fmt.default_labels[p] for p in processes if p in fmt.default_labels}
    labels.update(ds.get("labels") or {})
    for p in processes:
        if p not in labels:
            raise ImportConfigError(
                f"config key labels: process {p!r} has no {fmt.name} class; name it, e.g. "
                f"labels: {{{p}: {fmt.classes[0]}}} (classes {list(fmt.classes)})"
            )
    for p, cls in labels.items():
        if p not in processes:
            raise ImportConfigError(f"config key labels.{p}: not in processes {processes}")
        if cls not in fmt.classes:
            raise ImportConfigError(f"config key labels.{p}: value {cls!r} is not a "
                                    f"{fmt.name} class; classes {list(fmt.classes)}")  # fmt: skip
    files: dict[str, dict[str, list[str]]] = {}
    for split, per_proc in (ds.get("files") or {}).items():
        files[split] = {}
        for p, value in per_proc.items():
            if p not in processes:
                raise ImportConfigError(f"config key files.{split}.{p}: process not in "
                                        f"processes {processes}")  # fmt: skip
            files[split][p] = _patterns(value)
            if check_files:
                _check_patterns(fmt, f"files.{split}.{p}", files[split][p], labels[p])
    if not files:
        raise ImportConfigError("config key files: name the source files of at least one split")
    cap = ds.get("max_jets_per_file")
    return ImportConfig(fmt, labels, files, int(ds["n_particles"]),
                        int(ds.get("jets_per_chunk", DEFAULT_JETS_PER_CHUNK)),
                        None if cap is None else int(cap))  # fmt: skip


def _check_patterns(fmt: ImportFormat, key: str, patterns: list[str], cls: str) -> None:
    for pat in patterns:
        found = source_files([pat])
        if not found:
            raise ImportConfigError(f"config key {key}: pattern {pat!r} matches no file "
                                    f"(relative paths start at {os.getcwd()})")  # fmt: skip
        try:
            fmt.check(found[0], cls)
        except ImportFileError as exc:
            raise ImportConfigError(f"config key {key}: {exc}") from None
        except ModuleNotFoundError:  # a driver without the readers: the job checks it
            return


def chunk_plan(cfg: ImportConfig, split: str, process: str) -> list[tuple[Path, int, int]]:
    """(file, first row, end row) of every part a split's process is read in: each file's
    rows (at most ``max_jets_per_file``) cut into ``jets_per_chunk`` pieces."""
    out: list[tuple[Path, int, int]] = []
    for path in source_files(cfg.files.get(split, {}).get(process, [])):
        n = cfg.format.n_rows(path)
        if cfg.max_jets_per_file is not None:
            n = min(n, cfg.max_jets_per_file)
        out += [(path, a, min(a + cfg.jets_per_chunk, n)) for a in range(0, n, cfg.jets_per_chunk)]
    return out


def split_sources(ds: Mapping[str, Any], split: str) -> list[str]:
    """Every source file of one split (the import rule's inputs), without repeats."""
    patterns = [p for v in (ds.get("files") or {}).get(split, {}).values() for p in _patterns(v)]
    return [os.fspath(p) for p in source_files(patterns)]


# ----------------------------------------------------------------------------- builder


def _attrs(ds: Mapping[str, Any], cfg: ImportConfig, dataset: str, split: str) -> dict:
    from jetforge.datasets.chunk import chunk_attrs, class_names

    fs = get_feature_set(cfg.format.feature_set)
    # the validation reads the jet radius from config_json (jets.R); the release fixes it
    described = {**ds, "jets": {"R": cfg.format.R, **(ds.get("jets") or {})}}
    std = {k: (None if v is None else list(v)) for k, v in fs.standardisation.items()}
    return chunk_attrs(
        described, dataset, split, feature_names=fs.feature_names,
        class_names=class_names(ds), process_names=list(ds["processes"]),
        variant_names=[NOMINAL], detector=cfg.format.detector, detector_sha256="",
        feature_set=fs.name, feature_standardisation=std, import_format=cfg.format.name,
    )  # fmt: skip


def import_split(
    ds: Mapping[str, Any], dataset: str, split: str, out_path: str | os.PathLike[str]
) -> dict[str, Any]:
    """Read every source file of ``split`` into one split file (data contract 4).

    Each (file, row range) part is read, checked and written as its own file in a
    temporary folder beside the output, then the parts are merged with
    :func:`jetforge.io.h5.merge_jet_datasets` (streamed: memory is one part). Returns jets
    per process and the files read.
    """
    from jetforge.datasets.chunk import class_names, pair_columns
    from jetforge.generation.processes import get_process
    from jetforge.io.h5 import merge_jet_datasets, write_jet_dataset

    cfg = parse_config(ds, check_files=False)
    if split not in cfg.files:
        raise ImportConfigError(f"config key files: no split {split!r}; splits {list(cfg.files)}")
    attrs = _attrs(ds, cfg, dataset, split)
    classes, processes = class_names(ds), list(ds["processes"])
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {"jets": {}, "files": {}}
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}.parts.") as tmp:
        parts: list[Path] = []
        for process in (p for p in processes if p in cfg.files[split]):
            plan = chunk_plan(cfg, split, process)
            if not plan:
                raise ImportConfigError(f"config key files.{split}.{process}: no file matches "
                                        f"{cfg.files[split][process]}")  # fmt: skip
            n_proc = 0
            for c, (path, start, stop) in enumerate(plan):
                blk = cfg.format.read(path, start, stop, cfg.labels[process], cfg.n_particles)
                rows = blk.rows.astype(np.int64)
                cols = {k: blk.jets[k] for k in ("pt", "eta", "phi", "mass")}
                cols["n2"] = np.full(rows.size, np.nan)
                cols.update(pair_columns(
                    rows.size, 1, c, processes.index(process),
                    label=classes.index(get_process(process).label), pair_id=rows, event=rows,
                    parton_pid=0,  # not in the releases: 0 = unknown
                ))  # fmt: skip
                parts.append(Path(tmp) / f"{process}_{c}.h5")
                write_jet_dataset(parts[-1], blk.x, blk.mask, cols, attrs)
                n_proc += rows.size
            stats["jets"][process] = n_proc
            stats["files"][process] = sorted({os.fspath(p) for p, _, _ in plan})
        stats["total"] = merge_jet_datasets(parts, out)
    return stats


__all__ = [
    "FORMATS", "Block", "ImportConfig", "ImportConfigError", "ImportFileError", "ImportFormat",
    "chunk_plan", "import_split", "parse_config", "source_files", "split_sources",
]  # fmt: skip
