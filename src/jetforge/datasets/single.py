"""Single-shower jet datasets: JetClass, JetNet, RODEM, top tagging, quark–gluon.

One call turns one chunk of hard events (an LHE file, data contract 1) into one HDF5 chunk
(data contract 4) with V = 1 variant, "nominal": shower + hadronize every hard event once
(ISR, MPI, hadronization as configured: these are ordinary physics samples), simulate the
detector (a card from ``resources/detectors``) or stay at particle level (``detector:
none``), cluster anti-k_t, keep per event the hardest jet inside the p_T window and η (or
rapidity) range that contains every truth object of the process (resonance and its final
decay products, JetClass-style, or the hard parton), and compute the dataset's particle
features from the registry in :mod:`jetforge.jets.featuresets`.

Why batches: Pythia's ``nextBatch`` keeps the full event record (~0.6 MB per tt̄ event
with CP5 MPI: a job peaks at 308 MB with 250 events per batch, 772 MB with 1000, measured
by bench/datasets.py), so a chunk is showered ``batch_events`` at a time from one Pythia
instance reading the LHE file sequentially; only the selected jets' features are kept
between batches. Peak memory is then set by the batch size, not the chunk size. The
detector's random stream is seeded per batch from the provenance ids and the batch's first
event, so the output depends on ``batch_events`` (a config value, recorded in
the file's ``config_json``), and is byte-identical for identical configs.

Why flat numpy columns: the goal is throughput within ~10 % of bare ``pythia.nextBatch``
(a few ms per event, under 2 ms with MPI off), and every awkward operation costs ~0.1 ms of
Python overhead plus a full pass over its (jagged) data. So the hot path reads the final
state out of the ``nextBatch`` record straight into flat columns
(:func:`jetforge.generation.shower.final_state_flat`), runs the detector
(:func:`jetforge.detector.eflow.simulate_flat`) and the particle-level candidates on them,
computes only the candidate columns the feature set reads, clusters with one multi-event
fastjet call, selects jets with numpy, and gathers the constituents of the selected jets
only. Events whose truth objects are too far apart (or too forward) for any jet to contain
them all are not clustered (:func:`can_contain_truth`). The output is bit-identical to the
former awkward implementation (tests/test_generation_fastpath.py keeps it as reference).

``build_jets_chunk`` has the signature and output contract of
:func:`jetforge.datasets.resim.build_resim_chunk`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jetforge.datasets.chunk import (
    ChunkId,
    chunk_attrs,
    class_names,
    pair_columns,
    timed,
    truth_table,
)
from jetforge.detector import load_card, simulate
from jetforge.detector.eflow import OUTPUT_FIELDS, EflowConfig, impact_parameters, simulate_flat
from jetforge.detector.eflow import parse_card as parse_eflow_card
from jetforge.generation.hard import (
    HardCutsConfigError,
    hard_cuts_for,
    write_hard_chunk,
)
from jetforge.generation.processes import get_process
from jetforge.generation.pythia_setup import make_pythia
from jetforge.generation.shower import INVISIBLE_PIDS, ChargeTable, FlatEvents, final_state_flat
from jetforge.io.h5 import write_jet_dataset
from jetforge.io.lhe import LHEEvent, chunk_min_events, read_lhe
from jetforge.jets.cluster import cluster_flat, first_argmax
from jetforge.jets.featuresets import FeatureSet, get_feature_set
from jetforge.jets.kinematics import delta_r, pt_eta_phi, rapidity
from jetforge.jets.kinematics import mass as invariant_mass
from jetforge.jets.substructure import n2 as n2_of
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")


#: ``detector:`` value that means "no detector": jets of final-state particles.
PARTICLE_LEVEL = "none"
#: The one variant of a single-shower dataset (data contract 4: V = 1).
NOMINAL = "nominal"
#: Hard events showered per Pythia ``nextBatch`` call unless the config says otherwise.
DEFAULT_BATCH_EVENTS = 250


class DatasetConfigError(ValueError):
    """A dataset config value that cannot produce a dataset; names key, value and fix."""


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class JetCuts:
    """Jet selection of one dataset (all in GeV / radians).

    Exactly one of ``eta_max`` (|η| < eta_max: JetClass, RODEM, top tagging) and ``y_max``
    (|y| < y_max: quark–gluon, Komiske et al. arXiv:1810.05165 §4.1) is set. ``match_dr``
    (default R) is the ΔR within which every truth object must lie.
    """

    R: float
    pt_min: float
    pt_max: float
    eta_max: float | None = None
    y_max: float | None = None
    mass_min: float = 0.0
    match_dr: float | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], where: str = "jets") -> JetCuts:
        known = {"R", "pt_min", "pt_max", "eta_max", "y_max", "mass_min", "match_dr"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise DatasetConfigError(
                f"config key {where}: unknown keys {unknown}; allowed: {sorted(known)}"
            )
        for key in ("R", "pt_min", "pt_max"):
            if key not in cfg:
                raise DatasetConfigError(f"config key {where}.{key} is missing (required)")
        cuts = cls(**{k: (None if v is None else float(v)) for k, v in cfg.items()})
        cuts.validate(where)
        return cuts

    def validate(self, where: str = "jets") -> None:
        def bad(key: str, value: object, why: str) -> DatasetConfigError:
            return DatasetConfigError(f"config key {where}.{key}: value {value} {why}")

        if not self.R > 0:
            raise bad("R", self.R, "must be positive (anti-k_t radius)")
        if self.pt_min < 0:
            raise bad("pt_min", self.pt_min, "must not be negative")
        if not self.pt_min < self.pt_max:
            raise bad(
                "pt_min", self.pt_min, f"must be below pt_max = {self.pt_max}: no jet can pass"
            )
        if (self.eta_max is None) == (self.y_max is None):
            raise DatasetConfigError(
                f"config key {where}: set exactly one of eta_max (|η| cut) and y_max (|y| cut), "
                f"got eta_max={self.eta_max}, y_max={self.y_max}"
            )
        for key in ("eta_max", "y_max", "match_dr"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise bad(key, value, "must be positive")
        if self.mass_min < 0:
            raise bad("mass_min", self.mass_min, "must not be negative")

    @property
    def dr(self) -> float:
        return self.R if self.match_dr is None else self.match_dr


@dataclass(frozen=True)
class SingleConfig:
    """The validated parts of a single-shower dataset config that the builder uses."""

    settings: tuple[str, ...]
    variant: str
    detector: str
    cuts: JetCuts
    feature_set: FeatureSet
    n_particles: int
    batch_events: int
    # N2 (RS3L's baseline) costs O(n^3) in the constituents: the dominant overhead over
    # Pythia for MPI-rich jets; datasets whose papers never use it switch it off (NaN)
    compute_n2: bool = True


def parse_config(ds_cfg: Mapping[str, Any]) -> SingleConfig:
    """Check ``ds_cfg`` and return what the builder needs; errors name key, value and fix.

    Keys: ``shower.base_settings`` (list of Pythia settings), optional ``shower.variants``
    with exactly one entry (its name becomes the variant name, its settings are appended),
    ``detector`` (card name or ``none``), ``jets`` (:class:`JetCuts`), ``features`` (a
    feature-set name), ``n_particles``, optional ``batch_events``, and ``hard_cuts``
    (checked here so that pt_min > pt_max is reported with its key).
    """
    for key in ("shower", "detector", "jets", "features", "n_particles", "processes"):
        if key not in ds_cfg:
            raise DatasetConfigError(f"config key {key!r} is missing from the dataset config")
    shower = ds_cfg["shower"]
    settings = list(shower.get("base_settings", []))
    variant = NOMINAL
    variants = shower.get("variants")
    if variants:
        if len(variants) != 1:
            raise DatasetConfigError(
                f"config key shower.variants: {list(variants)} has {len(variants)} entries; a "
                "single-shower dataset has exactly one (use kind resim for several)"
            )
        variant, extra = next(iter(variants.items()))
        settings += list(extra or [])
    if "hard_cuts" in ds_cfg:
        for name in ds_cfg["processes"]:
            try:
                hard_cuts_for(ds_cfg, name)
            except HardCutsConfigError as err:
                raise DatasetConfigError(str(err)) from None
    detector = str(ds_cfg["detector"])
    if detector != PARTICLE_LEVEL:
        try:
            load_card(detector)
        except (KeyError, FileNotFoundError) as err:
            msg = err.args[0] if err.args else str(err)
            raise DatasetConfigError(
                f"config key detector: {msg}; or use {PARTICLE_LEVEL!r} for particle level"
            ) from None
    try:
        feature_set = get_feature_set(str(ds_cfg["features"]))
    except KeyError as err:
        raise DatasetConfigError(str(err)) from None
    n_particles = int(ds_cfg["n_particles"])
    if n_particles < 1:
        raise DatasetConfigError(f"config key n_particles: value {n_particles} must be >= 1")
    batch = int(ds_cfg.get("batch_events", DEFAULT_BATCH_EVENTS))
    if batch < 1:
        raise DatasetConfigError(f"config key batch_events: value {batch} must be >= 1")
    for name in ds_cfg["processes"]:
        try:
            get_process(name)
        except KeyError as err:
            raise DatasetConfigError(f"config key processes: {err.args[0]}") from None
    return SingleConfig(
        settings=tuple(settings),
        variant=str(variant),
        detector=detector,
        cuts=JetCuts.from_config(ds_cfg["jets"]),
        feature_set=feature_set,
        n_particles=n_particles,
        batch_events=batch,
        compute_n2=bool(ds_cfg.get("n2", True)),
    )


def generate_chunk_lhe(
    out_path: str | os.PathLike[str],
    ds_cfg: Mapping[str, Any],
    dataset: str,
    process_name: str,
    split: str,
    chunk: int,
    base_seed: int,
) -> dict[str, Any]:
    """Hard events of one chunk as LHE, as the workflow's ``hard_process`` step writes them
    (:func:`jetforge.generation.hard.write_hard_chunk`; kept under this name for callers)."""
    return write_hard_chunk(out_path, ds_cfg, dataset, process_name, split, chunk, base_seed)


# ----------------------------------------------------------------------------- particles


#: Fields of particle-level candidates, in output order (data contract 3, plus the PDG id).
PARTICLE_CANDIDATE_FIELDS: tuple[str, ...] = (
    "px", "py", "pz", "E", "charge",
    "is_electron", "is_muon", "is_photon", "is_ch", "is_nh",
    "d0", "dz", "d0_err", "dz_err", "pid",
)  # fmt: skip


def particle_candidates(particles: ak.Array) -> ak.Array:
    """Particle-level "candidates" (data contract 3) from final-state particles (format 2).

    What a perfect detector would see: neutrinos dropped (and particles along the beam,
    p_T = 0), PID flags from the PDG id (e, μ, γ; other charged = charged hadron, other
    neutral = neutral hadron, as ParT's quark–gluon conversion does with ±211/321/2212 and
    130/±2112), true straight-line impact parameters from the production vertex, and zero
    uncertainties. The work is done by :func:`particle_candidates_flat`.
    """
    flat = FlatEvents.from_awkward(particles, particles.fields)
    return particle_candidates_flat(flat).to_awkward()


def particle_candidates_flat(
    particles: FlatEvents, fields: Sequence[str] = PARTICLE_CANDIDATE_FIELDS
) -> FlatEvents:
    """:func:`particle_candidates` on flat columns; only the candidate ``fields`` asked for
    are computed (the same values, float64, the PDG id int64)."""
    unknown = sorted(set(fields) - set(PARTICLE_CANDIDATE_FIELDS))
    if unknown:
        raise KeyError(f"unknown candidate fields {unknown}; known: {PARTICLE_CANDIDATE_FIELDS}")
    col = particles.cols
    apid = np.abs(col["pid"].astype(np.int64))
    px, py = col["px"].astype(np.float64), col["py"].astype(np.float64)
    keep = np.flatnonzero(~np.isin(apid, INVISIBLE_PIDS) & (np.hypot(px, py) > 0))
    evt = particles.event_index()[keep]
    apid = apid[keep]
    charge = col["charge"][keep].astype(np.float64)
    is_e, is_mu, is_gamma = apid == 11, apid == 13, apid == 22
    out: dict[str, np.ndarray] = {"charge": charge}
    out.update({k: col[k][keep] for k in ("px", "py", "pz", "E", "pid") if k in fields})
    out.update(is_electron=is_e, is_muon=is_mu, is_photon=is_gamma)
    if "is_ch" in fields:
        out["is_ch"] = (charge != 0) & ~is_e & ~is_mu
    if "is_nh" in fields:
        out["is_nh"] = (charge == 0) & ~is_gamma
    if {"d0", "dz", "d0_err", "dz_err"} & set(fields):  # true impact parameters, no error
        vertex = (col[k][keep].astype(np.float64) for k in ("px", "py", "pz", "vx", "vy", "vz"))
        out["d0"], out["dz"] = impact_parameters(*vertex)
        out["d0_err"], out["dz_err"] = np.zeros_like(out["d0"]), np.zeros_like(out["dz"])
    cols = {k: np.asarray(out[k], dtype=np.int64 if k == "pid" else np.float64) for k in fields}
    return FlatEvents(cols, np.bincount(evt, minlength=len(particles)).astype(np.int64))


def shower_batches(
    lhe_path: str | os.PathLike[str],
    hard_events: Sequence[LHEEvent],
    settings: Sequence[str],
    seed: int,
    batch_events: int,
) -> Iterator[tuple[int, FlatEvents, np.ndarray, dict[str, float]]]:
    """Shower an LHE file ``batch_events`` at a time: yields (start, particles, ok, cpu).

    One Pythia reads the file sequentially (``Beams:frameType = 4``), so event ``start + i``
    of the batch is LHE event ``start + i``. ``errorMode="none"`` keeps a slot for events
    Pythia gave up on; ``ok`` is False there and where the event record's incoming partons
    (status -21, copied from the LHE event even with ISR on) differ from the LHE file's,
    the guard of :func:`jetforge.generation.shower.shower_lhe`. ``particles`` are the
    final-state particles of every event as flat columns
    (:func:`jetforge.generation.shower.final_state_flat`). ``cpu`` holds the CPU seconds of
    this batch in Pythia's initialisation (first batch), ``nextBatch`` and the extraction of
    the final state from its event record, for the overhead measurement.
    """
    t = time.process_time()
    py = make_pythia(["Beams:frameType = 4", f"Beams:LHEF = {lhe_path}", *settings], seed)
    init = time.process_time() - t
    charges = ChargeTable(py)
    n = len(hard_events)
    ref = np.array(
        [[p.pz for p in ev.particles if p.status == -1][:2] for ev in hard_events], dtype=np.float64
    ).reshape(n, 2)
    for start in range(0, n, batch_events):
        size = min(batch_events, n - start)
        t = time.process_time()
        batch = py.nextBatch(size, "none")
        t_py = time.process_time() - t
        if len(batch) != size:
            raise RuntimeError(
                f"{lhe_path}: Pythia returned {len(batch)} events at event {start}, expected "
                f"{size}; the LHE file is shorter than its event list"
            )
        t = time.process_time()
        particles, ok = final_state_flat(batch, charges, ref[start : start + size])
        del batch
        cpu = {"init": init, "pythia": t_py, "extract": time.process_time() - t}
        init = 0.0
        yield start, particles, ok, cpu


# ----------------------------------------------------------------------------- jets


def select_jets(
    candidates: ak.Array, truth_eta: np.ndarray, truth_phi: np.ndarray, cuts: JetCuts
) -> tuple[np.ndarray, ak.Array, ak.Array]:
    """Cluster each event; keep its hardest jet passing ``cuts`` that contains all truth objects.

    Like :func:`jetforge.jets.cluster.cluster_and_select`, plus an upper p_T cut and an
    |η| or |y| range. Returns (``selected`` bool [n], jets [n] with pt, eta, phi, mass, E,
    y; constituents [n][…]); unselected entries are placeholders (zeros, no constituents).
    The work is done by :func:`select_jets_flat`.
    """
    n = len(candidates)
    flat = FlatEvents.from_awkward(candidates, candidates.fields)
    selected, jet, consts = select_jets_flat(flat, truth_eta, truth_phi, cuts)
    full = {k: np.zeros(n) for k in jet}
    for k, v in jet.items():
        full[k][selected] = v
    counts = np.zeros(n, dtype=np.int64)
    counts[selected] = consts.counts
    return selected, ak.zip(full), FlatEvents(consts.cols, counts).to_awkward()


def can_contain_truth(truth_eta: np.ndarray, truth_phi: np.ndarray, cuts: JetCuts) -> np.ndarray:
    """False for events where no jet can pass ``cuts`` and contain every truth object.

    A passing jet lies within ΔR < ``cuts.dr`` of every truth object, so (triangle
    inequality of ΔR on the (η, φ) cylinder) no two objects may be ΔR >= 2 dr apart, and
    with an |η| cut every object has |η| < eta_max + dr. These events need no clustering;
    the margin of 1e-6 keeps rounding from ever dropping an event that could pass.
    """
    n, k = truth_eta.shape
    ok = np.ones(n, dtype=bool)
    margin = 1e-6
    if cuts.eta_max is not None:
        ok &= np.all(np.abs(truth_eta) < cuts.eta_max + cuts.dr + margin, axis=1)
    for a in range(k):
        for b in range(a + 1, k):
            dr = delta_r(truth_eta[:, a], truth_phi[:, a], truth_eta[:, b], truth_phi[:, b])
            ok &= dr < 2.0 * cuts.dr + margin
    return ok


def select_jets_flat(
    candidates: FlatEvents, truth_eta: np.ndarray, truth_phi: np.ndarray, cuts: JetCuts
) -> tuple[np.ndarray, dict[str, np.ndarray], FlatEvents]:
    """:func:`select_jets` on flat columns, the same jets.

    Returns ``selected`` bool [n], the selected jets' pt, eta, phi, mass, E, y (float64,
    one per selected event, in event order) and their constituents (one "event" per
    selected jet, every candidate column, fastjet's constituent order). Events that cannot
    contain all truth objects (:func:`can_contain_truth`) are not clustered.
    """
    n = len(candidates)
    selected = np.zeros(n, dtype=bool)
    todo = np.flatnonzero(can_contain_truth(truth_eta, truth_phi, cuts))
    sub = candidates.take(todo)
    c = sub.cols
    jets = cluster_flat(c["px"], c["py"], c["pz"], c["E"], sub.counts, cuts.R, cuts.pt_min)
    # the arithmetic of the awkward implementation, element by element
    px, py, pz, e = jets.px, jets.py, jets.pz, jets.E
    pt, eta, phi = pt_eta_phi(px, py, pz)
    mass = invariant_mass(px, py, pz, e)
    y = rapidity(pz, e)
    ok = (pt >= cuts.pt_min) & (pt < cuts.pt_max) & (mass >= cuts.mass_min)
    ok &= (abs(eta) < cuts.eta_max) if cuts.y_max is None else (abs(y) < cuts.y_max)
    jet_event = np.repeat(np.arange(todo.size), jets.counts)
    t_eta, t_phi = truth_eta[todo][jet_event], truth_phi[todo][jet_event]
    for k in range(truth_eta.shape[1]):
        dr = delta_r(eta, phi, t_eta[:, k], t_phi[:, k])
        ok &= dr < cuts.dr
    best = first_argmax(np.where(ok, pt, -1.0), jets.counts)
    has = best >= 0
    passed = np.zeros(todo.size, dtype=bool)
    passed[has] = ok[best[has]]
    chosen = best[passed]
    selected[todo[passed]] = True
    fields = {"pt": pt, "eta": eta, "phi": phi, "mass": mass, "E": e, "y": y}
    jet = {k: v[chosen] for k, v in fields.items()}
    counts, rows = jets.constituents(chosen)
    consts = FlatEvents({k: v[rows] for k, v in c.items()}, counts)
    return selected, jet, consts


# ----------------------------------------------------------------------------- builder


def build_jets_chunk(
    lhe_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    ds_cfg: Mapping[str, Any],
    dataset: str,
    process_name: str,
    split: str,
    chunk: int,
    base_seed: int,
    progress: bool = False,
) -> dict[str, Any]:
    """Build one single-shower chunk file; returns timing and selection statistics.

    ``timing`` holds CPU seconds per phase (``time.process_time``: on a shared machine wall
    time measures the neighbours): Pythia initialisation, LHE reading + truth table,
    ``nextBatch``, final-state extraction, detector, jets (clustering, selection, N2),
    features, HDF5 write. ``overhead_over_pythia`` is CPU time of everything else over
    Pythia's (init + ``nextBatch``), the quantity bench/datasets.py measures.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    cfg = parse_config(ds_cfg)
    if process_name not in ds_cfg["processes"]:
        raise DatasetConfigError(
            f"process {process_name!r} is not in config key processes: {list(ds_cfg['processes'])}"
        )
    timing = dict.fromkeys(
        ("init", "read", "pythia", "extract", "detector", "jets", "features"), 0.0
    )
    with timed(timing, "read", time.process_time):
        _, events = read_lhe(lhe_path, chunk_min_events(ds_cfg))
        truth_eta, truth_phi, parton_pid = truth_table(events, process_name, lhe_path)
    n = len(events)
    detector = _Detector.load(cfg)
    cid = ChunkId(dataset, process_name, split, chunk, base_seed)
    kept: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
    n_failed = 0
    batches = shower_batches(
        lhe_path, events, cfg.settings, cid.seed(cfg.variant, "shower"), cfg.batch_events
    )
    for start, particles, ok, cpu in batches:
        for k, v in cpu.items():
            timing[k] += v
        n_failed += int((~ok).sum())
        alive = np.flatnonzero(ok)
        with timed(timing, "detector", time.process_time):
            rng = cid.rng(cfg.variant, "detector", start) if detector.card is not None else None
            cands = detector.candidates(particles.take(alive), rng)
        del particles
        rows = start + alive
        kept.append(
            _batch_jets(cands, detector.needed, rows, truth_eta[rows], truth_phi[rows], cfg, timing)
        )
        del cands
        if progress:
            print(
                f"{process_name} chunk {chunk}: {start + len(ok)}/{n} events showered", flush=True
            )
    with timed(timing, "write", time.process_time):
        n_jets = _write_jets(out_path, kept, parton_pid, ds_cfg, cfg, cid, detector.sha256)
    total, cpu_total = time.perf_counter() - t0, time.process_time() - c0
    pythia = timing["init"] + timing["pythia"]
    return {
        "hard_events": n,
        "jets": n_jets,
        "kept_pairs": n_jets,
        "efficiency": n_jets / max(n, 1),
        "failed_events": n_failed,
        "seconds": total,
        "cpu_seconds": cpu_total,
        "hard_events_per_s": n / total if total > 0 else math.inf,
        "overhead_over_pythia": cpu_total / pythia - 1 if pythia > 0 else math.nan,
        "timing": timing,
    }


@dataclass(frozen=True)
class _Detector:
    """The chunk's detector: none (particle level), the flat eflow model, or another card.

    Loaded once per chunk (the eflow card is parsed once, not per batch); ``needed`` are
    the candidate columns the chunk reads: four-momenta (clustering) and the feature set's.
    """

    card: Mapping[str, Any] | None
    sha256: str
    eflow: EflowConfig | None
    needed: tuple[str, ...]

    @classmethod
    def load(cls, cfg: SingleConfig) -> _Detector:
        needed = tuple(dict.fromkeys(("px", "py", "pz", "E", *cfg.feature_set.needs)))
        if cfg.detector == PARTICLE_LEVEL:
            return cls(None, "", None, needed)
        card, sha = load_card(cfg.detector)
        eflow = parse_eflow_card(card) if card.get("model") == "eflow" else None
        return cls(card, sha, eflow, needed)

    def candidates(self, particles: FlatEvents, rng: np.random.Generator | None) -> FlatEvents:
        """Reconstructed candidates (or particle-level ones) of the showered ``particles``."""
        if self.card is None:
            return particle_candidates_flat(particles, self.needed)
        if self.eflow is not None:
            fields = tuple(f for f in self.needed if f in OUTPUT_FIELDS)
            cols, counts = simulate_flat(
                particles.cols, particles.counts, self.eflow, rng, fields=fields
            )
            return FlatEvents(cols, counts)
        # another detector model: its awkward interface
        return FlatEvents.from_awkward(
            simulate(particles.to_awkward(), self.card, rng), self.needed
        )


def _batch_jets(
    cands: FlatEvents,
    needed: tuple[str, ...],
    rows: np.ndarray,
    truth_eta: np.ndarray,
    truth_phi: np.ndarray,
    cfg: SingleConfig,
    timing: dict[str, float],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Selected jets of one batch: (features, mask, jet columns incl. ``event`` = LHE row)."""
    with timed(timing, "jets", time.process_time):
        selected, jet, consts = select_jets_flat(cands, truth_eta, truth_phi, cfg.cuts)
        rows = rows[selected]
        cols = {k: jet[k].astype(np.float32) for k in ("pt", "eta", "phi", "mass")}
        jets_ak = ak.zip({k: jet[k] for k in ("pt", "eta", "phi", "mass", "E", "y")})
        consts_ak = consts.to_awkward(needed)
        cols["n2"] = n2_of(consts_ak) if cfg.compute_n2 else np.full(len(rows), np.nan, np.float32)
        cols["event"] = rows
    with timed(timing, "features", time.process_time):
        x, mask = cfg.feature_set.compute(jets_ak, consts_ak, cfg.n_particles)
    return x, mask, cols


def _write_jets(
    out_path: str | os.PathLike[str],
    kept: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]],
    parton_pid: np.ndarray,
    ds_cfg: Mapping[str, Any],
    cfg: SingleConfig,
    cid: ChunkId,
    card_sha: str,
) -> int:
    """Write the batches' jets as one chunk (data contract 4, V = 1); returns the jet count."""
    n_feat = len(cfg.feature_set.feature_names)
    if kept:
        x = np.concatenate([k[0] for k in kept])
        mask = np.concatenate([k[1] for k in kept])
    else:
        x = np.zeros((0, cfg.n_particles, n_feat), np.float32)
        mask = np.zeros((0, cfg.n_particles), bool)
    names = ("pt", "eta", "phi", "mass", "n2", "event")
    col = {k: np.concatenate([c[k] for _, _, c in kept]) if kept else np.zeros(0) for k in names}
    classes = class_names(ds_cfg)
    event = col["event"]
    jets_cols = {k: col[k] for k in ("pt", "eta", "phi", "mass", "n2")}
    jets_cols.update(
        pair_columns(
            len(x), 1, cid.chunk, list(ds_cfg["processes"]).index(cid.process),
            label=classes.index(get_process(cid.process).label),
            pair_id=event,  # V = 1: every jet is its own "pair"
            event=event, parton_pid=parton_pid[event.astype(np.int64)],
        )
    )  # fmt: skip
    standardisation = cfg.feature_set.standardisation.items()
    attrs = chunk_attrs(
        ds_cfg, cid.dataset, cid.split, feature_names=cfg.feature_set.feature_names,
        class_names=classes, process_names=list(ds_cfg["processes"]),
        variant_names=[cfg.variant], detector=cfg.detector, detector_sha256=card_sha,
        feature_set=cfg.feature_set.name,
        feature_standardisation={k: (None if v is None else list(v)) for k, v in standardisation},
    )  # fmt: skip
    write_jet_dataset(out_path, x, mask, jets_cols, attrs)
    return len(x)
