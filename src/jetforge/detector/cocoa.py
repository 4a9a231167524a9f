"""COCOA-like detector: calorimeter cells in 3 ECAL + 3 HCAL layers and parametric tracks.

Why not COCOA itself: Rieck et al. (2025, §2) pass their events through COCOA
(arXiv:2303.02101), a Geant4 application; Geant4 is not installable from PyPI and costs
seconds per event. This model keeps COCOA's geometry (layers, cell granularity, noise,
magnetic field, tracker acceptance; ``resources/detectors/cocoa_cells.yaml`` cites each
number) and replaces the Geant4 showers by parametrised ones, vectorised over all particles
of a block of events:

1. acceptance: invisible particles dropped; primaries with p_T < 1 GeV or |η| > 3
   dropped ("to limit the computational needs ... primary particles are neglected if
   their transverse momentum is less than 1 GeV", Rieck et al. §2);
2. tracks: charged primaries produced inside the first pixel layer, with an efficiency
   table, Gaussian curvature (1/p_T) smearing, θ/φ smearing and straight-line impact
   parameters d0, z0 (:func:`jetforge.detector.eflow.impact_parameters`) smeared with
   the card's resolution; ``is_pu`` is carried over;
3. calorimeter impact: helix in the solenoid to the calorimeter front
   (:func:`jetforge.detector.eflow.calo_impact`), corrected for the vertex z;
4. energy: upstream loss (Beta-distributed fraction), response (EM: 1; hadrons:
   π⁰-fraction model with h/e), sampling fluctuations (log-normal with the card's
   stochastic ⊕ constant width); muons deposit fixed MIP energies per layer;
5. longitudinal sharing between the 6 layers from Gamma-function profiles (EM in X0 with
   a random photon conversion depth; hadrons in λ_I with a random first-interaction
   depth), lateral sharing into neighbouring cells by integrating a Gaussian over a window
   of cells (analytic erf differences, per deposit);
6. cells: deposits summed per cell (dense per block, so the cost does not grow with
   pile-up), Gaussian electronic noise added to *every* cell, cells above
   ``threshold_sigma`` x noise kept.

Output per event: ``cells`` (``E, eta, phi`` of the cell centre, ``layer`` 0-5,
``pu_frac`` = pile-up share of the noise-free deposit) and ``tracks`` (``pt, eta, phi, d0,
z0, charge, is_pu``; d0, z0 in mm, z0 measured from z = 0, not from the primary vertex).

Simplifications (documented so they are not mistaken for COCOA features): showers start
at the calorimeter front along the impact direction (no further bending inside the
calorimeter), one hadronic response for ECAL and HCAL, no punch-through muons/MIP tracks
of hadrons before their first interaction, the endcap is a cylinder-end mapping of each
layer (z = r_layer sinh 1.5), and the vertex z correction is geometric only.

Randomness: all draws come from the passed ``numpy.random.Generator`` in a fixed order, in
blocks of ``block_events`` events, so one seed gives bit-identical output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jetforge.detector.eflow import CardError, calo_impact, impact_parameters, log_normal
from jetforge.jets.kinematics import pt_eta_phi, wrap_phi
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")
# gammainc, ndtr of scipy on first use: the config checks import this module
special = lazy_module("scipy.special")


CELL_FIELDS: tuple[str, ...] = ("E", "eta", "phi", "layer", "pu_frac")
TRACK_FIELDS: tuple[str, ...] = ("pt", "eta", "phi", "d0", "z0", "charge", "is_pu")
INPUT_FIELDS: tuple[str, ...] = ("px", "py", "pz", "E", "pid", "charge", "vx", "vy", "vz")
N_LAYERS = 6
#: Particle classes for the shower model.
EM, HADRON, MUON = 0, 1, 2
_CLASS_NAMES = ("em", "hadron", "muon")
DEFAULT_BLOCK_EVENTS = 32
DEFAULT_BLOCK_PARTICLES = 20_000


# --------------------------------------------------------------------------------------
# Card parsing
# --------------------------------------------------------------------------------------


def _get(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise CardError(f"cocoa card: '{where}' must be a mapping, got {type(mapping).__name__}")
    if key not in mapping:
        raise CardError(
            f"cocoa card: missing key '{where}.{key}'"
            if where
            else f"cocoa card: missing key '{key}'"
        )
    return mapping[key]


def _num(
    mapping: Any, key: str, where: str, lo: float | None = None, lo_open: bool = False
) -> float:
    value = _get(mapping, key, where)
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise CardError(f"cocoa card: '{where}.{key}' must be a number, got {value!r}") from exc
    if not math.isfinite(x) or (lo is not None and (x <= lo if lo_open else x < lo)):
        bound = f"> {lo}" if lo_open else f">= {lo}"
        raise CardError(f"cocoa card: '{where}.{key}' = {value!r} must be finite and {bound}")
    return x


def _array(mapping: Any, key: str, where: str, n: int | None = None) -> np.ndarray:
    value = _get(mapping, key, where)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CardError(
            f"cocoa card: '{where}.{key}' must be a list of numbers, got {value!r}"
        ) from exc
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise CardError(
            f"cocoa card: '{where}.{key}' must be a non-empty list of numbers, got {value!r}"
        )
    if n is not None and arr.size != n:
        raise CardError(f"cocoa card: '{where}.{key}' needs {n} values, got {arr.size}: {value!r}")
    return arr


@dataclass(frozen=True)
class Layer:
    name: str
    calorimeter: str  # "ecal" | "hcal"
    n_cells: int
    deta: float
    dphi: float
    noise: float  # GeV
    depth_lambda: float
    depth_x0: float
    r_mid: float  # mm
    offset: int  # first cell id of the layer in the per-event cell numbering


@dataclass(frozen=True)
class CocoaConfig:
    """Validated, array-valued form of a ``cocoa`` card."""

    eta_max: float
    pt_min: float
    invisible_pids: np.ndarray
    invisible_ranges: np.ndarray  # [k, 2]
    bz: float
    r_calo: float
    eta_barrel: float
    layers: tuple[Layer, ...]
    n_cells_event: int
    threshold_sigma: float
    upstream: dict[str, tuple[float, float]]
    em_resp: tuple[float, float]
    had_resp: dict[str, float]
    em_shower: dict[str, float]
    had_shower: dict[str, float]
    min_deposit: float
    lateral_sigma: np.ndarray  # [3 classes, N_LAYERS] mm
    window_sigmas: float
    max_window: int
    muon_deposit: np.ndarray  # [N_LAYERS] GeV
    trk_r_max: float
    trk_z_max: float
    eff_pt: np.ndarray
    eff_values: np.ndarray
    res_eta_edges: np.ndarray
    res_a: np.ndarray
    res_b: np.ndarray
    ang_pt: np.ndarray
    ang_sigma: np.ndarray
    d0_res: tuple[float, float]
    z0_res: tuple[float, float]

    @property
    def boundaries_lambda(self) -> np.ndarray:
        """Layer boundaries as material depth in λ_I from the front, [N_LAYERS + 1].

        The ECAL-HCAL gap holds no material and so takes no depth.
        """
        return np.concatenate([[0.0], np.cumsum([lay.depth_lambda for lay in self.layers])])

    @property
    def boundaries_x0(self) -> np.ndarray:
        """The same boundaries as material depth in X0, [N_LAYERS + 1]."""
        return np.concatenate([[0.0], np.cumsum([lay.depth_x0 for lay in self.layers])])


#: The card's scalar keys: CocoaConfig field -> (key path, lower bound, bound excluded?).
#: One loop (:func:`_scalars`) reads and checks them all; errors name the path and value.
_SCALARS: dict[str, tuple[str, float, bool]] = {
    "eta_max": ("acceptance.eta_max", 0, True),
    "pt_min": ("acceptance.primary_pt_min", 0, False),
    "bz": ("geometry.bz_tesla", 0, True),
    "r_calo": ("geometry.calo_inner_radius_mm", 0, True),
    "eta_barrel": ("geometry.barrel_eta_max", 0, True),
    "threshold_sigma": ("noise.threshold_sigma", 0, False),
    "min_deposit": ("shower.min_deposit", 0, False),
    "window_sigmas": ("lateral.window_sigmas", 0, True),
    "max_window": ("lateral.max_window", 0, False),
    "trk_r_max": ("tracking.production_radius_max", 0, True),
    "trk_z_max": ("tracking.production_z_max", 0, True),
}
#: Scalar groups read as tuples or dicts: (field, group path, keys, lower bound or None).
_GROUPS: tuple[tuple[str, str, tuple[str, ...], float | None], ...] = (
    ("em_resp", "response.em", ("stochastic", "constant"), 0),
    ("had_resp", "response.hadron", ("stochastic", "constant", "h_over_e", "fem_e0", "fem_k"), 0),
    ("em_shower", "shower.em", ("b", "c_electron", "critical_mev", "photon_conversion_x0"), None),
    ("had_shower", "shower.hadron", ("first_interaction", "tmax_a", "tmax_b", "att_power"), 0),
    ("d0_res", "tracking.impact_parameter.d0", ("a_mm", "b_mm_gev"), 0),
    ("z0_res", "tracking.impact_parameter.z0", ("a_mm", "b_mm_gev"), 0),
)
_TUPLE_GROUPS = ("em_resp", "d0_res", "z0_res")


def _node(card: Mapping[str, Any], path: str) -> Any:
    """The mapping at dotted ``path`` (errors name the first missing key)."""
    node: Any = card
    where = ""
    for part in path.split(".") if path else ():
        node = _get(node, part, where)
        where = f"{where}.{part}" if where else part
    return node


def _scalars(card: Mapping[str, Any]) -> dict[str, Any]:
    """Every :data:`_SCALARS` and :data:`_GROUPS` value of the card, checked."""
    out: dict[str, Any] = {}
    for name, (path, lo, strict) in _SCALARS.items():
        where, _, key = path.rpartition(".")
        out[name] = _num(_node(card, where), key, where, lo, strict)
    out["max_window"] = int(out["max_window"])
    for name, path, keys, lo in _GROUPS:
        node = _node(card, path)
        values = {k: _num(node, k, path, lo) for k in keys}
        out[name] = tuple(values.values()) if name in _TUPLE_GROUPS else values
    em = out["em_shower"]
    if em["b"] <= 0 or em["critical_mev"] <= 0 or em["photon_conversion_x0"] < 0:
        raise CardError(
            f"cocoa card: 'shower.em' needs b > 0, critical_mev > 0, "
            f"photon_conversion_x0 >= 0, got {em}"
        )
    if out["eta_barrel"] >= out["eta_max"]:
        raise CardError(
            f"cocoa card: geometry.barrel_eta_max = {out['eta_barrel']} must be below "
            f"acceptance.eta_max = {out['eta_max']}"
        )
    return out


def parse_card(card: Mapping[str, Any]) -> CocoaConfig:
    """Validate a ``cocoa`` card; every error names the offending key and value."""
    if card.get("model") != "cocoa":
        raise CardError(f"cocoa card: 'model' must be 'cocoa', got {card.get('model')!r}")
    _node(card, "acceptance")
    invisible = np.asarray(_get(card, "invisible_pids", ""), dtype=np.int64).ravel()
    ranges = np.asarray(card.get("invisible_pid_ranges", []), dtype=np.int64).reshape(-1, 2)
    if np.any(ranges[:, 0] > ranges[:, 1]):
        raise CardError(
            f"cocoa card: 'invisible_pid_ranges' need [lo, hi] with lo <= hi, got {ranges.tolist()}"
        )
    scalars = _scalars(card)
    layers = _layers(card, scalars["eta_max"], scalars["r_calo"])
    return CocoaConfig(
        **scalars,
        invisible_pids=invisible,
        invisible_ranges=ranges,
        layers=layers,
        n_cells_event=layers[-1].offset + layers[-1].n_cells ** 2,
        upstream=_upstream(card),
        lateral_sigma=_lateral_sigma(card),
        muon_deposit=_array(_get(card, "muon", ""), "deposit", "muon", N_LAYERS),
        **_tracking(card),
    )


def _layers(card: Mapping[str, Any], eta_max: float, r_calo: float) -> tuple[Layer, ...]:
    """The six calorimeter layers with radii, depths (λ_I and X0) and cell-id offsets."""
    gap = _num(_node(card, "geometry"), "layer_gap_mm", "geometry", 0)
    ecal_m, hcal_m = _node(card, "materials.ecal"), _node(card, "materials.hcal")
    x0_ecal = _num(ecal_m, "x0_mm", "materials.ecal", 0, True)
    lam_ecal = _num(ecal_m, "lambda_mm", "materials.ecal", 0, True)
    lam_hcal = _num(hcal_m, "lambda_mm", "materials.hcal", 0, True)
    x0_hcal = _num(hcal_m, "x0_mm", "materials.hcal", 0, True)
    raw_layers = _get(card, "layers", "")
    if not isinstance(raw_layers, list) or len(raw_layers) != N_LAYERS:
        raise CardError(
            f"cocoa card: 'layers' must list {N_LAYERS} layers (3 ECAL then 3 HCAL), "
            f"got {raw_layers!r}"
        )
    layers: list[Layer] = []
    r, offset = r_calo, 0
    for i, raw in enumerate(raw_layers):
        where = f"layers[{i}]"
        calo = _get(raw, "calorimeter", where)
        if calo != ("ecal" if i < 3 else "hcal"):
            raise CardError(
                f"cocoa card: '{where}.calorimeter' = {calo!r}; layers 0-2 must be 'ecal', "
                "3-5 'hcal'"
            )
        depth = _num(raw, "depth", where, 0, True)
        n = int(_num(raw, "n_cells", where, 1))
        if i == 3:
            r += gap
        thick = depth * (x0_ecal if calo == "ecal" else lam_hcal)
        layers.append(
            Layer(
                name=str(raw.get("name", f"L{i}")),
                calorimeter=calo,
                n_cells=n,
                deta=2.0 * eta_max / n,
                dphi=2.0 * np.pi / n,
                noise=_num(raw, "noise_mev", where, 0) / 1000.0,
                depth_lambda=depth * x0_ecal / lam_ecal if calo == "ecal" else depth,
                depth_x0=depth if calo == "ecal" else depth * lam_hcal / x0_hcal,
                r_mid=r + 0.5 * thick,
                offset=offset,
            )
        )
        r += thick
        offset += n * n
    return tuple(layers)


def _upstream(card: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """Beta-distribution (mean, sigma) of the upstream energy loss per particle class."""
    upstream = {}
    for cls in ("em", "hadron"):
        u = _node(card, f"upstream.{cls}")
        m, s = _num(u, "mean", f"upstream.{cls}", 0), _num(u, "sigma", f"upstream.{cls}", 0)
        if not (0 <= m < 1) or (s > 0 and s * s >= m * (1 - m)):
            raise CardError(
                f"cocoa card: 'upstream.{cls}' mean={m}, sigma={s}: need 0 <= mean < 1 and "
                "sigma^2 < mean (1 - mean) for a Beta distribution"
            )
        upstream[cls] = (m, s)
    return upstream


def _lateral_sigma(card: Mapping[str, Any]) -> np.ndarray:
    """Lateral shower widths [3 classes, N_LAYERS] in mm (one value per calorimeter)."""
    lateral = np.zeros((3, N_LAYERS))
    for c, cls in enumerate(_CLASS_NAMES):
        per = _node(card, f"lateral.sigma_mm.{cls}")
        e_sig = _num(per, "ecal", f"lateral.sigma_mm.{cls}", 0, True)
        h_sig = _num(per, "hcal", f"lateral.sigma_mm.{cls}", 0, True)
        lateral[c] = [e_sig] * 3 + [h_sig] * 3
    return lateral


def _tracking(card: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The tracking tables (efficiency, p_T and angle resolution), checked for shape and order."""
    eff = _node(card, "tracking.efficiency")
    eff_pt = _array(eff, "pt_min", "tracking.efficiency")
    eff_v = _array(eff, "values", "tracking.efficiency")
    if (
        eff_pt.size != eff_v.size
        or np.any(np.diff(eff_pt) <= 0)
        or np.any((eff_v < 0) | (eff_v > 1))
    ):
        raise CardError(
            "cocoa card: 'tracking.efficiency' needs increasing pt_min and values in [0, 1] "
            f"of equal length, got {eff_pt.tolist()} / {eff_v.tolist()}"
        )
    res = _node(card, "tracking.pt_resolution")
    edges = _array(res, "abs_eta_edges", "tracking.pt_resolution")
    if edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise CardError(
            "cocoa card: 'tracking.pt_resolution.abs_eta_edges' must increase, "
            f"got {edges.tolist()}"
        )
    ang = _node(card, "tracking.angle_resolution")
    ang_pt = _array(ang, "pt_min", "tracking.angle_resolution")
    ang_sig = _array(ang, "sigma", "tracking.angle_resolution")
    if ang_pt.size != ang_sig.size or np.any(np.diff(ang_pt) <= 0):
        raise CardError(
            "cocoa card: 'tracking.angle_resolution' needs increasing pt_min and one sigma per bin"
        )
    return {
        "eff_pt": eff_pt,
        "eff_values": eff_v,
        "res_eta_edges": edges,
        "res_a": _array(res, "a", "tracking.pt_resolution", edges.size - 1),
        "res_b": _array(res, "b", "tracking.pt_resolution", edges.size - 1),
        "ang_pt": ang_pt,
        "ang_sigma": ang_sig,
    }


