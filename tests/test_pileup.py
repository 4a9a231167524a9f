"""Pile-up: a minimum-bias library generated once, overlay only draws from it."""

from __future__ import annotations

import awkward as ak
import h5py
import numpy as np
import pytest

from jetforge.detector import load_card
from jetforge.detector.cocoa import simulate_tracks
from jetforge.generation.pileup import (
    PileupLibraryError,
    generate_minbias_library,
    load_library,
    overlay,
)


@pytest.fixture(scope="module")
def library_path(tmp_path_factory):
    """40 real minimum-bias events (non-diffractive: ~1.5 s initialisation, not ~20 s)."""
    path = tmp_path_factory.mktemp("pu") / "minbias.h5"
    run = generate_minbias_library(
        path, 40, seed=3, process="SoftQCD:nonDiffractive = on", pt_min=0.5
    )
    assert run["n_events"] == 40 and run["pt_min"] == 0.5
    return path


def hard_events(n: int, seed: int = 0) -> ak.Array:
    """n events of 3 charged pions (pT 5-50 GeV, |eta| < 2) from the origin."""
    rng = np.random.default_rng(seed)
    m = 3 * n
    pt, eta, phi = rng.uniform(5, 50, m), rng.uniform(-2, 2, m), rng.uniform(-np.pi, np.pi, m)
    counts = np.full(n, 3)
    cols = {
        "px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta),
        "E": np.sqrt((pt * np.cosh(eta)) ** 2 + 0.13957**2),
        "pid": np.full(m, 211), "charge": np.ones(m),
        "vx": np.zeros(m), "vy": np.zeros(m), "vz": np.zeros(m),
    }  # fmt: skip
    return ak.zip({k: ak.unflatten(v, counts) for k, v in cols.items()})


def test_library_content(library_path):
    lib = load_library(library_path)
    assert lib.n_events == 40 and lib.offsets[-1] == lib.columns["px"].size
    pt = np.hypot(lib.columns["px"], lib.columns["py"])
    assert pt.min() >= 0.5 - 1e-5
    assert not np.isin(np.abs(lib.columns["pid"]), [12, 14, 16]).any()
    assert lib.attrs["format"] == "jetforge-minbias-1"


def test_overlay_poisson_mean_vertex_spread_and_marking(library_path, monkeypatch):
    lib = load_library(library_path)

    class NoPythia:  # overlay must only draw from the library, never generate
        def __init__(self, *a, **k):
            raise AssertionError("overlay generated a new event")

    import pythia8mc

    monkeypatch.setattr(pythia8mc, "Pythia", NoPythia)
    n, mu = 3000, 4.0
    hard = hard_events(n)
    info: dict = {}
    out = overlay(hard, lib, mu, np.random.default_rng(1), sigma_z=50.0, info=info)
    assert set(out.fields) >= {"px", "py", "pz", "E", "pid", "charge", "vx", "vy", "vz", "is_pu"}
    assert abs(info["n_pu"].mean() - mu) < 4 * np.sqrt(mu / n)
    assert abs(info["pu_vz"].std() - 50.0) < 4 * 50.0 / np.sqrt(2 * info["pu_vz"].size)
    # hard scatter first and unmarked, then the pile-up particles
    assert not ak.any(out.is_pu[:, :3]) and ak.all(ak.num(out) >= 3)
    n_pu_particles = ak.to_numpy(ak.sum(out.is_pu, axis=1))
    assert abs(n_pu_particles.mean() / (mu * lib.counts.mean()) - 1) < 0.1
    # measured on the particles: the vertex spread of pile-up is the drawn 50 mm
    # (robust width: decays of K_S, Λ, … in the library sit up to metres from their vertex)
    vz = ak.to_numpy(ak.flatten(out.vz[out.is_pu]))
    q25, q75 = np.quantile(vz, [0.25, 0.75])
    assert abs((q75 - q25) / 1.349 - 50.0) < 3.0
    # the hard scatter is untouched when no primary vertex is given
    assert ak.all(ak.flatten(out.px[:, :3]) == ak.flatten(hard.px))


def test_overlay_mu_zero_and_primary_vertex_shift():
    hard = hard_events(5)
    out = overlay(hard, None, 0.0, np.random.default_rng(0), hard_vz=np.arange(5.0))
    assert not ak.any(out.is_pu)
    assert ak.all(out.vz == np.arange(5.0))
    with pytest.raises(ValueError, match="library"):
        overlay(hard, None, 2.0, np.random.default_rng(0))


def test_dz_association_removes_most_pileup_tracks(library_path):
    lib = load_library(library_path)
    card, _ = load_card("cocoa_cells")
    n = 300
    z_pv = np.random.default_rng(2).normal(0.0, 50.0, n)
    parts = overlay(hard_events(n), lib, 20.0, np.random.default_rng(3), hard_vz=z_pv)
    tracks = simulate_tracks(parts, card, np.random.default_rng(4))
    near = abs(tracks.z0 - z_pv) < 2.0  # |Δz| < 2 mm to the primary vertex (Rieck et al. §3)
    pu = tracks.is_pu
    kept_pu = ak.sum(near & pu) / ak.sum(pu)
    kept_hard = ak.sum(near & ~pu) / ak.sum(~pu)
    assert ak.sum(pu) > 500
    # pile-up vertices spread ~70 mm around the primary one: only ~2 % lie within 2 mm
    assert kept_pu < 0.06, kept_pu
    assert kept_hard > 0.99, kept_hard


def test_missing_or_broken_library_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "minbias.h5"
    with pytest.raises(FileNotFoundError, match="nowhere/minbias.h5"):
        load_library(missing)
    broken = tmp_path / "broken.h5"
    with h5py.File(broken, "w") as f:
        f["px"] = np.zeros(3)
    with pytest.raises(PileupLibraryError, match=r"broken\.h5.*missing datasets"):
        load_library(broken)


def test_builder_names_missing_library(tmp_path):
    from jetforge.datasets.hadfork import HadforkConfigError, build_hadfork_chunk

    from test_hadfork import small_config  # same directory; plain import of the helper

    cfg = small_config(events=2)
    cfg["pileup"] = {"mu": 5.0, "sigma_z": 50.0}
    with pytest.raises(HadforkConfigError, match="pileup_library"):
        build_hadfork_chunk(None, tmp_path / "x.h5", cfg, "hf", "hadfork_qq", "test", 0, 1, {})
    with pytest.raises(FileNotFoundError, match="no_such_library.h5"):
        build_hadfork_chunk(
            None,
            tmp_path / "x.h5",
            cfg,
            "hf",
            "hadfork_qq",
            "test",
            0,
            1,
            {"pileup_library": str(tmp_path / "no_such_library.h5")},
        )
    assert not (tmp_path / "x.h5").exists()
