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
between batches. Peak memory is then set by the batch size, not the chunk size. The detector's random stream is seeded per batch from the provenance ids and the
batch's first event, so the output depends on ``batch_events`` (a config value, recorded in
the file's ``config_json``), and is byte-identical for identical configs.

``build_jets_chunk`` has the signature and output contract of
:func:`jetforge.datasets.resim.build_resim_chunk`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from jetforge import __version__
from jetforge.datasets.resim import class_names
from jetforge.detector import load_card, simulate
from jetforge.detector.eflow import impact_parameters
from jetforge.generation.hard import HardCuts, NoTaggedObject, tagged_objects
from jetforge.generation.processes import get_process
from jetforge.generation.pythia_setup import make_pythia
from jetforge.generation.seeds import derive_seed
from jetforge.generation.shower import INVISIBLE_PIDS, _charge_lookup, _fill_vertex
from jetforge.io.h5 import write_jet_dataset
from jetforge.io.lhe import LHEEvent, read_lhe
from jetforge.jets.cluster import delta_phi
from jetforge.jets.featuresets import FeatureSet, get_feature_set
from jetforge.jets.substructure import n2 as n2_of

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
            hard_cuts_for(ds_cfg, name)
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


def hard_cuts_for(ds_cfg: Mapping[str, Any], process_name: str) -> HardCuts:
    """Hard-process cuts of one process: ``hard_cuts`` updated by ``hard_cuts_by_process``.

    Why per process: the tagged object's p_T relates differently to the jet's (t → bℓν
    loses the neutrino's share), so one window for all classes wastes most hard events of
    some classes. Errors name the config key.
    """
    base = dict(ds_cfg.get("hard_cuts", {}))
    override = dict(ds_cfg.get("hard_cuts_by_process", {}).get(process_name, {}))
    key = f"hard_cuts_by_process.{process_name}" if override else "hard_cuts"
    merged = {**base, **override}
    unknown = sorted(set(merged) - {"pt_min", "pt_max", "eta_max"})
    missing = sorted({"pt_min", "pt_max", "eta_max"} - set(merged))
    if unknown or missing:
        raise DatasetConfigError(
            f"config key {key}: {merged} has unknown keys {unknown} / lacks {missing}; "
            "needs pt_min, pt_max, eta_max"
        )
    try:
        return HardCuts(float(merged["pt_min"]), float(merged["pt_max"]), float(merged["eta_max"]))
    except ValueError as err:
        raise DatasetConfigError(f"config key {key}: {merged}: {err}") from None


def generate_chunk_lhe(
    out_path: str | os.PathLike[str],
    ds_cfg: Mapping[str, Any],
    dataset: str,
    process_name: str,
    split: str,
    chunk: int,
    base_seed: int,
) -> dict[str, Any]:
    """Hard events of one chunk as LHE: the workflow's ``hard_process`` step itself, which
    applies :func:`hard_cuts_for` (kept here under this name for callers of this module)."""
    from jetforge.workflow.steps import hard_process

    return hard_process(str(out_path), dict(ds_cfg), dataset, process_name, split, chunk, base_seed)


# ----------------------------------------------------------------------------- particles


