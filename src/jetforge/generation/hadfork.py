"""Hadronization fork: one hard scatter + parton shower, several independent hadronizations.

Rieck et al. ("Self-Supervised Learning Strategies for Jet Physics", 2025, §2) simulate every
event twice, "using the same evolution up to and including the parton shower, but independent
evolutions of the hadronisation and detector interaction", and "enforce the same decay
channels for each [τ] decay within a pair of events". This module does exactly that with
one Pythia instance:

1. ``HadronLevel:all = off``: ``pythia.next()`` stops after the parton level (hard
   process, ISR/FSR, MPI, beam remnants); the record is saved with
   ``saved = pythia8mc.Event(pythia.event)``;
2. per copy: ``pythia.event.assign(saved)``, ``pythia.rndm.init(seed_copy)``,
   ``pythia.forceHadronLevel(False)``.

Measured facts this design rests on (pythia8mc 8.317, see ../shared/GENERATOR-NOTES.md):

* ``forceHadronLevel(findJunctions=True)`` (the default, also what a ``ProcessLevel:all =
  off`` instance's ``next()`` calls) re-derives junctions from colour tags and fails on
  ~10 % of full pp events with baryonic beam remnants ("colour tracing failed"); the saved
  record already carries its junctions, so ``findJunctions=False`` is used (0 failures).
* Hadronizing a copied record in a *second* Pythia instance is not reproducible:
  ``Event::operator=`` copies the source's ``ParticleData`` pointer, so decays mix two
  particle tables. All physics therefore runs in the generating instance.
* Reading the event record particle by particle from Python costs milliseconds per event.
  Final-state extraction instead goes through ``nextBatch`` of a second, physics-free
  *converter* instance (``ProcessLevel``, ``PartonLevel`` and ``HadronLevel`` all off)
  whose ``onBeginEvent`` user hook copies the next hadronized record into its event, so
  a whole block of copies becomes one awkward array at C++ speed (~1.3 ms per copy).
* Pythia's τ decays with spin correlations (``TauDecays:mode = 1``, the default) cost
  ~35 ms per ττ event; ``TauDecays:mode = 0`` (isotropic) would cost ~3 ms. The default is
  kept for physics fidelity; set it in the dataset's shower settings to trade it away.

τ decays: the τ decay table is restricted to hadronic 1- and 3-prong channels
(:func:`hadronic_tau_channels`), and for every event one channel is drawn for the τ⁻ and
one for the τ⁺ with Pythia's branching ratios (a seeded numpy stream) and imposed on
*every* copy through the channels' ``onMode`` (2 = τ⁻ only, 3 = τ⁺ only, 1 = both). The
drawn channel is therefore the one Pythia itself would pick with that table, and both
copies decay each τ through it (the decay kinematics still differ). Any other τ in the
event (e.g. from a D_s decay) is forced to the same channels, a negligible side effect.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from jetforge.generation.pythia_setup import make_pythia
from jetforge.generation.shower import _charge_lookup, _fill_vertex
from jetforge.jets.kinematics import pt_eta_phi
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")


TAU_ID = 15
#: Decay products whose own prompt decays change the number of charged prongs (η, ω, η',
#: φ); τ channels containing them have no fixed prong count and are not used.
PRONG_AMBIGUOUS_IDS: tuple[int, ...] = (221, 223, 331, 333)
#: Non-hadronic τ decay products besides ν_τ: channels with them are leptonic.
LEPTON_IDS: tuple[int, ...] = (11, 12, 13, 14, 22)


class HadforkError(RuntimeError):
    """The fork could not produce the requested events (names the cause)."""


# --------------------------------------------------------------------------------------
# τ decay channels
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TauChannel:
    """One τ⁻ decay channel of Pythia's table (τ⁺ uses the charge conjugate)."""

    index: int  # position in Pythia's decay table of id 15
    products: tuple[int, ...]  # PDG ids for the τ⁻ decay
    branching: float
    n_prongs: int


