"""Anti-k_t clustering with fastjet and the paper's jet selection with truth matching.

All events of a chunk are clustered in one call of fastjet's awkward interface (no Python
loop over events). Extra candidate fields (charge, PID flags, impact parameters) ride along
into the constituents, so features are computed from the very objects fastjet clustered.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np


@dataclass(frozen=True)
class JetSelection:
    R: float
    pt_min: float
    mass_min: float
    eta_max: float
    match_dr: float


def _kinematics(px, py, pz, e):
    pt = np.hypot(px, py)
    p = np.sqrt(px**2 + py**2 + pz**2)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    phi = np.arctan2(py, px)
    m2 = e**2 - p**2
    mass = np.sqrt(np.maximum(m2, 0.0))
    return pt, eta, phi, mass


def delta_phi(a, b):
    return (a - b + np.pi) % (2 * np.pi) - np.pi


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
    pt, eta, phi, mass = _kinematics(jets.px, jets.py, jets.pz, jets.E)
    ok = (pt > sel.pt_min) & (mass > sel.mass_min) & (abs(eta) < sel.eta_max)
    for k in range(truth_eta.shape[1]):
        dr = np.hypot(eta - truth_eta[:, k], delta_phi(phi, truth_phi[:, k]))
        ok = ok & (dr < sel.match_dr)
    score = ak.where(ok, pt, -1.0)
    best = ak.argmax(score, axis=1, keepdims=True)
    best_ok = ak.fill_none(ak.firsts(ok[best]), False)
    selected = ak.to_numpy(best_ok).astype(bool) if n else np.zeros(0, bool)
    jet = ak.zip(
        {
            "pt": ak.firsts(pt[best]),
            "eta": ak.firsts(eta[best]),
            "phi": ak.firsts(phi[best]),
            "mass": ak.firsts(mass[best]),
            "E": ak.firsts(jets.E[best]),
        }
    )
    jet = ak.fill_none(jet, 0.0)
    chosen = ak.firsts(consts[best])
    chosen = ak.fill_none(chosen, [], axis=0)
    return selected, jet, chosen
