"""Tests of the parametric E-flow detector (jetforge.detector).

Resolutions and efficiencies are checked statistically against formulas written out here
from the card values (not by calling the library's formula code), so a wrong formula, a
wrong table lookup or a wrong card number fails. Tolerances are several standard errors.
"""

from __future__ import annotations

import copy
import hashlib
import math

import awkward as ak
import numpy as np
import pytest

from jetforge.detector import DETECTORS, cards_dir, load_card, simulate
from jetforge.detector.eflow import CardError, calo_impact, impact_parameters, parse_card

N = 20_000


@pytest.fixture(scope="module")
def card() -> dict:
    return load_card("cms_eflow")[0]


def single_particles(
    n: int,
    pid: int,
    charge: float,
    pt: float,
    eta: float,
    mass: float = 0.0,
    vertex: tuple[float, float, float] = (0.0, 0.0, 0.0),
    phi: np.ndarray | float | None = None,
    seed: int = 0,
) -> ak.Array:
    """n events with one particle each (format 2); phi random unless given."""
    if phi is None:
        phi = np.random.default_rng(seed).uniform(-np.pi, np.pi, n)
    phi = np.broadcast_to(np.asarray(phi, dtype=np.float64), (n,))
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    pz = np.full(n, pt * math.sinh(eta))
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    cols = {
        "px": px, "py": py, "pz": pz, "E": energy,
        "pid": np.full(n, pid, dtype=np.int64), "charge": np.full(n, float(charge)),
        "vx": np.full(n, vertex[0]), "vy": np.full(n, vertex[1]), "vz": np.full(n, vertex[2]),
    }  # fmt: skip
    return ak.unflatten(ak.zip(cols), np.ones(n, dtype=np.int64))


def events(particle_lists: list[list[dict]]) -> ak.Array:
    """Events from explicit particle dicts (missing vertex/charge fields default to 0)."""
    base = {"charge": 0.0, "vx": 0.0, "vy": 0.0, "vz": 0.0}
    return ak.Array([[{**base, **p} for p in ev] for ev in particle_lists])


def massless(pid: int, pt: float, eta: float, phi: float, **extra: float) -> dict:
    return {
        "px": pt * math.cos(phi), "py": pt * math.sin(phi), "pz": pt * math.sinh(eta),
        "E": pt * math.cosh(eta), "pid": pid, **extra,
    }  # fmt: skip


def flat(cands: ak.Array, field: str) -> np.ndarray:
    return ak.to_numpy(ak.flatten(cands[field]))


def rel_std_err(n: int) -> float:
    """Relative standard error of a sample standard deviation (Gaussian approximation)."""
    return 1.0 / math.sqrt(2.0 * n)


# ---------------------------------------------------------------------------------------
# card loading and registry
# ---------------------------------------------------------------------------------------


def test_load_card_hash_and_registry(card: dict) -> None:
    loaded, sha = load_card("cms_eflow")
    path = cards_dir() / "cms_eflow.yaml"
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded["model"] == "eflow" and loaded["name"] == "cms_eflow"
    assert DETECTORS["eflow"] is not None
    assert load_card(str(path))[1] == sha  # a path works as well as a name


def test_unknown_card_lists_known() -> None:
    with pytest.raises(KeyError, match="cms_eflow"):
        load_card("no_such_detector")


def test_resources_env_var(tmp_path, monkeypatch) -> None:
    (tmp_path / "detectors").mkdir()
    src = cards_dir() / "cms_eflow.yaml"
    (tmp_path / "detectors" / "other.yaml").write_bytes(src.read_bytes())
    monkeypatch.setenv("JETFORGE_RESOURCES", str(tmp_path))
    _, sha = load_card("other")
    assert sha == hashlib.sha256(src.read_bytes()).hexdigest()
    with pytest.raises(KeyError, match="other"):
        load_card("cms_eflow")  # not in the overriding folder


def test_bad_card_names_key(card: dict) -> None:
    broken = copy.deepcopy(card)
    del broken["calorimeters"][1]["energy_min"]
    with pytest.raises(CardError, match=r"calorimeters\[1\]\.energy_min"):
        parse_card(broken)
    broken = copy.deepcopy(card)
    broken["tracking"]["efficiency"]["muon"]["values"][0] = [0.0, 0.5]
    with pytest.raises(CardError, match="tracking.efficiency.muon.values"):
        parse_card(broken)
    broken = copy.deepcopy(card)
    broken["model"] = "delphes9"
    with pytest.raises(KeyError, match="delphes9"):
        simulate(single_particles(1, 22, 0, 10.0, 0.0), broken, np.random.default_rng(0))