# --------------------------------------------------------------------------------------
# Physics helpers (flat numpy arrays)
# --------------------------------------------------------------------------------------


def _step_lookup(edges_lo: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """values[i] for edges_lo[i] <= x < edges_lo[i+1]; the first bin below, last above."""
    i = np.clip(np.searchsorted(edges_lo, x, side="right") - 1, 0, values.size - 1)
    return values[i]


def beta_fraction(rng: np.random.Generator, mean: float, sigma: float, n: int) -> np.ndarray:
    """Beta(mean, sigma) draws in [0, 1] (constant ``mean`` when sigma = 0)."""
    if n == 0:
        return np.zeros(0)
    if sigma == 0 or mean == 0:
        return np.full(n, mean)
    k = mean * (1 - mean) / sigma**2 - 1
    return rng.beta(mean * k, (1 - mean) * k, size=n)


def hadron_response(cfg: CocoaConfig, energy: np.ndarray) -> np.ndarray:
    """Mean EM-scale response of a hadron shower: f_em + (1 - f_em) h/e."""
    h = cfg.had_resp
    fem = 1.0 - np.power(np.maximum(energy, 1e-9) / h["fem_e0"], h["fem_k"] - 1.0)
    fem = np.clip(fem, 0.0, 1.0)
    return fem + (1.0 - fem) * h["h_over_e"]


def resolution(cfg: CocoaConfig, kind: int, energy: np.ndarray) -> np.ndarray:
    """Relative sampling resolution sqrt(S^2/E + C^2) for class ``kind``."""
    s, c = cfg.em_resp if kind == EM else (cfg.had_resp["stochastic"], cfg.had_resp["constant"])
    return np.sqrt(s * s / np.maximum(energy, 1e-9) + c * c)


def _gamma_fractions(
    a: np.ndarray, b: np.ndarray, start: np.ndarray, bounds: np.ndarray
) -> np.ndarray:
    """Fractions of Gamma(a, rate b) profiles starting at ``start`` inside each [bounds]."""
    t = np.maximum(bounds[None, :] - start[:, None], 0.0)
    cdf = special.gammainc(a[:, None], b[:, None] * t)
    return np.diff(cdf, axis=1)


def em_fractions(cfg: CocoaConfig, energy: np.ndarray, start_x0: np.ndarray) -> np.ndarray:
    """[n, 6] layer fractions of EM showers starting at depth ``start_x0`` (X0 units).

    Energy beyond the last layer (negligible for EM showers) is lost.
    """
    s = cfg.em_shower
    tmax = np.maximum(
        np.log(np.maximum(energy, 1e-9) * 1000.0 / s["critical_mev"]) + s["c_electron"], 0.0
    )
    b = np.full(energy.shape, s["b"])
    a = 1.0 + b * tmax
    return _gamma_fractions(a, b, start_x0, cfg.boundaries_x0)


def hadron_weights(cfg: CocoaConfig, energy: np.ndarray, start_lambda: np.ndarray) -> np.ndarray:
    """[n, 6] visible energy per layer / (E (1 - u)) of hadron showers, before sampling.

    Two components from the first interaction at ``start_lambda`` (λ_I units): the π⁰
    part, f_em E, develops as an EM shower (in X0, response 1); the rest with the hadronic
    Gamma profile (in λ_I, response h/e). The sum over layers is the response times the
    longitudinal containment; energy beyond HCAL3 is lost (punch-through).
    """
    s, h = cfg.had_shower, cfg.had_resp
    e = np.maximum(energy, 1e-9)
    fem = np.clip(1.0 - np.power(e / h["fem_e0"], h["fem_k"] - 1.0), 0.0, 1.0)
    tmax = np.maximum(s["tmax_a"] * np.log(e) + s["tmax_b"], 0.0)
    b = 1.0 / np.power(e, s["att_power"])
    a = 1.0 + b * tmax
    had = _gamma_fractions(a, b, start_lambda, cfg.boundaries_lambda)
    lam_b, x0_b = cfg.boundaries_lambda, cfg.boundaries_x0
    start_x0 = np.interp(start_lambda, lam_b, x0_b, right=np.inf)
    em = em_fractions(cfg, fem * e, start_x0)
    return fem[:, None] * em + ((1.0 - fem) * h["h_over_e"])[:, None] * had


def expected_response(
    card: Mapping[str, Any], kind: str, energy: float, n_grid: int = 4000
) -> tuple[float, float]:
    """(mean, rms) of (sum of noise-free cell energies) / E for one particle of ``kind``.

    ``kind``: "em" (photon) or "hadron". Combines the upstream loss, the response, the
    sampling resolution and the longitudinal containment averaged over the random shower
    start (photon conversion depth / first interaction, integrated exactly per grid bin);
    lateral sharing conserves energy away from the acceptance edge. Used by the tests to
    check the simulation against the card.
    """
    cfg = parse_card(card)
    if kind not in ("em", "hadron"):
        raise ValueError(f"kind must be 'em' or 'hadron', got {kind!r}")
    m_u, s_u = cfg.upstream[kind]
    e = np.array([energy])
    if kind == "em":
        sig = float(resolution(cfg, EM, e)[0])
        mean_start, depth = cfg.em_shower["photon_conversion_x0"], cfg.boundaries_x0[-1]
    else:
        sig = float(resolution(cfg, HADRON, e)[0])
        mean_start, depth = cfg.had_shower["first_interaction"], cfg.boundaries_lambda[-1]
    if mean_start > 0:
        edges = np.linspace(0.0, depth, n_grid + 1)
        weights = np.diff(-np.exp(-edges / mean_start))  # P(start in bin); beyond: nothing seen
        starts = 0.5 * (edges[1:] + edges[:-1])
    else:
        weights, starts = np.array([1.0]), np.array([0.0])
    energies = np.full(starts.size, energy)
    if kind == "em":
        seen = em_fractions(cfg, energies, starts).sum(axis=1)
    else:
        seen = hadron_weights(cfg, energies, starts).sum(axis=1)
    c1, c2 = float(np.sum(weights * seen)), float(np.sum(weights * seen**2))
    mean = (1 - m_u) * c1
    second = ((1 - m_u) ** 2 + s_u**2) * (1 + sig**2) * c2
    return mean, math.sqrt(max(second - mean**2, 0.0))


# --------------------------------------------------------------------------------------
# The detector
# --------------------------------------------------------------------------------------


def simulate(
    particles: ak.Array,
    card: Mapping[str, Any],
    rng: np.random.Generator,
    block_events: int = DEFAULT_BLOCK_EVENTS,
    block_particles: int = DEFAULT_BLOCK_PARTICLES,
) -> ak.Array:
    """Cells and tracks (one record per event) from final-state particles (format 2).

    An optional boolean field ``is_pu`` marks pile-up particles (see
    :func:`jetforge.generation.pileup.overlay`); it is copied to the tracks and turned
    into each cell's ``pu_frac``. Events are processed in blocks of at most
    ``block_events`` events and (beyond the first event) ``block_particles`` input
    particles, which bounds the memory of the per-cell arrays (~250 MB) at any pile-up.
    """
    cfg = parse_card(card)
    missing = [f for f in INPUT_FIELDS if f not in particles.fields]
    if missing:
        raise KeyError(f"particles lack fields {missing}; have {particles.fields}")
    cells_parts: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
    track_parts: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
    for start, stop in _blocks(
        ak.to_numpy(ak.num(particles, axis=1)), block_events, block_particles
    ):
        block = particles[start:stop]
        cols, counts = _flat(block)
        evt = np.repeat(np.arange(len(block), dtype=np.int64), counts)
        track_parts.append(_tracks(cfg, cols, evt, len(block), rng))
        cells_parts.append(_cells(cfg, cols, evt, len(block), rng))
    cells = _assemble(cells_parts, CELL_FIELDS)
    tracks = _assemble(track_parts, TRACK_FIELDS)
    return ak.zip({"cells": cells, "tracks": tracks}, depth_limit=1)


def simulate_tracks(
    particles: ak.Array, card: Mapping[str, Any], rng: np.random.Generator
) -> ak.Array:
    """Only the tracks of :func:`simulate` (no calorimeter), e.g. for vertex studies.

    Same tracking model; the random stream differs from ``simulate``'s since no
    calorimeter draws are interleaved.
    """
    cfg = parse_card(card)
    cols, counts = _flat(particles)
    evt = np.repeat(np.arange(len(particles), dtype=np.int64), counts)
    return _assemble([_tracks(cfg, cols, evt, len(particles), rng)], TRACK_FIELDS)


def _blocks(counts: np.ndarray, max_events: int, max_particles: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) event ranges within both limits (at least one event each)."""
    out: list[tuple[int, int]] = []
    start, n = 0, len(counts)
    csum = np.concatenate([[0], np.cumsum(counts)])
    while start < n:
        stop = int(np.searchsorted(csum, csum[start] + max_particles, side="right")) - 1
        stop = min(max(stop, start + 1), start + max_events, n)
        out.append((start, stop))
        start = stop
    return out


def _flat(particles: ak.Array) -> tuple[dict[str, np.ndarray], np.ndarray]:
    counts = ak.to_numpy(ak.num(particles, axis=1)).astype(np.int64)
    cols: dict[str, np.ndarray] = {}
    for f in INPUT_FIELDS:
        col = ak.to_numpy(ak.flatten(particles[f], axis=1))
        cols[f] = col.astype(np.int64 if f == "pid" else np.float64, copy=False)
    if "is_pu" in particles.fields:
        cols["is_pu"] = ak.to_numpy(ak.flatten(particles["is_pu"], axis=1)).astype(bool)
    else:
        cols["is_pu"] = np.zeros(counts.sum(), dtype=bool)
    return cols, counts


def _visible(cfg: CocoaConfig, apid: np.ndarray) -> np.ndarray:
    inv = np.isin(apid, cfg.invisible_pids)
    for lo, hi in cfg.invisible_ranges:
        inv |= (apid >= lo) & (apid <= hi)
    return ~inv


def _kinematics(cols: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return pt_eta_phi(cols["px"], cols["py"], cols["pz"])


def _tracks(
    cfg: CocoaConfig,
    cols: dict[str, np.ndarray],
    evt: np.ndarray,
    n_events: int,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    pt, eta, phi = _kinematics(cols)
    apid = np.abs(cols["pid"])
    r_prod = np.hypot(cols["vx"], cols["vy"])
    sel = (
        (cols["charge"] != 0) & _visible(cfg, apid)
        & (pt >= cfg.pt_min) & (np.abs(eta) < cfg.eta_max)
        & (r_prod < cfg.trk_r_max) & (np.abs(cols["vz"]) < cfg.trk_z_max)
    )  # fmt: skip
    idx = np.flatnonzero(sel)
    # draws, in a fixed order and sized by the candidates: efficiency, pT, theta, phi, d0, z0
    u = rng.random(idx.size)
    z = rng.standard_normal((5, idx.size))
    keep = u < _step_lookup(cfg.eff_pt, cfg.eff_values, pt[idx])
    idx, z = idx[keep], z[:, keep]
    p_t, e_t, f_t, q = pt[idx], eta[idx], phi[idx], cols["charge"][idx]
    ibin = np.clip(
        np.searchsorted(cfg.res_eta_edges, np.abs(e_t), side="right") - 1, 0, cfg.res_a.size - 1
    )
    rel = np.hypot(cfg.res_a[ibin], cfg.res_b[ibin] * p_t)
    curv = 1.0 / p_t + rel / p_t * z[0]  # Gaussian in curvature, as a tracker measures it
    pt_meas = 1.0 / np.maximum(np.abs(curv), 1e-9)
    sig_ang = _step_lookup(cfg.ang_pt, cfg.ang_sigma, p_t)
    theta = 2.0 * np.arctan(np.exp(-e_t)) + sig_ang * z[1]
    theta = np.clip(theta, 1e-6, np.pi - 1e-6)
    eta_meas = -np.log(np.tan(0.5 * theta))
    phi_meas = wrap_phi(f_t + sig_ang * z[2])
    d0, z0 = impact_parameters(
        cols["px"][idx],
        cols["py"][idx],
        cols["pz"][idx],
        cols["vx"][idx],
        cols["vy"][idx],
        cols["vz"][idx],
    )
    d0 = d0 + np.hypot(cfg.d0_res[0], cfg.d0_res[1] / p_t) * z[3]
    z0 = z0 + np.hypot(cfg.z0_res[0], cfg.z0_res[1] / p_t) * z[4]
    out = {
        "pt": pt_meas, "eta": eta_meas, "phi": phi_meas, "d0": d0, "z0": z0,
        "charge": q, "is_pu": cols["is_pu"][idx],
    }  # fmt: skip
    return out, np.bincount(evt[idx], minlength=n_events)


def _impact(
    cfg: CocoaConfig, cols: dict[str, np.ndarray], pt: np.ndarray, eta: np.ndarray, phi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eta, phi) at the calorimeter front seen from the detector origin, and reach."""
    half_length = cfg.r_calo * math.sinh(cfg.eta_barrel)
    eta_c, phi_c, reach = calo_impact(
        pt, eta, phi, cols["pz"], cols["charge"], cfg.r_calo / 1000.0, half_length / 1000.0, cfg.bz
    )
    vz = cols["vz"]
    barrel = np.abs(eta_c) <= cfg.eta_barrel
    # barrel: z at the front = vz + R sinh(eta); endcap: r at |z| = L is (L - vz sign)/sinh|eta|
    z_b = vz + cfg.r_calo * np.sinh(eta_c)
    eta_b = np.arcsinh(z_b / cfg.r_calo)
    sgn = np.sign(eta_c)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_e = (half_length - sgn * vz) / np.abs(np.sinh(eta_c))
        eta_e = sgn * np.arcsinh(half_length / r_e)
    eta_c = np.where(barrel, eta_b, np.where(np.isfinite(eta_e), eta_e, eta_c))
    return eta_c, phi_c, reach


def _cells(
    cfg: CocoaConfig,
    cols: dict[str, np.ndarray],
    evt: np.ndarray,
    n_events: int,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    pt, eta, phi = _kinematics(cols)
    apid = np.abs(cols["pid"])
    sel = _visible(cfg, apid) & (pt >= cfg.pt_min) & (np.abs(eta) < cfg.eta_max)
    idx = np.flatnonzero(sel)
    sub = {k: v[idx] for k, v in cols.items()}
    p_t, e_p, f_p = pt[idx], eta[idx], phi[idx]
    energy = sub["E"]
    eta_c, phi_c, reach = _impact(cfg, sub, p_t, e_p, f_p)
    a = apid[idx]
    kind = np.where((a == 11) | (a == 22), EM, np.where(a == 13, MUON, HADRON))
    # draws in a fixed order, sized by the input: upstream, sampling, shower start
    e_layer = np.zeros((idx.size, N_LAYERS))
    for k, name in ((EM, "em"), (HADRON, "hadron")):
        m = np.flatnonzero(kind == k)
        u = beta_fraction(rng, *cfg.upstream[name], m.size)
        zs = rng.standard_normal(m.size)
        e = energy[m]
        # sampling fluctuations scale the whole shower (log-normal: mean 1, card width)
        base = log_normal(e * (1 - u), e * (1 - u) * resolution(cfg, k, e), zs)
        if k == EM:
            conv = cfg.em_shower["photon_conversion_x0"]
            draw = rng.exponential(conv, m.size) if conv > 0 else np.zeros(m.size)
            start = np.where(a[m] == 22, draw, 0.0)
            e_layer[m] = base[:, None] * em_fractions(cfg, e, start)
        else:
            start = rng.exponential(cfg.had_shower["first_interaction"], m.size)
            e_layer[m] = base[:, None] * hadron_weights(cfg, e, start)
    mu = np.flatnonzero(kind == MUON)
    # muons: fixed MIP deposits, never more than the muon's energy
    dep = np.minimum(
        cfg.muon_deposit[None, :], energy[mu, None] * cfg.muon_deposit / cfg.muon_deposit.sum()
    )
    e_layer[mu] = dep
    e_layer[~reach] = 0.0

    # (particle, layer) deposits above the floor, then their lateral windows
    ip, lay = np.nonzero(e_layer > cfg.min_deposit)
    e_dep = e_layer[ip, lay]
    keys, e_cell, owner = _lateral(cfg, eta_c[ip], phi_c[ip], lay, kind[ip], e_dep)
    keys = keys + evt[idx][ip][owner] * cfg.n_cells_event
    pu_e = e_cell * sub["is_pu"][ip][owner]
    if any(layer.noise > 0 for layer in cfg.layers):
        k, e_out, dep_k, pu_k = _noisy_cells(cfg, keys, e_cell, pu_e, n_events, rng)
    else:  # noiseless detector (tests, studies): sum the deposits sparsely
        k, inverse = np.unique(keys, return_inverse=True)
        dep_k = np.bincount(inverse, weights=e_cell, minlength=k.size)
        pu_k = np.bincount(inverse, weights=pu_e, minlength=k.size)
        keep = dep_k > 0
        k, dep_k, pu_k = k[keep], dep_k[keep], pu_k[keep]
        e_out = dep_k
    ev = k // cfg.n_cells_event
    local = k % cfg.n_cells_event
    layer_id, eta_cell, phi_cell = _cell_geometry(cfg, local)
    pu_frac = np.where(dep_k > 0, pu_k / np.where(dep_k > 0, dep_k, 1.0), 0.0)
    out = {"E": e_out, "eta": eta_cell, "phi": phi_cell, "layer": layer_id, "pu_frac": pu_frac}
    return out, np.bincount(ev, minlength=n_events)


def _noisy_cells(
    cfg: CocoaConfig,
    keys: np.ndarray,
    e_cell: np.ndarray,
    pu_e: np.ndarray,
    n_events: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dense per-block sums, Gaussian noise on every cell, threshold.

    Returns (cell key, measured E, noise-free deposit, pile-up deposit) of the kept cells,
    sorted by key (event-major). Dense because every cell gets noise: its cost is fixed
    per event (~1.6e5 cells), whatever the number of particles or pile-up.
    """
    total = n_events * cfg.n_cells_event
    dense = np.bincount(keys, weights=e_cell, minlength=total).reshape(n_events, cfg.n_cells_event)
    dense_pu = np.bincount(keys, weights=pu_e, minlength=total) if pu_e.any() else None
    out_keys: list[np.ndarray] = []
    out_e: list[np.ndarray] = []
    for layer in cfg.layers:
        block = dense[:, layer.offset : layer.offset + layer.n_cells**2]
        if layer.noise > 0:
            e_meas = block + rng.standard_normal(block.shape, dtype=np.float32) * np.float32(
                layer.noise
            )
            ev, cell = np.nonzero(e_meas > cfg.threshold_sigma * layer.noise)
        else:
            e_meas = block
            ev, cell = np.nonzero(e_meas > 0)
        out_keys.append(ev * cfg.n_cells_event + layer.offset + cell)
        out_e.append(e_meas[ev, cell])
    k = np.concatenate(out_keys)
    order = np.argsort(k, kind="stable")
    k = k[order]
    flat = dense.reshape(-1)
    pu = dense_pu[k] if dense_pu is not None else np.zeros(k.size)
    return k, np.concatenate(out_e)[order].astype(np.float64), flat[k], pu


def _lateral(
    cfg: CocoaConfig,
    eta_c: np.ndarray,
    phi_c: np.ndarray,
    lay: np.ndarray,
    kind: np.ndarray,
    energy: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-event cell key, energy, deposit index) of every deposit spread over its window."""
    deta = np.array([lay_.deta for lay_ in cfg.layers])[lay]
    dphi = np.array([lay_.dphi for lay_ in cfg.layers])[lay]
    ncell = np.array([lay_.n_cells for lay_ in cfg.layers], dtype=np.int64)[lay]
    offset = np.array([lay_.offset for lay_ in cfg.layers], dtype=np.int64)[lay]
    r_mid = np.array([lay_.r_mid for lay_ in cfg.layers])[lay]
    # transverse distance of the layer centre at this eta (endcap: z_layer / sinh|eta|)
    sinh_b = math.sinh(cfg.eta_barrel)
    r_eff = np.where(
        np.abs(eta_c) <= cfg.eta_barrel,
        r_mid,
        r_mid * sinh_b / np.maximum(np.abs(np.sinh(eta_c)), 1e-12),
    )
    sigma = np.maximum(cfg.lateral_sigma[kind, lay] / r_eff, 1e-9)  # rad (same in eta and phi)
    w_eta = np.minimum(np.ceil(cfg.window_sigmas * sigma / deta), cfg.max_window).astype(np.int64)
    w_phi = np.minimum(np.ceil(cfg.window_sigmas * sigma / dphi), cfg.max_window).astype(np.int64)
    ie = np.clip(np.floor((eta_c + cfg.eta_max) / deta).astype(np.int64), 0, ncell - 1)
    iph = np.floor((phi_c + np.pi) / dphi).astype(np.int64) % ncell
    # window sums for normalisation (telescoping sums of the cell integrals)
    lo_e = -cfg.eta_max + (ie - w_eta) * deta
    hi_e = -cfg.eta_max + (ie + w_eta + 1) * deta
    norm_e = special.ndtr((hi_e - eta_c) / sigma) - special.ndtr((lo_e - eta_c) / sigma)
    phi_rel = phi_c - (-np.pi + iph * dphi)  # position inside the central cell's frame
    norm_p = special.ndtr(((w_phi + 1) * dphi - phi_rel) / sigma) - special.ndtr(
        (-w_phi * dphi - phi_rel) / sigma
    )
    # cell integrals along eta and along phi separately (the Gaussian factorises), then
    # every deposit is expanded into its (2 w_eta + 1) x (2 w_phi + 1) window
    ne, nph = 2 * w_eta + 1, 2 * w_phi + 1
    f_eta, start_e = _window_integrals(
        ne, w_eta, lambda d, k: -cfg.eta_max + (ie[d] + k) * deta[d] - eta_c[d], deta, sigma
    )
    f_phi, start_p = _window_integrals(
        nph, w_phi, lambda d, k: k * dphi[d] - phi_rel[d], dphi, sigma
    )
    size = ne * nph
    owner = np.repeat(np.arange(energy.size, dtype=np.int64), size)
    j = np.arange(owner.size, dtype=np.int64) - np.repeat(np.cumsum(size) - size, size)
    a, b = j // nph[owner], j % nph[owner]
    cell_e = ie[owner] + a - w_eta[owner]
    inside = (cell_e >= 0) & (cell_e < ncell[owner])
    owner, a, b, cell_e = owner[inside], a[inside], b[inside], cell_e[inside]
    frac = (
        f_eta[start_e[owner] + a]
        * f_phi[start_p[owner] + b]
        / np.maximum(norm_e[owner] * norm_p[owner], 1e-300)
    )
    cell_p = (iph[owner] + b - w_phi[owner]) % ncell[owner]
    keys = offset[owner] + cell_e * ncell[owner] + cell_p
    return keys, energy[owner] * frac, owner


def _window_integrals(
    width: np.ndarray, half: np.ndarray, low_edge: Any, cell: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian integrals over the ``width`` cells of each deposit's 1-d window.

    ``low_edge(d, k)`` is the lower edge of cell offset k (from -half to +half) of deposit
    d relative to its position. Returns the flat integrals and each deposit's start.
    """
    start = np.cumsum(width) - width
    d = np.repeat(np.arange(width.size, dtype=np.int64), width)
    k = np.arange(d.size, dtype=np.int64) - start[d] - half[d]
    lo = low_edge(d, k)
    return special.ndtr((lo + cell[d]) / sigma[d]) - special.ndtr(lo / sigma[d]), start


def _cell_geometry(
    cfg: CocoaConfig, local: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(layer, eta, phi) of the centres of per-event cell ids."""
    offsets = np.array([lay.offset for lay in cfg.layers], dtype=np.int64)
    layer = np.searchsorted(offsets, local, side="right") - 1
    n = np.array([lay.n_cells for lay in cfg.layers], dtype=np.int64)[layer]
    within = local - offsets[layer]
    ie, ip = within // n, within % n
    deta = np.array([lay.deta for lay in cfg.layers])[layer]
    dphi = np.array([lay.dphi for lay in cfg.layers])[layer]
    return layer.astype(np.int8), -cfg.eta_max + (ie + 0.5) * deta, -np.pi + (ip + 0.5) * dphi


def _assemble(
    parts: list[tuple[dict[str, np.ndarray], np.ndarray]], fields: tuple[str, ...]
) -> ak.Array:
    """One jagged record array from per-block flat columns (already grouped by event)."""
    counts = np.concatenate([c for _, c in parts]) if parts else np.zeros(0, np.int64)
    content = ak.contents.RecordArray(
        [
            ak.contents.NumpyArray(
                np.ascontiguousarray(
                    np.concatenate([cols[f] for cols, _ in parts]) if parts else np.zeros(0)
                )
            )
            for f in fields
        ],
        list(fields),
    )
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), content))
