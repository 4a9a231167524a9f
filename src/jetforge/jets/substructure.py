"""Jet substructure observables computed from the constituents of each jet.

N2 (Moult, Necib, Thaler, JHEP 12 (2016) 153, arXiv:1609.07483) is the 2-prong tagger the
RS3L paper's robustness studies bin in; it is computed here with fastjet-contrib's
``EnergyCorrelatorNseries`` through fastjet's awkward interface (C++ speed, one call for all
jets) rather than re-implemented, so the definition is the community one:

    N2 = 2e3^(beta) / (1e2^(beta))^2,
    1e2 = sum_{i<j} z_i z_j R_ij^beta,
    2e3 = sum_{i<j<k} z_i z_j z_k * (product of the two smallest of R_ij^beta, R_ik^beta,
          R_jk^beta),

with z_i = pT_i / sum pT and R_ij the distance in (rapidity, phi). fastjet's
``exclusive_jets_energy_correlator(func="nseries", npoint=2)`` returns N2 itself (checked
against a direct numpy evaluation in ``tests/test_features.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
    import fastjet
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")
    fastjet = lazy_module("fastjet")


#: Reclustering radius for collecting all constituents of a jet into one exclusive jet.
#: It only needs to exceed every pairwise distance inside a jet (<= 2R = 1.6 for R = 0.8),
#: so that no constituent is merged with the beam before the last step.
RECLUSTER_R = 4.0
#: Fewer constituents than this give no three-particle correlation; N2 is set to 0 there
#: (fastjet returns 0 for two constituents and NaN for one, and crashes on none).
N2_MIN_CONSTITUENTS = 3


def n2(constituents: ak.Array, beta: float = 1.0) -> np.ndarray:
    """N2^(beta) of each jet from its constituents (``px, py, pz, E``), float32 [N].

    Jets with fewer than 3 constituents get N2 = 0 (documented convention, no NaN).
    """
    for f in ("px", "py", "pz", "E"):
        if f not in constituents.fields:
            raise KeyError(f"constituents lack field {f!r}; have {constituents.fields}")
    n_jets = len(constituents)
    out = np.zeros(n_jets, dtype=np.float32)
    counts = ak.to_numpy(ak.num(constituents, axis=1))
    sel = np.flatnonzero(counts >= N2_MIN_CONSTITUENTS)
    if sel.size == 0:
        return out
    four = ak.zip(
        {f: ak.values_astype(constituents[sel][f], np.float64) for f in ("px", "py", "pz", "E")},
        depth_limit=2,
    )
    sequence = fastjet.ClusterSequence(
        four, fastjet.JetDefinition(fastjet.cambridge_algorithm, RECLUSTER_R)
    )
    values = sequence.exclusive_jets_energy_correlator(
        njets=1, func="nseries", npoint=2, beta=float(beta)
    )
    out[sel] = np.asarray(ak.to_numpy(values), dtype=np.float32)
    return out