def particle_candidates(particles: ak.Array) -> ak.Array:
    """Particle-level "candidates" (data contract 3) from final-state particles (format 2).

    What a perfect detector would see: neutrinos dropped (and particles along the beam,
    p_T = 0), PID flags from the PDG id (e, μ, γ; other charged = charged hadron, other
    neutral = neutral hadron, as ParT's quark–gluon conversion does with ±211/321/2212 and
    130/±2112), true straight-line impact parameters from the production vertex, and zero
    uncertainties.
    """
    counts = ak.to_numpy(ak.num(particles, axis=1)).astype(np.int64)
    evt = np.repeat(np.arange(len(particles), dtype=np.int64), counts)
    col = {f: ak.to_numpy(ak.flatten(particles[f], axis=1)) for f in particles.fields}
    apid = np.abs(col["pid"].astype(np.int64))
    px, py = col["px"].astype(np.float64), col["py"].astype(np.float64)
    keep = ~np.isin(apid, INVISIBLE_PIDS) & (np.hypot(px, py) > 0)
    col = {k: v[keep] for k, v in col.items()}
    evt, apid = evt[keep], apid[keep]
    charge = col["charge"].astype(np.float64)
    d0, dz = impact_parameters(
        *(col[k].astype(np.float64) for k in ("px", "py", "pz", "vx", "vy", "vz"))
    )
    is_e, is_mu, is_gamma = apid == 11, apid == 13, apid == 22
    out = {
        "px": col["px"], "py": col["py"], "pz": col["pz"], "E": col["E"], "charge": charge,
        "is_electron": is_e, "is_muon": is_mu, "is_photon": is_gamma,
        "is_ch": (charge != 0) & ~is_e & ~is_mu, "is_nh": (charge == 0) & ~is_gamma,
        "d0": d0, "dz": dz, "d0_err": np.zeros_like(d0), "dz_err": np.zeros_like(dz),
        "pid": col["pid"],
    }  # fmt: skip
    out = {k: np.asarray(v, dtype=np.int64 if k == "pid" else np.float64) for k, v in out.items()}
    new_counts = np.bincount(evt, minlength=len(particles))
    return ak.unflatten(ak.zip(out), new_counts)


def shower_batches(
    lhe_path: str | os.PathLike[str],
    hard_events: Sequence[LHEEvent],
    settings: Sequence[str],
    seed: int,
    batch_events: int,
) -> Iterator[tuple[int, ak.Array, np.ndarray, float]]:
    """Shower an LHE file ``batch_events`` at a time: yields (start, particles, ok, seconds).

    One Pythia reads the file sequentially (``Beams:frameType = 4``), so event ``start + i``
    of the batch is LHE event ``start + i``. ``errorMode="none"`` keeps a slot for events
    Pythia gave up on; ``ok`` is False there and where the event record's incoming partons
    (status -21, copied from the LHE event even with ISR on) differ from the LHE file's,
    the guard of :func:`jetforge.generation.shower.shower_lhe`. ``seconds`` is the time
    spent inside Pythia (``nextBatch``), for the overhead measurement.
    """
    py = make_pythia(["Beams:frameType = 4", f"Beams:LHEF = {lhe_path}", *settings], seed)
    n = len(hard_events)
    ref = np.array(
        [[p.pz for p in ev.particles if p.status == -1][:2] for ev in hard_events], dtype=np.float64
    ).reshape(n, 2)
    for start in range(0, n, batch_events):
        size = min(batch_events, n - start)
        t = time.perf_counter()
        batch = py.nextBatch(size, "none")
        seconds = time.perf_counter() - t
        if len(batch) != size:
            raise RuntimeError(
                f"{lhe_path}: Pythia returned {len(batch)} events at event {start}, expected "
                f"{size}; the LHE file is shorter than its event list"
            )
        prt = batch.prt
        ok = ~ak.to_numpy(ak.is_none(prt, axis=0))
        prt = ak.fill_none(prt, [], axis=0)
        incoming = prt.p.pz[prt.status == -21]
        ok &= ak.to_numpy(ak.num(incoming)) == 2
        inc = ak.to_numpy(ak.fill_none(ak.pad_none(incoming, 2, clip=True), np.nan))
        ok &= np.all(np.isclose(inc, ref[start : start + size], rtol=1e-9, atol=1e-6), axis=1)
        final = prt[prt.status > 0]
        particles = ak.zip(
            {
                "px": final.p.px, "py": final.p.py, "pz": final.p.pz, "E": final.p.e,
                "pid": final.id, "charge": _charge_lookup(py, final.id),
                "vx": _fill_vertex(final.vProd.px), "vy": _fill_vertex(final.vProd.py),
                "vz": _fill_vertex(final.vProd.pz),
            }
        )  # fmt: skip
        del batch, prt
        yield start, particles, ok, seconds


# ----------------------------------------------------------------------------- jets


