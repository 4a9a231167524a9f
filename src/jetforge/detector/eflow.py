"""Parametric CMS-like E-flow detector, a vectorised re-implementation of Delphes' chain.

Why re-implement rather than call Delphes: the RS3L samples (arXiv:2403.07066, §II B) are
Delphes CMS E-flow candidates, but Delphes needs ROOT and HepMC files on disk; this model
runs in memory on awkward arrays at >10k events/s and is driven by a YAML card whose numbers
are transcribed from ``delphes_card_CMS.tcl`` (see ``resources/detectors/cms_eflow.yaml``).

What is modelled, in Delphes' order:

1. invisible particles (card ``invisible_pids``) and particles produced outside the
   tracker cylinder are dropped (``ParticlePropagator``);
2. every visible particle is propagated to the calorimeter surface: straight lines for
   neutrals, helices in the solenoid field for charged particles (soft ones curl into the
   endcap or never arrive), which sets the tower it deposits in;
3. charged particles are tracked with a (pT, |eta|) efficiency per class (electron, muon,
   charged hadron) and their pT is log-normally smeared (``Efficiency``,
   ``MomentumSmearing``); impact parameters d0, dz are computed in the straight-line
   approximation from the production vertex and Gaussian-smeared;
4. each calorimeter (ECAL then HCAL, ``SimpleCalorimeter``) sums the true deposits per
   (eta, phi) tower, smears the sum log-normally, applies the energy and significance
   thresholds, and turns the excess over the tower's track energy into one neutral
   candidate (photon for the ECAL, neutral hadron for the HCAL) at the tower position; when
   the excess is not significant it rescales the tower's tracks to the weighted mean of
   track and calorimeter measurements, as Delphes does.

Simplifications (documented so that nobody mistakes them for Delphes features): the helix
starts at the origin, not at the production vertex; tracks are kept even when their
calorimeter impact falls outside the tower grid; the track error used in the calorimeter
significance is ``resolution * E_track * fraction``; the impact-parameter resolution has no
|eta| dependence. Candidates are ordered per event as tracks, ECAL neutrals, HCAL neutrals
(Delphes' ``EFlowMerger`` order); consumers sort by pT themselves.

Randomness: every draw comes from the passed ``numpy.random.Generator`` in a fixed order with
sizes fixed by the input, so one seed gives bit-identical output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from jetforge.jets.kinematics import pseudorapidity, wrap_phi
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")


#: Fields every input particle record must have (data contract, format 2).
INPUT_FIELDS: tuple[str, ...] = ("px", "py", "pz", "E", "pid", "charge", "vx", "vy", "vz")
#: Fields of every output candidate (data contract, format 3), in output order.
OUTPUT_FIELDS: tuple[str, ...] = (
    "px", "py", "pz", "E", "charge",
    "is_electron", "is_muon", "is_photon", "is_ch", "is_nh",
    "d0", "dz", "d0_err", "dz_err",
)  # fmt: skip

#: Track classes: (card key under tracking.efficiency / momentum_resolution, output flag).
TRACK_CLASSES: tuple[tuple[str, str], ...] = (
    ("charged_hadron", "is_ch"),
    ("electron", "is_electron"),
    ("muon", "is_muon"),
)
#: Neutral candidate kinds a calorimeter may publish, with their output flag.
CANDIDATE_FLAGS: dict[str, str] = {"photon": "is_photon", "neutral_hadron": "is_nh"}

# pT [GeV] = C_LIGHT * |q| * B [T] * r [m]: the curvature radius of a charged helix.
C_LIGHT = 0.299792458


class CardError(ValueError):
    """A detector card is malformed; the message names the offending key and value."""


# --------------------------------------------------------------------------------------
# Card parsing: turn the YAML mapping into validated numpy tables once per call.
# --------------------------------------------------------------------------------------


def _get(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    """``mapping[key]`` with an error that names the full card path when it is missing."""
    if not isinstance(mapping, Mapping):
        raise CardError(f"card: {where} must be a mapping, got {type(mapping).__name__}")
    if key not in mapping:
        raise CardError(f"card: missing key '{where}.{key}'")
    return mapping[key]


def _float_array(value: Any, where: str, ndim: int = 1) -> np.ndarray:
    """Numeric array from a card list; rejects ragged or non-numeric values by name."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CardError(f"card: '{where}' must be numeric, got {value!r}") from exc
    if arr.ndim != ndim:
        raise CardError(f"card: '{where}' must be {ndim}-d, got {value!r}")
    if np.isnan(arr).any():
        raise CardError(f"card: '{where}' contains NaN: {value!r}")
    return arr


def _edges(value: Any, where: str) -> np.ndarray:
    """Strictly increasing bin edges (at least one bin)."""
    arr = _float_array(value, where)
    if arr.size < 2 or not np.all(np.diff(arr) > 0):
        raise CardError(f"card: '{where}' must be >= 2 strictly increasing edges, got {value!r}")
    return arr


