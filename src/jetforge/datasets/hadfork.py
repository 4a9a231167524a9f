"""Hadronization-fork jet pairs with COCOA-like cells and tracks.

Rieck et al., "Self-Supervised Learning Strategies for Jet Physics", 2025.

One call turns one chunk of hard events into one HDF5 chunk (data contract 4, V = 2):

1. hard process + parton shower once, two independent hadronizations
   (:mod:`jetforge.generation.hadfork`), τ decays forced to the same hadronic 1/3-prong
   channel in both copies;
2. per copy: a primary vertex z ~ N(0, σ_z) shared by both copies (it belongs to the hard
   scatter), independent pile-up draws (:func:`jetforge.generation.pileup.overlay`), the
   detector (``cocoa`` card: cells + tracks);
3. per copy: anti-k_t R = 0.4 on the calorimeter cells (massless four-vectors) and on the
   visible hard-scatter hadrons; a detector jet (p_T > 25 GeV) is matched to the nearest
   hadron-level jet (p_T > 50 GeV) within ``match_dr``, which is matched to the nearest
   outgoing hard-process particle within ``parton_match_dr``; per hard particle the
   highest-p_T matched detector jet is kept ("for each detector-level jet, the associated
   jet at the hadron level must have a transverse momentum greater than 50 GeV", §3);
4. pairs: the two copies' jets of the same hard event and the same hard particle ("the
   same underlying hard scattering event, the same underlying jet at the hadron level, and
   a similar momentum at the detector level"; §2: "similar magnitudes and directions of
   the jet momenta at the detector as well as particle levels"): their hadron-level jets
   and their detector jets each within ``pairs.max_dr`` of each other, and the detector
   p_T within ``pairs.max_rel_dpt`` relative difference |Δp_T| / mean p_T. The paper
   quotes no number for "similar"; its Fig. 2b shows an 83 % pair correlation, which a
   loose cut (0.5, 0.2 in ΔR) keeps;
5. features: tracks within ΔR < 0.4 of the jet axis and |z0 - z_PV| < 2 mm (§3), as
   (p_T, Δη, Δφ, d0, z0 - z_PV); the jet's cells as (E, Δη, Δφ, layer). The primary vertex
   is taken as perfectly reconstructed (its true z).

Truth label per jet from the matched hard particle: ``q`` (|pid| 1-6), ``g`` (21), ``tau``
(15), ``dark`` (Hidden Valley 49xxxxx). Rows of a pair are contiguous (``fork_a`` then
``fork_b``); the per-row ``event`` is the hard event's index in the chunk and ``pair_id``
= (number of hard particles, 2) x event + index of the hard particle. ``n2`` is NaN: N2
over ~10³ cells costs O(n³).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jetforge.datasets import FIXED_VARIANTS
from jetforge.datasets.chunk import ChunkId, chunk_attrs, interleave, pair_columns, timed
from jetforge.detector import load_card, simulate
from jetforge.generation.hadfork import HadronizationFork, PartonCuts
from jetforge.generation.pileup import load_library, overlay
from jetforge.generation.processes import get_process
from jetforge.io.atomic import atomic_path
from jetforge.io.h5 import ROW_CHUNK, merge_jet_datasets, read_attrs, write_jet_dataset
from jetforge.jets.kinematics import delta_phi, delta_r, mass, pt_eta_phi
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
    import h5py
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")
    h5py = lazy_module("h5py")


VARIANTS: tuple[str, ...] = FIXED_VARIANTS["hadfork"]
TRACK_FEATURES: tuple[str, ...] = ("pt", "deta", "dphi", "d0", "z0")
CELL_FEATURES: tuple[str, ...] = ("E", "deta", "dphi", "layer")
SM_CLASSES: tuple[str, ...] = ("q", "g", "tau")
DARK_CLASS = "dark"
#: Extra per-jet columns (besides data contract 4's) written under ``jets/``.
EXTRA_JET_COLUMNS: dict[str, type] = {
    "hadron_pt": np.float32, "hadron_eta": np.float32, "hadron_phi": np.float32,
    "parton_pt": np.float32, "tau_channel": np.int16, "n_tracks": np.int32, "n_cells": np.int32,
}  # fmt: skip
#: Final-state ids never part of a hadron-level jet: neutrinos and stable BSM states
#: (ids above 10⁶: SUSY, Hidden Valley dark hadrons).
_NEUTRINOS = (12, 14, 16)
_BSM_MIN = 1_000_000


class HadforkConfigError(ValueError):
    """A ``datasets.<name>`` block that the hadfork builder cannot use (names the key)."""


@dataclass(frozen=True)
class HadforkConfig:
    """The keys of ``ds_cfg`` that :func:`build_hadfork_chunk` reads, validated."""

    sqrt_s: float
    processes: tuple[str, ...]
    events_per_chunk: int
    parton_pt_min: float
    parton_eta_max: float
    shower_settings: tuple[str, ...]
    detector: str
    jet_r: float
    jet_pt_min: float
    hadron_pt_min: float
    jet_eta_max: float
    match_dr: float
    parton_match_dr: float
    track_dr: float
    track_max_dz: float
    pair_max_rel_dpt: float
    pair_max_dr: float
    n_tracks: int
    n_cells: int
    pileup_mu: float
    sigma_z: float
    fork_block: int
    cluster_block: int

    @classmethod
    def from_ds_cfg(cls, ds: Mapping[str, Any]) -> HadforkConfig:
        def get(path: str, default: Any = ...) -> Any:
            node: Any = ds
            for part in path.split("."):
                if not isinstance(node, Mapping) or part not in node:
                    if default is ...:
                        raise HadforkConfigError(f"hadfork dataset config: missing key '{path}'")
                    return default
                node = node[part]
            return node

        def num(path: str, default: Any = ..., lo: float = 0.0, strict: bool = False) -> float:
            value = get(path, default)
            try:
                x = float(value)
            except (TypeError, ValueError):
                raise HadforkConfigError(
                    f"hadfork dataset config: '{path}' = {value!r} is not a number"
                ) from None
            if not np.isfinite(x) or x < lo or (strict and x == lo):
                raise HadforkConfigError(
                    f"hadfork dataset config: '{path}' = {value!r} must be "
                    f"{'>' if strict else '>='} {lo}"
                )
            return x

        procs = get("processes")
        if not isinstance(procs, (list, tuple)) or not procs:
            raise HadforkConfigError(
                f"hadfork dataset config: 'processes' must be a non-empty list, got {procs!r}"
            )
        settings = get("shower.base_settings", [])
        if not isinstance(settings, (list, tuple)) or not all(isinstance(s, str) for s in settings):
            raise HadforkConfigError(
                "hadfork dataset config: 'shower.base_settings' must be a list of strings, "
                f"got {settings!r}"
            )
        detector = get("detector")
        if not isinstance(detector, str):
            raise HadforkConfigError(
                f"hadfork dataset config: 'detector' must be a card name, got {detector!r}"
            )
        return cls(
            sqrt_s=num("sqrt_s", lo=0, strict=True),
            processes=tuple(str(p) for p in procs),
            events_per_chunk=int(num("events_per_chunk", lo=1)),
            parton_pt_min=num("hard_cuts.pt_min"),
            parton_eta_max=num("hard_cuts.eta_max", lo=0, strict=True),
            shower_settings=tuple(settings),
            detector=detector,
            jet_r=num("jets.R", lo=0, strict=True),
            jet_pt_min=num("jets.pt_min"),
            hadron_pt_min=num("jets.hadron_pt_min"),
            jet_eta_max=num("jets.eta_max", lo=0, strict=True),
            match_dr=num("jets.match_dr", lo=0, strict=True),
            parton_match_dr=num("jets.parton_match_dr", lo=0, strict=True),
            track_dr=num("tracks.assoc_dr", lo=0, strict=True),
            track_max_dz=num("tracks.max_dz", lo=0, strict=True),
            pair_max_rel_dpt=num("pairs.max_rel_dpt", lo=0, strict=True),
            pair_max_dr=num("pairs.max_dr", lo=0, strict=True),
            n_tracks=int(num("n_tracks", lo=1)),
            n_cells=int(num("n_cells", lo=1)),
            pileup_mu=num("pileup.mu", 0.0),
            sigma_z=num("pileup.sigma_z", 50.0),
            fork_block=int(num("fork_block", 50, lo=1)),
            cluster_block=int(num("cluster_block", 50, lo=1)),
        )


def parse_config(ds_cfg: Mapping[str, Any]) -> HadforkConfig:
    """The builder's own check of a ``datasets.<name>`` block, as ``single.parse_config``:
    :func:`jetforge.config.validate_config` calls it before any job, so a value the builder
    would refuse (missing, not a number, out of range) stops the run at the door and not
    in the first chunk job. Raises :class:`HadforkConfigError` naming the key."""
    return HadforkConfig.from_ds_cfg(ds_cfg)


def class_names(ds_cfg: Mapping[str, Any]) -> list[str]:
    """q, g, tau, plus ``dark`` if any of the dataset's processes is a dark-jet sample."""
    labels = {get_process(p).label for p in ds_cfg["processes"]}
    return [*SM_CLASSES, *([DARK_CLASS] if DARK_CLASS in labels else [])]


