"""Feature-set registry: ParT/JetClass features by hand, JetNet, four-vectors, inverses."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest

from jetforge.jets.features import rs3l_features
from jetforge.jets.featuresets import (
    FEATURE_SETS,
    PART17_FEATURES,
    PID_KIN_FEATURES,
    FeatureSetError,
    get_feature_set,
)

# Three constituents of one jet at negative η (so the η-sign flip of part_deta matters):
# a hard charged hadron, a photon, and a very soft electron with a huge d0 error (clipped).
PARTS = [
    # pt, eta, phi, mass, charge, flags(e, mu, gamma, ch, nh), d0, dz, d0_err, dz_err
    (50.0, -1.05, 0.32, 0.13957, +1.0, (0, 0, 0, 1, 0), 0.02, -0.5, 0.011, 0.03),
    (20.0, -0.95, 0.25, 0.0, 0.0, (0, 0, 1, 0, 0), 0.0, 0.0, 0.0, 0.0),
    (0.0005, -1.30, 0.10, 0.000511, -1.0, (1, 0, 0, 0, 0), 3.0, 0.2, 7.5, 0.4),
]
FLAGS = ("is_electron", "is_muon", "is_photon", "is_ch", "is_nh")


def _four(pt, eta, phi, m):
    px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
    return px, py, pz, math.sqrt(px * px + py * py + pz * pz + m * m)


@pytest.fixture()
def jet():
    rows = []
    for pt, eta, phi, m, q, flags, d0, dz, d0e, dze in PARTS:
        px, py, pz, e = _four(pt, eta, phi, m)
        rows.append(
            dict(px=px, py=py, pz=pz, E=e, charge=q, d0=d0, dz=dz, d0_err=d0e, dz_err=dze,
                 **{f: float(v) for f, v in zip(FLAGS, flags, strict=True)})
        )  # fmt: skip
    # stored in scrambled order: the feature sets must sort by pT themselves
    consts = ak.Array([[rows[2], rows[0], rows[1]]])
    tot = [sum(r[k] for r in rows) for k in ("px", "py", "pz", "E")]
    jpt = math.hypot(tot[0], tot[1])
    jets = ak.Array(
        [
            {
                "pt": jpt,
                "eta": math.asinh(tot[2] / jpt),
                "phi": math.atan2(tot[1], tot[0]),
                "E": tot[3],
            }
        ]
    )
    return jets, consts, rows


def _std(x, c, s, lo=-5.0, hi=5.0):
    return min(max((x - c) * s, lo), hi)


def test_part17_matches_hand_computation(jet):
    jets, consts, rows = jet
    x, mask = get_feature_set("part17").compute(jets, consts, 5)
    assert x.shape == (1, 5, 17) and x.dtype == np.float32
    assert mask.tolist() == [[True, True, True, False, False]]
    assert np.all(x[0, 3:] == 0)
    j = jets[0]
    sign = -1.0  # jet η < 0
    for k, r in enumerate([rows[0], rows[1], rows[2]]):  # pT order: 50, 20, 0.0005 GeV
        pt = math.hypot(r["px"], r["py"])
        eta = math.asinh(r["pz"] / pt)
        dphi = (math.atan2(r["py"], r["px"]) - j["phi"] + math.pi) % (2 * math.pi) - math.pi
        deta = (eta - j["eta"]) * sign
        want = {
            "part_pt_log": _std(math.log(pt), 1.7, 0.7),
            "part_e_log": _std(math.log(r["E"]), 2.0, 0.7),
            "part_logptrel": _std(math.log(pt / j["pt"]), -4.7, 0.7),
            "part_logerel": _std(math.log(r["E"] / j["E"]), -4.7, 0.7),
            "part_deltaR": _std(math.hypot(deta, dphi), 0.2, 4.0),
            "part_charge": r["charge"],
            "part_isChargedHadron": r["is_ch"], "part_isNeutralHadron": r["is_nh"],
            "part_isPhoton": r["is_photon"], "part_isElectron": r["is_electron"],
            "part_isMuon": r["is_muon"],
            "part_d0": math.tanh(r["d0"]), "part_d0err": _std(r["d0_err"], 0, 1, 0, 1),
            "part_dz": math.tanh(r["dz"]), "part_dzerr": _std(r["dz_err"], 0, 1, 0, 1),
            "part_deta": deta, "part_dphi": dphi,
        }  # fmt: skip
        got = dict(zip(PART17_FEATURES, x[0, k].tolist(), strict=True))
        for name, value in want.items():
            assert got[name] == pytest.approx(value, rel=1e-5, abs=1e-5), (k, name)
    # the soft electron exercises the clips: log pT/pT_jet = -11.8 → (x + 4.7) * 0.7 < -5
    soft = dict(zip(PART17_FEATURES, x[0, 2].tolist(), strict=True))
    assert soft["part_logptrel"] == -5.0 and soft["part_pt_log"] == -5.0
    assert soft["part_d0err"] == 1.0  # [part_d0err, 0, 1, 0, 1] clips to [0, 1]
    # part_deta is signed by the jet's η: the 20 GeV photon (η = -0.95, jet η ≈ -1.02) is
    # more central than the jet, so its signed Δη is negative although η - η_jet > 0
    photon = dict(zip(PART17_FEATURES, x[0, 1].tolist(), strict=True))
    assert photon["part_deta"] < 0 < -0.95 - jets[0]["eta"]


def test_pid_kin_is_the_part17_subset(jet):
    jets, consts, _ = jet
    full, _ = get_feature_set("part17").compute(jets, consts, 4)
    sub, _ = get_feature_set("pid_kin").compute(jets, consts, 4)
    idx = [PART17_FEATURES.index(n) for n in PID_KIN_FEATURES]
    assert np.array_equal(sub, full[..., idx])
    # pid_kin does not need impact parameters
    kin_pid_only = consts[["px", "py", "pz", "E", "charge", *FLAGS]]
    get_feature_set("pid_kin").compute(jets, kin_pid_only, 4)
    with pytest.raises(FeatureSetError, match="d0"):
        get_feature_set("part17").compute(jets, kin_pid_only, 4)


def test_jetnet_and_kinematic4(jet):
    jets, consts, rows = jet
    x, mask = get_feature_set("jetnet").compute(jets, consts, 2)  # truncates to 2 hardest
    assert x.shape == (1, 2, 4) and mask.all()
    r = rows[0]
    pt = math.hypot(r["px"], r["py"])
    assert x[0, 0, 0] == pytest.approx(
        math.asinh(r["pz"] / pt) - jets[0]["eta"], abs=1e-6
    )  # unsigned
    assert x[0, 0, 2] == pytest.approx(pt / jets[0]["pt"], rel=1e-6)
    assert np.all(x[0, :, 3] == 1.0)
    k4, m4 = get_feature_set("kinematic4").compute(jets, consts, 4)
    e, px, py, pz = k4[0, 0]
    assert e == pytest.approx(math.sqrt(px * px + py * py + pz * pz), rel=1e-6)  # massless
    assert px == pytest.approx(r["px"], rel=1e-6) and m4.sum() == 3


def test_rs3l_wraps_the_existing_function(jet):
    jets, consts, _ = jet
    a = get_feature_set("rs3l").compute(jets, consts, 7)
    b = rs3l_features(jets, consts, n_max=7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
def test_four_momenta_round_trip(jet, name):
    jets, consts, rows = jet
    fs = get_feature_set(name)
    x, mask = fs.compute(jets, consts, 3)
    cols = {k: np.asarray(ak.to_numpy(jets[k])) for k in ("pt", "eta", "phi")}
    p4 = fs.four_momenta(x, mask, cols)
    for k, r in enumerate(rows[:2]):  # the two constituents whose features are not clipped
        assert p4["px"][0, k] == pytest.approx(r["px"], rel=2e-5)
        assert p4["pz"][0, k] == pytest.approx(r["pz"], rel=2e-5)
        assert p4["E"][0, k] == pytest.approx(r["E"], rel=1e-3)  # massless sets: E = |p|


def test_unknown_feature_set_names_the_known_ones():
    with pytest.raises(
        FeatureSetError,
        match="known feature sets: jetnet, kinematic4, part17, pid_kin, ptetaphi, rs3l",
    ):
        get_feature_set("part18")


def test_empty_and_bad_inputs(jet):
    jets, consts, _ = jet
    for name in FEATURE_SETS:
        x, mask = get_feature_set(name).compute(jets[:0], consts[:0], 4)
        assert x.shape[:2] == (0, 4) and mask.shape == (0, 4)
    with pytest.raises(ValueError, match="n_max"):
        get_feature_set("jetnet").compute(jets, consts, 0)
