"""The flat-numpy generation hot path gives exactly what the awkward implementation gave.

The chunk builder of the single-shower datasets (jetforge.datasets.single) was rewritten
for throughput: the final state is read from Pythia's ``nextBatch`` record as flat numpy
columns, the detector and the particle-level candidates work on flat columns, clustering
and jet selection run on flat arrays, only the selected jets' constituents are gathered, and
events whose truth objects no jet can contain are not clustered. Every output must stay
bit-identical. The ``_reference_*`` functions below are the pre-optimisation awkward code,
kept verbatim as the specification; each test compares the fast code against them (or
against ``np.searchsorted`` / ``np.unique`` for the detector's lookup primitives) on random
inputs and on real Pythia events, down to whole HDF5 chunks.
"""

from __future__ import annotations

import copy
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import yaml

from jetforge.datasets.single import (
    JetCuts,
    build_jets_chunk,
    can_contain_truth,
    generate_chunk_lhe,
    parse_config,
    particle_candidates,
    select_jets,
    select_jets_flat,
    truth_table,
)
from jetforge.detector import load_card, simulate
from jetforge.detector.eflow import (
    born_inside,
    count_less,
    impact_parameters,
    parse_card,
    unique_inverse,
)
from jetforge.generation.pythia_setup import make_pythia
from jetforge.generation.seeds import derive_seed
from jetforge.generation.shower import (
    INVISIBLE_PIDS,
    ChargeTable,
    FlatEvents,
    _charge_lookup,
    _fill_vertex,
    final_state_flat,
)
from jetforge.io.lhe import read_lhe
from jetforge.jets.cluster import first_argmax
from jetforge.jets.kinematics import delta_phi
from jetforge.jets.substructure import n2 as n2_of

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- references
# The awkward implementations as they were before the flat rewrite (jetforge 26250a1).


def _reference_final_state(py, batch, ref: np.ndarray | None):
    prt = batch.prt
    ok = ~ak.to_numpy(ak.is_none(prt, axis=0))
    prt = ak.fill_none(prt, [], axis=0)
    if ref is not None:
        incoming = prt.p.pz[prt.status == -21]
        ok &= ak.to_numpy(ak.num(incoming)) == 2
        inc = ak.to_numpy(ak.fill_none(ak.pad_none(incoming, 2, clip=True), np.nan))
        ok &= np.all(np.isclose(inc, ref, rtol=1e-9, atol=1e-6), axis=1)
    final = prt[prt.status > 0]
    particles = ak.zip(
        {
            "px": final.p.px, "py": final.p.py, "pz": final.p.pz, "E": final.p.e,
            "pid": final.id, "charge": _charge_lookup(py, final.id),
            "vx": _fill_vertex(final.vProd.px), "vy": _fill_vertex(final.vProd.py),
            "vz": _fill_vertex(final.vProd.pz),
        }
    )  # fmt: skip
    return particles, ok


def _reference_particle_candidates(particles: ak.Array) -> ak.Array:
    counts = ak.to_numpy(ak.num(particles, axis=1)).astype(np.int64)
    evt = np.repeat(np.arange(len(particles), dtype=np.int64), counts)
    col = {f: ak.to_numpy(ak.flatten(particles[f], axis=1)) for f in particles.fields}
    apid = np.abs(col["pid"].astype(np.int64))
    px, py = col["px"].astype(np.float64), col["py"].astype(np.float64)
    keep = ~np.isin(apid, INVISIBLE_PIDS) & (np.hypot(px, py) > 0)
    col = {k: v[keep] for k, v in col.items()}
    evt, apid = evt[keep], apid[keep]
    charge = col["charge"].astype(np.float64)
    d0, dz = impact_parameters(
        *(col[k].astype(np.float64) for k in ("px", "py", "pz", "vx", "vy", "vz"))
    )
    is_e, is_mu, is_gamma = apid == 11, apid == 13, apid == 22
    out = {
        "px": col["px"], "py": col["py"], "pz": col["pz"], "E": col["E"], "charge": charge,
        "is_electron": is_e, "is_muon": is_mu, "is_photon": is_gamma,
        "is_ch": (charge != 0) & ~is_e & ~is_mu, "is_nh": (charge == 0) & ~is_gamma,
        "d0": d0, "dz": dz, "d0_err": np.zeros_like(d0), "dz_err": np.zeros_like(dz),
        "pid": col["pid"],
    }  # fmt: skip
    out = {k: np.asarray(v, dtype=np.int64 if k == "pid" else np.float64) for k, v in out.items()}
    new_counts = np.bincount(evt, minlength=len(particles))
    return ak.unflatten(ak.zip(out), new_counts)