def hadronic_tau_channels(particle_data: Any, prongs: Sequence[int] = (1, 3)) -> list[TauChannel]:
    """The hadronic τ⁻ channels of Pythia's table with ``prongs`` charged hadrons.

    A channel is hadronic if its products are ν_τ plus hadrons only; its prong count is
    the number of charged products (K⁰ → K_S/K_L counts as neutral, as in the tau-ID
    convention). Channels with η/ω/η'/φ among the products are excluded since their
    prompt decays change the prong count (0.2 % of the τ width).
    """
    entry = particle_data.particleDataEntryPtr(TAU_ID)
    out: list[TauChannel] = []
    for i in range(entry.sizeChannels()):
        ch = entry.channel(i)
        prods = tuple(int(ch.product(j)) for j in range(ch.multiplicity()))
        others = [p for p in prods if p != 16]
        if any(abs(p) in LEPTON_IDS for p in others):
            continue
        if any(abs(p) in PRONG_AMBIGUOUS_IDS for p in others):
            continue
        n_prongs = sum(1 for p in others if particle_data.charge(p) != 0)
        if n_prongs in prongs and ch.bRatio() > 0:
            out.append(TauChannel(i, prods, float(ch.bRatio()), n_prongs))
    if not out:
        raise HadforkError(f"no hadronic τ channel with {list(prongs)} prongs in Pythia's table")
    return out


class TauForcer:
    """Draws one channel per τ charge per event and imposes it on the decay table."""

    def __init__(self, particle_data: Any, prongs: Sequence[int] = (1, 3)) -> None:
        self.channels = hadronic_tau_channels(particle_data, prongs)
        self._entry = particle_data.particleDataEntryPtr(TAU_ID)
        self._active: tuple[int, ...] = ()
        br = np.array([c.branching for c in self.channels])
        self.probabilities = br / br.sum()
        for i in range(self._entry.sizeChannels()):
            self._entry.channel(i).onMode(0)
        # until the first draw: the restricted table, both charges
        for c in self.channels:
            self._entry.channel(c.index).onMode(1)
        self._active = tuple(c.index for c in self.channels)

    def draw(self, rng: np.random.Generator, n_events: int) -> np.ndarray:
        """Table indices [n_events, 2] of the τ⁻ (column 0) and τ⁺ (column 1) channels."""
        pick = rng.choice(len(self.channels), size=(n_events, 2), p=self.probabilities)
        return np.array([c.index for c in self.channels], dtype=np.int16)[pick]

    def apply(self, minus: int, plus: int) -> None:
        """Only channel ``minus`` open for τ⁻ and ``plus`` for τ⁺ (Pythia onMode 2/3)."""
        for i in self._active:
            self._entry.channel(i).onMode(0)
        if minus == plus:
            self._entry.channel(int(minus)).onMode(1)
        else:
            self._entry.channel(int(minus)).onMode(2)
            self._entry.channel(int(plus)).onMode(3)
        self._active = (int(minus), int(plus))

    def products(self, index: int, tau_id: int) -> tuple[int, ...]:
        """Sorted products of channel ``index`` for a τ with PDG id ``tau_id`` (±15)."""
        prods = next(c.products for c in self.channels if c.index == index)
        return tuple(sorted(p if tau_id > 0 else _conjugate(p) for p in prods))


def _conjugate(pid: int) -> int:
    """Antiparticle id; self-conjugate neutral mesons (π⁰, η, K_S, K_L, …) keep their id."""
    return pid if pid in (22, 111, 113, 130, 221, 223, 310, 331, 333) else -pid


# --------------------------------------------------------------------------------------
# Pythia instances
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartonCuts:
    """Cuts on every outgoing particle of the hard process (partons, τ, dark quarks).

    Rieck et al. §2: "We require each final state particle to have a transverse momentum
    of p_T > 100 GeV" and "|η| < 3.0". Applied in a ``doVetoProcessLevel`` user hook, so
    a rejected hard process costs no shower time.
    """

    pt_min: float
    eta_max: float

    def __post_init__(self) -> None:
        if self.pt_min < 0 or self.eta_max <= 0:
            raise ValueError(f"PartonCuts: need pt_min >= 0 and eta_max > 0, got {self}")