def select_jets(
    candidates: ak.Array, truth_eta: np.ndarray, truth_phi: np.ndarray, cuts: JetCuts
) -> tuple[np.ndarray, ak.Array, ak.Array]:
    """Cluster each event; keep its hardest jet passing ``cuts`` that contains all truth objects.

    Like :func:`jetforge.jets.cluster.cluster_and_select`, plus an upper p_T cut and an
    |η| or |y| range. Returns (``selected`` bool [n], jets [n] with pt, eta, phi, mass, E,
    y; constituents [n][…]); unselected entries are placeholders.
    """
    import fastjet

    n = len(candidates)
    if n == 0:
        empty = ak.zip({k: np.zeros(0) for k in ("pt", "eta", "phi", "mass", "E", "y")})
        return np.zeros(0, bool), empty, candidates
    cs = fastjet.ClusterSequence(
        candidates, fastjet.JetDefinition(fastjet.antikt_algorithm, cuts.R)
    )
    jets = cs.inclusive_jets(min_pt=cuts.pt_min)
    consts = cs.constituents(min_pt=cuts.pt_min)
    px, py, pz, e = jets.px, jets.py, jets.pz, jets.E
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    phi = np.arctan2(py, px)
    mass = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))
    y = 0.5 * np.log(np.maximum(e + pz, 1e-12) / np.maximum(e - pz, 1e-12))
    ok = (pt >= cuts.pt_min) & (pt < cuts.pt_max) & (mass >= cuts.mass_min)
    ok = ok & ((abs(eta) < cuts.eta_max) if cuts.y_max is None else (abs(y) < cuts.y_max))
    for k in range(truth_eta.shape[1]):
        dr = np.hypot(eta - truth_eta[:, k], delta_phi(phi, truth_phi[:, k]))
        ok = ok & (dr < cuts.dr)
    best = ak.argmax(ak.where(ok, pt, -1.0), axis=1, keepdims=True)
    selected = ak.to_numpy(ak.fill_none(ak.firsts(ok[best]), False)).astype(bool)
    fields = {"pt": pt, "eta": eta, "phi": phi, "mass": mass, "E": e, "y": y}
    jet = ak.fill_none(ak.zip({k: ak.firsts(v[best]) for k, v in fields.items()}), 0.0)
    chosen = ak.fill_none(ak.firsts(consts[best]), [], axis=0)
    return selected, jet, chosen


# ----------------------------------------------------------------------------- builder


