"""Importers of the public releases (jetforge.datasets.importers): small files written in
each publisher's exact layout are imported into data contract 4 and checked value by value
against what was written; malformed and mislabelled files are refused naming the file and
the missing branch / column, at config time (before any job) where possible; and one
experiment runs end to end (pre-training, probe table) on an imported dataset.

Layouts, as the publishers' readers open them: JetClass ROOT ``tree`` with ``part_*``,
``jet_*``, one-hot ``label_*`` (jet-universe/particle_transformer dataloader.py); JetNet
``particle_features`` [N, 30, 4], ``jet_features`` [N, 4] per class file (jetnet package);
top tagging pandas HDFStore key ``table`` with ``E_i, PX_i, PY_i, PZ_i``, ``truth*``,
``ttv``, ``is_signal_new`` (written here by pandas itself, as the release was); quark–gluon
``QG_jets*.npz`` with ``X`` [N, M, 4] = (p_T, y, φ, PDG id) and ``y``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest

from jetforge.config import ConfigError, validate_config
from jetforge.datasets.importers import (
    FORMATS,
    JETCLASS_CLASSES,
    ImportConfigError,
    ImportFileError,
    import_split,
    parse_config,
)
from jetforge.io.h5 import read_attrs
from jetforge.jets.featuresets import get_feature_set

pytestmark = pytest.mark.usefixtures("one_thread")

PIDS = np.array([22, 211, -211, 130, 321, -321, 2212, 2112, 11, -13])
CHARGE = {22: 0, 211: 1, -211: -1, 130: 0, 321: 1, -321: -1, 2212: 1, 2112: 0, 11: -1, -13: 1}


def _jets(n: int, cls: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Toy jets whose class shows in multiplicity and width (so probes can learn it):
    particles (p_T, η, φ, PDG id), p_T-ordered, around a random axis."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = int(rng.integers(6, 14) if cls == 0 else rng.integers(18, 30))
        width = 0.25 if cls == 0 else 0.08
        pt = np.sort(600.0 * rng.dirichlet(np.ones(m)))[::-1]
        eta = rng.uniform(-1.5, 1.5) + rng.normal(0, width, m)
        phi = np.angle(np.exp(1j * (rng.uniform(-np.pi, np.pi) + rng.normal(0, width, m))))
        out.append({"pt": pt, "eta": eta, "phi": phi, "pid": rng.choice(PIDS, m)})
    return out


def _p4(j: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    pt, eta, phi = j["pt"], j["eta"], j["phi"]
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)


def _axis(j: dict[str, np.ndarray]) -> tuple[float, float, float, float, float]:
    """Jet p_T, η, φ, E, mass from the summed massless four-momenta."""
    px, py, pz, e = (float(v.sum()) for v in _p4(j))
    pt = float(np.hypot(px, py))
    return pt, float(np.arcsinh(pz / pt)), float(np.arctan2(py, px)), e, (
        float(np.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0)))
    )


# ----------------------------------------------------------------------------- writers


def write_jetclass(path: Path, labels: list[str], seed: int, drop: tuple[str, ...] = ()) -> Path:
    """A JetClass ROOT file: TTree ``tree``, jagged float ``part_*``, float ``jet_*``, bool
    one-hot ``label_*`` (one label per jet, a JetClass class name)."""
    import uproot

    jets = [_jets(1, int(lab != "QCD"), seed + i)[0] for i, lab in enumerate(labels)]
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in (
        "part_px", "part_py", "part_pz", "part_energy", "part_deta", "part_dphi", "part_charge",
        "part_isChargedHadron", "part_isNeutralHadron", "part_isPhoton", "part_isElectron",
        "part_isMuon", "part_d0val", "part_d0err", "part_dzval", "part_dzerr",
    )}  # fmt: skip
    jet_cols: dict[str, list] = {k: [] for k in ("jet_pt", "jet_eta", "jet_phi", "jet_energy",
                                                 "jet_sdmass", "jet_nparticles")}  # fmt: skip
    for j in jets:
        px, py, pz, e = _p4(j)
        pt, eta, phi, energy, mass = _axis(j)
        apid, m = np.abs(j["pid"]), len(j["pid"])
        charge = np.array([CHARGE[int(p)] for p in j["pid"]], float)
        sign = 1.0 if eta >= 0 else -1.0
        vals = {
            "part_px": px, "part_py": py, "part_pz": pz, "part_energy": e,
            "part_deta": (j["eta"] - eta) * sign,
            "part_dphi": np.angle(np.exp(1j * (j["phi"] - phi))),
            "part_charge": charge,
            "part_isChargedHadron": (charge != 0) & (apid != 11) & (apid != 13),
            "part_isNeutralHadron": (charge == 0) & (apid != 22), "part_isPhoton": apid == 22,
            "part_isElectron": apid == 11, "part_isMuon": apid == 13,
            "part_d0val": rng.normal(0, 0.05, m) * (charge != 0),
            "part_d0err": rng.uniform(0.01, 0.05, m) * (charge != 0),
            "part_dzval": rng.normal(0, 0.05, m) * (charge != 0),
            "part_dzerr": rng.uniform(0.01, 0.05, m) * (charge != 0),
        }  # fmt: skip
        for k, v in vals.items():
            cols[k].append(np.asarray(v, np.float32))
        for k, v in zip(jet_cols, (pt, eta, phi, energy, mass, m), strict=True):
            jet_cols[k].append(v)
    tree: dict[str, object] = {k: ak.Array([v.tolist() for v in vs]) for k, vs in cols.items()}
    tree = {k: ak.values_astype(v, np.float32) for k, v in tree.items()}
    tree.update({k: np.asarray(v, np.float32) for k, v in jet_cols.items()})
    for c in JETCLASS_CLASSES:
        tree[f"label_{c}"] = np.array([lab == c for lab in labels])
    with uproot.recreate(path) as f:
        f["tree"] = {k: v for k, v in tree.items() if k not in drop}
    return path


def write_jetnet(path: Path, n: int, cls: int, seed: int, n_particles: int = 30) -> Path:
    """A JetNet class file: ``particle_features`` [N, 30, 4] (etarel, phirel, ptrel, mask),
    ``jet_features`` [N, 4] (pt, eta, mass, num_particles), float32, zero-padded."""
    pf = np.zeros((n, n_particles, 4), np.float32)
    jf = np.zeros((n, 4), np.float32)
    for i, j in enumerate(_jets(n, cls, seed)):
        pt, eta, phi, _, mass = _axis(j)
        k = min(len(j["pt"]), n_particles)
        pf[i, :k, 0] = (j["eta"] - eta)[:k]
        pf[i, :k, 1] = np.angle(np.exp(1j * (j["phi"] - phi)))[:k]
        pf[i, :k, 2] = (j["pt"] / pt)[:k]
        pf[i, :k, 3] = 1.0
        jf[i] = (pt, eta, mass, k)
    with h5py.File(path, "w") as f:
        f["particle_features"] = pf
        f["jet_features"] = jf
    return path


def toptag_frame(labels: list[int], seed: int, m: int = 200):
    """The top-tagging DataFrame: E_i, PX_i, PY_i, PZ_i (i < 200, zero-padded), truthE,
    truthPX, truthPY, truthPZ (float32), ttv, is_signal_new (int64)."""
    import pandas as pd

    cols: dict[str, np.ndarray] = {}
    data = np.zeros((len(labels), m, 4), np.float32)
    for i, lab in enumerate(labels):
        j = _jets(1, lab, seed + i)[0]
        px, py, pz, e = _p4(j)
        k = min(len(px), m)
        data[i, :k] = np.stack([e, px, py, pz], axis=1)[:k]
    for i in range(m):
        for c, name in enumerate(("E", "PX", "PY", "PZ")):
            cols[f"{name}_{i}"] = data[:, i, c]
    for name in ("truthE", "truthPX", "truthPY", "truthPZ"):
        cols[name] = np.zeros(len(labels), np.float32)
    cols["ttv"] = np.zeros(len(labels), np.int64)
    cols["is_signal_new"] = np.asarray(labels, np.int64)
    return pd.DataFrame(cols), data


def write_toptag(path: Path, labels: list[int], seed: int, fmt: str = "fixed") -> Path:
    frame, _ = toptag_frame(labels, seed)
    frame.to_hdf(path, key="table", mode="w", format=fmt)
    return path


def write_qg(path: Path, labels: list[int], seed: int, m: int = 40, pid=None) -> Path:
    """An EnergyFlow quark–gluon file: X [N, M, 4] = (pt, y, phi, pid) float64, y float."""
    X = np.zeros((len(labels), m, 4))
    for i, lab in enumerate(labels):
        j = _jets(1, 1 - lab, seed + i)[0]  # quarks (y = 1): the narrow, sparse class here
        k = min(len(j["pt"]), m)
        X[i, :k] = np.stack([j["pt"], j["eta"], j["phi"], j["pid"]], axis=1)[:k]
        X[i, :k] = X[i, np.random.default_rng(i).permutation(k)]  # the release is unordered
    if pid is not None:
        X[0, 0, 3] = pid
    np.savez_compressed(path, X=X, y=np.asarray(labels, float))
    return path


# ----------------------------------------------------------------------------- configs


def import_cfg(fmt: str, files: dict, processes: list[str], n_particles: int, **kw) -> dict:
    return {"kind": "import", "format": fmt, "processes": processes, "files": files,
            "n_particles": n_particles, **kw}  # fmt: skip


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """One tiny release per format, two classes each, train and test."""
    d = tmp_path_factory.mktemp("releases")
    out: dict[str, dict] = {}
    jc = {s: {"qcd_zjet": str(write_jetclass(d / f"ZJetsToNuNu_{s}.root", ["QCD"] * n, seed)),
              "hbb_zh": str(write_jetclass(d / f"HToBB_{s}.root", ["Hbb"] * n, seed + 500))}
          for s, n, seed in (("train", 60, 1), ("test", 40, 2))}  # fmt: skip
    out["jetclass"] = import_cfg("jetclass_root", jc, ["qcd_zjet", "hbb_zh"], 32)
    for s, n, seed in (("train", 60, 3), ("test", 40, 4)):
        (d / s).mkdir()
        write_jetnet(d / s / "g.hdf5", n, 0, seed)
        write_jetnet(d / s / "q.hdf5", n, 1, seed + 500)
    jn = {s: {"zjet_g": str(d / s / "g.hdf5"), "zjet_q": str(d / s / "q.hdf5")}
          for s in ("train", "test")}  # fmt: skip
    out["jetnet"] = import_cfg("jetnet_h5", jn, ["zjet_g", "zjet_q"], 30)
    rng = np.random.default_rng(5)
    for s, n in (("train", 120), ("test", 80)):
        write_toptag(d / f"{s}.h5", rng.integers(0, 2, n).tolist(), seed=n)
    tt = {s: {"qcd_dijet": str(d / f"{s}.h5"), "tbqq_tt": str(d / f"{s}.h5")}
          for s in ("train", "test")}  # fmt: skip
    out["toptag"] = import_cfg("toptag_h5", tt, ["qcd_dijet", "tbqq_tt"], 64)
    for i, n in enumerate((60, 60, 80)):
        write_qg(d / f"QG_jets_{i}.npz", rng.integers(0, 2, n).tolist(), seed=100 * i)
    qg = {"train": {p: str(d / "QG_jets_[01].npz") for p in ("zjet_q", "zjet_g")},
          "test": {p: str(d / "QG_jets_2.npz") for p in ("zjet_q", "zjet_g")}}  # fmt: skip
    out["quarkgluon"] = import_cfg("quarkgluon_npz", qg, ["zjet_q", "zjet_g"], 32)
    return out


@pytest.fixture(scope="module")
def imported(sources: dict[str, dict], tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("imported")
    out = {}
    for name, ds in sources.items():
        out[name] = {s: d / name / f"{s}.h5" for s in ds["files"]}
        for s, path in out[name].items():
            import_split(ds, f"{name}_real", s, path)
    return out


# ----------------------------------------------------------------------------- contract


def _read(path: Path) -> tuple[dict, np.ndarray, np.ndarray, dict]:
    with h5py.File(path) as f:
        return (read_attrs(f), f["particles"][:], f["mask"][:],
                {k: f["jets"][k][:] for k in f["jets"]})  # fmt: skip


@pytest.mark.parametrize("name", ["jetclass", "jetnet", "toptag", "quarkgluon"])
def test_imported_split_follows_the_contract(name, sources, imported) -> None:
    ds = sources[name]
    fmt = FORMATS[ds["format"]]
    attrs, x, mask, jets = _read(imported[name]["train"])
    fs = get_feature_set(fmt.feature_set)
    assert attrs["feature_set"] == fs.name and attrs["feature_names"] == list(fs.feature_names)
    assert attrs["variant_names"] == ["nominal"] and attrs["process_names"] == ds["processes"]
    assert attrs["import_format"] == fmt.name and attrs["detector"] == fmt.detector
    assert x.shape == (len(mask), ds["n_particles"], len(fs.feature_names))
    assert np.all(x[~mask] == 0) and np.isfinite(x).all()
    assert np.all(mask[:, :-1] >= mask[:, 1:])  # real constituents first
    assert set(np.unique(jets["variant"])) == {0} and np.isnan(jets["n2"]).all()
    assert (jets["label"] == jets["process"]).all()  # one class per process here
    assert sorted(np.unique(jets["process"])) == [0, 1]
    assert np.unique(jets["pair_id"]).size == len(mask)


def test_jetclass_features_are_part17_of_the_written_particles(sources, imported) -> None:
    """part17 from the file's four-momenta and jet axis equals the ParT variables of the
    written particles, including part_deta (signed by the jet η, as the file's branch)."""
    import uproot

    attrs, x, mask, jets = _read(imported["jetclass"]["test"])
    names = attrs["feature_names"]
    with uproot.open(sources["jetclass"]["files"]["test"]["qcd_zjet"]) as f:
        t = f["tree"].arrays(library="np")
    n = len(t["jet_pt"])
    assert (jets["process"][:n] == 0).all() and (jets["event"][:n] == np.arange(n)).all()
    for i in (0, 7, n - 1):
        pt = np.hypot(t["part_px"][i], t["part_py"][i])
        order = np.argsort(-pt, kind="stable")[:32]
        row = x[i][mask[i]]
        assert mask[i].sum() == min(len(pt), 32)
        np.testing.assert_allclose(row[:, names.index("part_deta")], t["part_deta"][i][order],
                                   atol=2e-5)  # fmt: skip
        np.testing.assert_allclose(row[:, names.index("part_pt_log")],
                                   (np.log(pt[order]) - 1.7) * 0.7, rtol=1e-5)  # fmt: skip
        np.testing.assert_array_equal(row[:, names.index("part_charge")],
                                      t["part_charge"][i][order])  # fmt: skip
        np.testing.assert_allclose(row[:, names.index("part_d0")],
                                   np.tanh(t["part_d0val"][i][order]), atol=1e-7)  # fmt: skip
    np.testing.assert_allclose(jets["pt"][:n], t["jet_pt"], rtol=1e-6)
    np.testing.assert_allclose(jets["mass"][:n], t["jet_sdmass"], rtol=2e-3, atol=0.05)


def test_jetnet_features_are_the_stored_ones(sources, imported) -> None:
    _, x, mask, jets = _read(imported["jetnet"]["test"])
    with h5py.File(sources["jetnet"]["files"]["test"]["zjet_q"]) as f:
        pf, jf = f["particle_features"][:], f["jet_features"][:]
    q = jets["process"] == 1
    np.testing.assert_array_equal(x[q], pf)  # written p_T-ordered: stored as they are
    np.testing.assert_array_equal(mask[q], pf[..., 3] == 1)
    np.testing.assert_array_equal(jets["pt"][q], jf[:, 0])
    np.testing.assert_array_equal(jets["mass"][q], jf[:, 2])


def test_toptag_features_are_the_stored_four_momenta(sources, imported) -> None:
    import pandas as pd

    _, x, mask, jets = _read(imported["toptag"]["test"])
    df = pd.read_hdf(sources["toptag"]["files"]["test"]["tbqq_tt"], key="table")
    top = df[df["is_signal_new"] == 1]
    rows = jets["event"][jets["process"] == 1]
    np.testing.assert_array_equal(rows, top.index.to_numpy())
    e = top[[f"E_{i}" for i in range(64)]].to_numpy()
    px = top[[f"PX_{i}" for i in range(64)]].to_numpy()
    got = x[jets["process"] == 1]
    np.testing.assert_array_equal(got[..., 0], e)
    np.testing.assert_array_equal(got[..., 1], px)
    np.testing.assert_array_equal(mask[jets["process"] == 1], e > 0)
    allpx = top[[f"PX_{i}" for i in range(200)]].to_numpy().sum(axis=1)
    allpy = top[[f"PY_{i}" for i in range(200)]].to_numpy().sum(axis=1)
    np.testing.assert_allclose(jets["pt"][jets["process"] == 1], np.hypot(allpx, allpy), rtol=1e-5)


def test_toptag_table_format_store_is_read_through_pandas(sources, tmp_path) -> None:
    """A store written with format="table" (PyTables' appendable frame) gives the same
    split as the fixed-format release."""
    labels = [0, 1, 1, 0, 1, 0, 0, 1]
    fixed, table = tmp_path / "fixed.h5", tmp_path / "table.h5"
    write_toptag(fixed, labels, seed=9)
    write_toptag(table, labels, seed=9, fmt="table")
    out = {}
    for p in (fixed, table):
        ds = import_cfg("toptag_h5", {"test": {"qcd_dijet": str(p), "tbqq_tt": str(p)}},
                        ["qcd_dijet", "tbqq_tt"], 16)  # fmt: skip
        import_split(ds, "tt", "test", tmp_path / f"{p.stem}_out.h5")
        out[p.stem] = _read(tmp_path / f"{p.stem}_out.h5")
    for a, b in zip(out["fixed"][1:], out["table"][1:], strict=True):
        if isinstance(a, dict):
            for k in a:
                np.testing.assert_array_equal(a[k], b[k])
        else:
            np.testing.assert_array_equal(a, b)


def test_quarkgluon_pid_flags_and_ordering(sources, imported) -> None:
    """pid_kin from (p_T, y, φ, PDG id): ParT's charge and flags per PDG id, particles
    p_T-ordered (the release stores them unordered), the jet the sum of all particles."""
    attrs, x, mask, jets = _read(imported["quarkgluon"]["test"])
    names = attrs["feature_names"]
    with np.load(sources["quarkgluon"]["files"]["test"]["zjet_q"]) as npz:
        X, y = npz["X"], npz["y"]
    quark = np.flatnonzero(y == 1)
    got = x[jets["process"] == 0]
    np.testing.assert_array_equal(jets["event"][jets["process"] == 0], quark)
    for k, i in enumerate(quark[:5]):
        real = X[i, :, 0] > 0
        order = np.argsort(-X[i, real, 0], kind="stable")
        pid = X[i, real, 3][order].astype(int)
        row = got[k][mask[jets["process"] == 0][k]]
        np.testing.assert_array_equal(row[:, names.index("part_charge")],
                                      [CHARGE[p] for p in pid])  # fmt: skip
        np.testing.assert_array_equal(row[:, names.index("part_isPhoton")], pid == 22)
        np.testing.assert_array_equal(row[:, names.index("part_isNeutralHadron")],
                                      np.isin(np.abs(pid), (130, 2112)))  # fmt: skip
        pt_log = (np.log(X[i, real, 0][order]) - 1.7) * 0.7
        np.testing.assert_allclose(row[:, names.index("part_pt_log")], pt_log, rtol=1e-5)
        px = (X[i, real, 0] * np.cos(X[i, real, 2])).sum()
        py = (X[i, real, 0] * np.sin(X[i, real, 2])).sum()
        assert jets["pt"][jets["process"] == 0][k] == pytest.approx(np.hypot(px, py), rel=1e-6)


def test_chunks_and_file_caps_cut_files_into_parts(sources, tmp_path) -> None:
    """jets_per_chunk cuts a file into row ranges (same jets, same order); max_jets_per_file
    keeps the first rows of each file."""
    ds = sources["jetnet"]
    whole, parts, capped = (tmp_path / f"{k}.h5" for k in ("whole", "parts", "capped"))
    import_split(ds, "jn", "test", whole)
    import_split({**ds, "jets_per_chunk": 7}, "jn", "test", parts)
    stats = import_split({**ds, "max_jets_per_file": 10}, "jn", "test", capped)
    a, b = _read(whole), _read(parts)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[3]["event"], b[3]["event"])
    assert stats["jets"] == {"zjet_g": 10, "zjet_q": 10}
    assert set(np.unique(b[3]["chunk"])) == set(range(6))  # 40 rows in 7s