#: Setting groups that only switch internal hard processes on (and their options).
PROCESS_GROUPS = frozenset({
    "HardQCD", "SoftQCD", "WeakSingleBoson", "WeakDoubleBoson", "WeakBosonAndParton",
    "HiggsSM", "Top", "PromptPhoton", "Onia", "Charmonium", "Bottomonium", "PhotonCollision",
})  # fmt: skip


def strip_process_switches(settings: Sequence[str]) -> list[str]:
    """``settings`` without internal hard-process switches, for LHE input.

    With ``Beams:frameType = 4`` an internal process left on is generated *instead of* the
    LHE events (measured: a HardQCD switch made Pythia ignore the file), so the process's
    switches (groups in :data:`PROCESS_GROUPS` and Hidden Valley ``X2Y`` production
    flags such as ``HiddenValley:ffbar2Zv``) are dropped; decay tables, masses and the
    Hidden Valley shower/fragmentation parameters stay.
    """
    import re

    out = []
    for s in settings:
        key = s.split("=", 1)[0].strip()
        group, _, name = key.partition(":")
        if group in PROCESS_GROUPS or (
            group == "HiddenValley" and re.fullmatch(r"[a-zA-Z]+2\w+", name)
        ):
            continue
        out.append(s)
    return out


def _hook_classes() -> tuple[type, type]:
    """User-hook classes, defined lazily so importing this module does not load Pythia."""
    import pythia8mc

    class CutHook(pythia8mc.UserHooks):
        """Vetoes hard processes whose outgoing particles fail :class:`PartonCuts`."""

        def __init__(self, cuts: PartonCuts) -> None:
            super().__init__()
            self.cuts = cuts
            self.n_tried = 0
            self.n_vetoed = 0

        def canVetoProcessLevel(self) -> bool:
            return True

        def doVetoProcessLevel(self, process: Any) -> bool:
            self.n_tried += 1
            for i in range(process.size()):
                p = process[i]
                if p.status() > 0 and (
                    p.pT() < self.cuts.pt_min or abs(p.eta()) > self.cuts.eta_max
                ):
                    self.n_vetoed += 1
                    return True
            return False

    class FeedHook(pythia8mc.UserHooks):
        """Copies the next queued event into the converter's record at each ``next()``."""

        def __init__(self) -> None:
            super().__init__()
            self.target: Any = None
            self.queue: list[Any] = []
            self.k = 0

        def onBeginEvent(self) -> None:
            self.target.event.assign(self.queue[self.k])
            self.k += 1

    return CutHook, FeedHook


# --------------------------------------------------------------------------------------
# The fork
# --------------------------------------------------------------------------------------


@dataclass
class ForkResult:
    """Aligned outputs of :meth:`HadronizationFork.generate` for the surviving events."""

    copies: list[ak.Array]  # one particle-level array (data contract 2) per copy
    truth: ak.Array  # per event: outgoing hard-process particles (pid, px, py, pz, E, pt, eta, phi)
    tau_channels: np.ndarray  # int16 [n_events, 2]: τ⁻ / τ⁺ channel index (Pythia table)
    n_parton: np.ndarray  # int64 [n_events]: size of the shared parton-level record
    records: list[ak.Array] | None = None  # full event records per copy (keep_records=True)
    stats: dict[str, Any] = field(default_factory=dict)