@dataclass(frozen=True)
class Table2D:
    """Piecewise-constant f(|eta|, pT) with Delphes' (lo, hi] bins; 0 outside."""

    abs_eta_edges: np.ndarray
    pt_edges: np.ndarray
    values: np.ndarray  # [n_eta_bins, n_pt_bins]

    def __call__(self, abs_eta: np.ndarray, pt: np.ndarray) -> np.ndarray:
        ie, in_e = _bin_index(self.abs_eta_edges, abs_eta)
        ip, in_p = _bin_index(self.pt_edges, pt)
        return np.where(in_e & in_p, self.values[ie, ip], 0.0)


@dataclass(frozen=True)
class TrackResolution:
    """sigma(pT)/pT = sqrt(a^2 + (b pT)^2) per |eta| bin (Delphes MomentumSmearing)."""

    abs_eta_edges: np.ndarray
    a: np.ndarray
    b: np.ndarray

    def __call__(self, abs_eta: np.ndarray, pt: np.ndarray) -> np.ndarray:
        ie, inside = _bin_index(self.abs_eta_edges, abs_eta)
        return np.where(inside, np.hypot(self.a[ie], self.b[ie] * pt), 0.0)


@dataclass(frozen=True)
class IPResolution:
    """sigma(pT) = sqrt(a^2 + (b/pT)^2) in mm: constant term plus multiple scattering."""

    a_mm: float
    b_mm_gev: float

    def __call__(self, pt: np.ndarray) -> np.ndarray:
        return np.hypot(self.a_mm, self.b_mm_gev / pt)


@dataclass(frozen=True)
class CaloResolution:
    """sigma(E) = (p0 + p2 (|eta|-eta0)^2) sqrt((C E)^2 + S^2 E + N^2), per |eta| region."""

    abs_eta_max: np.ndarray
    p0: np.ndarray
    p2: np.ndarray
    eta0: np.ndarray
    S: np.ndarray
    N: np.ndarray
    C: np.ndarray

    def __call__(self, abs_eta: np.ndarray, energy: np.ndarray) -> np.ndarray:
        i = count_less(self.abs_eta_max, abs_eta)
        inside = i < self.abs_eta_max.size
        i = np.minimum(i, self.abs_eta_max.size - 1)
        scale = self.p0[i] + self.p2[i] * (abs_eta - self.eta0[i]) ** 2
        e = np.maximum(energy, 0.0)
        sigma = scale * np.sqrt((self.C[i] * e) ** 2 + self.S[i] ** 2 * e + self.N[i] ** 2)
        return np.where(inside, sigma, 0.0)