def test_output_fields(card: dict) -> None:
    out = simulate(single_particles(10, 211, 1, 10.0, 0.0), card, np.random.default_rng(0))
    assert out.fields == [
        "px", "py", "pz", "E", "charge", "is_electron", "is_muon", "is_photon", "is_ch",
        "is_nh", "d0", "dz", "d0_err", "dz_err",
    ]  # fmt: skip
    assert len(out) == 10
    empty = simulate(single_particles(0, 22, 0, 10.0, 0.0), card, np.random.default_rng(0))
    assert len(empty) == 0


# ---------------------------------------------------------------------------------------
# (a) resolutions
# ---------------------------------------------------------------------------------------


def _calo_sigma(region: dict, energy: float, abs_eta: float) -> float:
    """sigma(E) = (p0 + p2 (|eta|-eta0)^2) sqrt((C E)^2 + S^2 E + N^2), from the card."""
    scale = region["p0"] + region["p2"] * (abs_eta - region["eta0"]) ** 2
    return scale * math.sqrt(
        (region["C"] * energy) ** 2 + region["S"] ** 2 * energy + region["N"] ** 2
    )


def test_photon_energy_resolution(card: dict) -> None:
    energy, eta = 50.0, 0.01  # ECAL barrel tower (0, 0.0174]: centre |eta| = 0.0087
    parts = single_particles(N, 22, 0, energy / math.cosh(eta), eta)
    out = simulate(parts, card, np.random.default_rng(1))
    assert ak.all(ak.num(out) == 1)
    assert np.all(flat(out, "is_photon") == 1)
    measured = flat(out, "E")
    ecal = card["calorimeters"][0]
    assert ecal["name"] == "ecal"
    expected = _calo_sigma(ecal["resolution"][0], energy, 0.0087)
    # hand check of the CMS numbers: sqrt(0.4^2 + 0.11^2*50 + 0.4^2) = 0.962 GeV
    assert expected == pytest.approx(0.962, abs=0.001)
    assert measured.std() == pytest.approx(expected, rel=6 * rel_std_err(N))
    assert measured.mean() == pytest.approx(energy, abs=5 * expected / math.sqrt(N))
    # massless candidate, direction inside the photon's tower
    p = np.sqrt(flat(out, "px") ** 2 + flat(out, "py") ** 2 + flat(out, "pz") ** 2)
    np.testing.assert_allclose(p, measured, rtol=1e-12)
    eta_out = np.arcsinh(flat(out, "pz") / np.hypot(flat(out, "px"), flat(out, "py")))
    assert eta_out.min() >= 0.0 and eta_out.max() <= 0.0174 + 1e-12


def test_neutral_hadron_energy_resolution(card: dict) -> None:
    energy, eta, mass = 50.0, 0.3, 0.9396
    pt = math.sqrt(energy**2 - mass**2) / math.cosh(eta)
    out = simulate(single_particles(N, 2112, 0, pt, eta, mass=mass), card, np.random.default_rng(2))
    assert ak.all(ak.num(out) == 1)
    assert np.all(flat(out, "is_nh") == 1)
    hcal = card["calorimeters"][1]
    expected = _calo_sigma(hcal["resolution"][0], energy, 0.3)
    # hand check: sqrt((0.05*50)^2 + 1.5^2*50) = 10.90 GeV
    assert expected == pytest.approx(10.897, abs=0.01)
    measured = flat(out, "E")
    assert measured.std() == pytest.approx(expected, rel=6 * rel_std_err(N))
    assert measured.mean() == pytest.approx(energy, abs=5 * expected / math.sqrt(N))


@pytest.mark.parametrize(
    ("pid", "charge", "pt", "eta", "mass", "cls", "a", "b"),
    [
        (13, -1, 100.0, 0.2, 0.1057, "muon", 0.010, 1.0e-4),  # |eta| <= 0.5
        (-211, 1, 20.0, 1.0, 0.1396, "charged_hadron", 0.015, 2.5e-4),  # 0.5 < |eta| <= 1.5
        (-13, 1, 40.0, 2.0, 0.1057, "muon", 0.025, 3.5e-4),  # 1.5 < |eta| <= 2.5
    ],
)
def test_track_pt_resolution(card, pid, charge, pt, eta, mass, cls, a, b) -> None:
    res = card["tracking"]["momentum_resolution"][cls]
    ieta = int(np.searchsorted(res["abs_eta_edges"], eta)) - 1
    assert (res["a"][ieta], res["b"][ieta]) == (a, b)  # card = Delphes CMS numbers
    out = simulate(
        single_particles(N, pid, charge, pt, eta, mass=mass), card, np.random.default_rng(3)
    )
    tracks = ak.flatten(out[out.charge != 0])
    pt_meas = np.hypot(ak.to_numpy(tracks.px), ak.to_numpy(tracks.py))
    expected = math.sqrt(a**2 + (b * pt) ** 2)  # sigma(pT)/pT
    n = pt_meas.size
    assert n > 0.8 * N
    assert np.std(pt_meas / pt) == pytest.approx(expected, rel=6 * rel_std_err(n))
    assert np.mean(pt_meas / pt) == pytest.approx(1.0, abs=5 * expected / math.sqrt(n))
    assert np.all(ak.to_numpy(tracks.charge) == charge)