def _reference_select_jets(candidates, truth_eta, truth_phi, cuts):
    import fastjet

    n = len(candidates)
    if n == 0:
        empty = ak.zip({k: np.zeros(0) for k in ("pt", "eta", "phi", "mass", "E", "y")})
        return np.zeros(0, bool), empty, candidates
    cs = fastjet.ClusterSequence(
        candidates, fastjet.JetDefinition(fastjet.antikt_algorithm, cuts.R)
    )
    jets = cs.inclusive_jets(min_pt=cuts.pt_min)
    consts = cs.constituents(min_pt=cuts.pt_min)
    px, py, pz, e = jets.px, jets.py, jets.pz, jets.E
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    phi = np.arctan2(py, px)
    mass = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))
    y = 0.5 * np.log(np.maximum(e + pz, 1e-12) / np.maximum(e - pz, 1e-12))
    ok = (pt >= cuts.pt_min) & (pt < cuts.pt_max) & (mass >= cuts.mass_min)
    ok = ok & ((abs(eta) < cuts.eta_max) if cuts.y_max is None else (abs(y) < cuts.y_max))
    for k in range(truth_eta.shape[1]):
        dr = np.hypot(eta - truth_eta[:, k], delta_phi(phi, truth_phi[:, k]))
        ok = ok & (dr < cuts.dr)
    best = ak.argmax(ak.where(ok, pt, -1.0), axis=1, keepdims=True)
    selected = ak.to_numpy(ak.fill_none(ak.firsts(ok[best]), False)).astype(bool)
    fields = {"pt": pt, "eta": eta, "phi": phi, "mass": mass, "E": e, "y": y}
    jet = ak.fill_none(ak.zip({k: ak.firsts(v[best]) for k, v in fields.items()}), 0.0)
    chosen = ak.fill_none(ak.firsts(consts[best]), [], axis=0)
    return selected, jet, chosen


def _reference_chunk(lhe, ds_cfg, dataset, process, split, chunk, base_seed):
    """The old builder loop: (particles, mask, jet columns) of one chunk."""
    cfg = parse_config(ds_cfg)
    _, events = read_lhe(lhe)
    n = len(events)
    truth_eta, truth_phi, _ = truth_table(events, process, lhe)
    card = None if cfg.detector == "none" else load_card(cfg.detector)[0]
    ids = (dataset, process, split, chunk, cfg.variant)
    py = make_pythia(
        ["Beams:frameType = 4", f"Beams:LHEF = {lhe}", *cfg.settings],
        derive_seed(*ids, "shower", base=base_seed),
    )
    ref = np.array(
        [[p.pz for p in ev.particles if p.status == -1][:2] for ev in events], dtype=np.float64
    ).reshape(n, 2)
    xs, masks, cols = [], [], {k: [] for k in ("pt", "eta", "phi", "mass", "n2", "event")}
    for start in range(0, n, cfg.batch_events):
        size = min(cfg.batch_events, n - start)
        particles, ok = _reference_final_state(
            py, py.nextBatch(size, "none"), ref[start : start + size]
        )
        alive = np.flatnonzero(ok)
        if card is None:
            cands = _reference_particle_candidates(particles[alive])
        else:
            rng = np.random.default_rng(derive_seed(*ids, "detector", start, base=base_seed))
            cands = simulate(particles[alive], card, rng)
        rows = start + alive
        selected, jets, consts = _reference_select_jets(
            cands, truth_eta[rows], truth_phi[rows], cfg.cuts
        )
        jets, consts, rows = jets[selected], consts[selected], rows[selected]
        x, mask = cfg.feature_set.compute(jets, consts, cfg.n_particles)
        xs.append(x)
        masks.append(mask)
        for k in ("pt", "eta", "phi", "mass"):
            cols[k].append(ak.to_numpy(jets[k]).astype(np.float32))
        n2 = n2_of(consts) if cfg.compute_n2 else np.full(len(rows), np.nan, np.float32)
        cols["n2"].append(n2)
        cols["event"].append(rows)
    cols = {k: np.concatenate(v) for k, v in cols.items()}
    return np.concatenate(xs), np.concatenate(masks), cols


