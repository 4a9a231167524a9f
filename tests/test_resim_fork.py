"""The hadronization-fork variant of the re-simulation builder (``{fork_of: nominal}``):
same hard process and parton shower as its source, new hadrons; other variants unchanged."""

from __future__ import annotations

import copy

import awkward as ak
import h5py
import numpy as np
import pytest

from jetforge.config import ConfigError, validate_config
from jetforge.datasets.resim import build_resim_chunk
from jetforge.datasets.variants import parse_variants
from jetforge.generation.resim_fork import shower_lhe_forked
from jetforge.generation.shower import shower_lhe
from jetforge.io.h5 import read_attrs


@pytest.fixture(scope="module")
def settings(default_config):
    return list(default_config["datasets"]["rs3l"]["shower"]["base_settings"])


@pytest.fixture(scope="module")
def forked(hbb_lhe, settings):
    seeds = np.arange(40) + 1000
    return shower_lhe_forked(hbb_lhe, 40, settings, 77, [seeds], keep_records=True)


def test_source_variant_is_unchanged_by_the_capture(forked, hbb_lhe, settings):
    particles, ok = shower_lhe(hbb_lhe, 40, settings, 77)
    assert ak.array_equal(forked.particles, particles) and np.array_equal(forked.ok, ok)


def test_fork_shares_the_parton_record_and_rehadronizes(forked):
    fork, fork_ok = forked.forks[0]
    assert fork_ok.all() and (forked.n_parton > 10).all()
    (src,), recs = forked.records["source"], forked.records["fork0"]
    fk = ak.concatenate(recs)
    for k in range(40):
        m = int(forked.n_parton[k])
        # the parton-level record (hard process + shower; entry 0, the event's total, is
        # re-summed over each final state): same particles, same momenta
        a, b = src[k][1:m], fk[k][1:m]
        assert ak.to_list(a.id) == ak.to_list(b.id)
        for c in ("px", "py", "pz", "e"):
            assert np.allclose(ak.to_numpy(a.p[c]), ak.to_numpy(b.p[c]), rtol=1e-9, atol=1e-6)
        # ... and different hadrons
        assert len(src[k]) != len(fk[k]) or not np.array_equal(
            ak.to_numpy(src[k].p.px[m:]), ak.to_numpy(fk[k].p.px[m:])
        )
    # same total four-momentum (the shared parton system), different final states
    for c in ("px", "py"):
        assert np.allclose(ak.sum(forked.particles[c], axis=1), ak.sum(fork[c], axis=1), atol=1e-6)
    assert not ak.array_equal(forked.particles, fork)


def test_fork_is_reproducible_from_its_seeds(forked, hbb_lhe, settings):
    seeds = np.arange(40) + 1000
    again = shower_lhe_forked(hbb_lhe, 40, settings, 77, [seeds, seeds + 1])
    assert ak.array_equal(again.forks[0][0], forked.forks[0][0])
    assert not ak.array_equal(again.forks[1][0], forked.forks[0][0])


def test_chunk_with_a_fork_keeps_every_other_variant(tmp_path, hbb_lhe, default_config):
    ds = copy.deepcopy(default_config["datasets"]["rs3l"])
    ds["shower"]["variants"] = {"nominal": [], "seed": [], "hadfork": {"fork_of": "nominal"}}
    without = copy.deepcopy(ds)
    del without["shower"]["variants"]["hadfork"]
    paths = tmp_path / "with.h5", tmp_path / "without.h5"
    for cfg, path in zip((ds, without), paths, strict=True):
        build_resim_chunk(hbb_lhe, path, cfg, "rs3l", "hbb_zh", "test", 0, base_seed=1)
    with h5py.File(paths[0]) as f, h5py.File(paths[1]) as g:
        assert read_attrs(f)["variant_names"] == ["nominal", "seed", "hadfork"]
        ev_f, ev_g = f["jets"]["event"][::3], g["jets"]["event"][::2]
        common = np.intersect1d(ev_f, ev_g)
        assert common.size > 0
        xf = f["particles"][:].reshape(ev_f.size, 3, *f["particles"].shape[1:])
        xg = g["particles"][:].reshape(ev_g.size, 2, *g["particles"].shape[1:])
        i, j = np.searchsorted(ev_f, common), np.searchsorted(ev_g, common)
        assert np.array_equal(xf[i, :2], xg[j])  # nominal and seed: the same bytes
        assert not np.array_equal(xf[:, 2], xf[:, 0])  # the fork: other hadrons
    # the pair sampler takes the fork as an augmentation set like any other variant
    from jetforge.training.data import PairSampler

    with PairSampler(str(paths[0]), ["hbb_zh"], ["hadfork"], 1, 0, shuffle=False) as s:
        b = next(iter(s.epoch(0)))
        assert np.array_equal(b.x_a[0].numpy(), xf[0, 0][: b.x_a.shape[1]])
        assert np.array_equal(b.x_b[0].numpy(), xf[0, 2][: b.x_b.shape[1]])


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"fork_of": "nomnal"}, "fork_of: value 'nomnal' is not a showered variant"),
        ({"fork_of": "later"}, "listed before"),
        ({"fork_off": "nominal"}, "fork_of: <earlier variant>"),
        ("x", "a list of Pythia settings"),
    ],
)
def test_bad_fork_spec_is_refused_before_any_job(default_config, spec, says):
    cfg = copy.deepcopy(default_config)
    variants = cfg["datasets"]["rs3l"]["shower"]["variants"]
    variants["hadfork"] = spec
    variants["later"] = []
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "datasets.rs3l.shower.variants.hadfork" in str(err.value) and says in str(err.value)


def test_nominal_cannot_be_a_fork():
    with pytest.raises(ValueError, match="nominal.fork_of: value 'seed' is not a showered"):
        parse_variants({"nominal": {"fork_of": "seed"}, "seed": []})
