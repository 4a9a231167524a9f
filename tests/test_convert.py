"""Feature-set conversion: every src → dst pair against direct computation, and files."""

from __future__ import annotations

import dataclasses
import itertools
import json

import awkward as ak
import h5py
import numpy as np
import pytest

from jetforge.io.h5 import read_attrs, write_jet_dataset
from jetforge.jets import convert
from jetforge.jets.convert import convert_features, convert_file, zero_filled_features
from jetforge.jets.featuresets import (
    FEATURE_SETS,
    PART17_FEATURES,
    PID_FIELDS,
    FeatureSetError,
    get_feature_set,
)

SETS = sorted(FEATURE_SETS)
FLAGS = ("is_electron", "is_muon", "is_photon", "is_ch", "is_nh")
P = 8  # stored slots; some jets have more constituents (truncation) and some fewer (padding)
#: candidate fields each source gives back (module docstring of jetforge.jets.convert)
RECOVERED = {
    "kinematic4": set(),
    "jetnet": set(),
    "ptetaphi": set(),
    "pid_kin": set(PID_FIELDS),
    "rs3l": {*PID_FIELDS, "d0", "dz"},
    "part17": {*PID_FIELDS, "d0", "dz", "d0_err", "dz_err"},
}
TRACK_PART = ["part_d0", "part_d0err", "part_dz", "part_dzerr"]
PID_PART = ["part_charge", "part_isChargedHadron", "part_isNeutralHadron", "part_isPhoton",
            "part_isElectron", "part_isMuon"]  # fmt: skip


def make_jets(massless: bool = True, seed: int = 3) -> tuple[ak.Array, ak.Array]:
    """Jets (float64 pt, eta, phi, E, mass) + candidates with every contract-3 field.

    Kept away from the ParT clip edges (p_T ≥ 0.5 GeV, ΔR < 1, errors < 1 mm) so that
    converted features can be held to float32 precision. Jets sit at negative and positive
    η and next to φ = ±π (Δφ wrapping); one constituent has |d0| = 50 mm (tanh saturates).
    """
    rng = np.random.default_rng(seed)
    axes = [(-1.7, 3.1), (0.4, -3.05), (2.1, 0.5), (-0.3, -1.2), (1.0, 2.0), (0.0, 0.1)]
    counts = [12, 3, 8, 1, 20, 5]
    jets, consts = [], []
    for (jeta, jphi), n in zip(axes, counts, strict=True):
        pt = np.exp(rng.uniform(np.log(0.5), np.log(300.0), n))
        eta = jeta + rng.normal(0, 0.2, n)
        phi = jphi + rng.normal(0, 0.2, n)
        mass = np.zeros(n) if massless else rng.choice([0.0, 0.13957, 0.497], n)
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
        kind = rng.integers(0, 5, n)
        charge = np.where(kind == 2, 0.0, rng.choice([-1.0, 1.0], n))
        charge[kind == 4] = 0.0
        rows = []
        for k in range(n):
            rows.append(dict(
                px=px[k], py=py[k], pz=pz[k], E=e[k], charge=charge[k],
                d0=rng.normal(0, 0.5), dz=rng.normal(0, 2.0),
                d0_err=rng.uniform(0.01, 0.9), dz_err=rng.uniform(0.01, 0.9),
                **{f: float(kind[k] == i) for i, f in enumerate(FLAGS)},
            ))  # fmt: skip
        if n == 12:
            rows[int(np.argmax(pt))]["d0"] = 50.0  # tanh(50) == 1 in float32 and float64
        tot = [sum(r[c] for r in rows) for c in ("px", "py", "pz", "E")]
        jpt = np.hypot(tot[0], tot[1])
        m2 = tot[3] ** 2 - tot[0] ** 2 - tot[1] ** 2 - tot[2] ** 2
        jets.append(dict(pt=jpt, eta=np.arcsinh(tot[2] / jpt), phi=np.arctan2(tot[1], tot[0]),
                         E=tot[3], mass=np.sqrt(max(m2, 0.0))))  # fmt: skip
        consts.append(rows)
    return ak.Array(jets), ak.Array(consts)