# ----------------------------------------------------------------------------- helpers


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def _assert_same_awkward(a: ak.Array, b: ak.Array, fields=None) -> None:
    assert _same(ak.num(a, axis=1), ak.num(b, axis=1))
    for f in fields or a.fields:
        assert _same(ak.flatten(a[f], axis=1), ak.flatten(b[f], axis=1)), f


@pytest.fixture(scope="module")
def configs() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())["datasets"]


@pytest.fixture(scope="module")
def top_lhe(tmp_path_factory, configs) -> Path:
    """40 top-tagging t → bqq' hard events (four truth objects per event)."""
    ds = copy.deepcopy(configs["toptag"])
    ds["events_per_chunk"] = 40
    path = tmp_path_factory.mktemp("fastpath") / "toptag_tbqq_tt.lhe"
    generate_chunk_lhe(path, ds, "toptag", "tbqq_tt", "test", 0, 7)
    return path


@pytest.fixture(scope="module")
def top_batch(top_lhe, configs):
    """(pythia, nextBatch result, incoming p_z from the LHE file) of the 40 top events."""
    cfg = parse_config(configs["toptag"])
    _, events = read_lhe(top_lhe)
    ref = np.array([[p.pz for p in ev.particles if p.status == -1][:2] for ev in events])
    py = make_pythia(["Beams:frameType = 4", f"Beams:LHEF = {top_lhe}", *cfg.settings], 3)
    return py, py.nextBatch(len(events), "none"), ref, events


# ----------------------------------------------------------------------------- detector primitives


@pytest.mark.parametrize("card_name", ["cms_eflow", "atlas_eflow"])
def test_count_less_is_searchsorted(card_name):
    cfg = parse_card(load_card(card_name)[0])
    edge_sets = [c.grid.eta_edges for c in cfg.calorimeters]
    edge_sets += [c.resolution.abs_eta_max for c in cfg.calorimeters]
    for table in cfg.efficiency.values():
        edge_sets += [table.abs_eta_edges, table.pt_edges]  # pt edges end in +inf
    uneven = np.sort(np.random.default_rng(1).uniform(-3, 7, 50))  # not on a grid
    edge_sets += [uneven, np.append(uneven[:20], np.inf)]
    rng = np.random.default_rng(2)
    for edges in edge_sets:
        lo, hi = edges[0], edges[np.isfinite(edges)][-1]
        x = np.concatenate(
            [
                rng.uniform(lo - 1, hi + 1, 20_000),
                rng.normal(0, 3, 5_000),
                edges,  # exactly on the edges: (lo, hi] bins hinge on these
                np.nextafter(edges, np.inf),
                np.nextafter(edges, -np.inf),
                [np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300],
            ]
        )
        assert _same(count_less(edges, x), np.searchsorted(edges, x, side="left"))
        with_nan = np.append(x, np.nan)  # the binary search's answer for NaN, too
        assert _same(count_less(edges, with_nan), np.searchsorted(edges, with_nan, side="left"))


