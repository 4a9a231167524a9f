"""Registry of per-constituent feature sets, one per paper's input convention.

Why a registry: the SSL papers reproduced here feed their networks different particle
inputs (RS3L Table I, ParT/JetClass, JetNet, four-momenta for RODEM and top tagging,
kinematics + PID for quark–gluon). A dataset config names its set (``features:``) and the
chunk builder looks it up here, so the same generation chain produces every paper's input
and a file records exactly which convention it holds (``feature_names`` attribute, plus
``feature_set`` and ``feature_standardisation``).

Every set returns ``(features float32 [N, n_max, F], mask bool [N, n_max])`` with
constituents sorted by p_T (descending), truncated to ``n_max``, zero-padded (data
contract 4). Conventions shared by all sets: natural logarithms; η is the pseudorapidity
asinh(p_z/p_T); Δφ wrapped to [-π, π); impact parameters in mm.

The ParT sets (``part17``, ``pid_kin``) are *standardised exactly as the public ParT data
configurations* of github.com/jet-universe/particle_transformer (weaver-core format):
``data/JetClass/JetClass_full.yaml`` (17 features) and ``data/QuarkGluon/qg_kinpid.yaml``
(13 features). An entry ``[var, centre, scale, lo, hi]`` means
``clip((x - centre) * scale, lo, hi)`` with ``lo, hi`` defaulting to -5, 5; ``[var, null]``
means the raw value, unclipped. Features are stored in the configs' ``pf_features`` order.
One documented difference: weaver pads by repeating the jet's particles
(``pad_mode: wrap``); here padding is zeros plus the ``mask`` (data contract 4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from jetforge.jets.features import (
    CONSTITUENT_FIELDS,
    JET_FIELDS,
    RS3L_FEATURES,
    rs3l_features,
)
from jetforge.jets.kinematics import delta_phi, pseudorapidity
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")


FeatureFn = Callable[["ak.Array", "ak.Array", int], tuple[np.ndarray, np.ndarray]]
#: (features [N, P, F], mask [N, P], jet columns pt/eta/phi [N]) → px, py, pz, E [N, P]
InvertFn = Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], dict[str, np.ndarray]]
#: (centre, scale, clip_lo, clip_hi) of a weaver-core standardisation, or None = raw value.
Standardisation = tuple[float, float, float, float] | None

KINEMATIC_FIELDS: tuple[str, ...] = ("px", "py", "pz", "E")
PID_FIELDS: tuple[str, ...] = (
    "charge", "is_electron", "is_muon", "is_photon", "is_ch", "is_nh",
)  # fmt: skip
TRACK_FIELDS: tuple[str, ...] = ("d0", "dz", "d0_err", "dz_err")


class FeatureSetError(KeyError):
    """An unknown feature set, or inputs that lack what the set needs."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class FeatureSet:
    """A named per-constituent input convention."""

    name: str
    feature_names: tuple[str, ...]
    compute: FeatureFn
    #: candidate fields (data contract 3) the set reads; checked before computing
    needs: tuple[str, ...]
    description: str
    #: per-feature weaver-core standardisation applied (name → params), for the file attrs
    standardisation: Mapping[str, Standardisation] = field(default_factory=dict)
    #: constituent four-momenta back from stored features + jet p_T, η, φ (validation,
    #: pairwise ParT inputs); exact up to float32 rounding and the standardisation clips
    four_momenta: InvertFn | None = None


# ----------------------------------------------------------------------------- helpers


def _check_inputs(
    jets: ak.Array, constituents: ak.Array, needs: tuple[str, ...], n_max: int
) -> None:
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    missing_j = [f for f in JET_FIELDS if f not in jets.fields]
    if missing_j:
        raise FeatureSetError(f"jets lack fields {missing_j}; have {jets.fields}")
    missing = [f for f in needs if f not in constituents.fields]
    if missing:
        raise FeatureSetError(
            f"constituents lack fields {missing} (have {constituents.fields}); this feature "
            "set needs detector-style candidates (data contract 3)"
        )
    if len(constituents) != len(jets):
        raise ValueError(f"{len(jets)} jets but {len(constituents)} constituent lists")