def test_electron_track_combined_with_ecal(card) -> None:
    # Delphes E-flow: when the ECAL excess over an electron track is not significant, the
    # track is rescaled to the inverse-variance mean of track and ECAL, which at 40 GeV is
    # far better than the track alone (sigma/pT = sqrt(0.15^2 + (40*3.1e-3)^2) = 0.195).
    track_only = math.hypot(0.15, 40.0 * 3.1e-3)
    out = simulate(
        single_particles(N, 11, -1, 40.0, 2.0, mass=0.000511), card, np.random.default_rng(15)
    )
    tracks = ak.flatten(out[out.charge != 0])
    ratio = np.hypot(ak.to_numpy(tracks.px), ak.to_numpy(tracks.py)) / 40.0
    assert np.std(ratio) < 0.6 * track_only
    assert np.percentile(ratio, 84) - np.percentile(ratio, 16) < 0.5 * track_only


# ---------------------------------------------------------------------------------------
# (b) tracking efficiency
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pid", "charge", "pt", "eta", "eff"),
    [
        (211, 1, 0.9, 0.5, 0.70),
        # 0.5 GeV curls into the endcap (pT < 0.3 * 3.8 T * 1.29 m / 2): Delphes takes the
        # efficiency at the |eta| where it arrives, 3.2 here, outside the tracker (the real
        # DelphesHepMC3 with the CMS card tracks none of these either)
        (211, 1, 0.5, 0.5, 0.0),
        (211, 1, 5.0, 0.5, 0.95),
        (-321, -1, 5.0, 2.0, 0.85),
        (11, -1, 50.0, 0.3, 0.95),
        (11, -1, 200.0, 1.8, 0.90),
        (13, -1, 0.5, 2.0, 0.70),
        (211, 1, 0.08, 0.0, 0.0),  # pT <= 0.1 GeV
        (211, 1, 10.0, 2.7, 0.0),  # outside the tracker
    ],
)
def test_tracking_efficiency(card, pid, charge, pt, eta, eff) -> None:
    out = simulate(single_particles(N, pid, charge, pt, eta), card, np.random.default_rng(4))
    n_tracks = int(ak.sum(ak.num(out[out.charge != 0])))
    sigma = math.sqrt(max(eff * (1 - eff), 1e-12) / N)
    assert n_tracks / N == pytest.approx(eff, abs=5 * sigma + 1e-12)


def test_flags_follow_particle_type(card) -> None:
    rng = np.random.default_rng(5)
    for pid, charge, flag in [(11, -1, "is_electron"), (-13, 1, "is_muon"), (2212, 1, "is_ch")]:
        out = simulate(single_particles(200, pid, charge, 30.0, 0.1), card, rng)
        tracks = ak.flatten(out[out.charge != 0])
        assert len(tracks) > 150
        for other in ("is_electron", "is_muon", "is_ch", "is_photon", "is_nh"):
            assert np.all(ak.to_numpy(tracks[other]) == (1.0 if other == flag else 0.0))


def test_untracked_charged_deposit_as_neutral(card) -> None:
    # |eta| = 2.7 is outside the tracker (2.5) but inside the calorimeters (5.0); 200 GeV so
    # that the coarse forward ECAL resolution (13.8 GeV at 40 GeV) never fails 2 sigma.
    energy = 200.0
    pions = simulate(
        single_particles(2000, 211, 1, energy / math.cosh(2.7), 2.7), card, np.random.default_rng(6)
    )
    assert int(ak.sum(pions.charge != 0)) == 0
    assert np.mean(flat(pions, "is_nh")) > 0.99
    assert np.mean(ak.to_numpy(ak.sum(pions.E, axis=1))) == pytest.approx(energy, rel=0.03)
    electrons = simulate(
        single_particles(2000, 11, -1, energy / math.cosh(2.7), 2.7), card, np.random.default_rng(7)
    )
    assert np.all(flat(electrons, "is_photon") == 1) and ak.all(ak.num(electrons) == 1)
    # a muon outside the tracker leaves nothing (no calorimeter deposit)
    muons = simulate(single_particles(100, 13, -1, 10.0, 2.7), card, np.random.default_rng(8))
    assert int(ak.sum(ak.num(muons))) == 0


