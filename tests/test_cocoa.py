"""COCOA-like detector: cell response/resolution as the card says, noise threshold, tracks."""

from __future__ import annotations

import copy

import awkward as ak
import numpy as np
import pytest

from jetforge.detector import DETECTORS, load_card
from jetforge.detector.cocoa import CardError, expected_response, parse_card, simulate
from jetforge.detector.eflow import impact_parameters


@pytest.fixture(scope="module")
def card() -> dict:
    c, _ = load_card("cocoa_cells")
    return c


@pytest.fixture(scope="module")
def noiseless(card) -> dict:
    c = copy.deepcopy(card)
    for layer in c["layers"]:
        layer["noise_mev"] = 0.0
    c["noise"]["threshold_sigma"] = 0.0
    return c


def single(
    pid: int,
    energy: float,
    n: int,
    eta: float = 0.3,
    charge: float = 0.0,
    mass: float = 0.0,
    vx: float = 0.0,
    vz: float = 0.0,
    seed: int = 0,
) -> ak.Array:
    """n events with one particle each (format 2), random phi."""
    rng = np.random.default_rng(seed)
    phi = rng.uniform(-np.pi, np.pi, n)
    pt = np.sqrt(energy**2 - mass**2) / np.cosh(eta)
    ones = np.ones(n, dtype=np.int64)

    def col(x):
        return ak.unflatten(np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)).copy(), ones)

    return ak.zip(
        {
            "px": col(pt * np.cos(phi)),
            "py": col(pt * np.sin(phi)),
            "pz": col(pt * np.sinh(eta)),
            "E": col(energy),
            "pid": ak.unflatten(np.full(n, pid), ones),
            "charge": col(charge),
            "vx": col(vx),
            "vy": col(0.0),
            "vz": col(vz),
        }
    )


def test_registered_and_card_parses(card):
    assert DETECTORS["cocoa"] is simulate
    cfg = parse_card(card)
    assert [lay.n_cells for lay in cfg.layers] == [256, 256, 128, 64, 64, 32]
    assert cfg.layers[0].deta == pytest.approx(6.0 / 256) and cfg.layers[5].dphi == pytest.approx(
        2 * np.pi / 32
    )
    assert cfg.n_cells_event == 2 * 256**2 + 128**2 + 2 * 64**2 + 32**2


@pytest.mark.parametrize(
    ("pid", "energy", "kind", "charge", "mass"),
    [(22, 50.0, "em", 0.0, 0.0), (211, 20.0, "hadron", 1.0, 0.13957)],
)
def test_cell_energy_response_and_resolution_match_card(
    noiseless, card, pid, energy, kind, charge, mass
):
    n = 800
    out = simulate(
        single(pid, energy, n, charge=charge, mass=mass), noiseless, np.random.default_rng(3)
    )
    ratio = ak.to_numpy(ak.sum(out.cells.E, axis=1)) / energy
    mean, rms = expected_response(card, kind, energy)
    assert abs(ratio.mean() - mean) < 4 * rms / np.sqrt(n), (ratio.mean(), mean)
    assert abs(ratio.std() - rms) < 4 * rms / np.sqrt(2 * n), (ratio.std(), rms)
    layers = ak.to_numpy(ak.flatten(out.cells.layer))
    e = ak.to_numpy(ak.flatten(out.cells.E))
    ecal = e[layers < 3].sum() / e.sum()
    # EM showers stay in the ECAL; hadron showers share ECAL and HCAL
    assert ecal > 0.95 if kind == "em" else 0.1 < ecal < 0.6
    # lateral sharing: energy spreads over several cells around the impact
    assert ak.mean(ak.num(out.cells)) > 9


def test_noise_threshold_applied(card):
    cfg = parse_card(card)
    empty = single(22, 50.0, 4)[:, :0]  # four events without particles: pure noise
    out = simulate(empty, card, np.random.default_rng(5))
    layers = ak.to_numpy(ak.flatten(out.cells.layer))
    e = ak.to_numpy(ak.flatten(out.cells.E))
    p = 0.022750131948179195  # P(z > 2)
    for i, lay in enumerate(cfg.layers):
        n_cells = 4 * lay.n_cells**2
        got = int((layers == i).sum())
        assert abs(got - n_cells * p) < 5 * np.sqrt(n_cells * p * (1 - p)), (lay.name, got)
        assert np.all(e[layers == i] > cfg.threshold_sigma * lay.noise)