# ----------------------------------------------------------------------------- refusals


def test_mislabelled_files_are_refused_before_any_job(sources, tmp_path) -> None:
    """A JetClass Hbb file under the QCD process, a JetNet q.hdf5 under the gluon process,
    a top file holding only QCD jets under the top process: refused by the config check,
    naming the file and the label, and by the import itself."""
    jc = copy.deepcopy(sources["jetclass"])
    hbb = jc["files"]["train"]["hbb_zh"]
    jc["files"]["train"]["qcd_zjet"] = hbb
    with pytest.raises(ImportConfigError, match=re.escape(f"files.train.qcd_zjet: {hbb}: no 'QCD' "
                                                          "jets (label_QCD == 1)")):  # fmt: skip
        parse_config(jc)
    with pytest.raises(ImportFileError, match=re.escape(hbb) + r".*it holds \{'Hbb': 60\}"):
        import_split(jc, "x", "train", tmp_path / "x.h5")
    jn = copy.deepcopy(sources["jetnet"])
    jn["files"]["test"]["zjet_g"] = jn["files"]["test"]["zjet_q"]
    with pytest.raises(ImportConfigError, match="q.hdf5: the file name says JetNet class 'q'"):
        parse_config(jn)
    qcd_only = write_toptag(tmp_path / "qcd_only.h5", [0, 0, 0], seed=1)
    tt = import_cfg("toptag_h5", {"test": {"tbqq_tt": str(qcd_only)}}, ["qcd_dijet", "tbqq_tt"], 8)
    with pytest.raises(ImportConfigError, match=r"qcd_only.h5: no 'top' jets \(is_signal_new =="):
        parse_config(tt)