def test_unique_inverse_is_np_unique():
    rng = np.random.default_rng(3)
    cases = [
        np.sort(rng.integers(0, 250, 50_000)) * 122_400 + rng.integers(0, 122_400, 50_000),
        rng.integers(0, 5, 1000),
        rng.integers(0, 2**40, 1000),  # beyond 32 bits: np.unique itself
        np.array([7], dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        rng.integers(0, 70_000, 3000).astype(np.int32),
    ]
    for keys in cases:
        u, inv = unique_inverse(keys)
        ru, rinv = np.unique(keys, return_inverse=True)
        assert _same(u, ru) and np.array_equal(inv, rinv) and inv.shape == rinv.shape


@pytest.mark.parametrize("card_name", ["cms_eflow", "atlas_eflow"])
def test_fraction_table_and_tower_bounds_are_the_searches(card_name):
    cfg = parse_card(load_card(card_name)[0])
    rng = np.random.default_rng(4)
    pids = np.concatenate([np.arange(0, 4000), rng.integers(0, 10_000_000, 5000), [2**40]])
    for calo in cfg.calorimeters:
        keys = calo.fraction_pids
        i = np.minimum(np.searchsorted(keys, pids), keys.size - 1)
        expected = np.where(keys[i] == pids, calo.fraction_values[i], calo.fraction_default)
        assert _same(calo.fraction(pids), expected)
        grid = calo.grid
        towers = np.arange(grid.n_towers)
        ieta = np.searchsorted(grid.offset, towers, side="right") - 1
        width = 2.0 * np.pi / grid.nphi[ieta]
        phi_lo = -np.pi + (towers - grid.offset[ieta]) * width
        expected = (grid.eta_edges[ieta], grid.eta_edges[ieta + 1], phi_lo, phi_lo + width)
        for got, want in zip(grid.bounds(towers), expected, strict=True):
            assert _same(got, want)


def test_born_inside_is_the_cylinder():
    rng = np.random.default_rng(5)
    radius, half = 1.29, 3.0  # m
    v = rng.uniform(-2000, 2000, (3, 100_000))
    v[:, :1000] = rng.uniform(-700, 700, (3, 1000))  # around R/2 and R/sqrt(2) in mm
    v[0, 1000:1010] = np.nan
    ring = rng.uniform(-np.pi, np.pi, 2000)  # exactly on and around the cylinder
    v[0, 2000:4000], v[1, 2000:4000] = 1290.0 * np.cos(ring), 1290.0 * np.sin(ring)
    expected = (np.hypot(v[0], v[1]) <= 1000.0 * radius) & (np.abs(v[2]) <= 1000.0 * half)
    assert _same(born_inside(v[0], v[1], v[2], radius, half), expected)


# ----------------------------------------------------------------------------- flat helpers


def test_first_argmax_is_ak_argmax():
    rng = np.random.default_rng(6)
    counts = rng.integers(0, 6, 2000)
    values = np.round(rng.normal(size=int(counts.sum())), 1)  # ties on purpose
    values[rng.random(values.size) < 0.3] = -1.0
    best = first_argmax(values, counts)
    ref = ak.argmax(ak.unflatten(values, counts), axis=1)
    starts = np.cumsum(counts) - counts
    expected = np.where(counts > 0, starts + ak.to_numpy(ak.fill_none(ref, 0)), -1)
    assert _same(best, expected.astype(np.int64))


def test_flat_events_take_and_round_trip():
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 5, 50)
    cols = {"px": rng.normal(size=int(counts.sum())), "pid": rng.integers(-5, 5, int(counts.sum()))}
    flat = FlatEvents(cols, counts.astype(np.int64))
    arr = flat.to_awkward()
    pick = np.flatnonzero(rng.random(50) < 0.5)
    _assert_same_awkward(flat.take(pick).to_awkward(), arr[pick])
    assert flat.take(np.arange(50)) is flat
    back = FlatEvents.from_awkward(arr, ["px", "pid"])
    assert _same(back.counts, flat.counts) and all(_same(back.cols[k], cols[k]) for k in cols)


# ----------------------------------------------------------------------------- real events


def test_final_state_flat_is_the_awkward_extraction(top_batch):
    py, batch, ref, _ = top_batch
    bad = ref.copy()
    bad[3, 0] += 1.0  # a misaligned event must be flagged by both
    for r in (ref, bad, None):
        flat, ok = final_state_flat(batch, ChargeTable(py), r)
        particles, ok_ref = _reference_final_state(py, batch, r)
        assert _same(ok, ok_ref)
        _assert_same_awkward(flat.to_awkward(), particles, particles.fields)
    assert not final_state_flat(batch, ChargeTable(py), bad)[1][3]


def test_particle_candidates_flat_is_the_reference(top_batch):
    py, batch, ref, _ = top_batch
    particles, _ = _reference_final_state(py, batch, ref)
    expected = _reference_particle_candidates(particles)
    got = particle_candidates(particles)
    assert got.fields == expected.fields
    _assert_same_awkward(got, expected)


@pytest.mark.parametrize(
    "cuts",
    [
        JetCuts(R=0.8, pt_min=550.0, pt_max=650.0, eta_max=2.0, match_dr=0.8),  # toptag
        JetCuts(R=0.8, pt_min=150.0, pt_max=5000.0, eta_max=2.0, mass_min=20.0, match_dr=1.2),
        JetCuts(R=1.0, pt_min=100.0, pt_max=5000.0, y_max=1.0),  # a |y| cut, match_dr = R
    ],
)
def test_select_jets_flat_is_the_reference(top_batch, top_lhe, cuts):
    py, batch, ref, events = top_batch
    particles, ok = _reference_final_state(py, batch, ref)
    alive = np.flatnonzero(ok)
    cands = simulate(particles[alive], load_card("atlas_eflow")[0], np.random.default_rng(8))
    t_eta, t_phi, _ = truth_table(events, "tbqq_tt", top_lhe)
    t_eta, t_phi = t_eta[alive], t_phi[alive]
    sel_ref, jets_ref, consts_ref = _reference_select_jets(cands, t_eta, t_phi, cuts)
    # the awkward interface (placeholders for unselected events included)
    sel, jets, consts = select_jets(cands, t_eta, t_phi, cuts)
    assert _same(sel, sel_ref) and sel.any()
    for f in jets_ref.fields:
        assert _same(ak.to_numpy(jets[f])[sel], ak.to_numpy(jets_ref[f])[sel])
    _assert_same_awkward(consts[sel], consts_ref[sel], consts_ref.fields)
    # the flat one: selected jets only, constituents of every field in fastjet's order
    flat = FlatEvents.from_awkward(cands, cands.fields)
    sel2, jet2, consts2 = select_jets_flat(flat, t_eta, t_phi, cuts)
    assert _same(sel2, sel_ref)
    for f in jets_ref.fields:
        assert _same(jet2[f], ak.to_numpy(jets_ref[f])[sel_ref])
    _assert_same_awkward(consts2.to_awkward(), consts_ref[sel_ref], consts_ref.fields)


