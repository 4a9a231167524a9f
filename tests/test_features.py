"""Tests of the RS3L particle features (jetforge.jets.features) and N2 (jets.substructure)."""

from __future__ import annotations

import itertools
import math

import awkward as ak
import numpy as np
import pytest

from jetforge.jets.features import RS3L_FEATURES, rs3l_features
from jetforge.jets.substructure import n2

FLAGS = ("is_photon", "is_muon", "is_electron", "is_ch", "is_nh")


def cand(pt: float, eta: float, phi: float, energy: float | None = None, **extra: float) -> dict:
    """A format-3 candidate; unspecified charge, flags and impact parameters are 0."""
    base = {"charge": 0.0, "d0": 0.0, "dz": 0.0, "d0_err": 0.0, "dz_err": 0.0}
    base.update(dict.fromkeys(FLAGS, 0.0))
    base.update(extra)
    return {
        "px": pt * math.cos(phi), "py": pt * math.sin(phi), "pz": pt * math.sinh(eta),
        "E": pt * math.cosh(eta) if energy is None else energy, **base,
    }  # fmt: skip


def jet_record(pt: float, eta: float, phi: float, energy: float) -> dict:
    return {"pt": pt, "eta": eta, "phi": phi, "E": energy}


def test_feature_names_follow_table_1() -> None:
    assert RS3L_FEATURES == (
        "log_pt", "log_pt_rel", "log_e", "log_e_rel", "deta", "dphi", "dr",
        "tanh_d0", "tanh_dz", "charge",
        "is_photon", "is_muon", "is_electron", "is_ch", "is_nh",
    )  # fmt: skip


def three_particle_jet() -> tuple[ak.Array, ak.Array]:
    """Jet pT = 200, eta = 0, phi = 3.0, E = 250 with three massless constituents.

    Given out of pT order (A 50, B 100, C 20) to check the sorting; B sits across the
    phi = +-pi seam (phi = -3.1) to check the wrap.
    """
    jets = ak.Array([jet_record(200.0, 0.0, 3.0, 250.0)])
    constituents = ak.Array(
        [
            [
                cand(50.0, 0.1, 3.1, charge=1.0, is_ch=1.0, d0=0.5, dz=-1.0),  # A
                cand(100.0, -0.2, -3.1, is_photon=1.0),  # B
                cand(20.0, 0.0, 2.9, charge=-1.0, is_muon=1.0, d0=-0.02, dz=0.03),  # C
            ]
        ]
    )
    return jets, constituents


# Hand-computed expectations, rows in pT order B, A, C; columns in RS3L_FEATURES order.
#   B: ln100 = 4.605170, ln(100/200) = -0.693147, E = 100 cosh(0.2) = 102.00668:
#      ln E = 4.625038, ln(E/250) = -0.896423; deta = -0.2; dphi = -3.1 - 3.0 + 2 pi
#      = 0.183185; dr = hypot(0.2, 0.183185) = 0.271214.
#   A: ln50 = 3.912023, ln(0.25) = -1.386294, E = 50 cosh(0.1) = 50.25021: ln E = 3.917015,
#      ln(E/250) = -1.604446; deta = 0.1, dphi = 0.1, dr = 0.141421; tanh(0.5) = 0.462117,
#      tanh(-1) = -0.761594; charge 1, is_ch.
#   C: ln20 = 2.995732, ln(0.1) = -2.302585, E = 20: ln E = 2.995732, ln(0.08) = -2.525729;
#      deta = 0, dphi = -0.1, dr = 0.1; tanh(-0.02) = -0.019997, tanh(0.03) = 0.029991;
#      charge -1, is_muon.
EXPECTED = np.array(
    [
        # log_pt  log_pt_rel log_e   log_e_rel  deta  dphi      dr
        [4.605170, -0.693147, 4.625038, -0.896423, -0.2, 0.183185, 0.271214,
         0.0, 0.0, 0.0, 1, 0, 0, 0, 0],
        [3.912023, -1.386294, 3.917015, -1.604446, 0.1, 0.1, 0.141421,
         0.462117, -0.761594, 1.0, 0, 0, 0, 1, 0],
        [2.995732, -2.302585, 2.995732, -2.525729, 0.0, -0.1, 0.1,
         -0.019997, 0.029991, -1.0, 0, 1, 0, 0, 0],
    ]
)  # fmt: skip


def test_features_against_hand_computation() -> None:
    jets, constituents = three_particle_jet()
    x, mask = rs3l_features(jets, constituents, n_max=5)
    assert x.dtype == np.float32 and x.shape == (1, 5, 15)
    assert mask.dtype == np.bool_ and mask.tolist() == [[True, True, True, False, False]]
    np.testing.assert_allclose(x[0, :3], EXPECTED, rtol=0, atol=2e-6)
    assert np.all(x[0, 3:] == 0)