def h5_columns(jets: ak.Array) -> dict[str, np.ndarray]:
    """Jet columns as the HDF5 files keep them: float32 pt, eta, phi, mass (no E)."""
    return {k: ak.to_numpy(jets[k]).astype(np.float32) for k in ("pt", "eta", "phi", "mass")}


def zeroed(consts: ak.Array, keep: set[str]) -> ak.Array:
    """Candidates with every non-kinematic field outside ``keep`` set to 0."""
    kin = ("px", "py", "pz", "E")
    return ak.zip({f: consts[f] if f in kin or f in keep else consts[f] * 0.0
                   for f in consts.fields})  # fmt: skip


@pytest.fixture(scope="module")
def sample():
    return make_jets(massless=True)


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(SETS, SETS)))
def test_every_pair_matches_direct_computation(sample, src, dst):
    """A→B equals B computed directly: exactly what B computes from the candidates with
    the fields A cannot give set to 0, and equal to B from the full candidates for every
    feature not reported as zero-filled."""
    jets, consts = sample
    x_src, m_src = get_feature_set(src).compute(jets, consts, P)
    x, mask, zero = convert_features(x_src, m_src, h5_columns(jets), src, dst)
    direct, m_direct = get_feature_set(dst).compute(jets, consts, P)
    expect, _ = get_feature_set(dst).compute(jets, zeroed(consts, RECOVERED[src]), P)
    assert x.dtype == np.float32 and mask.dtype == bool
    assert x.shape == direct.shape and np.array_equal(mask, m_direct)
    assert np.all(x[~mask] == 0)  # padding stays zero
    np.testing.assert_allclose(x, expect, rtol=2e-5, atol=2e-5)
    names = get_feature_set(dst).feature_names
    assert zero == [n for n in names if n in zero]  # destination order
    keep = [i for i, n in enumerate(names) if n not in zero]
    np.testing.assert_allclose(x[..., keep], direct[..., keep], rtol=2e-5, atol=2e-5)
    # the zero-filled features really differ from the truth on this sample (not vacuous)
    for i in (i for i, n in enumerate(names) if n in zero):
        assert not np.allclose(x[..., i][mask], direct[..., i][mask]), names[i]


def test_zero_filled_lists_of_the_paper_transfers():
    # JP-JEPA: part17 backbone fine-tuned on top tagging (kin) and quark–gluon (kinpid)
    assert zero_filled_features("kinematic4", "part17") == PID_PART + TRACK_PART
    assert zero_filled_features("pid_kin", "part17") == TRACK_PART
    assert zero_filled_features("rs3l", "part17") == ["part_d0err", "part_dzerr"]
    assert zero_filled_features("part17", "rs3l") == []
    assert zero_filled_features("pid_kin", "rs3l") == ["tanh_d0", "tanh_dz"]
    assert zero_filled_features("jetnet", "kinematic4") == []
    assert all(zero_filled_features(s, s) == [] for s in SETS)


def test_pid_kin_to_part17_copies_pid_and_zeroes_track_features(sample):
    jets, consts = sample
    x_src, m_src = get_feature_set("pid_kin").compute(jets, consts, P)
    x, mask, zero = convert_features(x_src, m_src, h5_columns(jets), "pid_kin", "part17")
    direct, _ = get_feature_set("part17").compute(jets, consts, P)
    pid = [PART17_FEATURES.index(n) for n in PID_PART]
    assert np.array_equal(x[..., pid], direct[..., pid])  # exact
    track = [PART17_FEATURES.index(n) for n in TRACK_PART]
    assert zero == TRACK_PART and np.all(x[..., track] == 0)


def test_part17_to_rs3l_recovers_impact_parameters(sample):
    jets, consts = sample
    x_src, m_src = get_feature_set("part17").compute(jets, consts, P)
    x, _, zero = convert_features(x_src, m_src, h5_columns(jets), "part17", "rs3l")
    direct, _ = get_feature_set("rs3l").compute(jets, consts, P)
    names = get_feature_set("rs3l").feature_names
    for n in ("tanh_d0", "tanh_dz", "charge", *FLAGS):
        i = names.index(n)
        assert np.array_equal(x[..., i], direct[..., i]), n
    assert zero == [] and x[..., names.index("tanh_d0")].max() == 1.0  # saturated d0 = 50 mm