@dataclass(frozen=True)
class TowerGrid:
    """(eta, phi) towers: signed eta bin edges, each eta bin with its own phi segmentation."""

    eta_edges: np.ndarray  # ascending, symmetric
    nphi: np.ndarray  # int64 per eta bin
    offset: np.ndarray  # first tower id of each eta bin
    n_towers: int

    def locate(self, eta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tower id of each (eta, phi) and whether it lies inside the grid."""
        ieta, inside = _bin_index(self.eta_edges, eta)
        nphi = self.nphi[ieta]
        iphi = np.floor((phi + np.pi) * (nphi / (2.0 * np.pi))).astype(np.int64)
        iphi = np.clip(iphi, 0, nphi - 1)
        return self.offset[ieta] + iphi, inside

    @cached_property
    def _eta_bin_of_tower(self) -> np.ndarray | None:
        """η bin of every tower id (towers offset[k] … offset[k] + nphi[k] - 1 are η bin
        k), or None when ``offset`` is not that layout: a lookup instead of a search."""
        start = np.concatenate([[0], np.cumsum(self.nphi)[:-1]])
        if not (np.all(self.nphi >= 1) and np.array_equal(start, self.offset)):
            return None
        return np.repeat(np.arange(self.nphi.size), self.nphi)

    def bounds(self, tower: np.ndarray) -> tuple[np.ndarray, ...]:
        """(eta_lo, eta_hi, phi_lo, phi_hi) of each tower id."""
        tower = np.asarray(tower)
        table = self._eta_bin_of_tower
        if table is not None and tower.size and 0 <= tower.min() and tower.max() < table.size:
            ieta = table[tower]
        else:
            ieta = np.searchsorted(self.offset, tower, side="right") - 1
        iphi = tower - self.offset[ieta]
        width = 2.0 * np.pi / self.nphi[ieta]
        phi_lo = -np.pi + iphi * width
        return self.eta_edges[ieta], self.eta_edges[ieta + 1], phi_lo, phi_lo + width


@dataclass(frozen=True)
class Calorimeter:
    """One SimpleCalorimeter: grid, resolution, thresholds and energy fractions."""

    name: str
    flag: str
    energy_min: float
    significance_min: float
    smear_tower_center: bool
    fraction_pids: np.ndarray  # sorted |pid| keys
    fraction_values: np.ndarray
    fraction_default: float
    resolution: CaloResolution
    grid: TowerGrid

    def fraction(self, abs_pid: np.ndarray) -> np.ndarray:
        """Energy fraction deposited here by each particle, from its |PDG id|.

        A dense table over 0 … max key (the card's keys are small |PDG ids|; anything
        above or negative gets the default) instead of a binary search per particle.
        """
        keys = self.fraction_pids
        if keys.size == 0:
            return np.full(abs_pid.shape, self.fraction_default)
        top = int(keys[-1]) + 1
        table = np.full(top + 1, self.fraction_default, dtype=np.float64)
        table[keys] = self.fraction_values
        i = np.where((abs_pid >= 0) & (abs_pid < top), abs_pid, top)
        return table[i]


@dataclass(frozen=True)
class EflowConfig:
    """Validated, array-valued form of an ``eflow`` card."""

    invisible_pids: np.ndarray
    radius_m: float
    half_length_m: float
    bz_tesla: float
    efficiency: dict[str, Table2D]
    momentum_resolution: dict[str, TrackResolution]
    d0_resolution: IPResolution
    dz_resolution: IPResolution
    calorimeters: tuple[Calorimeter, ...]
    #: Delphes' ``UseMomentumVector`` of its Efficiency and MomentumSmearing modules: False
    #: (Delphes' default) evaluates efficiency and resolution at the |eta| of the particle's
    #: calorimeter-surface position, True at the |eta| of its momentum.
    use_momentum_vector: bool = True


#: Up to this many edges, :func:`count_less` compares against each edge in turn.
_FEW_EDGES = 8


class _EdgeTable:
    """``np.searchsorted(edges, x, side="left")`` through a uniform cell table.

    Why: a binary search per particle over the ~360 ECAL η edges costs ~0.1 µs per
    element (a tenth of the whole detector). Here x's cell on a uniform grid over the
    finite edges gives a lower bound on the answer (the count of edges below the cell
    *before* x's, so that rounding in the cell arithmetic cannot overshoot), and at most
    ``steps`` vectorised comparisons with the edges themselves finish the count: the result
    is exactly the binary search's (checked in ``tests/test_generation_fastpath.py``).
    """

    def __init__(self, edges: np.ndarray) -> None:
        finite = int(np.isfinite(edges).sum())
        if finite < 2 or not np.all(np.isfinite(edges[:finite])) or np.any(
            edges[finite:] != np.inf
        ):
            raise ValueError("edges must be finite, optionally followed by +inf")
        self.edges = edges
        self.padded = np.append(edges, np.inf)  # a sentinel no x is above
        self.lo = float(edges[0])
        span = float(edges[finite - 1]) - self.lo
        for per_edge in (4, 16, 64):
            n_cells = per_edge * finite
            h = span / n_cells
            cells = np.arange(n_cells, dtype=np.float64)
            start = np.searchsorted(edges, self.lo + (cells - 1.0) * h, side="left")
            stop = np.searchsorted(edges, self.lo + (cells + 2.0) * h, side="left")
            self.steps = int((stop - start).max())
            if self.steps <= 3:
                break
        self.n_cells, self.inv_h = n_cells, 1.0 / h
        self.start = start.astype(np.intp)

    def count_less(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            cell = (x - self.lo) * self.inv_h
            nan = np.isnan(cell.sum())
        if nan:  # NaN (or inf - inf): the binary search knows what to do
            return np.searchsorted(self.edges, x, side="left")
        np.floor(cell, out=cell)
        np.clip(cell, 0, self.n_cells - 1, out=cell)
        count = self.start[cell.astype(np.intp)]
        for _ in range(self.steps):
            count += self.padded[count] < x
        return count


_EDGE_TABLES: dict[bytes, _EdgeTable | None] = {}


def count_less(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Number of ``edges`` (sorted) strictly below each x: ``np.searchsorted(edges, x)``."""
    edges = np.asarray(edges, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if edges.size <= _FEW_EDGES:
        # n - #(x <= e) = #(e < x), and n for NaN, as the binary search gives
        count = np.full(x.shape, edges.size, dtype=np.intp)
        for e in edges.tolist():
            count -= x <= e
        return count
    key = edges.tobytes()
    if key not in _EDGE_TABLES:
        try:
            _EDGE_TABLES[key] = _EdgeTable(edges.copy())
        except ValueError:
            _EDGE_TABLES[key] = None
    table = _EDGE_TABLES[key]
    if table is None:
        return np.searchsorted(edges, x, side="left")
    return table.count_less(x)


def _bin_index(edges: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin of x in (lo, hi] bins (Delphes' ``lower_bound``), clipped, plus an inside mask."""
    i = count_less(edges, x) - 1
    inside = (i >= 0) & (i < edges.size - 1)
    # x exactly on the first edge (e.g. pT = 0 or |eta| = 0) belongs to the first bin.
    at_first = x == edges[0]
    inside |= at_first
    i = np.where(at_first, 0, i)
    return np.clip(i, 0, edges.size - 2), inside


def _parse_table(raw: Any, where: str) -> Table2D:
    eta = _edges(_get(raw, "abs_eta_edges", where), f"{where}.abs_eta_edges")
    pt = _edges(_get(raw, "pt_edges", where), f"{where}.pt_edges")
    values = _float_array(_get(raw, "values", where), f"{where}.values", ndim=2)
    if values.shape != (eta.size - 1, pt.size - 1):
        raise CardError(
            f"card: '{where}.values' has shape {values.shape}, expected "
            f"({eta.size - 1}, {pt.size - 1}) from the edges"
        )
    if (values < 0).any() or (values > 1).any():
        raise CardError(f"card: '{where}.values' must lie in [0, 1], got {values.tolist()}")
    return Table2D(eta, pt, values)


def _parse_track_resolution(raw: Any, where: str) -> TrackResolution:
    eta = _edges(_get(raw, "abs_eta_edges", where), f"{where}.abs_eta_edges")
    a = _float_array(_get(raw, "a", where), f"{where}.a")
    b = _float_array(_get(raw, "b", where), f"{where}.b")
    if a.size != eta.size - 1 or b.size != eta.size - 1:
        raise CardError(f"card: '{where}.a' and '.b' need {eta.size - 1} values (one per bin)")
    return TrackResolution(eta, a, b)


def _parse_ip(raw: Any, where: str) -> IPResolution:
    a = float(_get(raw, "a_mm", where))
    b = float(_get(raw, "b_mm_gev", where))
    if a < 0 or b < 0:
        raise CardError(f"card: '{where}' resolutions must be >= 0, got a={a}, b={b}")
    return IPResolution(a, b)


def _parse_grid(raw: Any, where: str) -> TowerGrid:
    if not isinstance(raw, list) or not raw:
        raise CardError(f"card: '{where}' must be a non-empty list of regions, got {raw!r}")
    pos_edges: list[float] = [0.0]
    nphi: list[int] = []
    for k, region in enumerate(raw):
        rw = f"{where}[{k}]"
        n = int(_get(region, "nphi", rw))
        if n < 1:
            raise CardError(f"card: '{rw}.nphi' must be >= 1, got {n}")
        if "edges" in region:
            new = list(_float_array(region["edges"], f"{rw}.edges"))
        else:
            eta_max = float(_get(region, "abs_eta_max", rw))
            deta = float(_get(region, "deta", rw))
            steps = int(round((eta_max - pos_edges[-1]) / deta)) if deta > 0 else 0
            if steps < 1 or abs(pos_edges[-1] + steps * deta - eta_max) > 1e-6:
                raise CardError(
                    f"card: '{rw}': deta={deta} does not tile {pos_edges[-1]}..{eta_max}"
                )
            new = [pos_edges[-1] + j * deta for j in range(1, steps + 1)]
            new[-1] = eta_max
        if not new or new[0] <= pos_edges[-1] or np.any(np.diff(new) <= 0):
            raise CardError(f"card: '{rw}' edges must increase beyond {pos_edges[-1]}")
        pos_edges += new
        nphi += [n] * len(new)
    pos = np.asarray(pos_edges)
    eta_edges = np.concatenate([-pos[:0:-1], pos])
    nphi_all = np.asarray(nphi[::-1] + nphi, dtype=np.int64)
    offset = np.concatenate([[0], np.cumsum(nphi_all)[:-1]]).astype(np.int64)
    return TowerGrid(eta_edges, nphi_all, offset, int(nphi_all.sum()))


def _parse_calo_resolution(raw: Any, where: str) -> CaloResolution:
    if not isinstance(raw, list) or not raw:
        raise CardError(f"card: '{where}' must be a non-empty list of regions, got {raw!r}")
    cols = {k: [] for k in ("abs_eta_max", "p0", "p2", "eta0", "S", "N", "C")}
    for k, region in enumerate(raw):
        for key, col in cols.items():
            col.append(float(_get(region, key, f"{where}[{k}]")))
    arrays = {k: np.asarray(v) for k, v in cols.items()}
    if np.any(np.diff(arrays["abs_eta_max"]) <= 0):
        raise CardError(f"card: '{where}' abs_eta_max must increase, got {cols['abs_eta_max']}")
    return CaloResolution(**arrays)


def _parse_calorimeter(raw: Any, where: str) -> Calorimeter:
    kind = _get(raw, "candidate", where)
    if kind not in CANDIDATE_FLAGS:
        raise CardError(
            f"card: '{where}.candidate' = {kind!r}; expected one of {sorted(CANDIDATE_FLAGS)}"
        )
    fractions = _get(raw, "fractions", where)
    if not isinstance(fractions, Mapping):
        raise CardError(f"card: '{where}.fractions' must map |pid| -> fraction")
    try:
        table = {int(k): float(v) for k, v in fractions.items()}
    except (TypeError, ValueError) as exc:
        raise CardError(f"card: '{where}.fractions' has a non-numeric entry: {fractions}") from exc
    if any(not 0.0 <= v <= 1.0 for v in table.values()):
        raise CardError(f"card: '{where}.fractions' values must lie in [0, 1]: {table}")
    default = table.pop(0, 0.0)
    keys = np.asarray(sorted(table), dtype=np.int64)
    return Calorimeter(
        name=str(_get(raw, "name", where)),
        flag=CANDIDATE_FLAGS[kind],
        energy_min=float(_get(raw, "energy_min", where)),
        significance_min=float(_get(raw, "significance_min", where)),
        smear_tower_center=bool(_get(raw, "smear_tower_center", where)),
        fraction_pids=keys,
        fraction_values=np.asarray([table[k] for k in keys.tolist()], dtype=np.float64),
        fraction_default=default,
        resolution=_parse_calo_resolution(_get(raw, "resolution", where), f"{where}.resolution"),
        grid=_parse_grid(_get(raw, "towers", where), f"{where}.towers"),
    )


def _parse_flag(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    """An optional boolean card key (YAML true/false only: a typo must not read as True)."""
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise CardError(f"card: 'tracking.{key}' must be true or false, got {value!r}")
    return value


def parse_card(card: Mapping[str, Any]) -> EflowConfig:
    """Validate an ``eflow`` card and convert it to arrays; errors name the bad key."""
    prop = _get(card, "propagator", "card")
    trk = _get(card, "tracking", "card")
    eff = _get(trk, "efficiency", "tracking")
    res = _get(trk, "momentum_resolution", "tracking")
    ip = _get(trk, "impact_parameter", "tracking")
    calos = _get(card, "calorimeters", "card")
    if not isinstance(calos, list) or not calos:
        raise CardError(f"card: 'calorimeters' must be a non-empty list, got {calos!r}")
    config = EflowConfig(
        invisible_pids=np.asarray(sorted(int(p) for p in card.get("invisible_pids", []))),
        radius_m=float(_get(prop, "radius_m", "propagator")),
        half_length_m=float(_get(prop, "half_length_m", "propagator")),
        bz_tesla=float(_get(prop, "bz_tesla", "propagator")),
        efficiency={
            k: _parse_table(_get(eff, k, "tracking.efficiency"), f"tracking.efficiency.{k}")
            for k, _ in TRACK_CLASSES
        },
        momentum_resolution={
            k: _parse_track_resolution(
                _get(res, k, "tracking.momentum_resolution"), f"tracking.momentum_resolution.{k}"
            )
            for k, _ in TRACK_CLASSES
        },
        d0_resolution=_parse_ip(_get(ip, "d0", "tracking.impact_parameter"), "impact_parameter.d0"),
        dz_resolution=_parse_ip(_get(ip, "dz", "tracking.impact_parameter"), "impact_parameter.dz"),
        calorimeters=tuple(
            _parse_calorimeter(c, f"calorimeters[{i}]") for i, c in enumerate(calos)
        ),
        use_momentum_vector=_parse_flag(trk, "use_momentum_vector", True),
    )
    if min(config.radius_m, config.half_length_m, config.bz_tesla) <= 0:
        raise CardError(f"card: 'propagator' values must be > 0, got {dict(prop)}")
    return config


# --------------------------------------------------------------------------------------
# Physics helpers on flat numpy arrays.
# --------------------------------------------------------------------------------------


def log_normal(mean: np.ndarray, sigma: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Log-normal variate with the given mean and standard deviation (Delphes ``LogNormal``).

    Why log-normal: it never goes negative, and its mean and width equal the configured ones
    exactly, so smearing is unbiased and the resolution is the card's number. ``z`` are
    standard-normal draws; ``mean <= 0`` gives 0.
    """
    safe = np.where(mean > 0, mean, 1.0)
    b = np.sqrt(np.log1p((sigma / safe) ** 2))
    a = np.log(safe) - 0.5 * b * b
    return np.where(mean > 0, np.exp(a + b * z), 0.0)


def impact_parameters(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray,
    vx: np.ndarray, vy: np.ndarray, vz: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """True (d0, dz) in mm of a straight line from vertex (vx, vy, vz) along p.

    d0 = (vx py - vy px)/pT is the signed transverse distance of closest approach to the
    beam axis, dz the z of that point: vz - (vx px + vy py) pz / pT^2. The straight line is
    the high-pT limit of the helix (curvature over mm distances is negligible above ~1 GeV).
    """
    pt2 = px * px + py * py
    pt = np.sqrt(pt2)
    d0 = (vx * py - vy * px) / pt
    dz = vz - (vx * px + vy * py) * pz / pt2
    return d0, dz


def born_inside(
    vx: np.ndarray, vy: np.ndarray, vz: np.ndarray, radius_m: float, half_length_m: float
) -> np.ndarray:
    """Production vertex (mm) inside the tracker cylinder: hypot(vx, vy) <= R, |vz| <= L.

    ``np.hypot`` is a slow libm call; it runs only where |vx| or |vy| exceeds R/2 (or is
    NaN), since elsewhere the transverse distance is at most R/sqrt(2) < R: the same mask.
    """
    r_mm = 1000.0 * radius_m
    near = (np.abs(vx) <= 0.5 * r_mm) & (np.abs(vy) <= 0.5 * r_mm)  # False for NaN
    inside = np.abs(vz) <= 1000.0 * half_length_m
    far = np.flatnonzero(~near)
    inside[far] &= np.hypot(vx[far], vy[far]) <= r_mm
    return inside


def calo_impact(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, pz: np.ndarray, charge: np.ndarray,
    radius_m: float, half_length_m: float, bz_tesla: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(eta, phi) where each particle meets the calorimeter cylinder, and whether it does.

    Neutral particles fly straight. A charged particle moves on a helix of radius
    r = pT / (0.3 |q| B) starting along phi at the origin; after turning by alpha its
    transverse distance is 2 r sin(alpha/2) along phi - sign(qB) alpha/2 and it has advanced
    r alpha pz/pT in z. It exits through the barrel (radius R) if 2 r >= R, else through an
    endcap (|z| = L), whichever comes first, as in Delphes' ParticlePropagator. Soft
    particles therefore land far from their momentum direction, which is where the energy
    of untracked soft charged hadrons ends up.
    """
    eta_c = eta.copy()
    phi_c = phi.copy()
    reach = np.ones(pt.shape, dtype=bool)
    q = charge != 0
    if q.any():
        ptq, pzq = pt[q], pz[q]
        r = ptq / (C_LIGHT * np.abs(charge[q]) * bz_tesla)
        ratio = radius_m / (2.0 * r)
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha_r = np.where(ratio <= 1.0, 2.0 * np.arcsin(np.minimum(ratio, 1.0)), np.inf)
            alpha_l = np.where(pzq != 0, half_length_m * ptq / (r * np.abs(pzq)), np.inf)
        alpha = np.minimum(alpha_r, alpha_l)
        ok = np.isfinite(alpha)
        alpha = np.where(ok, alpha, 0.0)
        rho = 2.0 * r * np.abs(np.sin(0.5 * alpha))
        z = r * alpha * pzq / ptq
        with np.errstate(divide="ignore", invalid="ignore"):
            eta_q = np.arcsinh(z / rho)
        ok &= rho > 0
        turn = np.sign(charge[q] * bz_tesla) * 0.5 * alpha
        eta_c[q] = np.where(ok, eta_q, 0.0)
        phi_c[q] = wrap_phi(phi[q] - turn)
        reach[q] = ok
    return eta_c, phi_c, reach


# --------------------------------------------------------------------------------------
# The detector.
# --------------------------------------------------------------------------------------


def _flat(particles: ak.Array) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Flat numpy columns of all particles plus the per-event counts."""
    missing = [f for f in INPUT_FIELDS if f not in particles.fields]
    if missing:
        raise KeyError(f"particles lack fields {missing}; have {particles.fields}")
    counts = ak.to_numpy(ak.num(particles, axis=1)).astype(np.int64)
    cols = {}
    for f in INPUT_FIELDS:
        col = ak.to_numpy(ak.flatten(particles[f], axis=1))
        cols[f] = col.astype(np.int64 if f == "pid" else np.float64, copy=False)
    return cols, counts


def _to_awkward(cols: dict[str, np.ndarray], counts: np.ndarray) -> ak.Array:
    """Flat candidate columns, already grouped by event, as ``var * {OUTPUT_FIELDS}``."""
    content = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.ascontiguousarray(cols[f])) for f in OUTPUT_FIELDS],
        list(OUTPUT_FIELDS),
        length=int(np.sum(counts)),
    )
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), content))


def simulate(
    particles: ak.Array, card: Mapping[str, Any] | EflowConfig, rng: np.random.Generator
) -> ak.Array:
    """Detector-level E-flow candidates (format 3) from final-state particles (format 2).

    ``card`` is a parsed ``eflow`` detector card (or its :func:`parse_card` result);
    ``rng`` the only source of randomness. The work is done by :func:`simulate_flat`.
    """
    cfg = card if isinstance(card, EflowConfig) else parse_card(card)
    p, counts = _flat(particles)
    cols, out_counts = simulate_flat(p, counts, cfg, rng)
    return _to_awkward(cols, out_counts)


def simulate_flat(
    p: Mapping[str, np.ndarray],
    counts: np.ndarray,
    cfg: EflowConfig,
    rng: np.random.Generator,
    fields: tuple[str, ...] = OUTPUT_FIELDS,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """:func:`simulate` on flat columns: (candidate columns grouped by event, counts).

    ``p`` holds the :data:`INPUT_FIELDS` of all particles of all events, event after event,
    ``counts`` the particles per event. The output columns ``fields`` (a subset of
    :data:`OUTPUT_FIELDS`; all by default) are float64, the candidates of event 0 first,
    in the order of :func:`simulate`. Every random draw happens whatever ``fields`` asks
    for, so a subset is the same candidates' columns.
    """
    unknown = sorted(set(fields) - set(OUTPUT_FIELDS))
    if unknown:
        raise KeyError(f"unknown candidate fields {unknown}; known: {OUTPUT_FIELDS}")
    p = {
        f: np.asarray(p[f], dtype=np.int64 if f == "pid" else np.float64) for f in INPUT_FIELDS
    }
    counts = np.asarray(counts, dtype=np.int64)
    n_events = counts.size
    evt = np.repeat(np.arange(n_events, dtype=np.int64), counts)

    # 1. drop invisibles and particles born outside the tracker volume.
    apid = np.abs(p["pid"])
    keep = ~np.isin(apid, cfg.invisible_pids)
    keep &= born_inside(p["vx"], p["vy"], p["vz"], cfg.radius_m, cfg.half_length_m)
    pt_all = np.hypot(p["px"], p["py"])
    keep &= pt_all > 0  # a particle along the beam never reaches a detector
    kept = np.flatnonzero(keep)  # one index for all columns (vertices: tracks only, below)
    evt, apid, pt = evt[kept], apid[kept], pt_all[kept]
    px, py, pz, energy, charge = (p[k][kept] for k in ("px", "py", "pz", "E", "charge"))
    eta = pseudorapidity(pz, pt, floor=0.0)
    phi = np.arctan2(py, px)
    abs_eta = np.abs(eta)
    mass2 = np.maximum(energy**2 - (pt**2 + pz**2), 0.0)

    # 2. where each particle hits the calorimeter surface.
    eta_c, phi_c, reach = calo_impact(
        pt, eta, phi, pz, charge, cfg.radius_m, cfg.half_length_m, cfg.bz_tesla
    )

    # 3. tracking: efficiency, pT smearing, impact parameters.
    charged = charge != 0
    cls = np.where(apid == 11, 1, np.where(apid == 13, 2, 0))  # index into TRACK_CLASSES
    eff = np.zeros(pt.shape)
    res = np.zeros(pt.shape)
    # Delphes' Efficiency/MomentumSmearing read eta from the propagated Position unless
    # UseMomentumVector: soft charged particles that curl into the endcap then sit at
    # |eta| > 2.5 and are not tracked (docs/validation/delphes.md)
    trk_eta = abs_eta if cfg.use_momentum_vector else np.abs(eta_c)
    for k, (name, _flag) in enumerate(TRACK_CLASSES):
        m = charged & (cls == k)
        eff[m] = cfg.efficiency[name](trk_eta[m], pt[m])
        res[m] = cfg.momentum_resolution[name](trk_eta[m], pt[m])
    u = rng.random(int(charged.sum()))
    tracked = np.zeros(pt.shape, dtype=bool)
    tracked[charged] = u < eff[charged]
    it = np.flatnonzero(tracked)
    z_pt = rng.standard_normal(it.size)
    z_ip = rng.standard_normal((2, it.size))
    scale = log_normal(pt[it], res[it] * pt[it], z_pt) / pt[it]
    t_px, t_py, t_pz = px[it] * scale, py[it] * scale, pz[it] * scale
    t_e = np.sqrt(t_px**2 + t_py**2 + t_pz**2 + mass2[it])
    d0_true, dz_true = impact_parameters(
        px[it], py[it], pz[it], *(p[k][kept[it]] for k in ("vx", "vy", "vz"))
    )
    d0_err = cfg.d0_resolution(pt[it])
    dz_err = cfg.dz_resolution(pt[it])
    d0 = d0_true + d0_err * z_ip[0]
    dz = dz_true + dz_err * z_ip[1]

    # 4. calorimeters, in card order; each may rescale the tracks it is associated with.
    neutrals: list[dict[str, np.ndarray]] = []
    for calo in cfg.calorimeters:
        t_scale, cand = _calorimeter(
            calo, rng, evt, energy, apid, eta_c, phi_c, reach, it, t_e, res[it]
        )
        t_px, t_py, t_pz = t_px * t_scale, t_py * t_scale, t_pz * t_scale
        t_e = np.sqrt(t_px**2 + t_py**2 + t_pz**2 + mass2[it])
        neutrals.append(cand)

    # 5. assemble: tracks first, then each calorimeter's neutrals.
    zeros_t = np.zeros(it.size)
    tracks = {
        "evt": evt[it], "px": t_px, "py": t_py, "pz": t_pz, "E": t_e, "charge": charge[it],
        "d0": d0, "dz": dz, "d0_err": d0_err, "dz_err": dz_err,
        "is_photon": zeros_t, "is_nh": zeros_t,
    }  # fmt: skip
    for k, (_name, flag) in enumerate(TRACK_CLASSES):
        tracks[flag] = (cls[it] == k).astype(np.float64)
    parts = [tracks, *neutrals]
    out_evt = np.concatenate([part["evt"] for part in parts]).astype(np.int64)
    # stable: per event, tracks then each calorimeter's neutrals (EFlowMerger order)
    order = np.argsort(out_evt, kind="stable")
    cols = {f: np.concatenate([part[f] for part in parts])[order] for f in fields}
    return cols, np.bincount(out_evt, minlength=n_events).astype(np.int64)


def unique_inverse(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` for integer keys, the same two arrays.

    Why: ``np.unique`` orders the keys with a comparison ``argsort`` (a seventh of the
    detector's time); keys in [0, 2^32) are ordered here by two stable radix passes over
    16-bit digits (numpy's stable sort of uint16 is a counting sort).
    """
    keys = np.asarray(keys)
    if keys.ndim != 1 or keys.size == 0 or keys.dtype.kind not in "iu":
        return np.unique(keys, return_inverse=True)
    if keys.min() < 0 or keys.max() >= 1 << 32:
        return np.unique(keys, return_inverse=True)
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    order = order[np.argsort((keys[order] >> 16).astype(np.uint16), kind="stable")]
    ordered = keys[order]
    first = np.empty(ordered.size, dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(ordered.size, dtype=np.intp)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def _calorimeter(
    calo: Calorimeter,
    rng: np.random.Generator,
    evt: np.ndarray,
    energy: np.ndarray,
    apid: np.ndarray,
    eta_c: np.ndarray,
    phi_c: np.ndarray,
    reach: np.ndarray,
    it: np.ndarray,
    t_e: np.ndarray,
    t_res: np.ndarray,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One Delphes SimpleCalorimeter over all events at once.

    Returns the per-track momentum scale factor (1 where untouched) and the neutral
    candidates as flat columns with an ``evt`` column. Towers are keyed by
    ``event * n_towers + tower`` so one :func:`unique_inverse` groups every event's towers.
    """
    frac = calo.fraction(apid)
    tower, in_grid = calo.grid.locate(eta_c, phi_c)
    dep = np.flatnonzero(reach & in_grid & (frac > 0))
    trk_sel = (reach & in_grid & (frac > 0))[it]
    trk = np.flatnonzero(trk_sel)  # indices into the track arrays
    n_t = calo.grid.n_towers
    key_dep = evt[dep] * n_t + tower[dep]
    key_trk = evt[it[trk]] * n_t + tower[it[trk]]
    keys, inv = unique_inverse(np.concatenate([key_dep, key_trk]))
    inv_dep, inv_trk = inv[: dep.size], inv[dep.size :]
    n = keys.size

    tower_e = np.bincount(inv_dep, energy[dep] * frac[dep], minlength=n)
    trk_energy = t_e[trk] * frac[it[trk]]
    trk_e = np.bincount(inv_trk, trk_energy, minlength=n)
    trk_var = np.bincount(inv_trk, (t_res[trk] * trk_energy) ** 2, minlength=n)

    tower_id = keys % n_t
    eta_lo, eta_hi, phi_lo, phi_hi = calo.grid.bounds(tower_id)
    abs_eta_t = np.abs(0.5 * (eta_lo + eta_hi))
    measured = log_normal(tower_e, calo.resolution(abs_eta_t, tower_e), rng.standard_normal(n))
    sigma = calo.resolution(abs_eta_t, measured)
    fails = (measured < calo.energy_min) | (measured < calo.significance_min * sigma)
    measured = np.where(fails, 0.0, measured)

    neutral = np.maximum(measured - trk_e, 0.0)
    total_sigma = np.sqrt(trk_var + sigma**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        significance = np.where(total_sigma > 0, neutral / total_sigma, np.inf)
    publish = (neutral > calo.energy_min) & (significance > calo.significance_min)

    # Not significant: tracks take the inverse-variance mean of track and calorimeter sums.
    with np.errstate(divide="ignore", invalid="ignore"):
        w_trk = np.where(trk_var > 0, 1.0 / trk_var, 0.0)
        w_cal = np.where(sigma > 0, 1.0 / sigma**2, 0.0)
        best = (w_trk * trk_e + w_cal * measured) / (w_trk + w_cal)
        rescale = np.where(~publish & (trk_e > 0) & (w_trk + w_cal > 0), best / trk_e, 1.0)
    t_scale = np.ones(it.size)
    t_scale[trk] = rescale[inv_trk]

    sel = np.flatnonzero(publish)
    e_n = neutral[sel]
    if calo.smear_tower_center:
        u = rng.random((2, sel.size))
        eta_n = eta_lo[sel] + u[0] * (eta_hi[sel] - eta_lo[sel])
        phi_n = phi_lo[sel] + u[1] * (phi_hi[sel] - phi_lo[sel])
    else:
        eta_n = 0.5 * (eta_lo[sel] + eta_hi[sel])
        phi_n = 0.5 * (phi_lo[sel] + phi_hi[sel])
    pt_n = e_n / np.cosh(eta_n)
    zeros = np.zeros(sel.size)
    cand = dict.fromkeys(OUTPUT_FIELDS, zeros)
    cand.update(
        evt=keys[sel] // n_t,
        px=pt_n * np.cos(phi_n),
        py=pt_n * np.sin(phi_n),
        pz=pt_n * np.sinh(eta_n),
        E=e_n,
    )
    cand[calo.flag] = np.ones(sel.size)
    return t_scale, cand