def test_padding_sorting_truncation() -> None:
    rng = np.random.default_rng(0)
    pts = [rng.uniform(1, 100, 7), np.array([]), rng.uniform(1, 100, 2)]
    constituents = ak.Array(
        [[cand(float(p), 0.0, 0.1, charge=float(i)) for i, p in enumerate(jet)] for jet in pts]
    )
    jets = ak.Array([jet_record(300.0, 0.0, 0.1, 400.0)] * 3)
    x, mask = rs3l_features(jets, constituents, n_max=4)
    assert x.shape == (3, 4, 15) and mask.shape == (3, 4)
    assert mask.sum(axis=1).tolist() == [4, 0, 2]
    log_pt = RS3L_FEATURES.index("log_pt")
    for j, jet in enumerate(pts):
        top = np.sort(jet)[::-1][:4]
        np.testing.assert_allclose(np.exp(x[j, : top.size, log_pt]), top, rtol=1e-6)
        # the charge column carries the original index: the right particles were kept
        kept = np.argsort(-jet, kind="stable")[:4]
        np.testing.assert_array_equal(x[j, : top.size, RS3L_FEATURES.index("charge")], kept)
    assert np.all(x[~mask] == 0)
    with pytest.raises(KeyError, match="d0"):
        rs3l_features(jets, constituents[["px", "py", "pz", "E"]], n_max=4)


def test_dphi_range() -> None:
    phis = np.linspace(-np.pi, np.pi, 41)[:-1]
    constituents = ak.Array([[cand(10.0, 0.0, float(p)) for p in phis]])
    jets = ak.Array([jet_record(100.0, 0.0, 2.5, 120.0)])
    x, mask = rs3l_features(jets, constituents, n_max=64)
    dphi = x[0, mask[0], RS3L_FEATURES.index("dphi")]
    assert dphi.min() >= -np.pi and dphi.max() < np.pi
    expected = np.mod(phis - 2.5 + np.pi, 2 * np.pi) - np.pi
    np.testing.assert_allclose(np.sort(dphi), np.sort(expected), atol=1e-5)


# ---------------------------------------------------------------------------------------
# N2
# ---------------------------------------------------------------------------------------


def n2_reference(px, py, pz, energy, beta: float = 1.0) -> float:
    """Direct N2 = 2e3 / (1e2)^2 in (pT, rapidity-phi) form, Moult-Necib-Thaler eq. (2.5)."""
    pt = np.hypot(px, py)
    y = 0.5 * np.log((energy + pz) / (energy - pz))
    phi = np.arctan2(py, px)
    z = pt / pt.sum()
    dphi = np.mod(phi[:, None] - phi[None, :] + np.pi, 2 * np.pi) - np.pi
    r = np.hypot(y[:, None] - y[None, :], dphi) ** beta
    e2 = sum(z[i] * z[j] * r[i, j] for i, j in itertools.combinations(range(pt.size), 2))
    e3 = 0.0
    for i, j, k in itertools.combinations(range(pt.size), 3):
        a, b, _ = sorted((r[i, j], r[i, k], r[j, k]))
        e3 += z[i] * z[j] * z[k] * a * b
    return e3 / e2**2


def random_jet(rng: np.random.Generator, n: int, mass: float = 0.3) -> dict:
    pt = rng.exponential(10.0, n) + 0.5
    eta, phi = rng.normal(0.0, 0.25, n), rng.normal(1.0, 0.25, n)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return {"px": px, "py": py, "pz": pz, "E": np.sqrt(px**2 + py**2 + pz**2 + mass**2)}


def as_constituents(jets: list[dict]) -> ak.Array:
    counts = [len(j["px"]) for j in jets]
    cols = {f: np.concatenate([j[f] for j in jets]) for f in ("px", "py", "pz", "E")}
    return ak.unflatten(ak.zip(cols), counts)


def test_n2_matches_numpy_reference() -> None:
    rng = np.random.default_rng(1)
    jets = [random_jet(rng, n) for n in (3, 5, 12, 30)]  # massive: rapidity matters
    got = n2(as_constituents(jets))
    assert got.dtype == np.float32 and got.shape == (4,)
    ref = [n2_reference(j["px"], j["py"], j["pz"], j["E"]) for j in jets]
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    got2 = n2(as_constituents(jets), beta=2.0)
    ref2 = [n2_reference(j["px"], j["py"], j["pz"], j["E"], beta=2.0) for j in jets]
    np.testing.assert_allclose(got2, ref2, rtol=1e-5)


def test_n2_few_constituents_is_zero() -> None:
    rng = np.random.default_rng(2)
    jets = [random_jet(rng, n) for n in (0, 1, 2, 6)]
    got = n2(as_constituents(jets))
    assert got[:3].tolist() == [0.0, 0.0, 0.0]
    assert got[3] > 0 and np.all(np.isfinite(got))
    assert n2(as_constituents([random_jet(rng, 0)])).tolist() == [0.0]


def test_two_prong_has_lower_n2_than_one_prong_with_spray() -> None:
    rng = np.random.default_rng(3)

    def cluster(n: int, pt: float, eta: float, phi: float, width: float) -> dict:
        e = rng.normal(eta, width, n)
        f = rng.normal(phi, width, n)
        p = np.full(n, pt / n)
        return {"px": p * np.cos(f), "py": p * np.sin(f), "pz": p * np.sinh(e), "E": p * np.cosh(e)}

    def merge(*parts: dict) -> dict:
        return {k: np.concatenate([p[k] for p in parts]) for k in ("px", "py", "pz", "E")}

    two_prong = merge(cluster(10, 250.0, -0.2, 0.0, 0.01), cluster(10, 250.0, 0.2, 0.0, 0.01))
    spray = merge(cluster(10, 450.0, 0.0, 0.0, 0.01), cluster(30, 50.0, 0.0, 0.0, 0.4))
    got = n2(as_constituents([two_prong, spray]))
    assert got[0] < 0.5 * got[1]
    ref = [n2_reference(j["px"], j["py"], j["pz"], j["E"]) for j in (two_prong, spray)]
    np.testing.assert_allclose(got, ref, rtol=1e-5)