def test_tracks_efficiency_resolution_and_acceptance(card):
    c = parse_card_free(card)  # noiseless calorimeter: this test is about tracks
    c["tracking"]["efficiency"] = {"pt_min": [0.0], "values": [0.5]}
    n = 1600
    pions = single(211, 10.0, n, eta=0.2, charge=1.0, mass=0.13957, vx=0.05, vz=3.0)
    out = simulate(pions, c, np.random.default_rng(7))
    n_trk = ak.to_numpy(ak.num(out.tracks))
    assert abs(n_trk.mean() - 0.5) < 4 * np.sqrt(0.25 / n)
    cfg = parse_card(c)
    t = out.tracks[n_trk > 0]
    pt_true = 10.0 / np.cosh(0.2)  # E >> m
    rel = ak.to_numpy(ak.flatten(t.pt)) / pt_true - 1
    sigma = np.hypot(cfg.res_a[0], cfg.res_b[0] * pt_true)
    assert abs(rel.std() - sigma) < 0.15 * sigma
    d0_true, z0_true = impact_parameters(
        *(
            ak.to_numpy(ak.flatten(pions[k]))[n_trk > 0]
            for k in ("px", "py", "pz", "vx", "vy", "vz")
        )
    )
    z0 = ak.to_numpy(ak.flatten(t.z0))
    assert abs(np.mean(z0 - z0_true)) < 0.01 and abs(np.mean(z0) - 3.0) < 0.05
    assert (
        abs(
            (ak.to_numpy(ak.flatten(t.d0)) - d0_true).std()
            - np.hypot(cfg.d0_res[0], cfg.d0_res[1] / pt_true)
        )
        < 0.003
    )
    # not tracked: displaced beyond the first pixel layer, neutral, invisible, soft
    none = [
        single(211, 10.0, 50, charge=1.0, vx=100.0),
        single(22, 10.0, 50),
        single(12, 10.0, 50),
        single(211, 0.9, 50, charge=1.0, mass=0.13957),
    ]
    for i, parts in enumerate(none):
        res = simulate(parts, parse_card_free(card), np.random.default_rng(i))
        assert ak.sum(ak.num(res.tracks)) == 0, i
    soft = simulate(single(22, 0.9, 50, eta=0.0), parse_card_free(card), np.random.default_rng(1))
    assert ak.sum(ak.num(soft.cells)) == 0  # primaries below 1 GeV are neglected
    nu = simulate(single(12, 50.0, 50), parse_card_free(card), np.random.default_rng(1))
    assert ak.sum(ak.num(nu.cells)) == 0


def parse_card_free(card: dict) -> dict:
    """The card without noise (so an empty calorimeter means no cells)."""
    c = copy.deepcopy(card)
    for layer in c["layers"]:
        layer["noise_mev"] = 0.0
    c["noise"]["threshold_sigma"] = 0.0
    return c


def test_same_seed_reproduces_and_is_pu_carried(card):
    parts = single(211, 30.0, 20, charge=1.0, mass=0.13957)
    parts = ak.with_field(parts, ak.values_astype(ak.ones_like(parts.px), bool), "is_pu")
    a = simulate(parts, card, np.random.default_rng(11))
    b = simulate(parts, card, np.random.default_rng(11))
    assert ak.all(ak.flatten(a.cells.E) == ak.flatten(b.cells.E))
    assert ak.all(ak.flatten(a.tracks.pt) == ak.flatten(b.tracks.pt))
    assert ak.all(ak.flatten(a.tracks.is_pu))
    frac = ak.to_numpy(ak.flatten(a.cells.pu_frac))
    assert np.all((frac == 0) | np.isclose(frac, 1.0))


def test_card_errors_name_the_key(card):
    bad = copy.deepcopy(card)
    del bad["geometry"]["bz_tesla"]
    with pytest.raises(CardError, match="geometry.bz_tesla"):
        parse_card(bad)
    bad = copy.deepcopy(card)
    bad["layers"][1]["n_cells"] = "many"
    with pytest.raises(CardError, match=r"layers\[1\].n_cells"):
        parse_card(bad)
    bad = copy.deepcopy(card)
    bad["upstream"]["em"]["sigma"] = 0.5
    with pytest.raises(CardError, match="upstream.em"):
        parse_card(bad)
