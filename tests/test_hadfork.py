"""Hadronization fork (Rieck et al.): shared parton level, independent hadrons, same τ channels."""

from __future__ import annotations

import copy

import awkward as ak
import h5py
import numpy as np
import pytest

from jetforge.datasets.hadfork import (
    CELL_FEATURES,
    TRACK_FEATURES,
    HadforkConfig,
    HadforkConfigError,
    build_hadfork_chunk,
    merge_hadfork_chunks,
    resample_to,
    truth_label,
)
from jetforge.generation.hadfork import HadronizationFork, PartonCuts, hadronic_tau_channels
from jetforge.generation.processes import get_process

SQRT_S = ["Beams:eCM = 13000"]


def small_config(events: int = 6) -> dict:
    """The example ``datasets.hadfork`` block of the report, at test size."""
    return {
        "sqrt_s": 13000.0,
        "hard_process": {"source": "pythia", "lhe_pattern": ""},
        "processes": ["hadfork_qq", "hadfork_gg", "hadfork_tautau"],
        "hard_cuts": {"pt_min": 100.0, "eta_max": 3.0},
        "events_per_chunk": events,
        "shower": {"base_settings": ["Tune:pp = 14"]},
        "detector": "cocoa_cells",
        "pileup": {"mu": 0.0, "sigma_z": 50.0},
        "jets": {
            "R": 0.4,
            "pt_min": 25.0,
            "hadron_pt_min": 50.0,
            "eta_max": 3.0,
            "match_dr": 0.3,
            "parton_match_dr": 0.4,
        },
        "tracks": {"assoc_dr": 0.4, "max_dz": 2.0},
        "pairs": {"max_rel_dpt": 0.5, "max_dr": 0.2},
        "n_tracks": 16,
        "n_cells": 256,
        "fork_block": 4,  # small blocks: the block concatenation paths run too
        "cluster_block": 4,
    }


def _fork_taus(n: int = 4, seed: int = 5):
    settings = [*SQRT_S, *get_process("hadfork_tautau").settings, "PhaseSpace:pTHatMin = 100"]
    fork = HadronizationFork(settings, seed, PartonCuts(100.0, 3.0))
    res = fork.generate(
        n,
        np.arange(n) + 100,
        np.arange(2 * n).reshape(n, 2) + 1000,
        np.random.default_rng(seed),
        block=3,
        keep_records=True,
    )
    return fork, res


@pytest.fixture(scope="module")
def taus():
    return _fork_taus()


def test_hadronic_tau_channels_are_one_or_three_prong(taus):
    fork, _ = taus
    chans = hadronic_tau_channels(fork.pythia.particleData)
    assert {c.n_prongs for c in chans} == {1, 3}
    assert all(abs(p) not in (11, 12, 13, 14) for c in chans for p in c.products)
    total = sum(c.branching for c in chans)
    assert 0.6 < total < 0.66  # hadronic 1+3-prong share of the τ width


def test_pair_shares_parton_level_and_differs_in_hadrons(taus):
    _, res = taus
    a, b = res.records
    assert len(a) == len(b) == len(res.copies[0]) == 4
    for k in range(len(a)):
        n = int(res.n_parton[k])
        # entry 0 is the event-system line, whose sum is recomputed; the rest is identical
        for field in ("id", "col", "acol"):
            assert ak.to_list(a[k][field][1:n]) == ak.to_list(b[k][field][1:n])
        for comp in ("px", "py", "pz", "e"):
            assert np.array_equal(ak.to_numpy(a[k].p[comp][1:n]), ak.to_numpy(b[k].p[comp][1:n]))
        fa = np.sort(ak.to_numpy(res.copies[0][k].px))
        fb = np.sort(ak.to_numpy(res.copies[1][k].px))
        assert fa.size != fb.size or not np.array_equal(fa, fb)
    # the hard process is a τ pair passing the cuts
    assert (
        ak.all(abs(res.truth.pid) == 15)
        and ak.all(res.truth.pt > 100)
        and ak.all(abs(res.truth.eta) < 3)
    )