class HadronizationFork:
    """Generates hard process + parton shower once and hadronizes it ``n_copies`` times.

    ``settings``: all Pythia settings (beams, tune, process). ``cuts``: applied to the hard
    process when Pythia generates it; with ``lhe_path`` the hard events are read from the
    LHE file instead (already filtered, data contract 1) and ``cuts`` must be None.
    """

    def __init__(
        self,
        settings: Sequence[str],
        seed: int,
        cuts: PartonCuts | None = None,
        lhe_path: str | os.PathLike[str] | None = None,
        n_copies: int = 2,
        tau_prongs: Sequence[int] | None = (1, 3),
    ) -> None:
        if n_copies < 1:
            raise ValueError(f"n_copies must be >= 1, got {n_copies}")
        if lhe_path is not None and cuts is not None:
            raise ValueError("hard events from an LHE file are already filtered: pass cuts=None")
        cut_cls, _ = _hook_classes()
        full = [*settings, "HadronLevel:all = off"]
        if lhe_path is not None:
            if not os.path.isfile(lhe_path):
                raise FileNotFoundError(
                    f"hard-process LHE file {os.fspath(lhe_path)!r} does not exist"
                )
            full = [
                "Beams:frameType = 4",
                f"Beams:LHEF = {os.fspath(lhe_path)}",
                *strip_process_switches(full),
            ]
        self._cut_hook = cut_cls(cuts) if cuts is not None else None
        self.pythia = make_pythia(full, seed, self._cut_hook)
        self.converter = RecordConverter()
        self.n_copies = n_copies
        self.from_lhe = lhe_path is not None
        self.taus = TauForcer(self.pythia.particleData, tau_prongs) if tau_prongs else None

    # ----------------------------------------------------------------------------------
    def generate(
        self,
        n_events: int,
        event_seeds: np.ndarray,
        copy_seeds: np.ndarray,
        tau_rng: np.random.Generator,
        block: int = 50,
        keep_records: bool = False,
        max_failures: int | None = None,
    ) -> ForkResult:
        """Fork ``n_events`` accepted hard events.

        ``event_seeds`` [n_events]: Pythia seed set before each event's parton level (so an
        event's shower depends on its own seed only, not on its predecessors' copies);
        ``copy_seeds`` [n_events, n_copies]: seed of each hadronization. An event whose
        hadronization fails in any copy is dropped from every copy (pairs stay aligned);
        a failed parton level is retried with the next Pythia draw.
        """
        import pythia8mc

        event_seeds = np.asarray(event_seeds)
        copy_seeds = np.asarray(copy_seeds)
        if event_seeds.shape != (n_events,) or copy_seeds.shape != (n_events, self.n_copies):
            raise ValueError(
                f"need event_seeds [{n_events}] and copy_seeds [{n_events}, {self.n_copies}], "
                f"got {event_seeds.shape} and {copy_seeds.shape}"
            )
        max_failures = n_events + 10 if max_failures is None else max_failures
        channels = (
            self.taus.draw(tau_rng, n_events) if self.taus else np.full((n_events, 2), -1, np.int16)
        )
        py = self.pythia
        per_copy: list[list[ak.Array]] = [[] for _ in range(self.n_copies)]
        records: list[list[ak.Array]] = [[] for _ in range(self.n_copies)]
        truth_rows: list[np.ndarray] = []
        n_parton: list[int] = []
        kept: list[int] = []
        n_parton_fail = n_hadron_fail = 0
        queue: list[Any] = []
        for k in range(n_events):
            py.rndm.init(int(event_seeds[k]))
            while not py.next():
                if self.from_lhe and py.infoPython().atEndOfFile():
                    raise HadforkError(
                        f"LHE file ended after {k} of {n_events} events; the chunk needs "
                        f"{n_events} hard events"
                    )
                n_parton_fail += 1
                if n_parton_fail > max_failures:
                    raise HadforkError(
                        f"{n_parton_fail} failed parton-level events before reaching {n_events}"
                    )
            saved = pythia8mc.Event(py.event)
            row = _truth_row(py.process)
            if self.taus:
                self.taus.apply(channels[k, 0], channels[k, 1])
            copies = []
            for c in range(self.n_copies):
                py.event.assign(saved)
                py.rndm.init(int(copy_seeds[k, c]))
                if not py.forceHadronLevel(False):
                    break
                copies.append(pythia8mc.Event(py.event))
            if len(copies) < self.n_copies:
                n_hadron_fail += 1
                if n_hadron_fail > max_failures:
                    raise HadforkError(f"{n_hadron_fail} events failed to hadronize")
                continue
            queue.extend(copies)
            kept.append(k)
            truth_rows.append(row)
            n_parton.append(saved.size())
            if len(queue) >= block * self.n_copies:
                self._flush(queue, per_copy, records if keep_records else None)
        self._flush(queue, per_copy, records if keep_records else None)
        kept_idx = np.asarray(kept, dtype=np.int64)
        stats: dict[str, Any] = {
            "n_requested": n_events,
            "n_kept": len(kept),
            "n_parton_failures": n_parton_fail,
            "n_hadron_failures": n_hadron_fail,
            "kept_index": kept_idx,
        }
        if self._cut_hook is not None:
            stats["hard_tried"] = self._cut_hook.n_tried
            stats["hard_vetoed"] = self._cut_hook.n_vetoed
        return ForkResult(
            copies=[_concat(p) for p in per_copy],
            truth=_truth_array(truth_rows),
            tau_channels=channels[kept_idx],
            n_parton=np.asarray(n_parton, dtype=np.int64),
            records=[_concat(r) for r in records] if keep_records else None,
            stats=stats,
        )

    def _flush(
        self, queue: list[Any], per_copy: list[list[ak.Array]], records: list[list[ak.Array]] | None
    ) -> None:
        """Convert the queued copies (event-major, copy-minor) through ``nextBatch``."""
        if not queue:
            return
        prt = self.converter.convert(queue).prt
        for c in range(self.n_copies):
            rec = prt[c :: self.n_copies]
            per_copy[c].append(_final_state(self.pythia, rec))
            if records is not None:
                records[c].append(rec)
        queue.clear()


