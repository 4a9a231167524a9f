"""Re-simulation: shower + hadronization of stored hard events under each variant.

Each variant is one Pythia instance reading the *same* LHE file (``Beams:frameType = 4``),
so the hard scatter is bit-identical across variants and only what happens after it
(shower seed, FSR scale, shower program) differs: RS3L's re-simulation (§II B). Events come
out through ``pythia.nextBatch`` (awkward arrays at Pythia's own speed) with
``errorMode="none"`` so that the i-th output event always belongs to the i-th LHE event; a
failed event is detected and flagged rather than silently skipped, because skipping would
pair the wrong jets.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import awkward as ak
import numpy as np

from jetforge.generation.pythia_setup import make_pythia
from jetforge.io.lhe import LHEEvent

INVISIBLE_PIDS = (12, 14, 16)


def shower_lhe(
    lhe_path: str | os.PathLike[str],
    n_events: int,
    settings: Sequence[str],
    seed: int,
    hard_events: Sequence[LHEEvent] | None = None,
) -> tuple[ak.Array, np.ndarray]:
    """Shower and hadronize the first ``n_events`` of an LHE file.

    Returns the final-state particles (data contract 2) and a boolean array ``ok`` that is
    False for events Pythia failed on or whose incoming partons do not match the LHE event
    (a misalignment guard: with ISR off, the incoming partons are copied unchanged).
    """
    py = make_pythia(["Beams:frameType = 4", f"Beams:LHEF = {lhe_path}", *settings], seed)
    batch = py.nextBatch(n_events, "none")
    if len(batch) != n_events:
        raise RuntimeError(
            f"{lhe_path}: Pythia returned {len(batch)} events, expected {n_events}; the LHE "
            "file is shorter than its index says"
        )
    prt = batch.prt
    # errorMode="none" yields None for an event Pythia gave up on; keep its slot, flag it
    ok = ~ak.to_numpy(ak.is_none(prt, axis=0))
    prt = ak.fill_none(prt, [], axis=0)
    status = prt.status
    if hard_events is not None:
        incoming = prt.p.pz[status == -21]
        n_in = ak.to_numpy(ak.num(incoming))
        ok &= n_in == 2
        inc = ak.to_numpy(ak.fill_none(ak.pad_none(incoming, 2, clip=True), np.nan))
        ref = np.array(
            [[p.pz for p in ev.particles if p.status == -1][:2] for ev in hard_events[:n_events]]
        )
        ok &= np.all(np.isclose(inc, ref, rtol=1e-9, atol=1e-6), axis=1)
    final = prt[status > 0]
    pid = final.id
    charge = _charge_lookup(py, pid)
    particles = ak.zip(
        {
            "px": final.p.px,
            "py": final.p.py,
            "pz": final.p.pz,
            "E": final.p.e,
            "pid": pid,
            "charge": charge,
            "vx": _fill_vertex(final.vProd.px),
            "vy": _fill_vertex(final.vProd.py),
            "vz": _fill_vertex(final.vProd.pz),
        }
    )
    return particles, ok


def _fill_vertex(coord: ak.Array) -> ak.Array:
    """Production-vertex coordinate with Pythia's "no vertex set" (None) as the origin."""
    return ak.values_astype(ak.fill_none(coord, 0.0, axis=-1), np.float64)


def _charge_lookup(py, pid: ak.Array) -> ak.Array:
    """Vectorised PDG id → charge through a table of the ids present (Pythia's ParticleData)."""
    flat = ak.to_numpy(ak.flatten(pid))
    if flat.size == 0:
        return ak.values_astype(pid, np.float32)
    ids, inverse = np.unique(flat, return_inverse=True)
    table = np.array([py.particleData.charge(int(i)) for i in ids], dtype=np.float32)
    return ak.unflatten(table[inverse], ak.num(pid))