@dataclass(frozen=True)
class _Flat:
    """The ``n_max`` hardest constituents of every jet as flat columns + scatter indices."""

    row: np.ndarray  # jet index of each kept constituent
    col: np.ndarray  # position (0 = hardest) within its jet
    cols: dict[str, np.ndarray]  # float64 constituent columns
    jet: dict[str, np.ndarray]  # float64 jet columns, repeated per constituent

    def kinematics(self) -> dict[str, np.ndarray]:
        px, py, pz, energy = (self.cols[k] for k in KINEMATIC_FIELDS)
        pt = np.hypot(px, py)
        eta = pseudorapidity(pz, pt, floor=0.0)
        deta = eta - self.jet["eta"]
        dphi = delta_phi(np.arctan2(py, px), self.jet["phi"])
        return {"pt": pt, "E": energy, "eta": eta, "deta": deta, "dphi": dphi}


def _flatten(jets: ak.Array, constituents: ak.Array, fields: tuple[str, ...], n_max: int) -> _Flat:
    pt_c = np.hypot(constituents.px, constituents.py)
    order = ak.argsort(pt_c, axis=1, ascending=False, stable=True)[:, :n_max]
    kept = constituents[order]
    counts = ak.to_numpy(ak.num(kept, axis=1)).astype(np.int64)
    row = np.repeat(np.arange(len(jets), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    col = np.arange(row.size, dtype=np.int64) - np.repeat(starts, counts)
    cols = {
        f: np.asarray(ak.to_numpy(ak.flatten(kept[f], axis=1)), dtype=np.float64) for f in fields
    }
    jet = {f: np.asarray(ak.to_numpy(jets[f]), dtype=np.float64)[row] for f in JET_FIELDS}
    return _Flat(row, col, cols, jet)


def _scatter(
    flat: _Flat, values: np.ndarray, n_jets: int, n_max: int
) -> tuple[np.ndarray, np.ndarray]:
    features = np.zeros((n_jets, n_max, values.shape[1]), dtype=np.float32)
    features[flat.row, flat.col] = values
    mask = np.zeros((n_jets, n_max), dtype=bool)
    mask[flat.row, flat.col] = True
    return features, mask


def _p4(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, energy: np.ndarray | None, mask: np.ndarray
) -> dict[str, np.ndarray]:
    """Four-momenta from (p_T, η, φ[, E]); massless when E is None; zero where ``mask`` is False."""
    pz = pt * np.sinh(eta)
    if energy is None:
        energy = pt * np.cosh(eta)
    out = {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pz, "E": energy}
    return {k: np.where(mask, v, 0.0) for k, v in out.items()}


def _jet_axes(jets: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Jet p_T, η, φ as float64 columns [N, 1], to broadcast over constituents."""
    pt, eta, phi = (np.asarray(jets[k], dtype=np.float64)[:, None] for k in ("pt", "eta", "phi"))
    return pt, eta, phi


def unstandardise(z: np.ndarray, params: Standardisation) -> np.ndarray:
    """Inverse of :func:`standardise` inside the clip range (clipped values stay at the edge)."""
    if params is None:
        return z
    centre, scale, _, _ = params
    return z / scale + centre


def standardise(x: np.ndarray, params: Standardisation) -> np.ndarray:
    """weaver-core manual standardisation: ``clip((x - centre) * scale, lo, hi)``; None = raw."""
    if params is None:
        return x
    centre, scale, lo, hi = params
    return np.clip((x - centre) * scale, lo, hi)


# ----------------------------------------------------------------------------- ParT

#: ParT ``pf_features`` of data/JetClass/JetClass_full.yaml (jet-universe/particle_transformer,
#: commit 512fcd1), in the config's order, with its standardisation:
#:   - [part_pt_log, 1.7, 0.7]        - [part_e_log, 2.0, 0.7]
#:   - [part_logptrel, -4.7, 0.7]     - [part_logerel, -4.7, 0.7]
#:   - [part_deltaR, 0.2, 4.0]        - [part_charge, null]
#:   - [part_isChargedHadron, null]   - [part_isNeutralHadron, null]
#:   - [part_isPhoton, null]          - [part_isElectron, null]   - [part_isMuon, null]
#:   - [part_d0, null]                - [part_d0err, 0, 1, 0, 1]
#:   - [part_dz, null]                - [part_dzerr, 0, 1, 0, 1]
#:   - [part_deta, null]              - [part_dphi, null]
#: with part_d0 = tanh(part_d0val), part_dz = tanh(part_dzval) (``new_variables``).
PART17_STANDARDISATION: dict[str, Standardisation] = {
    "part_pt_log": (1.7, 0.7, -5.0, 5.0),
    "part_e_log": (2.0, 0.7, -5.0, 5.0),
    "part_logptrel": (-4.7, 0.7, -5.0, 5.0),
    "part_logerel": (-4.7, 0.7, -5.0, 5.0),
    "part_deltaR": (0.2, 4.0, -5.0, 5.0),
    "part_charge": None,
    "part_isChargedHadron": None,
    "part_isNeutralHadron": None,
    "part_isPhoton": None,
    "part_isElectron": None,
    "part_isMuon": None,
    "part_d0": None,
    "part_d0err": (0.0, 1.0, 0.0, 1.0),
    "part_dz": None,
    "part_dzerr": (0.0, 1.0, 0.0, 1.0),
    "part_deta": None,
    "part_dphi": None,
}
PART17_FEATURES: tuple[str, ...] = tuple(PART17_STANDARDISATION)

#: ParT data/QuarkGluon/qg_kinpid.yaml ``pf_features``: the kinematic + PID subset of the
#: above with the same standardisation, in that config's order (no track displacement).
PID_KIN_FEATURES: tuple[str, ...] = (
    "part_pt_log", "part_e_log", "part_logptrel", "part_logerel", "part_deltaR",
    "part_charge", "part_isChargedHadron", "part_isNeutralHadron", "part_isPhoton",
    "part_isElectron", "part_isMuon", "part_deta", "part_dphi",
)  # fmt: skip
PID_KIN_STANDARDISATION = {k: PART17_STANDARDISATION[k] for k in PID_KIN_FEATURES}

#: Masked particle modelling's inputs (Golling et al., arXiv:2401.13537 §IV: "the momentum
#: and direction (azimuth φ and pseudo-rapidity η) are used as the feature collection for
#: each particle"): log p_T, Δη, Δφ, standardised as the same columns of ``part17``. Every
#: set with four-momenta converts to it without a zero-filled input (RODEM's ``kinematic4``
#: included), so a transfer between datasets is a change of data, not of inputs.
PTETAPHI_FEATURES: tuple[str, ...] = ("part_pt_log", "part_deta", "part_dphi")
PTETAPHI_STANDARDISATION = {k: PART17_STANDARDISATION[k] for k in PTETAPHI_FEATURES}


def _part_raw(flat: _Flat) -> dict[str, np.ndarray]:
    """Raw (unstandardised) ParT variables of every kept constituent.

    ``part_deta`` is signed by the jet's η, (η - η_jet)·sign(η_jet) with sign(0) = +1, as
    the ParT conversion scripts write it (utils/convert_qg_datasets.py: ``_jet_etasign``),
    so forward and backward jets look alike.
    """
    k = flat.kinematics()
    eta_sign = np.where(flat.jet["eta"] < 0, -1.0, 1.0)
    deta = k["deta"] * eta_sign
    out = {
        "part_pt_log": np.log(k["pt"]),
        "part_e_log": np.log(k["E"]),
        "part_logptrel": np.log(k["pt"] / flat.jet["pt"]),
        "part_logerel": np.log(k["E"] / flat.jet["E"]),
        "part_deltaR": np.hypot(deta, k["dphi"]),
        "part_deta": deta,
        "part_dphi": k["dphi"],
    }
    if "charge" in flat.cols:  # kinematic-only sets (ptetaphi) read no PID fields
        out.update(
            part_charge=flat.cols["charge"],
            part_isChargedHadron=flat.cols["is_ch"],
            part_isNeutralHadron=flat.cols["is_nh"],
            part_isPhoton=flat.cols["is_photon"],
            part_isElectron=flat.cols["is_electron"],
            part_isMuon=flat.cols["is_muon"],
        )
    if "d0" in flat.cols:
        out.update(
            part_d0=np.tanh(flat.cols["d0"]),
            part_d0err=flat.cols["d0_err"],
            part_dz=np.tanh(flat.cols["dz"]),
            part_dzerr=flat.cols["dz_err"],
        )
    return out


def _part_four_momenta(names: tuple[str, ...], std: Mapping[str, Standardisation]) -> InvertFn:
    idx = {n: i for i, n in enumerate(names)}

    def invert(
        x: np.ndarray, mask: np.ndarray, jets: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        _, jet_eta, jet_phi = _jet_axes(jets)
        x = x.astype(np.float64)

        def col(n: str) -> np.ndarray:
            return unstandardise(x[..., idx[n]], std[n])

        eta = jet_eta + col("part_deta") * np.where(jet_eta < 0, -1.0, 1.0)
        energy = np.exp(col("part_e_log")) if "part_e_log" in idx else None  # None: massless
        return _p4(np.exp(col("part_pt_log")), eta, jet_phi + col("part_dphi"), energy, mask)

    return invert


def _part_features(
    names: tuple[str, ...], std: Mapping[str, Standardisation], fields: tuple[str, ...]
) -> FeatureFn:
    def compute(
        jets: ak.Array, constituents: ak.Array, n_max: int
    ) -> tuple[np.ndarray, np.ndarray]:
        _check_inputs(jets, constituents, fields, n_max)
        flat = _flatten(jets, constituents, fields, n_max)
        raw = _part_raw(flat)
        values = np.stack([standardise(raw[n], std[n]) for n in names], axis=1)
        return _scatter(flat, values, len(jets), n_max)

    return compute


# ----------------------------------------------------------------------------- others

JETNET_FEATURES: tuple[str, ...] = ("etarel", "phirel", "ptrel", "mask")


def jetnet_features(
    jets: ak.Array, constituents: ak.Array, n_max: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """JetNet particle features (η_rel, φ_rel, p_T,rel, mask) of the ``n_max`` hardest.

    JetNet (Kansal et al., arXiv:2106.11535 §2; zenodo.org/record/6975118; jBOT §4.1):
    η_rel = η − η_jet, φ_rel = φ − φ_jet (wrapped), p_T,rel = p_T / p_T,jet with the jet
    built from *all* its constituents, and "mask" = 1 for real particles, 0 for padding.
    Unstandardised, as the dataset stores them.
    """
    _check_inputs(jets, constituents, KINEMATIC_FIELDS, n_max)
    flat = _flatten(jets, constituents, KINEMATIC_FIELDS, n_max)
    k = flat.kinematics()
    values = np.stack(
        [k["deta"], k["dphi"], k["pt"] / flat.jet["pt"], np.ones_like(k["pt"])], axis=1
    )
    return _scatter(flat, values, len(jets), n_max)


def _jetnet_four_momenta(
    x: np.ndarray, mask: np.ndarray, jets: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    jet_pt, jet_eta, jet_phi = _jet_axes(jets)
    x = x.astype(np.float64)
    return _p4(x[..., 2] * jet_pt, jet_eta + x[..., 0], jet_phi + x[..., 1], None, mask)


KINEMATIC4_FEATURES: tuple[str, ...] = ("E", "px", "py", "pz")


def kinematic4_features(
    jets: ak.Array, constituents: ak.Array, n_max: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Massless constituent four-momenta (E, p_x, p_y, p_z) in GeV, E = |p|.

    RODEM: "particles represented only by their four-momenta and are assumed massless"
    (MPM, Golling et al. §IV); top tagging: "the leading 200 jet constituent four-momenta
    (E, px, py, pz)" (Kasieczka et al., arXiv:1902.09914). No standardisation: the
    networks derive their own inputs (ParT top_kin.yaml computes log p_T, … on the fly).
    """
    _check_inputs(jets, constituents, KINEMATIC_FIELDS, n_max)
    flat = _flatten(jets, constituents, KINEMATIC_FIELDS, n_max)
    px, py, pz = flat.cols["px"], flat.cols["py"], flat.cols["pz"]
    values = np.stack([np.sqrt(px * px + py * py + pz * pz), px, py, pz], axis=1)
    return _scatter(flat, values, len(jets), n_max)


def _kinematic4_four_momenta(
    x: np.ndarray, mask: np.ndarray, jets: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    x = x.astype(np.float64)
    return {k: np.where(mask, x[..., i], 0.0) for i, k in enumerate(KINEMATIC4_FEATURES)}


def _rs3l(jets: ak.Array, constituents: ak.Array, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    if len(jets) == 0:  # rs3l_features cannot index an empty chunk; the shapes are known
        _check_inputs(jets, constituents, CONSTITUENT_FIELDS, n_max)
        return np.zeros((0, n_max, len(RS3L_FEATURES)), np.float32), np.zeros((0, n_max), bool)
    return rs3l_features(jets, constituents, n_max=n_max)


def _rs3l_four_momenta(
    x: np.ndarray, mask: np.ndarray, jets: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    _, jet_eta, jet_phi = _jet_axes(jets)
    x = x.astype(np.float64)
    i = {n: k for k, n in enumerate(RS3L_FEATURES)}
    return _p4(
        np.exp(x[..., i["log_pt"]]),
        jet_eta + x[..., i["deta"]],
        jet_phi + x[..., i["dphi"]],
        np.exp(x[..., i["log_e"]]),
        mask,
    )


FEATURE_SETS: dict[str, FeatureSet] = {
    s.name: s
    for s in [
        FeatureSet(
            name="rs3l",
            feature_names=RS3L_FEATURES,
            compute=_rs3l,
            needs=CONSTITUENT_FIELDS,
            description="RS3L Table I: 15 particle features (jetforge.jets.features)",
            four_momenta=_rs3l_four_momenta,
        ),
        FeatureSet(
            name="part17",
            feature_names=PART17_FEATURES,
            compute=_part_features(
                PART17_FEATURES,
                PART17_STANDARDISATION,
                (*KINEMATIC_FIELDS, *PID_FIELDS, *TRACK_FIELDS),
            ),
            needs=(*KINEMATIC_FIELDS, *PID_FIELDS, *TRACK_FIELDS),
            description="ParT/JetClass 17 particle features, standardised as JetClass_full.yaml",
            standardisation=PART17_STANDARDISATION,
            four_momenta=_part_four_momenta(PART17_FEATURES, PART17_STANDARDISATION),
        ),
        FeatureSet(
            name="pid_kin",
            feature_names=PID_KIN_FEATURES,
            compute=_part_features(
                PID_KIN_FEATURES, PID_KIN_STANDARDISATION, (*KINEMATIC_FIELDS, *PID_FIELDS)
            ),
            needs=(*KINEMATIC_FIELDS, *PID_FIELDS),
            description="ParT quark–gluon 'kinpid' 13 features, standardised as qg_kinpid.yaml",
            standardisation=PID_KIN_STANDARDISATION,
            four_momenta=_part_four_momenta(PID_KIN_FEATURES, PID_KIN_STANDARDISATION),
        ),
        FeatureSet(
            name="ptetaphi",
            feature_names=PTETAPHI_FEATURES,
            compute=_part_features(PTETAPHI_FEATURES, PTETAPHI_STANDARDISATION, KINEMATIC_FIELDS),
            needs=KINEMATIC_FIELDS,
            description="MPM (log p_T, Δη, Δφ), standardised as part17; massless inverse",
            standardisation=PTETAPHI_STANDARDISATION,
            four_momenta=_part_four_momenta(PTETAPHI_FEATURES, PTETAPHI_STANDARDISATION),
        ),
        FeatureSet(
            name="jetnet",
            feature_names=JETNET_FEATURES,
            compute=jetnet_features,
            needs=KINEMATIC_FIELDS,
            description="JetNet (eta_rel, phi_rel, pt_rel, mask)",
            four_momenta=_jetnet_four_momenta,
        ),
        FeatureSet(
            name="kinematic4",
            feature_names=KINEMATIC4_FEATURES,
            compute=kinematic4_features,
            needs=KINEMATIC_FIELDS,
            description="massless four-momenta (E, px, py, pz): RODEM, top tagging",
            four_momenta=_kinematic4_four_momenta,
        ),
    ]
}


def get_feature_set(name: str) -> FeatureSet:
    """The registered feature set ``name``, or an error listing the known ones."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise FeatureSetError(
            f"config key features: unknown feature set {name!r}; known feature sets: "
            f"{', '.join(sorted(FEATURE_SETS))}"
        ) from None
