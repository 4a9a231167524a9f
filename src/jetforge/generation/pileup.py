"""Pile-up: a minimum-bias library generated once, overlaid by drawing from it.

Rieck et al. (2025, §2): "soft interactions of protons are added to every hard
scattering event. These pile-up events are generated with Pythia8. Their interaction
vertex is randomly distributed across the beam axis using a Gaussian distribution with a
width of 50 mm. The average number of pile-up events per hard scattering event amounts to
150." Generating 150 minimum-bias events per hard event would cost ~150× the hard event,
so the minimum-bias events are generated once (``SoftQCD:inelastic = on``) into an HDF5
library of flat particle columns plus per-event offsets, and :func:`overlay` only *draws*
from it: Poisson(μ) library events per hard event (uniform, with replacement), each
shifted along z by its own vertex drawn from N(0, σ_z). Library events are generated at
the origin; the vertex is applied at overlay time so one library serves any σ_z.

Reuse of library events is the price of this speed: with N library events and μ per
event, an event repeats inside one hard event with probability ≈ μ/N (1.5 % for μ = 150,
N = 10⁴), and across events the same minimum-bias particles recur; size the library for
the statistics the study needs (the library attrs record its size).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jetforge.generation.pythia_setup import make_pythia
from jetforge.generation.shower import INVISIBLE_PIDS, _charge_lookup, _fill_vertex
from jetforge.io.atomic import atomic_path
from jetforge.jets.kinematics import pseudorapidity
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
    import h5py
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")
    h5py = lazy_module("h5py")


#: Particle columns of the library and of data contract 2, with their stored dtypes.
LIBRARY_COLUMNS: dict[str, type] = {
    "px": np.float32, "py": np.float32, "pz": np.float32, "E": np.float32,
    "pid": np.int32, "charge": np.float32,
    "vx": np.float32, "vy": np.float32, "vz": np.float32,
}  # fmt: skip
LIBRARY_FORMAT = "jetforge-minbias-1"


class PileupLibraryError(ValueError):
    """A minimum-bias library file that cannot be used (names the file and the problem)."""


@dataclass(frozen=True)
class MinBiasLibrary:
    """Flat particle columns of all library events and ``offsets`` [n_events + 1]."""

    columns: dict[str, np.ndarray]
    offsets: np.ndarray
    path: str
    attrs: dict[str, Any]

    @property
    def n_events(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


def generate_minbias_library(
    path: str | os.PathLike[str],
    n_events: int,
    seed: int,
    sqrt_s: float = 13000.0,
    settings: Sequence[str] = (),
    eta_max: float = 4.0,
    pt_min: float = 0.0,
    process: str = "SoftQCD:inelastic = on",
    batch: int = 500,
) -> dict[str, Any]:
    """Generate ``n_events`` minimum-bias pp events into an HDF5 library (atomic write).

    Only visible final-state particles with |η| < ``eta_max`` and p_T >= ``pt_min`` (GeV)
    are stored: neutrinos and particles outside the detector can never leave a signal, and
    a detector that ignores primaries below a p_T threshold (COCOA: 1 GeV) never sees the
    ~90 % of minimum-bias particles below it, which at μ = 150 would otherwise be ~19k
    particles per event to carry through memory. ``pt_min`` is recorded in the file so a
    consumer can check it against its detector. ``process`` is the Pythia switch
    (``SoftQCD:inelastic = on``, the paper's "soft interactions"; its initialisation takes
    ~20 s once, ``SoftQCD:nonDiffractive = on`` ~1.5 s). Returns run statistics.
    """
    if n_events < 1:
        raise ValueError(f"n_events must be >= 1, got {n_events}")
    if pt_min < 0 or eta_max <= 0:
        raise ValueError(f"need pt_min >= 0 and eta_max > 0, got {pt_min}, {eta_max}")
    py = make_pythia([f"Beams:eCM = {sqrt_s}", process, *settings], seed)
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in LIBRARY_COLUMNS}
    counts: list[np.ndarray] = []
    done = 0
    while done < n_events:
        n = min(batch, n_events - done)
        prt = py.nextBatch(n, "skip").prt
        final = prt[prt.status > 0]
        pt = np.hypot(final.p.px, final.p.py)
        eta = pseudorapidity(final.p.pz, pt)
        invisible = ak.unflatten(
            np.isin(np.abs(ak.to_numpy(ak.flatten(final.id))), INVISIBLE_PIDS), ak.num(final)
        )
        keep = (abs(eta) < eta_max) & ~invisible & (pt > 0) & (pt >= pt_min)
        final = final[keep]
        cols = {
            "px": final.p.px, "py": final.p.py, "pz": final.p.pz, "E": final.p.e,
            "pid": final.id, "charge": _charge_lookup(py, final.id),
            "vx": _fill_vertex(final.vProd.px), "vy": _fill_vertex(final.vProd.py),
            "vz": _fill_vertex(final.vProd.pz),
        }  # fmt: skip
        for k, dt in LIBRARY_COLUMNS.items():
            chunks[k].append(ak.to_numpy(ak.flatten(cols[k])).astype(dt))
        counts.append(ak.to_numpy(ak.num(final)).astype(np.int64))
        done += len(final)
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    info = py.infoPython()
    run = {
        "format": LIBRARY_FORMAT,
        "n_events": n_events,
        "seed": seed,
        "sqrt_s": sqrt_s,
        "eta_max": eta_max,
        "pt_min": pt_min,
        "sigma_gen_mb": info.sigmaGen(),
        "settings": "\n".join([process, *settings]),
        "mean_particles": float(offsets[-1] / n_events),
    }
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for k, dt in LIBRARY_COLUMNS.items():
            f.create_dataset(k, data=np.concatenate(chunks[k]).astype(dt), track_times=False)
        f.create_dataset("offsets", data=offsets, track_times=False)
        for k, v in run.items():
            f.attrs[k] = v
    return run


def load_library(path: str | os.PathLike[str]) -> MinBiasLibrary:
    """Read a library written by :func:`generate_minbias_library` into memory."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"pile-up library {os.fspath(path)!r} does not exist; generate it with "
            "jetforge.generation.pileup.generate_minbias_library"
        )
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise PileupLibraryError(f"pile-up library {p}: not a readable HDF5 file ({exc})") from exc
    with f:
        missing = [k for k in (*LIBRARY_COLUMNS, "offsets") if k not in f]
        if missing:
            raise PileupLibraryError(f"pile-up library {p}: missing datasets {missing}")
        cols = {k: f[k][:] for k in LIBRARY_COLUMNS}
        offsets = f["offsets"][:].astype(np.int64)
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    n = offsets[-1] if offsets.size else -1
    if offsets.size < 2 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise PileupLibraryError(f"pile-up library {p}: 'offsets' must start at 0 and not decrease")
    bad = [k for k, v in cols.items() if v.shape != (n,)]
    if bad:
        raise PileupLibraryError(
            f"pile-up library {p}: columns {bad} do not have offsets[-1] = {n} entries"
        )
    return MinBiasLibrary(cols, offsets, os.fspath(p), attrs)