class RecordConverter:
    """Hadronized event records (``pythia8mc.Event``) → one ``nextBatch`` awkward array.

    Why: reading a record particle by particle from Python costs milliseconds per event;
    a physics-free Pythia (``ProcessLevel``, ``PartonLevel``, ``HadronLevel`` all off)
    whose ``onBeginEvent`` hook copies the next queued record into its event turns a block
    of records into one awkward array at C++ speed (~1.3 ms per record). It draws no random
    numbers and holds no physics, so any generating instance's records can pass through.
    """

    def __init__(self) -> None:
        _, feed_cls = _hook_classes()
        self._feed = feed_cls()
        self.pythia = make_pythia(
            ["ProcessLevel:all = off", "PartonLevel:all = off", "HadronLevel:all = off"],
            None,
            self._feed,
        )
        self._feed.target = self.pythia

    def convert(self, records: Sequence[Any]) -> ak.Array:
        """The ``nextBatch`` result (fields ``prt``, ``info``) of ``records``, in order."""
        self._feed.queue, self._feed.k = list(records), 0
        try:
            batch = self.pythia.nextBatch(len(records), "none")
        finally:
            self._feed.queue = []
        prt = batch.prt
        if len(prt) != len(records) or ak.any(ak.is_none(prt, axis=0)):
            raise HadforkError("the converter Pythia dropped a hadronized event record")
        return batch


def _final_state(py: Any, prt: ak.Array) -> ak.Array:
    """Final-state particles (data contract 2) from full event records."""
    final = prt[prt.status > 0]
    pid = final.id
    return ak.zip(
        {
            "px": final.p.px,
            "py": final.p.py,
            "pz": final.p.pz,
            "E": final.p.e,
            "pid": pid,
            "charge": _charge_lookup(py, pid),
            "vx": _fill_vertex(final.vProd.px),
            "vy": _fill_vertex(final.vProd.py),
            "vz": _fill_vertex(final.vProd.pz),
        }
    )


def _concat(parts: list[ak.Array]) -> ak.Array:
    if not parts:
        return ak.Array([])
    return ak.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


_TRUTH_FIELDS = ("pid", "px", "py", "pz", "E")


def _truth_row(process: Any) -> np.ndarray:
    """Outgoing (status > 0) particles of the hard-process record, [n, 5] float64."""
    rows = [
        (p.id(), p.px(), p.py(), p.pz(), p.e())
        for p in (process[i] for i in range(process.size()))
        if p.status() > 0
    ]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def _truth_array(rows: list[np.ndarray]) -> ak.Array:
    """Per-event truth records with derived pt, eta, phi."""
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    flat = np.concatenate(rows) if rows else np.zeros((0, 5))
    px, py, pz = flat[:, 1], flat[:, 2], flat[:, 3]
    cols = {name: flat[:, i] for i, name in enumerate(_TRUTH_FIELDS)}
    cols["pid"] = flat[:, 0].astype(np.int64)
    cols["pt"], cols["eta"], cols["phi"] = pt_eta_phi(px, py, pz)
    return ak.unflatten(ak.zip(cols), counts)