def test_tau_pairs_decay_to_the_same_forced_channel(taus):
    fork, res = taus
    seen = 0
    for k in range(len(res.records[0])):
        decays = []
        for rec in (res.records[0][k], res.records[1][k]):
            ids = ak.to_numpy(rec.id)
            d1, d2, st = (
                ak.to_numpy(rec.daughter1),
                ak.to_numpy(rec.daughter2),
                ak.to_numpy(rec.status),
            )
            out = {}
            for t in np.flatnonzero((np.abs(ids) == 15) & (st < 0)):
                daughters = tuple(sorted(ids[d1[t] : d2[t] + 1]))
                if any(abs(d) == 15 for d in daughters):
                    continue  # a τ → τ (γ) copy, not the decay
                out[int(ids[t])] = daughters
            decays.append(out)
        assert decays[0] == decays[1]  # same channel in both copies
        for tau_id, daughters in decays[0].items():
            column = 0 if tau_id > 0 else 1
            assert daughters == fork.taus.products(int(res.tau_channels[k, column]), tau_id)
            seen += 1
    assert seen >= 8


def test_same_seed_reproduces_exactly(taus):
    _, res = taus
    _, again = _fork_taus()
    for v in range(2):
        for field in res.copies[v].fields:
            assert ak.all(ak.flatten(res.copies[v][field]) == ak.flatten(again.copies[v][field]))
    assert np.array_equal(res.tau_channels, again.tau_channels)


@pytest.fixture(scope="module")
def chunk(tmp_path_factory):
    path = tmp_path_factory.mktemp("hadfork") / "jets_0.h5"
    stats = build_hadfork_chunk(
        None, path, small_config(), "hf", "hadfork_qq", "pretrain", 0, 7, {}
    )
    return path, stats


