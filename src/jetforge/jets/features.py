"""Per-constituent network inputs: the 15 particle features of RS3L Table I.

Why one vectorised function: the features feed every dataset split, so they are computed on
flat numpy columns of all constituents at once and scattered into a zero-padded
``[N, n_max, 15]`` block with a boolean mask (data contract, format 4). Constituents are
sorted by pT (descending) and truncated to the ``n_max`` hardest ("the 100 highest-pT E-Flow
candidates per jet", RS3L §II B).

Conventions: logarithms are natural; eta is the pseudorapidity asinh(pz/pT) of each
candidate and ``deta = eta - eta_jet``; ``dphi`` is wrapped to [-pi, pi); ``dr`` is
hypot(deta, dphi); ``tanh_d0``/``tanh_dz`` take the impact parameters in mm, as Delphes
stores them. Padded rows are all zeros and ``mask`` is False there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from jetforge.jets.kinematics import delta_phi, pseudorapidity
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")


#: RS3L Table I, in the table's order.
RS3L_FEATURES: tuple[str, ...] = (
    "log_pt", "log_pt_rel", "log_e", "log_e_rel",
    "deta", "dphi", "dr",
    "tanh_d0", "tanh_dz",
    "charge",
    "is_photon", "is_muon", "is_electron", "is_ch", "is_nh",
)  # fmt: skip

#: Candidate fields (data contract, format 3) that the features read.
CONSTITUENT_FIELDS: tuple[str, ...] = (
    "px", "py", "pz", "E", "charge", "d0", "dz",
    "is_photon", "is_muon", "is_electron", "is_ch", "is_nh",
)  # fmt: skip
JET_FIELDS: tuple[str, ...] = ("pt", "eta", "phi", "E")


def _check_fields(array: ak.Array, needed: tuple[str, ...], what: str) -> None:
    missing = [f for f in needed if f not in array.fields]
    if missing:
        raise KeyError(f"{what} lack fields {missing}; have {array.fields}")


def rs3l_features(
    jets: ak.Array, constituents: ak.Array, n_max: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 [N, n_max, 15], mask bool [N, n_max]) for N jets.

    ``jets``: records with ``pt, eta, phi, E`` (one per jet). ``constituents``: one list of
    format-3 candidates per jet, in any order.
    """
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    _check_fields(jets, JET_FIELDS, "jets")
    _check_fields(constituents, CONSTITUENT_FIELDS, "constituents")
    n_jets = len(jets)
    if len(constituents) != n_jets:
        raise ValueError(f"{n_jets} jets but {len(constituents)} constituent lists")

    pt_c = np.hypot(constituents.px, constituents.py)
    order = ak.argsort(pt_c, axis=1, ascending=False, stable=True)[:, :n_max]
    kept = constituents[order]
    counts = ak.to_numpy(ak.num(kept, axis=1)).astype(np.int64)
    row = np.repeat(np.arange(n_jets, dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts  # (also for no jets at all)
    col = np.arange(row.size, dtype=np.int64) - np.repeat(starts, counts)

    def flat(name: str) -> np.ndarray:
        return np.asarray(ak.to_numpy(ak.flatten(kept[name], axis=1)), dtype=np.float64)

    def per_jet(name: str) -> np.ndarray:
        return np.asarray(ak.to_numpy(jets[name]), dtype=np.float64)[row]

    px, py, pz, energy = flat("px"), flat("py"), flat("pz"), flat("E")
    pt = np.hypot(px, py)
    eta = pseudorapidity(pz, pt, floor=0.0)
    phi = np.arctan2(py, px)
    deta = eta - per_jet("eta")
    dphi = delta_phi(phi, per_jet("phi"))
    values = {
        "log_pt": np.log(pt),
        "log_pt_rel": np.log(pt / per_jet("pt")),
        "log_e": np.log(energy),
        "log_e_rel": np.log(energy / per_jet("E")),
        "deta": deta,
        "dphi": dphi,
        "dr": np.hypot(deta, dphi),
        "tanh_d0": np.tanh(flat("d0")),
        "tanh_dz": np.tanh(flat("dz")),
        "charge": flat("charge"),
        **{f: flat(f) for f in ("is_photon", "is_muon", "is_electron", "is_ch", "is_nh")},
    }
    features = np.zeros((n_jets, n_max, len(RS3L_FEATURES)), dtype=np.float32)
    features[row, col] = np.stack([values[f] for f in RS3L_FEATURES], axis=1)
    mask = np.zeros((n_jets, n_max), dtype=bool)
    mask[row, col] = True
    return features, mask
