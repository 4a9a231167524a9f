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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jetforge.generation.pythia_setup import make_pythia
from jetforge.io.lhe import LHEEvent
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")


INVISIBLE_PIDS = (12, 14, 16)
#: Final-state particle columns (data contract 2) in order, with the dtypes of the awkward
#: path (:func:`shower_lhe`): momenta float64 from Pythia, PDG id int32, charge float32
#: (:func:`_charge_lookup`), production vertex float64 with "not set" as the origin.
PARTICLE_DTYPES: dict[str, type] = {
    "px": np.float64, "py": np.float64, "pz": np.float64, "E": np.float64,
    "pid": np.int32, "charge": np.float32,
    "vx": np.float64, "vy": np.float64, "vz": np.float64,
}  # fmt: skip


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
    py = lhe_pythia(lhe_path, settings, seed)
    particles, ok = shower_events(py, lhe_path, n_events, hard_events)
    return particles.to_awkward(), ok


def lhe_pythia(
    lhe_path: str | os.PathLike[str], settings: Sequence[str], seed: int, hooks: Any = None
) -> Any:
    """A Pythia reading the LHE file ``lhe_path`` with ``settings`` (one shower variant)."""
    return make_pythia(["Beams:frameType = 4", f"Beams:LHEF = {lhe_path}", *settings], seed, hooks)


def shower_events(
    py: Any,
    lhe_path: str | os.PathLike[str],
    n_events: int,
    hard_events: Sequence[LHEEvent] | None = None,
    batch_out: list[ak.Array] | None = None,
) -> tuple[FlatEvents, np.ndarray]:
    """The next ``n_events`` of :func:`lhe_pythia` ``py``: final-state particles and ``ok``
    (see :func:`shower_lhe`); ``batch_out`` receives the full ``nextBatch`` record."""
    batch = py.nextBatch(n_events, "none")
    if len(batch) != n_events:
        raise RuntimeError(
            f"{lhe_path}: Pythia returned {len(batch)} events, expected {n_events}; the LHE "
            "file is shorter than its index says"
        )
    if batch_out is not None:
        batch_out.append(batch)
    ref = None
    if hard_events is not None:
        ref = np.array(
            [[p.pz for p in ev.particles if p.status == -1][:2] for ev in hard_events[:n_events]]
        )
    # flat numpy extraction (final_state_flat): the same particles as the awkward
    # expressions prt[prt.status > 0] & co., ~4x cheaper
    return final_state_flat(batch, ChargeTable(py), ref)


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


# ----------------------------------------------------------------------------- flat path


@dataclass(frozen=True)
class FlatEvents:
    """Events of particles as flat numpy columns plus per-event counts.

    Why: awkward operations cost ~0.1 ms each in Python overhead and a jagged ``prt[mask]``
    materialises every field of Pythia's full record; the generation hot path (a few ms of
    Pythia per event) works on flat numpy columns instead and builds awkward arrays only
    where an interface needs one (:meth:`to_awkward`, zero-copy).
    """

    cols: dict[str, np.ndarray]
    counts: np.ndarray  # int64 [n_events]

    def __len__(self) -> int:
        return int(self.counts.size)

    @property
    def offsets(self) -> np.ndarray:
        out = np.zeros(self.counts.size + 1, dtype=np.int64)
        np.cumsum(self.counts, out=out[1:])
        return out

    def event_index(self) -> np.ndarray:
        """Event number of every flat row."""
        return np.repeat(np.arange(self.counts.size, dtype=np.int64), self.counts)

    def take(self, events: np.ndarray) -> FlatEvents:
        """The events ``events`` (increasing indices), in that order."""
        events = np.asarray(events, dtype=np.int64)
        if events.size == self.counts.size and np.array_equal(events, np.arange(self.counts.size)):
            return self
        offsets = self.offsets
        counts = self.counts[events]
        rows = np.repeat(offsets[events] - np.cumsum(counts) + counts, counts) + np.arange(
            int(counts.sum()), dtype=np.int64
        )
        return FlatEvents({k: v[rows] for k, v in self.cols.items()}, counts)

    def to_awkward(self, fields: Sequence[str] | None = None) -> ak.Array:
        """``var * {fields}`` awkward array sharing the column buffers."""
        names = list(self.cols) if fields is None else list(fields)
        content = ak.contents.RecordArray(
            [ak.contents.NumpyArray(np.ascontiguousarray(self.cols[f])) for f in names],
            names,
            length=int(self.counts.sum()),
        )
        return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(self.offsets), content))

    @classmethod
    def from_awkward(cls, events: ak.Array, fields: Sequence[str]) -> FlatEvents:
        counts = ak.to_numpy(ak.num(events, axis=1)).astype(np.int64)
        cols = {f: ak.to_numpy(ak.flatten(events[f], axis=1)) for f in fields}
        return cls(cols, counts)


