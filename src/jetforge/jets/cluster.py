"""Anti-k_t clustering with fastjet and the paper's jet selection with truth matching.

All events of a chunk are clustered in one call of fastjet's awkward interface (no Python
loop over events). Extra candidate fields (charge, PID flags, impact parameters) ride along
into the constituents, so features are computed from the very objects fastjet clustered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jetforge.jets.kinematics import delta_r, pt_eta_phi
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")



@dataclass(frozen=True)
class JetSelection:
    R: float
    pt_min: float
    mass_min: float
    eta_max: float
    match_dr: float


def _kinematics(px: Any, py: Any, pz: Any, e: Any) -> tuple[Any, Any, Any, Any]:
    """(p_T, η, φ, m) of the RS3L jets.

    The mass here is sqrt(E² - |p|²) through |p| = sqrt(p_x² + p_y² + p_z²), not
    :func:`jetforge.jets.kinematics.mass`: the two round differently in the last bit, and
    the RS3L datasets were built with this one.
    """
    pt, eta, phi = pt_eta_phi(px, py, pz)
    p = np.sqrt(px**2 + py**2 + pz**2)
    return pt, eta, phi, np.sqrt(np.maximum(e**2 - p**2, 0.0))


def cluster_and_select(
    candidates: ak.Array,
    truth_eta: np.ndarray,
    truth_phi: np.ndarray,
    sel: JetSelection,
) -> tuple[np.ndarray, ak.Array, ak.Array]:
    """Cluster each event, keep the leading jet passing the cuts and matched to all truth objects.

    ``truth_eta``/``truth_phi`` have shape [n_events, n_objects]: the jet must lie within
    ``match_dr`` of every object (RS3L: the QCD parton, or the Higgs *and* both b quarks).
    Returns (``selected`` bool [n_events], ``jets`` record [n_events] with pt, eta, phi,
    mass, E, ``constituents`` [n_events][particles]); entries of unselected events are
    placeholders (an empty constituent list).
    """
    import fastjet

    n = len(candidates)
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, sel.R)
    cs = fastjet.ClusterSequence(candidates, jetdef)
    jets = cs.inclusive_jets(min_pt=sel.pt_min)
    consts = cs.constituents(min_pt=sel.pt_min)
    # the selection on flat numpy columns (the same element-wise arithmetic as on the
    # jagged arrays, so the same bits): awkward's per-call dispatch cost as much as
    # fastjet's clustering here (~35 ms per 1000 events)
    counts = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    px, py, pz, e = (ak.to_numpy(ak.flatten(jets[k])) for k in ("px", "py", "pz", "E"))
    pt, eta, phi, mass = _kinematics(px, py, pz, e)
    ok = (pt > sel.pt_min) & (mass > sel.mass_min) & (abs(eta) < sel.eta_max)
    event = np.repeat(np.arange(n), counts)
    for k in range(truth_eta.shape[1]):
        dr = delta_r(eta, phi, truth_eta[event, k], truth_phi[event, k])
        ok = ok & (dr < sel.match_dr)
    score = np.where(ok, pt, -1.0)
    # per event, the first jet of highest score (ak.argmax's choice): sort by event, then
    # score descending, then position; each event's group starts where its jets start
    start = np.cumsum(counts) - counts
    order = np.lexsort((np.arange(score.size), -score, event))
    has = counts > 0
    best = order[start[has]]
    selected = np.zeros(n, bool)
    selected[has] = ok[best]
    cols = {"pt": pt, "eta": eta, "phi": phi, "mass": mass, "E": e}
    jet = ak.zip({k: _per_event(v, best, has) for k, v in cols.items()})
    local = ak.unflatten(best - start[has], has.astype(np.int64))
    chosen = ak.fill_none(ak.firsts(consts[local]), [], axis=0)
    return selected, jet, chosen


def _per_event(values: np.ndarray, best: np.ndarray, has: np.ndarray) -> np.ndarray:
    """``values[best]`` for the events with jets (``has``), 0.0 for the others."""
    out = np.zeros(has.size, dtype=np.float64)
    out[has] = values[best]
    return out


# ----------------------------------------------------------------------------- flat path


@dataclass(frozen=True)
class FlatJets:
    """Inclusive jets of many events as flat numpy columns (fastjet's order per event).

    ``px, py, pz, E`` are per jet, event after event; ``counts`` the jets per event. The
    constituents of any jet come from :meth:`constituents` as row indices into the events'
    flat particle columns, so only the jets that are kept are ever gathered.
    """

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    E: np.ndarray
    counts: np.ndarray
    pt_min: float
    sequence: Any = None  # fastjet ClusterSequence (None: no event was clustered)
    particle_offsets: np.ndarray | None = None  # [n_events + 1] of the clustered input

    def constituents(self, jets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(counts [len(jets)], rows): the input rows of each jet ``jets`` (flat jet indices,
        increasing), in fastjet's constituent order, jet after jet."""
        jets = np.asarray(jets, dtype=np.int64)
        if jets.size == 0 or self.sequence is None:
            return np.zeros(jets.size, dtype=np.int64), np.zeros(0, dtype=np.int64)
        # [event][jet][i]: index of each constituent among its event's input particles
        const_offsets, local = _jagged_jets(self.sequence.constituent_index(min_pt=self.pt_min))
        if const_offsets.size != self.px.size + 1:
            raise RuntimeError("fastjet returned a different number of jets for constituents")
        start, stop = const_offsets[jets], const_offsets[jets + 1]
        counts = (stop - start).astype(np.int64)
        total = int(counts.sum())
        first = np.cumsum(counts) - counts
        pos = np.repeat(start - first, counts) + np.arange(total, dtype=np.int64)
        event = np.repeat(np.repeat(np.arange(self.counts.size), self.counts)[jets], counts)
        assert self.particle_offsets is not None
        return counts, self.particle_offsets[event] + local[pos]


def _jagged_jets(index: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets [n_jets + 1] into ``values``, values) of a ``[event][jet][i]`` array.

    fastjet builds it as nested ``ListOffsetArray``s over a ``NumpyArray``: read those
    buffers directly (the general awkward route costs as much as fastjet's own call).
    """
    lay = index.layout
    lists = ak.contents.ListOffsetArray
    if (
        isinstance(lay, lists)
        and isinstance(lay.content, lists)
        and isinstance(lay.content.content, ak.contents.NumpyArray)
    ):
        events = np.asarray(lay.offsets.data)
        jets = np.asarray(lay.content.offsets.data)[events[0] : events[-1] + 1]
        return jets.astype(np.int64), np.asarray(lay.content.content.data).astype(np.int64)
    per_jet = ak.to_numpy(ak.flatten(ak.num(index, axis=2), axis=None)).astype(np.int64)
    offsets = np.zeros(per_jet.size + 1, dtype=np.int64)
    np.cumsum(per_jet, out=offsets[1:])
    return offsets, ak.to_numpy(ak.flatten(index, axis=None)).astype(np.int64)


def cluster_flat(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    energy: np.ndarray,
    counts: np.ndarray,
    R: float,
    pt_min: float,
) -> FlatJets:
    """Anti-k_t (radius ``R``) inclusive jets with p_T >= ``pt_min`` of every event.

    The particles of event i are rows ``offsets[i] … offsets[i + 1] - 1`` of the flat
    columns (``offsets`` = cumulative ``counts``). One call of fastjet's multi-event
    interface on a four-field record built on the columns without copying them: the jets
    are the ones fastjet gives for the full candidate records (extra fields only ride along).
    """
    import fastjet

    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if counts.size == 0:
        empty = np.zeros(0)
        return FlatJets(empty, empty, empty, empty, np.zeros(0, np.int64), pt_min)
    cols = [np.ascontiguousarray(c, dtype=np.float64) for c in (px, py, pz, energy)]
    content = ak.contents.RecordArray(
        [ak.contents.NumpyArray(c) for c in cols], ["px", "py", "pz", "E"], length=int(offsets[-1])
    )
    events = ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), content))
    sequence = fastjet.ClusterSequence(events, fastjet.JetDefinition(fastjet.antikt_algorithm, R))
    jets = sequence.inclusive_jets(min_pt=pt_min)
    out = [ak.to_numpy(ak.flatten(jets[k], axis=1)) for k in ("px", "py", "pz", "E")]
    jet_counts = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    return FlatJets(*out, jet_counts, pt_min, sequence, offsets)


def first_argmax(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Flat index of the first maximum of each non-empty segment (``ak.argmax`` per event);
    -1 for empty segments."""
    counts = np.asarray(counts, dtype=np.int64)
    out = np.full(counts.size, -1, dtype=np.int64)
    nonempty = np.flatnonzero(counts > 0)
    if nonempty.size == 0:
        return out
    starts = (np.cumsum(counts) - counts)[nonempty]
    seg_max = np.maximum.reduceat(values, starts)
    segment = np.repeat(np.arange(nonempty.size), counts[nonempty])
    hits = np.flatnonzero(values == seg_max[segment])
    first = np.ones(hits.size, dtype=bool)
    first[1:] = segment[hits[1:]] != segment[hits[:-1]]
    out[nonempty[segment[hits[first]]]] = hits[first]
    return out