def test_jetclass_labels_must_be_one_hot(tmp_path) -> None:
    import uproot

    path = write_jetclass(tmp_path / "two.root", ["QCD", "Hbb", "QCD"], seed=3)
    with uproot.open(path) as f:
        tree = f["tree"].arrays(library="np")
    tree["label_Hbb"][0] = True  # jet 0: QCD and Hbb
    with uproot.recreate(path) as f:
        f["tree"] = {k: (ak.Array([a.tolist() for a in v]) if v.dtype == object else v)
                     for k, v in tree.items()}  # fmt: skip
    ds = import_cfg("jetclass_root", {"test": {"qcd_zjet": str(path)}}, ["qcd_zjet"], 8)
    with pytest.raises(ImportConfigError, match=r"two.root: row 0 has 2 of the branches"):
        parse_config(ds)


@pytest.mark.parametrize(
    "fmt, make, message",
    [
        ("jetclass_root", lambda d: write_jetclass(d / "a.root", ["QCD"] * 3, 1,
                                                   drop=("part_d0err", "label_Tbl")),
         r"a.root: tree 'tree' lacks the branches \['part_d0err', 'label_Tbl'\]"),
        ("jetclass_root", lambda d: write_jetnet(d / "a.root", 3, 0, 1),
         r"a.root: cannot be read as a ROOT file"),
        ("jetnet_h5", lambda d: _drop_h5(write_jetnet(d / "g.hdf5", 3, 0, 1), "jet_features"),
         r"g.hdf5: lacks the JetNet datasets \['jet_features'\]"),
        ("jetnet_h5", lambda d: _jetnet_5col(d / "g.hdf5"),
         r"g.hdf5: jet_features has shape \(3, 5\); JetNet stores \[3 jets, 4\]"),
        ("toptag_h5", lambda d: _toptag_without(d / "t.h5", ["is_signal_new", "PZ_3"]),
         r"t.h5: table 'table' lacks the columns \['PZ_3', 'is_signal_new'\]"),
        ("toptag_h5", lambda d: _renamed_key(d / "t.h5"),
         r"t.h5: no pandas key 'table'; it holds \['df'\]"),
        ("quarkgluon_npz", lambda d: _npz_without_y(d / "QG_jets.npz"),
         r"QG_jets.npz: lacks the arrays \['y'\]; it holds \['X'\]"),
    ],
)
def test_malformed_files_are_refused_naming_file_and_item(fmt, make, message, tmp_path) -> None:
    """Checked at config time (validate_config), before any job, with the dataset's key."""
    path = make(tmp_path)
    procs = {"jetclass_root": "qcd_zjet", "jetnet_h5": "zjet_g", "toptag_h5": "qcd_dijet",
             "quarkgluon_npz": "zjet_g"}  # fmt: skip
    ds = import_cfg(fmt, {"train": {procs[fmt]: str(path)}}, [procs[fmt]], 8)
    cfg = {"seed": 1, "datasets": {"real": ds}, "experiments": {}}
    with pytest.raises(ConfigError, match=r"config key datasets\.real\.files\.train\.\w+: .*"
                                          + message):  # fmt: skip
        validate_config(cfg)