class ChargeTable:
    """PDG id → electric charge (float32) from one Pythia's ParticleData, cached.

    Same values as :func:`_charge_lookup` (``particleData.charge`` per id), but a lookup
    is a ``searchsorted`` into the ids seen so far instead of a ``np.unique`` sort of every
    particle; Pythia is asked only about ids not seen before.
    """

    def __init__(self, pythia: Any) -> None:
        self._pythia = pythia
        self._ids = np.zeros(0, dtype=np.int64)
        self._charges = np.zeros(0, dtype=np.float32)

    def __call__(self, pid: np.ndarray) -> np.ndarray:
        pid = np.asarray(pid, dtype=np.int64)
        if pid.size == 0:
            return np.zeros(0, dtype=np.float32)
        i = self._index(pid)
        if i is None:
            known = set(self._ids.tolist())
            new = [int(x) for x in np.unique(pid) if int(x) not in known]
            data = self._pythia.particleData
            ids = np.concatenate([self._ids, np.asarray(new, dtype=np.int64)])
            charges = np.concatenate(
                [self._charges, np.array([data.charge(x) for x in new], dtype=np.float32)]
            )
            order = np.argsort(ids)
            self._ids, self._charges = ids[order], charges[order]
            i = self._index(pid)
            assert i is not None
        return self._charges[i]

    def _index(self, pid: np.ndarray) -> np.ndarray | None:
        if self._ids.size == 0:
            return None
        i = np.minimum(np.searchsorted(self._ids, pid), self._ids.size - 1)
        return i if np.array_equal(self._ids[i], pid) else None


def final_state_flat(
    batch: ak.Array, charge: ChargeTable, incoming_pz: np.ndarray | None = None
) -> tuple[FlatEvents, np.ndarray]:
    """Final-state particles of a ``nextBatch`` result as :class:`FlatEvents`, and ``ok``.

    The flat equivalent of the awkward code in :func:`shower_lhe` (same columns, dtypes and
    values): ``ok`` is False for events Pythia gave up on (``errorMode="none"`` → None),
    and, when ``incoming_pz`` [n, 2] (the LHE file's incoming p_z) is given, where the
    record does not hold exactly two status -21 partons with those p_z (misalignment guard).
    """
    prt = batch.prt
    n = len(prt)
    ok = ~ak.to_numpy(ak.is_none(prt, axis=0))
    counts_all = ak.to_numpy(ak.fill_none(ak.num(prt, axis=1), 0)).astype(np.int64)
    rec = ak.flatten(prt, axis=1)  # a None event counts as an empty one
    status = ak.to_numpy(rec.status)
    evt = np.repeat(np.arange(n, dtype=np.int64), counts_all)
    p = rec.p
    if incoming_pz is not None:
        inc = np.flatnonzero(status == -21)
        inc_evt = evt[inc]
        n_in = np.bincount(inc_evt, minlength=n)
        ok &= n_in == 2
        two = np.flatnonzero(n_in == 2)
        first = (np.cumsum(n_in) - n_in)[two]
        pz_all = ak.to_numpy(p.pz)
        pair = np.stack([pz_all[inc[first]], pz_all[inc[first + 1]]], axis=1)
        ref = np.asarray(incoming_pz, dtype=np.float64).reshape(n, 2)[two]
        ok[two] &= np.all(np.isclose(pair, ref, rtol=1e-9, atol=1e-6), axis=1)
    fin = np.flatnonzero(status > 0)
    counts = np.bincount(evt[fin], minlength=n).astype(np.int64)
    pid = ak.to_numpy(rec.id)[fin]
    cols = {
        "px": ak.to_numpy(p.px)[fin],
        "py": ak.to_numpy(p.py)[fin],
        "pz": ak.to_numpy(p.pz)[fin],
        "E": ak.to_numpy(p.e)[fin],
        "pid": pid,
        "charge": charge(pid),
        **_vertex_columns(rec.vProd, fin),
    }
    cols = {k: np.ascontiguousarray(v, dtype=PARTICLE_DTYPES[k]) for k, v in cols.items()}
    return FlatEvents(cols, counts), ok


def _vertex_columns(vprod: ak.Array, rows: np.ndarray) -> dict[str, np.ndarray]:
    """vx, vy, vz of ``vprod`` (an optional px/py/pz record per particle) at ``rows``,
    with None (Pythia: no vertex set) as 0, as :func:`_fill_vertex` does.

    ``ak.fill_none`` on the full record costs ~2 ms per coordinate and batch; reading the
    ``IndexedOptionArray`` that ``nextBatch`` returns directly costs a gather of ``rows``.
    Other layouts take the general route.
    """
    names = (("vx", "px"), ("vy", "py"), ("vz", "pz"))
    layout = ak.to_layout(vprod)
    if isinstance(layout, ak.contents.IndexedOptionArray) and isinstance(
        layout.content, ak.contents.RecordArray
    ):
        inner = layout.content
        fields = [inner.content(c) for _, c in names]
        if all(isinstance(f, ak.contents.NumpyArray) and f.data.ndim == 1 for f in fields):
            idx = np.asarray(layout.index.data)[rows]
            missing = idx < 0
            safe = np.where(missing, 0, idx)
            return {
                k: np.where(missing, 0.0, np.asarray(f.data)[safe]).astype(np.float64)
                for (k, _), f in zip(names, fields, strict=True)
            }
    return {k: ak.to_numpy(ak.fill_none(vprod[c], 0.0, axis=-1))[rows] for k, c in names}
