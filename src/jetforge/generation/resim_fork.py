"""A re-simulation variant together with its hadronization forks.

A fork variant of an RS3L-style dataset (``shower.variants.<name>: {fork_of: nominal}``)
keeps the hard process *and* the parton shower of its source variant and draws a new
hadronization: Rieck et al.'s pair (arXiv:2503.11632 §2, "the same evolution up to and
including the parton shower, but independent evolutions of the hadronisation"), placed
next to RS3L's seed / FSR / alternative-shower variants (Harris et al., arXiv:2403.07066
§II B) so that one dataset carries every pair family on the same hard events.

How, without changing a byte of the source variant (its Pythia runs exactly as
:func:`jetforge.generation.shower.shower_lhe` runs it):

1. a user hook whose ``doVetoPartonLevel`` never vetoes copies each event's parton-level
   record (``pythia8mc.Event(event)``) just before Pythia hadronizes it; the hook draws no
   random numbers, so the source's events are unchanged (checked by the tests);
2. after the source's batch, in the *same* instance (a copied record carries its Pythia's
   particle table, ../shared/GENERATOR-NOTES.md): per event and fork, ``event.assign``,
   ``rndm.init(seed)`` and ``forceHadronLevel(False)`` (the saved record keeps its
   junctions; see :mod:`jetforge.generation.hadfork`);
3. the hadronized records become particles through the physics-free converter Pythia
   (:class:`jetforge.generation.hadfork.RecordConverter`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from jetforge.generation.hadfork import RecordConverter
from jetforge.generation.shower import (
    PARTICLE_DTYPES,
    ChargeTable,
    FlatEvents,
    final_state_flat,
    lhe_pythia,
    shower_events,
)
from jetforge.io.lhe import LHEEvent
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
else:
    ak = lazy_module("awkward")

#: records converted per ``nextBatch`` of the converter (a full record is ~0.2 MB)
CONVERT_BLOCK = 100


@dataclass
class ForkedShower:
    """A variant's particles and, per fork, its re-hadronized particles (all aligned)."""

    particles: ak.Array  # data contract 2, one entry per LHE event
    ok: np.ndarray  # bool [n]: the source event was generated
    forks: list[tuple[ak.Array, np.ndarray]]  # per fork: (particles, ok [n])
    n_parton: np.ndarray  # int64 [n]: size of the shared parton-level record (0: failed)
    records: dict[str, list[ak.Array]] = field(default_factory=dict)  # keep_records=True


def _capture_hook() -> Any:
    """A ``UserHooks`` that keeps the last parton-level record of each event."""
    import pythia8mc

    class PartonCapture(pythia8mc.UserHooks):
        def __init__(self) -> None:
            super().__init__()
            self.saved: list[Any] = []

        def onBeginEvent(self) -> None:
            self.saved.append(None)

        def canVetoPartonLevel(self) -> bool:
            return True

        def doVetoPartonLevel(self, event: Any) -> bool:
            # a retried event overwrites its earlier try: the last one is hadronized
            self.saved[-1] = pythia8mc.Event(event)
            return False

    return PartonCapture()


def shower_lhe_forked(
    lhe_path: str | os.PathLike[str],
    n_events: int,
    settings: Sequence[str],
    seed: int,
    fork_seeds: Sequence[np.ndarray],
    hard_events: Sequence[LHEEvent] | None = None,
    keep_records: bool = False,
) -> ForkedShower:
    """:func:`~jetforge.generation.shower.shower_lhe` of one variant plus one new
    hadronization of each of its events per entry of ``fork_seeds`` (``[n_events]`` Pythia
    seeds each: an event's fork depends on its own seed only). A fork is not ok where the
    source event failed or its re-hadronization failed."""
    hook = _capture_hook()
    py = lhe_pythia(lhe_path, settings, seed, hook)
    batches: list[ak.Array] = []
    particles, ok = shower_events(py, lhe_path, n_events, hard_events, batches)
    if len(hook.saved) != n_events:
        raise RuntimeError(
            f"{lhe_path}: captured {len(hook.saved)} parton-level records for {n_events} "
            "events; forks would pair the wrong events"
        )
    n_parton = np.array([0 if r is None else r.size() for r in hook.saved], dtype=np.int64)
    n_parton[~ok] = 0
    out = ForkedShower(particles.to_awkward(), ok, [], n_parton)
    if keep_records:
        out.records["source"] = [batches[0].prt]
    converter = RecordConverter()
    for f, seeds in enumerate(fork_seeds):
        seeds = np.asarray(seeds)
        if seeds.shape != (n_events,):
            raise ValueError(f"fork {f}: need {n_events} seeds, got shape {seeds.shape}")
        fork, fork_ok, recs = _fork(py, hook.saved, ok, seeds, converter, keep_records)
        out.forks.append((fork.to_awkward(), fork_ok))
        if keep_records:
            out.records[f"fork{f}"] = recs
    return out


def _fork(
    py: Any,
    saved: list[Any],
    ok: np.ndarray,
    seeds: np.ndarray,
    converter: RecordConverter,
    keep_records: bool,
) -> tuple[FlatEvents, np.ndarray, list[ak.Array]]:
    """Re-hadronize every ok event's saved record with its seed; particles of failed
    events are empty (their ``ok`` is False)."""
    import pythia8mc

    fork_ok = np.zeros(len(saved), dtype=bool)
    done: list[Any] = []
    for k in np.flatnonzero(ok):
        py.event.assign(saved[k])
        py.rndm.init(int(seeds[k]))
        if py.forceHadronLevel(False):
            fork_ok[k] = True
            done.append(pythia8mc.Event(py.event))
    charge = ChargeTable(py)
    parts: list[FlatEvents] = []
    records: list[ak.Array] = []
    for s in range(0, len(done), CONVERT_BLOCK):
        batch = converter.convert(done[s : s + CONVERT_BLOCK])
        parts.append(final_state_flat(batch, charge)[0])
        if keep_records:
            records.append(batch.prt)
    counts = np.zeros(len(saved), dtype=np.int64)
    if parts:
        counts[fork_ok] = np.concatenate([p.counts for p in parts])
        cols = {k: np.concatenate([p.cols[k] for p in parts]) for k in parts[0].cols}
    else:
        cols = {k: np.zeros(0, dtype=v) for k, v in PARTICLE_DTYPES.items()}
    return FlatEvents(cols, counts), fork_ok, records