def overlay(
    particles: ak.Array,
    library: MinBiasLibrary | None,
    mu: float,
    rng: np.random.Generator,
    sigma_z: float = 50.0,
    hard_vz: np.ndarray | None = None,
    info: dict[str, Any] | None = None,
) -> ak.Array:
    """Add Poisson(``mu``) library events to every event of ``particles``.

    Each pile-up interaction gets its own vertex z ~ N(0, ``sigma_z``) mm (added to the
    library particles' vz); ``hard_vz`` (mm, one per event) shifts the hard-scatter
    particles, i.e. the primary vertex. Output: data contract 2 plus ``is_pu`` (bool),
    hard-scatter particles first. ``info``, if given, receives ``n_pu`` [n_events] and
    ``pu_vz`` (flat vertex z of all interactions, event-major). Cost: gathers from memory
    only, no generation. With ``mu = 0`` the library may be None (only the primary vertex
    shift and ``is_pu`` are applied).
    """
    if mu < 0 or not np.isfinite(mu):
        raise ValueError(f"pile-up mu must be a finite number >= 0, got {mu}")
    if mu > 0 and library is None:
        raise ValueError(f"pile-up mu = {mu} needs a minimum-bias library (got None)")
    if sigma_z < 0:
        raise ValueError(f"pile-up sigma_z must be >= 0 mm, got {sigma_z}")
    n = len(particles)
    fields = [f for f in LIBRARY_COLUMNS if f != "is_pu"]
    missing = [f for f in fields if f not in particles.fields]
    if missing:
        raise KeyError(f"particles lack fields {missing}; have {particles.fields}")
    hard = {f: particles[f] for f in fields}
    if hard_vz is not None:
        hard_vz = np.asarray(hard_vz, dtype=np.float64)
        if hard_vz.shape != (n,):
            raise ValueError(f"hard_vz must have one entry per event ({n}), got {hard_vz.shape}")
        hard["vz"] = hard["vz"] + hard_vz
    hard["is_pu"] = ak.values_astype(ak.zeros_like(particles["px"]), bool)
    if mu == 0 or library is None or library.n_events == 0:
        if info is not None:
            info.update(n_pu=np.zeros(n, np.int64), pu_vz=np.zeros(0))
        return ak.zip(hard)

    n_pu = rng.poisson(mu, size=n)
    total = int(n_pu.sum())
    pick = rng.integers(0, library.n_events, size=total)
    vz = rng.normal(0.0, sigma_z, size=total)
    counts = library.counts[pick]
    # flat library indices of every picked particle: start of its event + position in it
    src = np.repeat(library.offsets[pick] - (np.cumsum(counts) - counts), counts)
    src += np.arange(src.size, dtype=np.int64)
    pu_per_event = np.bincount(np.repeat(np.arange(n), n_pu), weights=counts, minlength=n)
    pu_per_event = pu_per_event.astype(np.int64)
    hard_counts = ak.to_numpy(ak.num(particles, axis=1)).astype(np.int64)
    out_counts = hard_counts + pu_per_event
    out_start = np.cumsum(out_counts) - out_counts
    # destination of each hard / pile-up particle in the merged flat arrays
    dst_hard = np.repeat(out_start - (np.cumsum(hard_counts) - hard_counts), hard_counts)
    dst_hard += np.arange(dst_hard.size, dtype=np.int64)
    pu_start = out_start + hard_counts
    dst_pu = np.repeat(pu_start - (np.cumsum(pu_per_event) - pu_per_event), pu_per_event)
    dst_pu += np.arange(dst_pu.size, dtype=np.int64)
    size = int(out_counts.sum())
    cols: dict[str, np.ndarray] = {}
    for f in fields:
        dt = np.int64 if f == "pid" else np.float64
        col = np.empty(size, dtype=dt)
        col[dst_hard] = ak.to_numpy(ak.flatten(hard[f], axis=1))
        pu_col = library.columns[f][src]
        if f == "vz":
            pu_col = pu_col + np.repeat(vz, counts)
        col[dst_pu] = pu_col
        cols[f] = col
    is_pu = np.zeros(size, dtype=bool)
    is_pu[dst_pu] = True
    cols["is_pu"] = is_pu
    if info is not None:
        info.update(n_pu=n_pu, pu_vz=vz)
    names = [*fields, "is_pu"]
    content = ak.contents.RecordArray([ak.contents.NumpyArray(cols[k]) for k in names], names)
    offsets = np.concatenate([[0], np.cumsum(out_counts)]).astype(np.int64)
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), content))