def test_unknown_pdg_id_is_refused_when_reading(tmp_path) -> None:
    path = write_qg(tmp_path / "QG_jets.npz", [1, 0, 1], seed=1, pid=0.3)
    ds = import_cfg("quarkgluon_npz", {"test": {"zjet_q": str(path)}}, ["zjet_q"], 8)
    with pytest.raises(ImportFileError, match=r"QG_jets.npz: X\[..., 3\] holds PDG ids \[0\]"):
        import_split(ds, "qg", "test", tmp_path / "out.h5")


def _drop_h5(path: Path, key: str) -> Path:
    with h5py.File(path, "a") as f:
        del f[key]
    return path


def _jetnet_5col(path: Path) -> Path:
    write_jetnet(path, 3, 0, 1)
    with h5py.File(path, "a") as f:
        jf = f["jet_features"][:]
        del f["jet_features"]
        f["jet_features"] = np.concatenate([np.zeros((3, 1), np.float32), jf], axis=1)
    return path


def _toptag_without(path: Path, columns: list[str]) -> Path:
    frame, _ = toptag_frame([0, 1, 0], seed=2)
    frame.drop(columns=columns).to_hdf(path, key="table", mode="w")
    return path


def _renamed_key(path: Path) -> Path:
    frame, _ = toptag_frame([0, 1], seed=2)
    frame.to_hdf(path, key="df", mode="w")
    return path