def truth_label(pid: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Class index of each hard particle's |PDG id| (-1: none of q, g, τ, dark)."""
    a = np.abs(np.asarray(pid))
    out = np.full(a.shape, -1, dtype=np.int64)
    for name, mask in (
        ("q", (a >= 1) & (a <= 6)),
        ("g", a == 21),
        ("tau", a == 15),
        (DARK_CLASS, (a >= 4_900_000) & (a < 5_000_000)),
    ):
        if name in classes:
            out[mask] = list(classes).index(name)
    return out


# --------------------------------------------------------------------------------------
# Jets and matching
# --------------------------------------------------------------------------------------


def _cluster(parts: ak.Array, r: float, pt_min: float) -> tuple[ak.Array, ak.Array]:
    """anti-k_t jets (pt, eta, phi, mass) with p_T > ``pt_min`` and their constituents."""
    import fastjet

    cs = fastjet.ClusterSequence(parts, fastjet.JetDefinition(fastjet.antikt_algorithm, r))
    jets = cs.inclusive_jets(min_pt=pt_min)
    consts = cs.constituents(min_pt=pt_min)
    pt, eta, phi = pt_eta_phi(jets.px, jets.py, jets.pz)
    out = ak.zip(
        {"pt": pt, "eta": eta, "phi": phi, "mass": mass(jets.px, jets.py, jets.pz, jets.E)}
    )
    return out, consts


def _nearest(a: ak.Array, b: ak.Array, max_dr: float) -> tuple[ak.Array, ak.Array]:
    """For each object of ``a`` (eta, phi), the index of the nearest ``b`` within max_dr (-1)."""
    pairs = ak.cartesian({"a": a[["eta", "phi"]], "b": b[["eta", "phi"]]}, axis=1, nested=True)
    dr = delta_r(pairs.a.eta, pairs.a.phi, pairs.b.eta, pairs.b.phi)
    best = ak.argmin(dr, axis=2, keepdims=True)
    d = ak.fill_none(ak.firsts(dr[best], axis=2), np.inf)
    idx = ak.fill_none(ak.firsts(best, axis=2), -1)
    return ak.where(d < max_dr, idx, -1), d


def _hadron_level(particles: ak.Array) -> ak.Array:
    """Visible hard-scatter particles as four-vectors for hadron-level jets."""
    apid = abs(particles.pid)
    vis = (apid != 12) & (apid != 14) & (apid != 16) & (apid < _BSM_MIN)
    p = particles[vis]
    return ak.zip({"px": p.px, "py": p.py, "pz": p.pz, "E": p.E})


def _cell_vectors(cells: ak.Array) -> ak.Array:
    """Cells as massless four-vectors carrying their (eta, phi, layer) along."""
    pt = cells.E / np.cosh(cells.eta)
    return ak.zip(
        {
            "px": pt * np.cos(cells.phi), "py": pt * np.sin(cells.phi),
            "pz": pt * np.sinh(cells.eta), "E": cells.E,
            "ceta": cells.eta, "cphi": cells.phi, "layer": cells.layer,
        }
    )  # fmt: skip


@dataclass
class CopyJets:
    """Per copy: the chosen detector jet per (event, hard particle) and its inputs.

    Only the chosen jets' cells are kept (``best_consts``), so a chunk's memory does not
    hold every jet's constituents.
    """

    det: ak.Array  # [n][J] detector jets
    best_consts: ak.Array  # [n * P][cells]: cells of the chosen jet of slot (event, particle)
    had: ak.Array  # [n][H] hadron-level jets
    best: np.ndarray  # int64 [n, P]: detector jet index per hard particle (-1 none)
    had_idx: np.ndarray  # int64 [n, P]: its hadron-level jet (-1 none)

    @staticmethod
    def concatenate(parts: list[CopyJets]) -> CopyJets:
        width = max(p.best.shape[1] for p in parts)

        def widen(a: np.ndarray) -> np.ndarray:
            return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=-1)

        consts = []
        for p in parts:  # re-slot to the common width P (empty lists in new slots)
            n, w = p.best.shape
            index = np.full((n, width), -1, dtype=np.int64)
            index[:, :w] = np.arange(n * w).reshape(n, w)
            opt = ak.Array(
                ak.contents.IndexedOptionArray(
                    ak.index.Index64(index.ravel()), p.best_consts.layout
                )
            )
            consts.append(ak.fill_none(opt, [], axis=0))
        return CopyJets(
            det=ak.concatenate([p.det for p in parts]),
            best_consts=ak.concatenate(consts),
            had=ak.concatenate([p.had for p in parts]),
            best=np.concatenate([widen(p.best) for p in parts]),
            had_idx=np.concatenate([widen(p.had_idx) for p in parts]),
        )


