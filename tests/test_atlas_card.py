"""The ATLAS-like card (resources/detectors/atlas_eflow.yaml) is a real detector domain shift.

Same E-flow model, same particle-level events, two cards: each card's photon and
neutral-hadron energy resolutions are checked against the formula written out here from
that card's own numbers, the two are shown to differ by far more than the statistical
errors, the HCAL granularity differs as the Delphes cards say, and on ~200 Pythia dijet
events the jet-mass responses of the two cards agree to a few per cent, as the real
Delphes cards' do (docs/validation/delphes.md), with two seeds of one card as the control.
"""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest

from jetforge.detector import load_card, simulate
from jetforge.detector.eflow import parse_card

N = 20_000


@pytest.fixture(scope="module")
def cards() -> dict[str, dict]:
    return {name: load_card(f"{name}_eflow")[0] for name in ("cms", "atlas")}


def single(
    n: int, pid: int, energy: float, eta: float, mass: float = 0.0, seed: int = 0
) -> ak.Array:
    """n events, one neutral particle each at fixed energy and eta, random phi (format 2)."""
    phi = np.random.default_rng(seed).uniform(-np.pi, np.pi, n)
    pt = math.sqrt(energy**2 - mass**2) / math.cosh(eta)
    cols = {
        "px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": np.full(n, pt * math.sinh(eta)),
        "E": np.full(n, energy), "pid": np.full(n, pid, dtype=np.int64), "charge": np.zeros(n),
        "vx": np.zeros(n), "vy": np.zeros(n), "vz": np.zeros(n),
    }  # fmt: skip
    return ak.unflatten(ak.zip(cols), np.ones(n, dtype=np.int64))


def card_sigma(card: dict, calo: int, energy: float, abs_eta: float) -> float:
    """sigma(E) from the card's numbers: (p0 + p2(|eta|-eta0)^2) sqrt((CE)^2 + S^2 E + N^2)."""
    regions = card["calorimeters"][calo]["resolution"]
    region = next(r for r in regions if abs_eta <= r["abs_eta_max"])
    scale = region["p0"] + region["p2"] * (abs_eta - region["eta0"]) ** 2
    c, s, n = region["C"], region["S"], region["N"]
    return scale * math.sqrt((c * energy) ** 2 + s**2 * energy + n**2)


def measured_energy(cards, name, particles, flag, seed) -> np.ndarray:
    out = simulate(particles, cards[name], np.random.default_rng(seed))
    assert ak.all(ak.num(out) == 1) and np.all(ak.to_numpy(ak.flatten(out[flag])) == 1)
    return ak.to_numpy(ak.flatten(out.E))


def test_card_parses_with_atlas_numbers(cards) -> None:
    atlas = parse_card(cards["atlas"])  # the unchanged eflow parser
    assert (atlas.bz_tesla, atlas.radius_m, atlas.half_length_m) == (2.0, 1.15, 3.51)
    ecal, hcal = atlas.calorimeters
    # HCAL: 0.1 x 10 degrees to |eta| 2.6, then the card's forward towers; 2340 in all
    assert hcal.grid.n_towers == 2 * (26 * 36 + 3 * 18 + 36 + 8 * 18) == 2340
    assert ecal.grid.n_towers == parse_card(cards["cms"]).calorimeters[0].grid.n_towers
    hadrons = cards["atlas"]["tracking"]["momentum_resolution"]["charged_hadron"]
    assert hadrons["a"] == [0.06, 0.10, 0.25]


@pytest.mark.parametrize(
    ("what", "pid", "mass", "energy", "eta", "calo", "flag", "hand"),
    [
        # ATLAS: sqrt((0.0017*20)^2 + 0.101^2*20) = 0.4530; CMS: sqrt(0.16^2+0.11^2*20+0.4^2)
        ("photon", 22, 0.0, 20.0, 0.01, 0, "is_photon", {"atlas": 0.4530, "cms": 0.6539}),
        # ATLAS: sqrt((0.0302*50)^2 + 0.5205^2*50 + 1.59^2) = 4.284; CMS: 10.897
        ("neutral hadron", 2112, 0.93957, 50.0, 0.25, 1, "is_nh", {"atlas": 4.284, "cms": 10.897}),
    ],
)
def test_each_card_reproduces_its_resolution_and_they_differ(
    cards, what, pid, mass, energy, eta, calo, flag, hand
) -> None:
    particles = single(N, pid, energy, eta, mass)
    rel_err = 1.0 / math.sqrt(2.0 * N)  # relative standard error of a standard deviation
    widths = {}
    for name in ("cms", "atlas"):
        grid = parse_card(cards[name]).calorimeters[calo].grid
        tower, _ = grid.locate(np.array([eta]), np.array([0.0]))
        lo, hi, _, _ = grid.bounds(tower)
        expected = card_sigma(cards[name], calo, energy, abs(0.5 * (lo[0] + hi[0])))
        assert expected == pytest.approx(hand[name], abs=2e-3 * hand[name])  # hand check
        e = measured_energy(cards, name, particles, flag, seed=3)
        assert e.std() == pytest.approx(expected, rel=6 * rel_err), (name, what)
        assert e.mean() == pytest.approx(energy, abs=5 * expected / math.sqrt(N)), (name, what)
        widths[name] = e.std()
    # the domain shift: the two widths differ by > 20 combined standard errors
    diff = abs(widths["cms"] - widths["atlas"])
    assert diff > 20 * rel_err * math.hypot(widths["cms"], widths["atlas"])