def _npz_without_y(path: Path) -> Path:
    np.savez(path, X=np.zeros((2, 3, 4)))
    return path


# ----------------------------------------------------------------------------- config


def test_config_with_an_imported_dataset_validates_and_names_bad_keys(sources) -> None:
    """An experiment switched to an imported dataset validates like the generated one;
    a pattern matching no file, a process without a class and an unknown key are refused
    before any job."""
    from jetforge.datasets import dataset_splits, feature_set

    ds = sources["toptag"]
    exp = {"dataset": "toptag_real", "splits": {"pretrain": "train", "probe_train": "train",
                                                 "probe_test": "test"},
           "backbone": {"name": "normformer", "dim": 16},
           "pretrain": {"method": "mpm", "target": "regression", "batch_size": 8, "epochs": 1,
                        "lr": 1e-3},
           "finetune": {"tasks": {"top": {"signal": "tbqq_tt", "background": "qcd_dijet"}},
                        "modes": ["supervised"], "n_train": [10], "epochs": 1,
                        "batch_size": 8, "lr": 1e-3}}  # fmt: skip
    cfg = {"seed": 1, "datasets": {"toptag_real": ds}, "experiments": {"tt": exp}}
    validate_config(cfg)
    assert feature_set(ds) == "kinematic4" and dataset_splits(ds) == ["train", "test"]
    bad = copy.deepcopy(cfg)
    bad["datasets"]["toptag_real"]["files"]["train"]["qcd_dijet"] = "/nonexistent/*.h5"
    bad["datasets"]["toptag_real"]["chunks"] = {"train": {"qcd_dijet": 1}}
    bad["experiments"]["tt"]["splits"]["probe_test"] = "val"
    with pytest.raises(ConfigError) as err:
        validate_config(bad)
    msg = str(err.value)
    assert "datasets.toptag_real: unknown key(s) ['chunks']" in msg
    bad["datasets"]["toptag_real"].pop("chunks")
    with pytest.raises(ConfigError) as err:
        validate_config(bad)
    msg = str(err.value)
    assert "files.train.qcd_dijet: pattern '/nonexistent/*.h5' matches no file" in msg
    assert "splits.probe_test: dataset 'toptag_real' has no split 'val'" in msg
    other = copy.deepcopy(cfg)
    other["datasets"]["toptag_real"]["processes"].append("wqq_wjet")
    with pytest.raises(ConfigError, match=r"labels: process 'wqq_wjet' has no toptag_h5 class"):
        validate_config(other)