# ---------------------------------------------------------------------------------------
# (c) invisibles, calorimeter towers
# ---------------------------------------------------------------------------------------


def test_neutrinos_removed(card) -> None:
    evs = events(
        [
            [massless(12, 50.0, 0.0, 0.0), massless(-14, 30.0, 1.0, 1.0), massless(16, 5, 0, 2)],
            [massless(14, 80.0, 0.2, 0.5), massless(22, 40.0, -0.5, -1.0)],
            [massless(1000022, 100.0, 0.0, 0.0)],
        ]
    )
    out = simulate(evs, card, np.random.default_rng(9))
    assert ak.num(out).tolist() == [0, 1, 0]
    assert out[1].is_photon.tolist() == [1.0]
    phi = math.atan2(out[1].py[0], out[1].px[0])
    assert phi == pytest.approx(-1.0, abs=0.02)


def test_same_tower_photons_merge_and_distant_ones_do_not(card) -> None:
    near = [massless(22, 20.0, 0.005, 0.001), massless(22, 30.0, 0.010, 0.002)]
    far = [massless(22, 20.0, 0.005, 0.001), massless(22, 30.0, 0.5, 1.0)]
    out = simulate(events([near] * 500 + [far] * 500), card, np.random.default_rng(10))
    n = ak.to_numpy(ak.num(out))
    assert np.all(n[:500] == 1) and np.all(n[500:] == 2)
    merged = ak.to_numpy(ak.flatten(out[:500].E))
    assert merged.mean() == pytest.approx(50.0, rel=0.01)


def test_thresholds_respected(card) -> None:
    rng = np.random.default_rng(11)
    n_ev, n_p = 300, 100
    pt = rng.exponential(2.0, n_ev * n_p) + 0.05
    eta = rng.uniform(-3, 3, n_ev * n_p)
    phi = rng.uniform(-np.pi, np.pi, n_ev * n_p)
    pid = rng.choice([22, 130, 2112, 211, -211, 11], n_ev * n_p)
    charge = np.select([pid == 211, pid == -211, pid == 11], [1.0, -1.0, -1.0], 0.0)
    cols = {
        "px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta),
        "E": pt * np.cosh(eta), "pid": pid, "charge": charge,
        "vx": np.zeros_like(pt), "vy": np.zeros_like(pt), "vz": np.zeros_like(pt),
    }  # fmt: skip
    out = ak.flatten(simulate(ak.unflatten(ak.zip(cols), n_p), card, rng))
    photons, hadrons = out[out.is_photon == 1], out[out.is_nh == 1]
    assert len(photons) > 0 and len(hadrons) > 0
    assert ak.min(photons.E) > card["calorimeters"][0]["energy_min"]
    assert ak.min(hadrons.E) > card["calorimeters"][1]["energy_min"]
    neutral = out[out.charge == 0]
    assert np.all(ak.to_numpy(neutral.d0) == 0) and np.all(ak.to_numpy(neutral.dz_err) == 0)
    kinds = ("is_electron", "is_muon", "is_photon", "is_ch", "is_nh")
    flags = sum(ak.to_numpy(out[f]) for f in kinds)
    assert np.all(flags == 1)  # exactly one type per candidate


def test_soft_charged_particle_curls(card) -> None:
    # pT = 0.5 GeV in 3.8 T: radius 0.44 m < R/2, never reaches the barrel (R = 1.29 m).
    eta_c, _, reach = calo_impact(
        np.array([0.5, 50.0]), np.array([0.0, 0.0]), np.array([0.0, 0.0]),
        np.array([0.0, 0.0]), np.array([1.0, 1.0]), 1.29, 3.0, 3.8,
    )  # fmt: skip
    assert reach.tolist() == [False, True]
    # 50 GeV positive track at eta = 0: bends clockwise by asin(0.3*3.8*1.29/(2*50)) = 0.0147
    _, phi_c, _ = calo_impact(
        np.array([50.0]), np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([1.0]),
        1.29, 3.0, 3.8,
    )  # fmt: skip
    assert phi_c[0] == pytest.approx(-math.asin(0.299792458 * 3.8 * 1.29 / 100.0), rel=1e-9)