def test_hcal_granularity_differs(cards) -> None:
    # two neutral hadrons 0.09 apart in eta at the same phi: one ATLAS tower (0.2, 0.3], two
    # CMS towers (0.174, 0.261] and (0.261, 0.348]
    n, energy, mass = 200, 40.0, 0.93957
    pt = [math.sqrt(energy**2 - mass**2) / math.cosh(eta) for eta in (0.205, 0.295)]
    rows = [
        [{"px": p, "py": 0.0, "pz": p * math.sinh(eta), "E": energy, "pid": 2112, "charge": 0.0,
          "vx": 0.0, "vy": 0.0, "vz": 0.0} for p, eta in zip(pt, (0.205, 0.295), strict=True)]
    ] * n  # fmt: skip
    particles = ak.Array(rows)
    counts = {
        name: ak.to_numpy(ak.num(simulate(particles, cards[name], np.random.default_rng(4))))
        for name in ("cms", "atlas")
    }
    assert np.all(counts["atlas"] == 1)
    assert np.all(counts["cms"] == 2)


@pytest.fixture(scope="module")
def dijets() -> ak.Array:
    """~200 Pythia 8 dijet events (pT-hat > 400 GeV, MPI off) as format-2 particles."""
    from jetforge.generation.pythia_setup import make_pythia
    from jetforge.generation.shower import _charge_lookup, _fill_vertex

    py = make_pythia(["HardQCD:all = on", "PhaseSpace:pTHatMin = 400", "PartonLevel:MPI = off"], 11)
    prt = py.nextBatch(200, "none").prt
    fin = prt[prt.status > 0]
    return ak.zip(
        {
            "px": fin.p.px, "py": fin.p.py, "pz": fin.p.pz, "E": fin.p.e, "pid": fin.id,
            "charge": _charge_lookup(py, fin.id), "vx": _fill_vertex(fin.vProd.px),
            "vy": _fill_vertex(fin.vProd.py), "vz": _fill_vertex(fin.vProd.pz),
        }
    )  # fmt: skip


def _jets(p4: ak.Array) -> tuple[np.ndarray, ...]:
    """Anti-kt R = 0.8 jets (pT > 200 GeV): flat (event, pt, eta, phi, mass) arrays."""
    import fastjet

    vecs = ak.zip({k: p4[k] for k in ("px", "py", "pz", "E")})
    jets = fastjet.ClusterSequence(vecs, fastjet.JetDefinition(fastjet.antikt_algorithm, 0.8))
    j = jets.inclusive_jets(min_pt=200.0)
    event = np.repeat(np.arange(len(j)), ak.to_numpy(ak.num(j)))
    px, py, pz, e = (ak.to_numpy(ak.flatten(j[k])) for k in ("px", "py", "pz", "E"))
    pt = np.hypot(px, py)
    mass = np.sqrt(np.maximum(e**2 - pt**2 - pz**2, 0.0))
    return event, pt, np.arcsinh(pz / pt), np.arctan2(py, px), mass


def _mass_response(truth: tuple[np.ndarray, ...], reco: tuple[np.ndarray, ...]) -> np.ndarray:
    """m_reco / m_truth of the nearest reco jet (same event, dR < 0.3) for each truth jet
    with pT > 300 GeV, |eta| < 2, m > 20 GeV; NaN where there is no match."""
    ev_t, pt_t, eta_t, phi_t, m_t = truth
    ev_r, _, eta_r, phi_r, m_r = reco
    out = np.full(ev_t.size, np.nan)
    for i in np.flatnonzero((pt_t > 300) & (np.abs(eta_t) < 2.0) & (m_t > 20)):
        cand = np.flatnonzero(ev_r == ev_t[i])
        if cand.size == 0:
            continue
        dphi = (phi_r[cand] - phi_t[i] + np.pi) % (2 * np.pi) - np.pi
        dr = np.hypot(eta_r[cand] - eta_t[i], dphi)
        if dr.min() < 0.3:
            out[i] = m_r[cand[dr.argmin()]] / m_t[i]
    return out


def test_jet_mass_response_of_the_cards(cards, dijets) -> None:
    apid = abs(dijets.pid)
    truth = _jets(dijets[(apid != 12) & (apid != 14) & (apid != 16)])
    resp = {}
    for name, seed in (("cms", 1), ("cms", 2), ("atlas", 2)):
        reco = simulate(dijets, cards[name], np.random.default_rng(seed))
        resp[name, seed] = _mass_response(truth, _jets(reco))
    ok = np.all([np.isfinite(r) for r in resp.values()], axis=0)
    assert ok.sum() > 250  # ~370 matched jets from 200 events

    def paired_z(a, b) -> tuple[float, float]:
        d = resp[b][ok] - resp[a][ok]  # same truth jets: a paired comparison
        return d.mean(), d.mean() / (d.std(ddof=1) / math.sqrt(d.size))

    shift, z_shift = paired_z(("cms", 1), ("atlas", 2))
    _, z_control = paired_z(("cms", 1), ("cms", 2))
    # On these jets the real DelphesHepMC3 gives ATLAS - CMS = -1.5 % (paired z = -1.4) and
    # our cards -1.5 % (z = -1.6). The +6 % (z = 6.4) this test once asserted came from the
    # CMS card's HCAL significance threshold, 2.0 where Delphes' CMS card has 1.0, which
    # dropped neutral-hadron excesses (docs/validation/delphes.md).
    assert abs(shift) < 0.03, (shift, z_shift)
    assert abs(z_control) < 3.5, z_control
    for key, r in resp.items():  # both responses are physical
        assert 0.7 < np.median(r[ok]) < 1.1, key