# ----------------------------------------------------------------------------- end to end


TINY = {
    "backbone": {"name": "normformer", "dim": 16, "n_blocks": 1, "n_heads": 2, "mlp_dim": 32,
                 "dropout": 0.0},
    "pretrain": {"method": "mpm", "target": "regression", "mask_ratio": 0.3, "head_heads": 2,
                 "head_mlp_dim": 32, "batch_size": 16, "epochs": 2, "lr": 1e-3,
                 "val_fraction": 0.2},
    "splits": {"pretrain": "train", "probe_train": "train", "probe_test": "test"},
    "probe": {"k": 5, "n_jets": 200, "random_inits": 2},
}  # fmt: skip


def run_probe_table(dataset: str, train: Path, test: Path, out: Path) -> list[dict]:
    """Pre-train (MPM regression, tiny NormFormer) and probe, through the workflow's entry
    points, as the rules pretrain and probe_table run them."""
    from jetforge.evaluation.probe_table import probe_table
    from jetforge.workflow import experiments

    exp = {**copy.deepcopy(TINY), "dataset": dataset}
    experiments.pretrain(exp, str(train), str(out / "default" / "r0"), "default", 0, 7, "cpu")
    model = str(out / "default" / "r0" / "model.pt")
    return probe_table(dataset, exp, [model], str(train), str(test), str(out / "probes.csv"),
                       str(out / "probes.md"), seed=7)  # fmt: skip


