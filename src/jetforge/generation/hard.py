"""Hard-process generation with Pythia, filtered at parton level, stored as LHE.

Shower and hadronization are switched off (``PartonLevel:all = off``,
``HadronLevel:all = off``) so each hard event costs ~0.1 ms; the kinematic cuts of the
paper (e.g. RS3L: tagged parton/boson p_T 400–600 GeV, |η| < 0.1) are applied to the
hard record *before* anything is showered, so no shower time is spent on events that
would be cut. The output is plain LHEF, the same format MadGraph writes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import permutations
from typing import Any

from jetforge.generation.processes import (
    INVISIBLE_PRODUCTS,
    PRODUCT_CLASSES,
    DecayChain,
    Process,
    get_process,
)
from jetforge.generation.pythia_setup import make_pythia
from jetforge.generation.seeds import derive_seed
from jetforge.io.atomic import atomic_path
from jetforge.io.lhe import LHEEvent, LHEInit, LHEParticle, write_lhe


@dataclass(frozen=True)
class HardCuts:
    """Cuts on the tagged object (QCD parton or boson) of the hard process."""

    pt_min: float
    pt_max: float
    eta_max: float

    def __post_init__(self) -> None:
        if not (0 <= self.pt_min < self.pt_max):
            raise ValueError(
                f"hard-process cut pt_min={self.pt_min} must be below pt_max={self.pt_max} "
                "(and not negative)"
            )
        if self.eta_max <= 0:
            raise ValueError(f"hard-process cut eta_max={self.eta_max} must be positive")


class NoTaggedObject(ValueError):
    """The hard event lacks the decay chain its process asks for (rejected at hard level)."""


def tagged_objects(event: LHEEvent, process: Process) -> list[LHEParticle]:
    """The particles a jet must contain: [parton] for QCD, [boson, daughters…] otherwise.

    With ``process.chain`` set: [resonance, visible final decay products…] of the most
    central resonance whose decay tree ends in the chain's products (see
    :func:`chain_objects`); raises :class:`NoTaggedObject` if no resonance does.
    """
    parts = event.particles
    if process.chain is not None:
        return chain_objects(event, process.chain)
    if process.boson is None:
        out = [
            p
            for p in parts
            if p.status == 1 and (abs(p.pid) <= 6 or p.pid == 21) and p.mother1 >= 0
            and (p.mother1 == 0 or parts[p.mother1 - 1].status == -1)
        ]
        if process.parton_pick == "central" and out:
            # 2 → 2 dijets: both partons have the same pT; the more central one is tagged
            # (charge- and flavour-blind, and the one a jet |η| cut is likelier to keep).
            return [min(out, key=lambda p: abs(p.eta))]
        if len(out) != 1:
            raise ValueError(f"expected one outgoing QCD parton, found {len(out)}")
        return out
    bosons = [(i, p) for i, p in enumerate(parts) if abs(p.pid) == process.boson]
    if len(bosons) != 1:
        raise ValueError(f"expected one boson {process.boson}, found {len(bosons)}")
    ib, boson = bosons[0]
    daughters = [p for p in parts if p.mother1 == ib + 1]
    return [boson, *daughters]


def _children(parts: list[LHEParticle]) -> dict[int, list[int]]:
    """Indices of the particles whose ``mother1`` is particle i (1-based), per i, in order."""
    kids: dict[int, list[int]] = {}
    for j, p in enumerate(parts):
        if p.mother1 >= 1 and p.mother1 - 1 != j:
            kids.setdefault(p.mother1 - 1, []).append(j)
    return kids


def _leaves(
    parts: list[LHEParticle], index: int, children: dict[int, list[int]] | None = None
) -> list[LHEParticle]:
    """Final (status 1) descendants of ``parts[index]`` through intermediate resonances,
    in record order. ``children`` (:func:`_children` of ``parts``) saves rescanning the
    record at every step."""
    if children is None:
        children = _children(parts)
    out: list[int] = []
    stack = [index]
    while stack:
        i = stack.pop()
        kids = children.get(i, [])
        if not kids:
            if parts[i].status == 1:
                out.append(i)
            continue
        stack.extend(kids)
    return [parts[i] for i in sorted(out)]


def _assign(leaves: list[LHEParticle], classes: tuple[str, ...]) -> list[str] | None:
    """Product class of each leaf if the leaves match ``classes`` one to one, else None."""
    if len(leaves) != len(classes):
        return None
    for perm in set(permutations(classes)):
        if all(abs(p.pid) in PRODUCT_CLASSES[c] for p, c in zip(leaves, perm, strict=True)):
            return list(perm)
    return None


def chain_objects(event: LHEEvent, chain: DecayChain) -> list[LHEParticle]:
    """[resonance, visible final products…] for the decay ``chain`` (JetClass matching).

    Every resonance with |pid| = ``chain.resonance`` whose decay-tree leaves match
    ``chain.products`` is a candidate; the most central one is tagged (in tt̄ both tops
    can qualify, with equal pT at 2 → 2, so |η| decides without favouring t over t̄).
    Invisible products (ν) identify the decay but are not returned, since a jet cannot be
    required to contain them.
    """
    parts = event.particles
    best: list[LHEParticle] | None = None
    children = _children(parts)
    for i, p in enumerate(parts):
        if abs(p.pid) != chain.resonance:
            continue
        # a recoil copy (t → t) has the same leaves as the original: same candidate twice
        leaves = _leaves(parts, i, children)
        classes = _assign(leaves, chain.products)
        if classes is None:
            continue
        visible = [q for q, c in zip(leaves, classes, strict=True) if c not in INVISIBLE_PRODUCTS]
        if best is None or abs(p.eta) < abs(best[0].eta):
            best = [p, *visible]
    if best is None:
        raise NoTaggedObject(
            f"no {chain.resonance} decaying to {chain.products} in the hard event"
        )
    return best


def passes_cuts(obj: LHEParticle, cuts: HardCuts) -> bool:
    return cuts.pt_min <= obj.pt <= cuts.pt_max and abs(obj.eta) < cuts.eta_max


def _process_record_to_lhe(py) -> LHEEvent:
    """Convert ``pythia.process`` (system + beams + hard scatter + decays) to an LHE event."""
    rec = py.process
    particles = []
    for i in range(3, rec.size()):
        p = rec[i]
        st = p.status()
        lhe_status = -1 if st == -21 else (2 if st < 0 else 1)
        m1 = p.mother1() - 2 if p.mother1() >= 3 else 0
        m2 = p.mother2() - 2 if p.mother2() >= 3 else 0
        particles.append(
            LHEParticle(
                pid=p.id(), status=lhe_status, mother1=m1, mother2=m2, col=p.col(), acol=p.acol(),
                px=p.px(), py=p.py(), pz=p.pz(), e=p.e(), m=p.m(),
            )
        )
    info = py.infoPython()
    return LHEEvent(
        particles=particles, process_id=1, weight=1.0, scale=rec.scale(),
        aqed=info.alphaEM(), aqcd=info.alphaS(),
    )


def generate_hard_events(
    process: Process,
    n_events: int,
    cuts: HardCuts,
    seed: int,
    sqrt_s: float,
    extra_settings: tuple[str, ...] = (),
    max_tries_per_event: int = 2000,
) -> tuple[list[LHEEvent], dict]:
    """Generate ``n_events`` hard events passing ``cuts``; returns events and run info."""
    settings = [
        f"Beams:eCM = {sqrt_s}",
        *process.settings,
        f"PhaseSpace:pTHatMin = {cuts.pt_min}",
        f"PhaseSpace:pTHatMax = {cuts.pt_max}",
        "PartonLevel:all = off",
        "HadronLevel:all = off",
        *extra_settings,
    ]
    py = make_pythia(settings, seed)
    events: list[LHEEvent] = []
    tries = 0
    limit = max_tries_per_event * n_events
    while len(events) < n_events:
        tries += 1
        if tries > limit:
            raise RuntimeError(
                f"{process.name}: only {len(events)}/{n_events} hard events passed the cuts "
                f"{cuts} in {limit} tries; the cuts are (nearly) impossible for this process"
            )
        if not py.next():
            continue
        ev = _process_record_to_lhe(py)
        try:
            tagged = tagged_objects(ev, process)
        except NoTaggedObject:  # e.g. H → WW* decayed to 4q in the ℓνqq' sample
            continue
        if passes_cuts(tagged[0], cuts):
            events.append(ev)
    info = py.infoPython()
    run = {
        "process": process.name,
        "n_tried": tries,
        "n_accepted": len(events),
        "acceptance": len(events) / tries,
        "sigma_gen_pb": info.sigmaGen() * 1e9,  # Pythia reports mb
        "settings": settings,
        "seed": seed,
    }
    return events, run


def write_hard_lhe(
    path: str | os.PathLike[str], events: list[LHEEvent], run: dict, sqrt_s: float
) -> None:
    sigma = run["sigma_gen_pb"] * run["acceptance"]
    init = LHEInit(
        beam_energies=(sqrt_s / 2, sqrt_s / 2),
        processes=[(sigma, 0.0, 1.0, 1)],
    )
    header = "<jetforge>\n" + "\n".join(f"{k} = {v}" for k, v in run.items() if k != "settings")
    header += "\n" + "\n".join(run["settings"]) + "\n</jetforge>"
    write_lhe(path, events, init, header=header)




class HardCutsConfigError(ValueError):
    """A ``hard_cuts`` / ``hard_cuts_by_process`` config block that gives no cuts (names the
    key)."""


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
        raise HardCutsConfigError(
            f"config key {key}: {merged} has unknown keys {unknown} / lacks {missing}; "
            "needs pt_min, pt_max, eta_max"
        )
    try:
        return HardCuts(float(merged["pt_min"]), float(merged["pt_max"]), float(merged["eta_max"]))
    except ValueError as err:
        raise HardCutsConfigError(f"config key {key}: {merged}: {err}") from None


def write_hard_chunk(
    out_path: str | os.PathLike[str],
    ds_cfg: Mapping[str, Any],
    dataset: str,
    process: str,
    split: str,
    chunk: int,
    base_seed: int,
) -> dict:
    """Hard events of one dataset chunk, written atomically as LHE; returns the run info.

    ``events_per_chunk`` events of ``process`` passing :func:`hard_cuts_for` at
    ``sqrt_s``, seeded from the chunk's provenance ids, so a chunk's hard events depend on
    nothing but the config and (dataset, process, split, chunk, base seed). The run info
    gains ``seconds`` (wall time).
    """
    t0 = time.perf_counter()
    seed = derive_seed(dataset, process, split, chunk, "hard", base=base_seed)
    cuts = hard_cuts_for(ds_cfg, process)
    sqrt_s = float(ds_cfg["sqrt_s"])
    events, run = generate_hard_events(
        get_process(process), int(ds_cfg["events_per_chunk"]), cuts, seed, sqrt_s
    )
    with atomic_path(out_path) as tmp:
        write_hard_lhe(tmp, events, run, sqrt_s)
    run["seconds"] = time.perf_counter() - t0
    return run
