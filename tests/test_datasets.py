"""A re-simulated chunk end to end: pairing, selection, determinism, and merging."""

from __future__ import annotations

import copy
import hashlib

import h5py
import numpy as np
import pytest

from jetforge.datasets.resim import build_resim_chunk
from jetforge.io.h5 import merge_jet_datasets, read_attrs
from jetforge.io.lhe import LHEError


@pytest.fixture(scope="module")
def ds_cfg(default_config):
    return copy.deepcopy(default_config["datasets"]["rs3l"])


@pytest.fixture(scope="module")
def chunk(tmp_path_factory, hbb_lhe, ds_cfg):
    out = tmp_path_factory.mktemp("chunk") / "jets_0.h5"
    stats = build_resim_chunk(hbb_lhe, out, ds_cfg, "rs3l", "hbb_zh", "test", 0, base_seed=1)
    return out, stats


def test_pairs_are_complete_and_aligned(chunk, ds_cfg):
    path, stats = chunk
    with h5py.File(path) as f:
        attrs = read_attrs(f)
        variants = attrs["variant_names"]
        assert variants == list(ds_cfg["shower"]["variants"])
        j = {k: f["jets"][k][:] for k in f["jets"]}
        n = len(j["pt"])
        assert n == stats["kept_pairs"] * len(variants) and n > 0
        v = len(variants)
        assert np.array_equal(j["variant"], np.tile(np.arange(v), n // v))
        assert np.all(j["pair_id"].reshape(-1, v) == j["pair_id"][::v, None])
        # every jet passes the paper's selection in every variant (RS3L §II B)
        assert np.all(j["pt"] > 450) and np.all(j["mass"] > 10) and np.all(np.abs(j["eta"]) < 0.1)
        assert np.all(j["parton_pid"] == 25)
        assert set(j["label"]) == {attrs["class_names"].index("hbb")}
        # the variants of a pair are different jets (re-simulated), not copies
        x = f["particles"][:].reshape(n // v, v, *f["particles"].shape[1:])
        assert not np.array_equal(x[:, 0], x[:, 1])
        m = f["mask"][:]
        assert np.all(m.sum(axis=1) >= 3)
        # padding is zero and constituents are sorted by pT (feature 0 = log pT)
        assert np.all(f["particles"][:][~m] == 0)
        logpt = np.where(m, f["particles"][:, :, 0], -1e9)
        assert np.all(np.diff(logpt, axis=1)[m[:, 1:]] <= 0)
        assert np.all(j["n2"] > 0)


def test_same_config_gives_identical_file(chunk, tmp_path, hbb_lhe, ds_cfg):
    path, _ = chunk
    again = tmp_path / "again.h5"
    build_resim_chunk(hbb_lhe, again, ds_cfg, "rs3l", "hbb_zh", "test", 0, base_seed=1)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(again) == digest(path)
    other = tmp_path / "other.h5"
    build_resim_chunk(hbb_lhe, other, ds_cfg, "rs3l", "hbb_zh", "test", 1, base_seed=1)
    with h5py.File(path) as a, h5py.File(other) as b:
        pa, pb = a["particles"], b["particles"]
        assert pa.shape != pb.shape or not np.array_equal(pa[:], pb[:])


def test_merge_renumbers_pairs(chunk, tmp_path):
    path, stats = chunk
    out = tmp_path / "merged.h5"
    n = merge_jet_datasets([path, path], out)
    with h5py.File(out) as f:
        pid = f["jets"]["pair_id"][:]
        assert n == 2 * stats["kept_pairs"] * 5
        assert len(np.unique(pid)) == 2 * stats["kept_pairs"]
        assert read_attrs(f)["variant_names"][0] == "nominal"


def test_truncated_lhe_leaves_no_output(hbb_lhe, tmp_path, ds_cfg):
    bad = tmp_path / "bad.lhe"
    bad.write_text(hbb_lhe.read_text()[:5000])
    out = tmp_path / "out.h5"
    with pytest.raises(LHEError, match="bad.lhe"):
        build_resim_chunk(bad, out, ds_cfg, "rs3l", "hbb_zh", "test", 0, base_seed=1)
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))