def test_truth_geometry_skip_never_drops_a_passing_event():
    """Events failing can_contain_truth cannot have a jet within dr of every object."""
    rng = np.random.default_rng(9)
    cuts = JetCuts(R=0.8, pt_min=1.0, pt_max=2.0, eta_max=2.0, match_dr=0.8)
    t_eta = rng.uniform(-3.5, 3.5, (6000, 3))
    t_phi = rng.uniform(-np.pi, np.pi, (6000, 3))
    can = can_contain_truth(t_eta, t_phi, cuts)
    # brute force: a jet axis on a fine grid within |eta| < 2 matching all three objects
    eta_g, phi_g = np.meshgrid(np.linspace(-2, 2, 81), np.linspace(-np.pi, np.pi, 126))
    axes = np.stack([eta_g.ravel(), phi_g.ravel()], axis=1)
    reachable = np.zeros(len(t_eta), dtype=bool)
    for k0 in range(0, len(t_eta), 100):
        e, p = t_eta[k0 : k0 + 100, None, :], t_phi[k0 : k0 + 100, None, :]
        dr = np.hypot(axes[None, :, 0, None] - e, delta_phi(axes[None, :, 1, None], p))
        reachable[k0 : k0 + 100] = np.any(np.all(dr < cuts.dr, axis=2), axis=1)
    assert not np.any(reachable & ~can)  # never skips an event a jet could match
    assert np.mean(~can) > 0.5  # and skips most random ones


# ----------------------------------------------------------------------------- whole chunks


@pytest.mark.parametrize(
    ("dataset", "process", "n", "batch"),
    [
        ("toptag", "tbqq_tt", 48, 16),  # ATLAS-like card, four-momenta, four truth objects
        ("jetclass", "wqq_wjet", 24, 12),  # CMS card, all 17 ParT features (every column)
        ("jetnet", "zjet_g", 20, 8),  # particle level, N = 30
        ("quarkgluon", "zjet_q", 30, 30),  # particle level, PID features, a |y| cut
    ],
)
def test_chunk_is_the_reference_builder(tmp_path, configs, dataset, process, n, batch):
    ds = copy.deepcopy(configs[dataset])
    ds["events_per_chunk"], ds["batch_events"] = n, batch
    if dataset == "toptag":  # wider window and N2 on: more jets, every column exercised
        ds["jets"]["pt_min"], ds["jets"]["pt_max"], ds["n2"] = 300.0, 1000.0, True
    lhe, out = tmp_path / "hard.lhe", tmp_path / "chunk.h5"
    generate_chunk_lhe(lhe, ds, dataset, process, "test", 1, 5)
    stats = build_jets_chunk(lhe, out, ds, dataset, process, "test", 1, 5)
    x_ref, mask_ref, cols_ref = _reference_chunk(lhe, ds, dataset, process, "test", 1, 5)
    with h5py.File(out) as f:
        assert _same(f["particles"][:], x_ref) and _same(f["mask"][:], mask_ref)
        for k in ("pt", "eta", "phi", "mass", "n2"):
            assert _same(f["jets"][k][:], cols_ref[k]), k
        assert np.array_equal(f["jets"]["event"][:], cols_ref["event"])
        n2 = f["jets"]["n2"][:]
    assert stats["jets"] == len(x_ref) > 0
    assert np.all(np.isfinite(n2)) if ds.get("n2", True) else np.all(np.isnan(n2))
    assert set(stats["timing"]) >= {"init", "pythia", "extract", "detector", "jets", "write"}