def truth_table(
    events: Sequence[LHEEvent], process_name: str, lhe_path: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(η [n, k], φ [n, k], |PDG id| of the tagged object [n]) of each hard event.

    The tagged object is the hard parton (QCD; its flavour labels quark/gluon jets) or the
    resonance (then followed by its visible final decay products).
    """
    process = get_process(process_name)
    truth = []
    for i, ev in enumerate(events):
        try:
            truth.append(tagged_objects(ev, process))
        except (NoTaggedObject, ValueError) as err:
            raise ValueError(
                f"{lhe_path}: event {i} does not contain what process {process_name!r} tags "
                f"({err}); the file does not hold {process_name} events"
            ) from None
    lengths = {len(t) for t in truth}
    if len(lengths) > 1:
        raise ValueError(f"{lhe_path}: events tag different numbers of objects {sorted(lengths)}")
    n = len(events)
    eta = np.array([[o.eta for o in t] for t in truth], dtype=np.float64).reshape(n, -1)
    phi = np.array([[o.phi for o in t] for t in truth], dtype=np.float64).reshape(n, -1)
    pid = np.array([abs(t[0].pid) for t in truth], dtype=np.int32)
    return eta, phi, pid


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
    """Build one single-shower chunk file; returns timing and selection statistics."""
    t0 = time.perf_counter()
    cfg = parse_config(ds_cfg)
    if process_name not in ds_cfg["processes"]:
        raise DatasetConfigError(
            f"process {process_name!r} is not in config key processes: {list(ds_cfg['processes'])}"
        )
    process = get_process(process_name)
    _, events = read_lhe(lhe_path)
    n = len(events)
    truth_eta, truth_phi, parton_pid = truth_table(events, process_name, lhe_path)
    if cfg.detector == PARTICLE_LEVEL:
        card, card_sha = None, ""
    else:
        card, card_sha = load_card(cfg.detector)
    ids = (dataset, process_name, split, chunk, cfg.variant)
    timing = {"pythia": 0.0, "detector": 0.0, "jets": 0.0, "features": 0.0}
    kept_x, kept_mask, kept_cols = [], [], []
    n_failed = 0
    for start, particles, ok, t_py in shower_batches(
        lhe_path,
        events,
        cfg.settings,
        derive_seed(*ids, "shower", base=base_seed),
        cfg.batch_events,
    ):
        timing["pythia"] += t_py
        t = time.perf_counter()
        n_failed += int((~ok).sum())
        alive = np.flatnonzero(ok)
        if card is None:
            cands = particle_candidates(particles[alive])
        else:
            rng = np.random.default_rng(derive_seed(*ids, "detector", start, base=base_seed))
            cands = simulate(particles[alive], card, rng)
        del particles
        timing["detector"] += time.perf_counter() - t
        t = time.perf_counter()
        rows = start + alive
        selected, jets, consts = select_jets(cands, truth_eta[rows], truth_phi[rows], cfg.cuts)
        jets, consts, rows = jets[selected], consts[selected], rows[selected]
        cols = {k: ak.to_numpy(jets[k]).astype(np.float32) for k in ("pt", "eta", "phi", "mass")}
        cols["n2"] = (
            n2_of(consts) if cfg.compute_n2 else np.full(len(rows), np.nan, np.float32)
        )
        cols["event"] = rows
        timing["jets"] += time.perf_counter() - t
        t = time.perf_counter()
        x, mask = cfg.feature_set.compute(jets, consts, cfg.n_particles)
        kept_x.append(x)
        kept_mask.append(mask)
        kept_cols.append(cols)
        timing["features"] += time.perf_counter() - t
        if progress:
            print(
                f"{process_name} chunk {chunk}: {start + len(ok)}/{n} events showered", flush=True
            )

    n_feat = len(cfg.feature_set.feature_names)
    x = np.concatenate(kept_x) if kept_x else np.zeros((0, cfg.n_particles, n_feat), np.float32)
    mask = np.concatenate(kept_mask) if kept_mask else np.zeros((0, cfg.n_particles), bool)
    names = ("pt", "eta", "phi", "mass", "n2", "event")
    col = {
        k: np.concatenate([c[k] for c in kept_cols]) if kept_cols else np.zeros(0) for k in names
    }
    n_jets = len(x)
    classes = class_names(ds_cfg)
    jets_cols = {
        **{k: col[k] for k in ("pt", "eta", "phi", "mass", "n2")},
        "label": np.full(n_jets, classes.index(process.label)),
        "process": np.full(n_jets, list(ds_cfg["processes"]).index(process_name)),
        "variant": np.zeros(n_jets),
        "pair_id": col["event"],  # V = 1: every jet is its own "pair"
        "chunk": np.full(n_jets, chunk),
        "event": col["event"],
        "parton_pid": parton_pid[col["event"].astype(np.int64)],
    }
    attrs = {
        "feature_names": cfg.feature_set.feature_names,
        "class_names": classes,
        "process_names": list(ds_cfg["processes"]),
        "variant_names": [cfg.variant],
        "dataset": dataset,
        "split": split,
        "detector": cfg.detector,
        "detector_sha256": card_sha,
        "code_version": __version__,
        "config_json": dict(ds_cfg),
        "feature_set": cfg.feature_set.name,
        "feature_standardisation": {
            k: (None if v is None else list(v)) for k, v in cfg.feature_set.standardisation.items()
        },
    }
    t = time.perf_counter()
    write_jet_dataset(out_path, x, mask, jets_cols, attrs)
    timing["write"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    return {
        "hard_events": n,
        "jets": n_jets,
        "kept_pairs": n_jets,
        "efficiency": n_jets / max(n, 1),
        "failed_events": n_failed,
        "seconds": total,
        "hard_events_per_s": n / total if total > 0 else math.inf,
        "overhead_over_pythia": total / timing["pythia"] - 1 if timing["pythia"] > 0 else math.nan,
        "timing": timing,
    }