def test_massive_energies_survive_log_e_sources():
    """rs3l, part17 and pid_kin store log E: the constituent masses come through."""
    jets, consts = make_jets(massless=False, seed=5)
    direct, _ = get_feature_set("part17").compute(jets, consts, P)
    for src in ("rs3l", "pid_kin"):
        x_src, m_src = get_feature_set(src).compute(jets, consts, P)
        x, _, _ = convert_features(x_src, m_src, h5_columns(jets), src, "part17")
        for n in ("part_e_log", "part_logerel", "part_pt_log", "part_deltaR"):
            i = PART17_FEATURES.index(n)
            np.testing.assert_allclose(x[..., i], direct[..., i], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", SETS)
def test_identity_is_bit_exact_and_repads(sample, name):
    jets, consts = sample
    x_src, m_src = get_feature_set(name).compute(jets, consts, P)
    x, mask, zero = convert_features(x_src, m_src, h5_columns(jets), name, name)
    assert np.array_equal(x, x_src) and np.array_equal(mask, m_src) and zero == []
    x3, m3, _ = convert_features(x_src, m_src, h5_columns(jets), name, name, n_max=3)
    assert np.array_equal(x3, x_src[:, :3]) and np.array_equal(m3, m_src[:, :3])
    x12, m12, _ = convert_features(x_src, m_src, h5_columns(jets), name, name, n_max=12)
    assert np.array_equal(x12[:, :P], x_src) and not m12[:, P:].any() and not x12[:, P:].any()


def test_n_max_truncates_to_the_hardest(sample):
    jets, consts = sample
    x_src, m_src = get_feature_set("kinematic4").compute(jets, consts, P)
    x, mask, _ = convert_features(x_src, m_src, h5_columns(jets), "kinematic4", "jetnet", 3)
    direct, m_direct = get_feature_set("jetnet").compute(jets, consts, 3)
    assert np.array_equal(mask, m_direct)
    np.testing.assert_allclose(x, direct, rtol=2e-5, atol=2e-5)


def test_errors(sample, monkeypatch):
    jets, consts = sample
    x_src, m_src = get_feature_set("jetnet").compute(jets, consts, P)
    cols = h5_columns(jets)
    with pytest.raises(FeatureSetError, match="'jetnet' to 'part18'.*part18"):
        convert_features(x_src, m_src, cols, "jetnet", "part18")
    with pytest.raises(ValueError, match="do not fit feature set 'part17'"):
        convert_features(x_src, m_src, cols, "part17", "jetnet")
    with pytest.raises(FeatureSetError, match="'E' or 'mass'"):
        convert_features(x_src, m_src, {k: cols[k] for k in ("pt", "eta", "phi")}, "jetnet",
                         "part17")  # fmt: skip
    blind = dataclasses.replace(FEATURE_SETS["jetnet"], name="blind", four_momenta=None)
    monkeypatch.setitem(FEATURE_SETS, "blind", blind)
    with pytest.raises(FeatureSetError, match="'blind' to 'part17'.*no four_momenta"):
        convert_features(x_src, m_src, cols, "blind", "part17")


# ----------------------------------------------------------------------------- files


@pytest.fixture()
def k4_file(tmp_path, sample):
    """A kinematic4 split (the toptag layout) with extra datasets beyond data contract 4."""
    jets, consts = sample
    x, mask = get_feature_set("kinematic4").compute(jets, consts, P)
    n = len(x)
    cols = {**h5_columns(jets), "n2": np.full(n, np.nan), "label": np.arange(n) % 2,
            "process": np.zeros(n), "variant": np.zeros(n), "pair_id": np.arange(n),
            "chunk": np.zeros(n), "event": np.arange(n), "parton_pid": np.full(n, 6)}  # fmt: skip
    attrs = {"feature_names": get_feature_set("kinematic4").feature_names,
             "feature_set": "kinematic4", "feature_standardisation": {},
             "class_names": ["qcd", "top"], "dataset": "toptag", "split": "test"}  # fmt: skip
    path = tmp_path / "test.h5"
    write_jet_dataset(path, x, mask, cols, attrs)
    with h5py.File(path, "a") as f:
        f.create_dataset("cells", data=np.arange(n * 3 * 4, dtype=np.float32).reshape(n, 3, 4))
        f.create_dataset("cells_mask", data=np.ones((n, 3), bool))
        f["jets"].create_dataset("hadron_pt", data=np.arange(n, dtype=np.float32) + 0.5)
        f.create_dataset("edges", data=np.array([1.0, 2.0, 3.0]))  # not row-aligned
        f["cells"].attrs["unit"] = "GeV"
    return path, x, mask, h5_columns(jets)


def test_convert_file_streams_and_keeps_everything_else(tmp_path, k4_file):
    src, x_src, m_src, cols = k4_file
    dst = tmp_path / "out" / "test_part17.h5"
    zero = convert_file(src, dst, "part17", chunk_rows=4)  # 6 jets: two chunks, one partial
    assert zero == PID_PART + TRACK_PART
    want, want_mask, _ = convert_features(x_src, m_src, cols, "kinematic4", "part17")
    with h5py.File(src) as a, h5py.File(dst) as b:
        assert np.array_equal(b["particles"][:], want) and np.array_equal(b["mask"][:], want_mask)
        names = []
        a.visititems(lambda k, v: names.append(k) if isinstance(v, h5py.Dataset) else None)
        for k in names:
            if k not in ("particles", "mask"):
                assert b[k].dtype == a[k].dtype, k
                assert np.array_equal(b[k][:], a[k][:], equal_nan=True), k
        assert b["cells"].attrs["unit"] == "GeV" and b["particles"].shape[0] == 6
        attrs = read_attrs(b)
        assert attrs["feature_set"] == "part17" and attrs["feature_names"] == list(PART17_FEATURES)
        std = json.loads(attrs["feature_standardisation"])
        assert std["part_pt_log"] == [1.7, 0.7, -5.0, 5.0] and std["part_charge"] is None
        want = {"path": str(src), "feature_set": "kinematic4"}
        assert json.loads(attrs["converted_from"]) == want
        assert json.loads(attrs["zero_filled_features"]) == zero
        assert attrs["class_names"] == ["qcd", "top"] and attrs["dataset"] == "toptag"


def test_convert_file_identity_and_inferred_source_set(tmp_path, k4_file):
    src, x_src, m_src, _ = k4_file
    with h5py.File(src, "a") as f:  # older files carry only feature_names
        del f.attrs["feature_set"]
    dst = tmp_path / "same.h5"
    assert convert_file(src, dst, "kinematic4", chunk_rows=5) == []
    with h5py.File(dst) as f:
        assert np.array_equal(f["particles"][:], x_src) and np.array_equal(f["mask"][:], m_src)
        assert json.loads(f.attrs["converted_from"])["feature_set"] == "kinematic4"


def test_convert_file_leaves_nothing_on_failure(tmp_path, k4_file, monkeypatch):
    src = k4_file[0]
    out_dir = tmp_path / "out"
    with pytest.raises(FeatureSetError, match="part18"):
        convert_file(src, out_dir / "x.h5", "part18")
    assert not (out_dir / "x.h5").exists()
    calls = []
    real = convert.convert_features

    def fail_on_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed midway")
        return real(*args, **kwargs)

    monkeypatch.setattr(convert, "convert_features", fail_on_second_chunk)
    out_dir.mkdir(exist_ok=True)
    with pytest.raises(RuntimeError, match="killed midway"):
        convert_file(src, out_dir / "x.h5", "part17", chunk_rows=2)
    assert len(calls) == 2 and list(out_dir.iterdir()) == []  # no file, no temporary
    with pytest.raises(ValueError, match="onto itself"):
        convert_file(src, src, "part17")