# ---------------------------------------------------------------------------------------
# (d) reproducibility
# ---------------------------------------------------------------------------------------


def test_seed_reproducibility(card) -> None:
    rng = np.random.default_rng(12)
    n_ev, n_p = 50, 80
    pt = rng.exponential(5.0, n_ev * n_p) + 0.2
    eta, phi = rng.normal(0, 1, n_ev * n_p), rng.uniform(-np.pi, np.pi, n_ev * n_p)
    pid = rng.choice([22, 2112, 211, -211], n_ev * n_p)
    cols = {
        "px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta),
        "E": pt * np.cosh(eta), "pid": pid, "charge": np.sign(pid) * (np.abs(pid) == 211),
        "vx": rng.normal(0, 0.1, n_ev * n_p), "vy": np.zeros_like(pt), "vz": np.zeros_like(pt),
    }  # fmt: skip
    parts = ak.unflatten(ak.zip(cols), n_p)
    a = simulate(parts, card, np.random.default_rng(99))
    b = simulate(parts, card, np.random.default_rng(99))
    c = simulate(parts, card, np.random.default_rng(100))
    assert ak.to_list(ak.num(a)) == ak.to_list(ak.num(b))
    for f in a.fields:
        assert np.array_equal(flat(a, f), flat(b, f)), f
    assert not np.array_equal(flat(a, "E")[: len(flat(c, "E"))], flat(c, "E")[: len(flat(a, "E"))])


# ---------------------------------------------------------------------------------------
# (e) impact parameters
# ---------------------------------------------------------------------------------------


def test_impact_parameter_hand_example(card) -> None:
    # p = (3, 4, 5) GeV from vertex (1, 2, 3) mm. Transverse line (1,2) + s (3,4):
    # closest approach at s = -(1*3 + 2*4)/25 = -0.44 -> (-0.32, 0.24), distance 0.4 mm;
    # d0 = (vx py - vy px)/pT = (4 - 6)/5 = -0.4; dz = 3 + 5 s = 3 - 2.2 = 0.8 mm.
    d0, dz = impact_parameters(*(np.array([v]) for v in (3.0, 4.0, 5.0, 1.0, 2.0, 3.0)))
    assert d0[0] == pytest.approx(-0.4, abs=1e-12)
    assert dz[0] == pytest.approx(0.8, abs=1e-12)
    exact = copy.deepcopy(card)
    exact["tracking"]["impact_parameter"] = {
        "d0": {"a_mm": 0.0, "b_mm_gev": 0.0},
        "dz": {"a_mm": 0.0, "b_mm_gev": 0.0},
    }
    muon = events([[{"px": 3.0, "py": 4.0, "pz": 5.0, "E": 7.0719, "pid": 13, "charge": -1.0,
                     "vx": 1.0, "vy": 2.0, "vz": 3.0}]] * 20)  # fmt: skip
    out = simulate(muon, exact, np.random.default_rng(13))
    assert len(flat(out, "d0")) > 15
    np.testing.assert_allclose(flat(out, "d0"), -0.4, atol=1e-12)
    np.testing.assert_allclose(flat(out, "dz"), 0.8, atol=1e-12)


def test_impact_parameter_smearing_width(card) -> None:
    pt = 2.0
    out = simulate(
        single_particles(N, 13, -1, pt, 0.3), card, np.random.default_rng(14)
    )
    ip = card["tracking"]["impact_parameter"]
    for name in ("d0", "dz"):
        expected = math.hypot(ip[name]["a_mm"], ip[name]["b_mm_gev"] / pt)
        values = flat(out, name)
        assert values.std() == pytest.approx(expected, rel=6 * rel_std_err(values.size))
        assert abs(values.mean()) < 5 * expected / math.sqrt(values.size)
        np.testing.assert_allclose(flat(out, f"{name}_err"), expected, rtol=1e-12)
    # 1 GeV and 10 GeV reproduce the CMS numbers the card was fitted to (90/25 um, 150/45 um)
    assert math.hypot(ip["d0"]["a_mm"], ip["d0"]["b_mm_gev"]) == pytest.approx(0.090, rel=0.01)
    assert math.hypot(ip["d0"]["a_mm"], ip["d0"]["b_mm_gev"] / 10) == pytest.approx(0.025, rel=0.01)
    assert math.hypot(ip["dz"]["a_mm"], ip["dz"]["b_mm_gev"]) == pytest.approx(0.150, rel=0.01)
    assert math.hypot(ip["dz"]["a_mm"], ip["dz"]["b_mm_gev"] / 10) == pytest.approx(0.045, rel=0.01)