def select_jets(
    det_cells: ak.Array, hard_particles: ak.Array, truth: ak.Array, cfg: HadforkConfig
) -> CopyJets:
    """Cluster, match detector → hadron → hard particle, keep the leading jet per particle."""
    n = len(truth)
    n_part = int(ak.max(ak.num(truth))) if n else 0
    det, consts = _cluster(_cell_vectors(det_cells), cfg.jet_r, cfg.jet_pt_min)
    had, _ = _cluster(_hadron_level(hard_particles), cfg.jet_r, cfg.hadron_pt_min)
    in_eta = abs(det.eta) < cfg.jet_eta_max
    h_of_d, _ = _nearest(det, had, cfg.match_dr)
    p_of_h, _ = _nearest(had, truth, cfg.parton_match_dr)
    # unmatched detector jets point at an appended -1 (events may have no hadron jet)
    p_pad = ak.concatenate(
        [p_of_h, ak.unflatten(np.full(n, -1, np.int64), np.ones(n, np.int64))], axis=1
    )
    safe_h = ak.where(h_of_d >= 0, h_of_d, ak.num(had))
    p_of_d = ak.where(in_eta, p_pad[safe_h], -1)
    # leading detector jet per (event, hard particle)
    counts = ak.to_numpy(ak.num(det)).astype(np.int64)
    ev = np.repeat(np.arange(n, dtype=np.int64), counts)
    local = np.arange(ev.size, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    part = ak.to_numpy(ak.flatten(p_of_d)).astype(np.int64) if ev.size else np.zeros(0, np.int64)
    pt = ak.to_numpy(ak.flatten(det.pt)) if ev.size else np.zeros(0)
    hj = ak.to_numpy(ak.flatten(h_of_d)).astype(np.int64) if ev.size else np.zeros(0, np.int64)
    ok = part >= 0
    best = np.full((n, max(n_part, 1)), -1, dtype=np.int64)
    had_idx = np.full_like(best, -1)
    order = np.lexsort((pt[ok], part[ok], ev[ok]))  # ascending pT: the last write wins
    best[ev[ok][order], part[ok][order]] = local[ok][order]
    had_idx[ev[ok][order], part[ok][order]] = hj[ok][order]
    # cells of the chosen jets only, one (possibly empty) list per (event, particle) slot
    slot = np.flatnonzero(best.ravel() >= 0)
    e_slot, p_slot = np.divmod(slot, best.shape[1])
    picked = consts[e_slot, best[e_slot, p_slot]] if slot.size else ak.flatten(consts[:0], axis=1)
    index = np.full(best.size, -1, dtype=np.int64)
    index[slot] = np.arange(slot.size)
    best_consts = ak.fill_none(
        ak.Array(ak.contents.IndexedOptionArray(ak.index.Index64(index), picked.layout)), [], axis=0
    )
    return CopyJets(det, best_consts, had, best, had_idx)


# --------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------


def _pad(arr: ak.Array, fields: Sequence[str], n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Jagged records → zero-padded float32 [N, n_max, F] and mask [N, n_max]."""
    clipped = arr[:, :n_max]
    counts = ak.to_numpy(ak.num(clipped)).astype(np.int64)
    n = len(counts)
    x = np.zeros((n, n_max, len(fields)), dtype=np.float32)
    mask = np.zeros((n, n_max), dtype=bool)
    row = np.repeat(np.arange(n), counts)
    col = np.arange(row.size) - np.repeat(np.cumsum(counts) - counts, counts)
    for i, f in enumerate(fields):
        x[row, col, i] = ak.to_numpy(ak.flatten(clipped[f])) if row.size else 0.0
    mask[row, col] = True
    return x, mask


def jet_features(
    tracks: ak.Array, consts: ak.Array, jets: ak.Array, z_pv: np.ndarray, cfg: HadforkConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Track and cell blocks of N jets: tracks/consts are the jets' events' lists."""
    eta_j = np.asarray(ak.to_numpy(jets.eta), dtype=np.float64)
    phi_j = np.asarray(ak.to_numpy(jets.phi), dtype=np.float64)
    deta_t = tracks.eta - eta_j
    dphi_t = delta_phi(tracks.phi, phi_j)
    dz = tracks.z0 - z_pv
    assoc = (np.hypot(deta_t, dphi_t) < cfg.track_dr) & (abs(dz) < cfg.track_max_dz)
    t = ak.zip({"pt": tracks.pt, "deta": deta_t, "dphi": dphi_t, "d0": tracks.d0, "z0": dz})[assoc]
    t = t[ak.argsort(t.pt, axis=1, ascending=False, stable=True)]
    n_trk = ak.to_numpy(ak.num(t)).astype(np.int32)
    xt, mt = _pad(t, TRACK_FEATURES, cfg.n_tracks)
    c = ak.zip(
        {"E": consts.E, "deta": consts.ceta - eta_j, "dphi": delta_phi(consts.cphi, phi_j),
         "layer": ak.values_astype(consts.layer, np.float32)}
    )  # fmt: skip
    c = c[ak.argsort(c.E, axis=1, ascending=False, stable=True)]
    n_cell = ak.to_numpy(ak.num(c)).astype(np.int32)
    xc, mc = _pad(c, CELL_FEATURES, cfg.n_cells)
    return xt, mt, xc, mc, n_trk, n_cell


# --------------------------------------------------------------------------------------
# The chunk builder
# --------------------------------------------------------------------------------------


def build_hadfork_chunk(
    lhe_or_none: str | os.PathLike[str] | None,
    out_path: str | os.PathLike[str],
    ds_cfg: Mapping[str, Any],
    dataset: str,
    process: str,
    split: str,
    chunk: int,
    base_seed: int,
    extra_inputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one chunk file of fork pairs; returns timing, selection and size statistics.

    ``lhe_or_none``: an LHE file of already-filtered hard events (MadGraph, as in the
    paper), or None to let Pythia generate the hard process with ``hard_cuts``.
    ``extra_inputs["pileup_library"]``: the minimum-bias library (required if
    ``pileup.mu`` > 0). The steps are those of the module docstring, one function each.
    """
    t_start, cpu_start = time.perf_counter(), time.process_time()
    cfg = HadforkConfig.from_ds_cfg(ds_cfg)
    proc = get_process(process)
    if process not in cfg.processes:
        raise HadforkConfigError(
            f"process {process!r} is not in this dataset's processes {list(cfg.processes)}"
        )
    card, card_sha = load_card(cfg.detector)
    extra_inputs = dict(extra_inputs or {})
    library = _pileup_library(cfg, card, extra_inputs)
    cid = ChunkId(dataset, process, split, chunk, base_seed)
    timing: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with timed(timing, "fork"), timed(cpu, "fork", time.process_time):
        result = _fork(lhe_or_none, cfg, proc, cid)
    n_ok = len(result.stats["kept_index"])
    z_pv = cid.rng("vertex").normal(0.0, cfg.sigma_z, n_ok)
    per_copy: list[tuple[CopyJets, ak.Array]] = []
    n_pu_mean = 0.0
    for v, name in enumerate(VARIANTS):
        with timed(timing, f"pileup_{name}"), timed(cpu, f"pileup_{name}", time.process_time):
            info: dict[str, Any] = {}
            parts = overlay(
                result.copies[v], library, cfg.pileup_mu, cid.rng("pileup", name),
                sigma_z=cfg.sigma_z, hard_vz=z_pv, info=info,
            )  # fmt: skip
            n_pu_mean = float(np.mean(info["n_pu"])) if n_ok else 0.0
        per_copy.append(
            _reco_copy(parts, result.copies[v], result.truth, card, cid, name, cfg, timing, cpu)
        )
        del parts
    with timed(timing, "pairs"), timed(cpu, "pairs", time.process_time):
        pairs = _pairs(per_copy, result.truth, class_names(ds_cfg), cfg)
    with timed(timing, "features_write"), timed(cpu, "features_write", time.process_time):
        library_path = os.fspath(extra_inputs.get("pileup_library", ""))
        extra = _write_pairs(
            out_path, per_copy, pairs, result, z_pv, ds_cfg, cfg, cid, card_sha, library_path
        )
    n_rows = pairs.n * len(VARIANTS)
    size = os.path.getsize(out_path)
    cpu_total = time.process_time() - cpu_start
    return {
        "hard_events": cfg.events_per_chunk,
        "forked_events": n_ok,
        "pair_candidates": pairs.n_candidates,
        "kept_pairs": pairs.n,
        "jets_written": n_rows,
        "seconds": time.perf_counter() - t_start,
        "cpu_seconds": cpu_total,
        "hard_events_per_cpu_s": cfg.events_per_chunk / max(cpu_total, 1e-9),
        "bytes": size,
        "bytes_per_jet": size / max(n_rows, 1),
        "mean_pileup": n_pu_mean,
        "mean_tracks_per_jet": float(np.mean(extra["n_tracks"])) if pairs.n else 0.0,
        "mean_cells_per_jet": float(np.mean(extra["n_cells"])) if pairs.n else 0.0,
        "timing": timing,
        "cpu_timing": cpu,
        "fork": {k: v for k, v in result.stats.items() if k != "kept_index"},
    }


def _pileup_library(
    cfg: HadforkConfig, card: Mapping[str, Any], extra_inputs: Mapping[str, Any]
) -> Any:
    """The minimum-bias library (None without pile-up), checked against the detector card.

    A library cut at a higher p_T than the detector's primary threshold would silently
    miss pile-up particles the detector sees.
    """
    if cfg.pileup_mu <= 0:
        return None
    path = extra_inputs.get("pileup_library")
    if not path:
        raise HadforkConfigError(
            f"pileup.mu = {cfg.pileup_mu} needs extra_inputs['pileup_library'] (a minimum-bias "
            "library from jetforge.generation.pileup.generate_minbias_library)"
        )
    library = load_library(path)
    lib_pt = float(library.attrs.get("pt_min", 0.0))
    card_pt = float(card.get("acceptance", {}).get("primary_pt_min", 0.0))
    if lib_pt > card_pt:
        raise HadforkConfigError(
            f"pile-up library {path} keeps particles with pT >= {lib_pt} GeV but detector "
            f"{cfg.detector!r} sees primaries from {card_pt} GeV; regenerate it with "
            f"pt_min <= {card_pt}"
        )
    return library


def _fork(
    lhe_or_none: str | os.PathLike[str] | None, cfg: HadforkConfig, proc: Any, cid: ChunkId
) -> Any:
    """Step 1: parton level once, hadron level twice (:class:`HadronizationFork`)."""
    settings = [f"Beams:eCM = {cfg.sqrt_s}", *cfg.shower_settings, *proc.settings]
    cuts = None
    if lhe_or_none is None:
        settings.append(f"PhaseSpace:pTHatMin = {cfg.parton_pt_min}")
        cuts = PartonCuts(cfg.parton_pt_min, cfg.parton_eta_max)
    fork = HadronizationFork(settings, cid.seed("pythia"), cuts, lhe_or_none)
    n = cfg.events_per_chunk
    event_seeds = np.array([cid.seed("parton", k) for k in range(n)])
    copy_seeds = np.array(
        [[cid.seed("hadron", k, v) for v in range(len(VARIANTS))] for k in range(n)]
    )
    return fork.generate(n, event_seeds, copy_seeds, cid.rng("tau"), block=cfg.fork_block)


def _reco_copy(
    parts: ak.Array,
    hard: ak.Array,
    truth: ak.Array,
    card: Mapping[str, Any],
    cid: ChunkId,
    name: str,
    cfg: HadforkConfig,
    timing: dict[str, float],
    cpu: dict[str, float],
) -> tuple[CopyJets, ak.Array]:
    """Steps 2-3 of one copy: detector and jets, ``cluster_block`` events at a time.

    Blocks bound the memory at any pile-up; only the chosen jets' cells are kept.
    """
    det_rng = cid.rng("detector", name)
    for key in (f"detector_{name}", f"jets_{name}"):
        timing[key] = cpu[key] = 0.0
    blocks: list[CopyJets] = []
    tracks: list[ak.Array] = []
    for start in range(0, len(truth), cfg.cluster_block):
        stop = min(len(truth), start + cfg.cluster_block)
        with timed(timing, f"detector_{name}"), timed(cpu, f"detector_{name}", time.process_time):
            det = simulate(parts[start:stop], card, det_rng)
        with timed(timing, f"jets_{name}"), timed(cpu, f"jets_{name}", time.process_time):
            blocks.append(select_jets(det.cells, hard[start:stop], truth[start:stop], cfg))
            tracks.append(det.tracks)
            del det
    if blocks:
        return CopyJets.concatenate(blocks), ak.concatenate(tracks)
    empty = np.zeros((0, 1), np.int64)
    return CopyJets(ak.Array([]), ak.Array([]), ak.Array([]), empty, empty), ak.Array([])


@dataclass(frozen=True)
class _Pairs:
    """Step 4's result: the kept pairs as (event, hard-particle slot) with their truth."""

    ev: np.ndarray  # forked-event index of each pair
    part: np.ndarray  # hard-particle slot of each pair
    pids: np.ndarray  # PDG id of the pair's hard particle
    labels: np.ndarray  # class index of the pair (truth_label)
    n_candidates: int  # slots with a jet in both copies, before the similarity cuts

    @property
    def n(self) -> int:
        return int(self.ev.size)


def _pairs(
    per_copy: list[tuple[CopyJets, ak.Array]],
    truth: ak.Array,
    classes: Sequence[str],
    cfg: HadforkConfig,
) -> _Pairs:
    """Step 4: slots with a jet in both copies whose jets are similar (module docstring)."""
    (ja, _), (jb, _) = per_copy
    n_slots = ja.best.shape[1]
    ev, part = np.nonzero((ja.best >= 0) & (jb.best >= 0))
    if ev.size:
        da, ha = ja.det[ev, ja.best[ev, part]], ja.had[ev, ja.had_idx[ev, part]]
        db, hb = jb.det[ev, jb.best[ev, part]], jb.had[ev, jb.had_idx[ev, part]]
        pta, ptb = ak.to_numpy(da.pt), ak.to_numpy(db.pt)
        rel = np.abs(pta - ptb) / (0.5 * (pta + ptb))
        dr_had = ak.to_numpy(delta_r(ha.eta, ha.phi, hb.eta, hb.phi))
        dr_det = ak.to_numpy(delta_r(da.eta, da.phi, db.eta, db.phi))
        good = (
            (rel < cfg.pair_max_rel_dpt) & (dr_had < cfg.pair_max_dr) & (dr_det < cfg.pair_max_dr)
        )
    else:
        good = np.zeros(0, dtype=bool)
    n_candidates = int(ev.size)
    ev, part = ev[good], part[good]
    pids = (
        ak.to_numpy(ak.fill_none(ak.pad_none(truth.pid, n_slots, axis=1), 0)[ev, part])
        if ev.size
        else np.zeros(0, np.int64)
    )
    labels = truth_label(pids, classes)
    # hard particles that are none of q/g/τ/dark (cannot happen for our processes) are dropped
    known = labels >= 0
    return _Pairs(ev[known], part[known], pids[known], labels[known], n_candidates)


def _copy_rows(
    jets: CopyJets, tracks: ak.Array, pairs: _Pairs, z_pv: np.ndarray, cfg: HadforkConfig
) -> dict[str, np.ndarray]:
    """Step 5 for one copy: the pairs' jet columns and track/cell feature blocks."""
    ev, part = pairs.ev, pairs.part
    if not pairs.n:
        cols = {
            k: np.zeros(0, np.float32)
            for k in ("pt", "eta", "phi", "mass", "hadron_pt", "hadron_eta", "hadron_phi")
        }
        cols.update(
            particles=np.zeros((0, cfg.n_tracks, len(TRACK_FEATURES)), np.float32),
            mask=np.zeros((0, cfg.n_tracks), bool),
            cells=np.zeros((0, cfg.n_cells, len(CELL_FEATURES)), np.float32),
            cells_mask=np.zeros((0, cfg.n_cells), bool),
            n_tracks=np.zeros(0, np.int32),
            n_cells=np.zeros(0, np.int32),
        )
        return cols
    det_j = jets.det[ev, jets.best[ev, part]]
    had_j = jets.had[ev, jets.had_idx[ev, part]]
    consts = jets.best_consts[ev * jets.best.shape[1] + part]
    xt, mt, xc, mc, n_trk, n_cell = jet_features(tracks[ev], consts, det_j, z_pv[ev], cfg)
    cols = {k: ak.to_numpy(det_j[k]).astype(np.float32) for k in ("pt", "eta", "phi", "mass")}
    cols.update(
        hadron_pt=ak.to_numpy(had_j.pt),
        hadron_eta=ak.to_numpy(had_j.eta),
        hadron_phi=ak.to_numpy(had_j.phi),
    )
    cols.update(particles=xt, mask=mt, cells=xc, cells_mask=mc, n_tracks=n_trk, n_cells=n_cell)
    return cols


def _write_pairs(
    out_path: str | os.PathLike[str],
    per_copy: list[tuple[CopyJets, ak.Array]],
    pairs: _Pairs,
    result: Any,
    z_pv: np.ndarray,
    ds_cfg: Mapping[str, Any],
    cfg: HadforkConfig,
    cid: ChunkId,
    card_sha: str,
    pileup_library: str,
) -> dict[str, np.ndarray]:
    """Step 5: features per copy, interleaved into pairs and written; returns the extra
    jet columns (for the chunk's statistics)."""
    rows = [_copy_rows(j, tracks, pairs, z_pv, cfg) for j, tracks in per_copy]
    ev, part, pids = pairs.ev, pairs.part, pairs.pids
    n_slots = per_copy[0][0].best.shape[1]
    n_var = len(VARIANTS)
    kept_event = result.stats["kept_index"]
    parton_pt = (
        ak.to_numpy(ak.fill_none(ak.pad_none(result.truth.pt, n_slots, axis=1), 0.0)[ev, part])
        if pairs.n
        else np.zeros(0)
    )
    # τ⁻ (pid 15) decays through column 0 of the drawn channels, τ⁺ through column 1
    tau_ch = np.where(
        np.abs(pids) == 15, result.tau_channels[ev, np.where(pids > 0, 0, 1)], -1
    ).astype(np.int16)
    jets_cols = {k: interleave(rows, k) for k in ("pt", "eta", "phi", "mass")}
    jets_cols["n2"] = np.full(pairs.n * n_var, np.nan, np.float32)
    jets_cols.update(
        pair_columns(
            pairs.n, n_var, cid.chunk, list(cfg.processes).index(cid.process),
            label=pairs.labels, pair_id=kept_event[ev] * n_slots + part,
            event=kept_event[ev], parton_pid=np.abs(pids).astype(np.int64),
        )
    )  # fmt: skip
    extra = {
        k: interleave(rows, k)
        for k in ("hadron_pt", "hadron_eta", "hadron_phi", "n_tracks", "n_cells")
    }
    extra["parton_pt"] = np.repeat(parton_pt, n_var)
    extra["tau_channel"] = np.repeat(tau_ch, n_var)
    attrs = chunk_attrs(
        ds_cfg, cid.dataset, cid.split, feature_names=TRACK_FEATURES,
        class_names=class_names(ds_cfg), process_names=cfg.processes, variant_names=VARIANTS,
        detector=cfg.detector, detector_sha256=card_sha, pileup_mu=cfg.pileup_mu,
        pileup_library=pileup_library,
    )  # fmt: skip
    block = {k: interleave(rows, k) for k in ("particles", "mask", "cells", "cells_mask")}
    write_hadfork_file(
        out_path, block["particles"], block["mask"], block["cells"], block["cells_mask"],
        jets_cols, extra, attrs,
    )  # fmt: skip
    return extra


def write_hadfork_file(
    path: str | os.PathLike[str],
    particles: np.ndarray,
    mask: np.ndarray,
    cells: np.ndarray,
    cells_mask: np.ndarray,
    jets: Mapping[str, np.ndarray],
    extra_jets: Mapping[str, np.ndarray],
    attrs: Mapping[str, object],
) -> None:
    """Data contract 4 plus ``cells``/``cells_mask``, attr ``cells_feature_names`` and
    extra ``jets/…`` columns, written atomically (nothing at ``path`` unless complete)."""
    if cells.shape[:2] != cells_mask.shape or cells.shape[0] != particles.shape[0]:
        raise ValueError(
            f"cells {cells.shape} / cells_mask {cells_mask.shape} / particles "
            f"{particles.shape} disagree"
        )
    with atomic_path(path) as tmp:
        write_jet_dataset(tmp, particles, mask, jets, attrs)
        with h5py.File(tmp, "a") as f:
            n, c, nf = cells.shape
            rows = min(ROW_CHUNK, max(n, 1))
            f.create_dataset(
                "cells", data=cells, maxshape=(None, c, nf), chunks=(rows, c, nf), track_times=False
            )
            f.create_dataset(
                "cells_mask",
                data=cells_mask,
                maxshape=(None, c),
                chunks=(rows, c),
                track_times=False,
            )
            f.attrs["cells_feature_names"] = np.array(
                list(CELL_FEATURES), dtype=h5py.string_dtype()
            )
            for name, dt in EXTRA_JET_COLUMNS.items():
                f["jets"].create_dataset(
                    name,
                    data=np.asarray(extra_jets[name], dtype=dt),
                    maxshape=(None,),
                    track_times=False,
                )


def merge_hadfork_chunks(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    extra_attrs: Mapping[str, object] | None = None,
) -> int:
    """Merge chunk files; the generic merge carries the cells and extra jet columns."""
    return merge_jet_datasets(inputs, output, extra_attrs)


# --------------------------------------------------------------------------------------
# Dark jets: resampling to the SM (pT, eta) distribution
# --------------------------------------------------------------------------------------


def resample_to(
    reference_pt_eta: np.ndarray,
    candidate_pt_eta: np.ndarray,
    rng: np.random.Generator,
    n: int | None = None,
    pt_bins: np.ndarray | Sequence[float] | None = None,
    eta_bins: np.ndarray | Sequence[float] | None = None,
) -> np.ndarray:
    """Indices of candidates whose (p_T, η) distribution follows the reference's.

    Rieck et al. §5: "we resample each dark jet dataset to match the SM jet distribution
    in both jet transverse momentum and pseudorapidity". Weights w = h_ref / h_cand per
    2-d bin; candidate i is accepted with probability w_i / max(w) (unweighting: the kept
    set is an unbiased sample of the reference shape wherever candidates exist), accepted
    indices are shuffled and the first ``n`` returned (all if None). Bins default to 20
    quantile bins of the reference p_T (log-spaced edges are a poor fit to a steeply
    falling spectrum) and 12 uniform η bins. Raises if fewer than ``n`` are accepted.
    """
    ref = np.asarray(reference_pt_eta, dtype=np.float64)
    cand = np.asarray(candidate_pt_eta, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[1] != 2 or cand.ndim != 2 or cand.shape[1] != 2:
        raise ValueError(f"need [N, 2] (pT, eta) arrays, got {ref.shape} and {cand.shape}")
    if len(ref) == 0 or len(cand) == 0:
        raise ValueError("resample_to needs non-empty reference and candidate samples")
    if pt_bins is None:
        pt_bins = np.unique(np.quantile(ref[:, 0], np.linspace(0, 1, 21)))
    if eta_bins is None:
        lim = max(np.abs(ref[:, 1]).max(), 1e-6)
        eta_bins = np.linspace(-lim, lim, 13)
    pt_bins, eta_bins = np.asarray(pt_bins, float), np.asarray(eta_bins, float)
    h_ref, _, _ = np.histogram2d(ref[:, 0], ref[:, 1], bins=(pt_bins, eta_bins))
    h_cand, _, _ = np.histogram2d(cand[:, 0], cand[:, 1], bins=(pt_bins, eta_bins))
    ip = np.digitize(cand[:, 0], pt_bins) - 1
    ie = np.digitize(cand[:, 1], eta_bins) - 1
    inside = (ip >= 0) & (ip < len(pt_bins) - 1) & (ie >= 0) & (ie < len(eta_bins) - 1)
    ratio = np.divide(
        h_ref / h_ref.sum(), h_cand / h_cand.sum(), out=np.zeros_like(h_ref), where=h_cand > 0
    )
    w = np.zeros(len(cand))
    w[inside] = ratio[ip[inside], ie[inside]]
    if w.max() <= 0:
        raise ValueError("no candidate falls in a populated reference (pT, eta) bin")
    accepted = np.flatnonzero(rng.random(len(cand)) < w / w.max())
    accepted = rng.permutation(accepted)
    if n is not None:
        if len(accepted) < n:
            raise ValueError(
                f"only {len(accepted)} of {len(cand)} candidates survive resampling, "
                f"{n} requested; "
                "generate more dark jets"
            )
        accepted = accepted[:n]
    return accepted


def resample_dataset(
    reference_path: str | os.PathLike[str],
    candidate_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    seed: int,
    n_pairs: int | None = None,
) -> int:
    """Resample a (dark-jet) hadfork file to the reference file's jet (p_T, η); by pair.

    The ``fork_a`` row's (p_T, η) decides for its pair, so pairs stay whole and the output
    still follows data contract 4 (V = 2); anomaly studies read the ``fork_a`` rows.
    Returns the number of pairs written.
    """
    with h5py.File(reference_path, "r") as f:
        v = f["jets/variant"][:]
        ref = np.stack([f["jets/pt"][:][v == 0], f["jets/eta"][:][v == 0]], axis=1)
    with h5py.File(candidate_path, "r") as f:
        var = f["jets/variant"][:]
        n_var = int(var.max()) + 1 if var.size else 1
        cand = np.stack([f["jets/pt"][:][var == 0], f["jets/eta"][:][var == 0]], axis=1)
        pick = np.sort(resample_to(ref, cand, np.random.default_rng(seed), n_pairs))
        rows = (pick[:, None] * n_var + np.arange(n_var)[None, :]).ravel()
        attrs = read_attrs(f)
        data = {k: f[k][rows] for k in ("particles", "mask", "cells", "cells_mask")}
        jets = {k: f["jets"][k][rows] for k in f["jets"]}
    attrs = {**attrs, "resampled_to": os.fspath(reference_path), "resample_seed": seed}
    base = {k: jets.pop(k) for k in list(jets) if k not in EXTRA_JET_COLUMNS}
    write_hadfork_file(
        out_path,
        data["particles"],
        data["mask"],
        data["cells"],
        data["cells_mask"],
        base,
        jets,
        attrs,
    )
    return len(pick)