def test_an_experiment_runs_end_to_end_on_an_imported_dataset(imported, tmp_path) -> None:
    """The imported JetNet files through pre-training and the probe table: k-NN and linear
    probes of the pre-trained backbone and of random ones, on the imported jets."""
    files = imported["jetnet"]
    rows = run_probe_table("jetnet_real", files["train"], files["test"], tmp_path)
    assert [r["encoder"] for r in rows] == ["pre-trained r0", "random init i0", "random init i1",
                                            "random init (mean of 2)"]  # fmt: skip
    assert all(r["n_train"] == 120 and r["n_test"] == 80 for r in rows)
    assert all(0 <= r["knn_acc"] <= 1 and 0 <= r["linear_auc"] <= 1 for r in rows)
    # the toy classes differ in multiplicity and width: the probes see it
    assert rows[0]["linear_acc"] > 0.8
    assert (tmp_path / "probes.md").read_text().count("|") > 10


def test_workflow_imports_a_release_beside_generated_datasets(sources, tmp_path) -> None:
    """Snakemake: an import dataset's split comes from rule import_split, a generated one's
    from merge_split (disjoint {dataset} constraints), and `datasets` imports and validates
    the release for real."""
    import subprocess
    import sys

    import yaml

    repo = Path(__file__).resolve().parents[1]
    over = tmp_path / "import.yaml"
    over.write_text(yaml.safe_dump({"datasets": {"toptag_real": sources["toptag"]}}))
    base = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"),
            "--directory", str(tmp_path / "run")]  # fmt: skip
    dry = subprocess.run(
        [*base, "--configfile", str(repo / "config" / "config.yaml"), str(over), "-n",
         "results/datasets/toptag_real/test.h5", "results/datasets/toptag/test.h5"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = re.findall(r"^\s*rule (\w+):", dry.stdout, re.M)
    assert jobs.count("import_split") == 1 and jobs.count("merge_split") == 1
    only = tmp_path / "only.yaml"
    only.write_text(yaml.safe_dump({"seed": 1, "datasets": {"toptag_real": sources["toptag"]},
                                    "experiments": {}}))  # fmt: skip
    run = subprocess.run([*base, "--configfile", str(only), "--cores", "1", "datasets"],
                         capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "run" / "results" / "datasets" / "toptag_real"
    assert {p.name for p in out.iterdir()} == {"train.h5", "test.h5", "validation.json"}
    with h5py.File(out / "test.h5") as f:
        assert read_attrs(f)["import_format"] == "toptag_h5"


def test_the_driver_checks_patterns_without_the_readers(sources, tmp_path) -> None:
    """The Snakemake driver's env has no awkward, h5py, uproot or pandas: there the config
    check still refuses a pattern matching no file, and leaves the file contents to the job
    (which makes the same checks before it writes anything)."""
    import json
    import subprocess
    import sys

    cfg = {"seed": 1, "experiments": {}, "datasets": {
        "jc": sources["jetclass"], "tt": sources["toptag"],
        "qg": {**sources["quarkgluon"], "files": {"train": {"zjet_q": "/nonexistent/QG_*.npz"}}},
    }}  # fmt: skip
    code = (
        "import sys, json\n"
        "for m in ('awkward', 'h5py', 'uproot', 'pandas', 'scipy', 'torch'):\n"
        "    sys.modules[m] = None\n"
        "from jetforge.config import ConfigError, validate_config\n"
        "from jetforge.datasets.importers import split_sources\n"
        f"cfg = json.loads({json.dumps(json.dumps(cfg))})\n"
        "print(len(split_sources(cfg['datasets']['tt'], 'train')))\n"
        "try:\n    validate_config(cfg)\nexcept ConfigError as e:\n    print(e)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert lines[0] == "1"
    errors = [ln for ln in lines if ln.startswith("  - ")]
    assert errors == ["  - config key datasets.qg.files.train.zjet_q: pattern "
                      "'/nonexistent/QG_*.npz' matches no file (relative paths start at "
                      f"{Path.cwd()})"]  # fmt: skip