def test_chunk_follows_data_contract_with_cells(chunk):
    path, stats = chunk
    assert stats["kept_pairs"] >= 3
    with h5py.File(path, "r") as f:

        def names(key: str) -> list[str]:
            return [x.decode() if isinstance(x, bytes) else x for x in f.attrs[key]]

        assert names("variant_names") == ["fork_a", "fork_b"]
        assert names("feature_names") == list(TRACK_FEATURES)
        assert names("cells_feature_names") == list(CELL_FEATURES)
        assert names("class_names") == ["q", "g", "tau"]
        n = f["particles"].shape[0]
        assert n == 2 * stats["kept_pairs"] and f["cells"].shape[:2] == f["cells_mask"].shape
        assert f["particles"].shape[1:] == (16, len(TRACK_FEATURES)) and f["cells"].shape[1:] == (
            256,
            4,
        )
        jets = {k: f["jets"][k][:] for k in f["jets"]}
        x, m = f["particles"][:], f["mask"][:]
        c, cm = f["cells"][:], f["cells_mask"][:]
    # rows interleaved by pair: (fork_a, fork_b) of one hard event and one hard parton
    assert np.array_equal(jets["variant"], np.tile([0, 1], n // 2))
    for key in ("pair_id", "event", "label", "parton_pid"):
        assert np.array_equal(jets[key][0::2], jets[key][1::2])
    assert np.all(jets["label"] == 0) and np.all(
        (jets["parton_pid"] >= 1) & (jets["parton_pid"] <= 6)
    )
    # selection: detector pT > 25, hadron-level pT > 50, pairs of similar pT
    assert np.all(jets["pt"] > 25) and np.all(jets["hadron_pt"] > 50)
    pa, pb = jets["pt"][0::2], jets["pt"][1::2]
    assert np.all(np.abs(pa - pb) / (0.5 * (pa + pb)) < 0.5)
    # tracks: associated within ΔR < 0.4 and |Δz| < 2 mm, sorted by pT; cells sorted by E
    dr = np.hypot(x[..., 1], x[..., 2])
    assert np.all(dr[m] < 0.4) and np.all(np.abs(x[..., 4][m]) < 2.0)
    assert np.all(np.diff(np.where(m, x[..., 0], -1.0), axis=1) <= 0)
    assert np.all(np.diff(np.where(cm, c[..., 0], -1.0), axis=1) <= 0)
    assert set(np.unique(c[..., 3][cm]).astype(int)) <= set(range(6)) and cm.sum(axis=1).min() > 10
    assert np.all(~m[:, 1:] | m[:, :-1]) and np.all(~cm[:, 1:] | cm[:, :-1])  # padding at the end
    assert np.all(np.isnan(jets["n2"])) and np.all(jets["tau_channel"] == -1)


def test_chunk_rebuild_is_identical(chunk, tmp_path):
    path, _ = chunk
    again = tmp_path / "again.h5"
    build_hadfork_chunk(None, again, small_config(), "hf", "hadfork_qq", "pretrain", 0, 7, {})
    with h5py.File(path, "r") as a, h5py.File(again, "r") as b:
        for key in ("particles", "mask", "cells", "cells_mask"):
            assert np.array_equal(a[key][:], b[key][:]), key
        for key in a["jets"]:
            assert np.array_equal(a["jets"][key][:], b["jets"][key][:], equal_nan=key == "n2"), key


def test_merge_keeps_cells(chunk, tmp_path):
    path, stats = chunk
    out = tmp_path / "merged.h5"
    n = merge_hadfork_chunks([path, path], out)
    assert n == 4 * stats["kept_pairs"]
    with h5py.File(out, "r") as f:
        assert f["cells"].shape[0] == f["particles"].shape[0] == n
        assert f["jets/hadron_pt"].shape == (n,)
        assert len(np.unique(f["jets/pair_id"][:])) == n // 2  # renumbered across inputs
        assert [
            x.decode() if isinstance(x, bytes) else x for x in f.attrs["cells_feature_names"]
        ] == list(CELL_FEATURES)


def test_config_errors_name_the_key():
    cfg = small_config()
    del cfg["pairs"]["max_rel_dpt"]
    with pytest.raises(HadforkConfigError, match="pairs.max_rel_dpt"):
        HadforkConfig.from_ds_cfg(cfg)
    cfg = small_config()
    cfg["jets"]["R"] = -0.4
    with pytest.raises(HadforkConfigError, match="jets.R"):
        HadforkConfig.from_ds_cfg(cfg)


def test_truth_labels():
    classes = ["q", "g", "tau", "dark"]
    assert truth_label(np.array([1, -5, 21, -15, 4900101, 11]), classes).tolist() == [
        0,
        0,
        1,
        2,
        3,
        -1,
    ]


def test_resample_to_matches_reference_pt_eta():
    rng = np.random.default_rng(0)
    ref_eta = rng.normal(0, 1.2, 30000)
    ref = np.stack([50 + rng.exponential(40, 30000), ref_eta], axis=1)[np.abs(ref_eta) < 2.5]
    cand = np.stack([45 + rng.exponential(80, 60000), rng.uniform(-2.5, 2.5, 60000)], axis=1)
    idx = resample_to(ref, cand, rng, n=4000)
    assert len(np.unique(idx)) == 4000
    got = cand[idx]
    for col, q in ((0, [0.25, 0.5, 0.75]), (1, [0.25, 0.5, 0.75])):
        assert np.allclose(
            np.quantile(got[:, col], q), np.quantile(ref[:, col], q), rtol=0.06, atol=0.06
        )
    with pytest.raises(ValueError, match="requested"):
        resample_to(ref, cand[:100], rng, n=4000)


def test_dark_process_is_registered_with_hidden_valley():
    for name in ("hadfork_dark_a", "hadfork_dark_b", "hadfork_dark_c", "hadfork_dark_d"):
        p = get_process(name)
        assert p.label == "dark" and "HiddenValley:fragment = on" in p.settings
    cfg = copy.deepcopy(small_config())
    cfg["processes"] = ["hadfork_dark_a"]
    from jetforge.datasets.hadfork import class_names

    assert class_names(cfg) == ["q", "g", "tau", "dark"]


def test_lhe_hard_events_are_used(tmp_path):
    """Hard events from an LHE file (MadGraph in the paper) are the ones forked."""
    from jetforge.generation.hadfork import HadforkError
    from jetforge.generation.hard import HardCuts, generate_hard_events, write_hard_lhe
    from jetforge.io.lhe import read_lhe

    lhe = tmp_path / "gg.lhe"
    events, run = generate_hard_events(
        get_process("hadfork_gg"), 3, HardCuts(100, 2000, 3.0), 5, 13000.0
    )
    write_hard_lhe(lhe, events, run, 13000.0)
    settings = [*SQRT_S, *get_process("hadfork_gg").settings]  # the process switch must be dropped
    fork = HadronizationFork(settings, 3, None, lhe)
    res = fork.generate(
        3, np.arange(3) + 1, np.arange(6).reshape(3, 2) + 10, np.random.default_rng(1)
    )
    _, read = read_lhe(lhe)
    want = np.array([[p.pz for p in ev.particles if p.status == 1] for ev in read])
    assert np.allclose(ak.to_numpy(res.truth.pz), want, rtol=1e-6)
    with pytest.raises(HadforkError, match="LHE file ended after 0 of 1"):  # file used up
        fork.generate(1, np.arange(1), np.arange(2).reshape(1, 2), np.random.default_rng(1))
