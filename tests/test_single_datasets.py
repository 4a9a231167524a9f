"""Single-shower datasets: real chunks per dataset kind, truth labelling, errors, validation."""

from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import yaml

from jetforge.datasets.single import (
    DatasetConfigError,
    build_jets_chunk,
    generate_chunk_lhe,
    parse_config,
    particle_candidates,
)
from jetforge.datasets.validation import (
    PDG_MASS,
    PhysicsValidationError,
    check_mass_peaks,
    check_multiplicity,
    validate_dataset,
)
from jetforge.detector import known_cards
from jetforge.generation.hard import NoTaggedObject, tagged_objects
from jetforge.generation.processes import get_process
from jetforge.io.h5 import JET_COLUMNS, read_attrs
from jetforge.io.lhe import LHEEvent, LHEParticle, read_lhe
from jetforge.jets.featuresets import get_feature_set

REPO = Path(__file__).resolve().parents[1]

# (dataset, process, hard events): processes with a high jet efficiency keep this fast;
# toptag's t → bqq' needs all three quarks inside R = 0.8 at pT ~ 600 GeV (~20 %).
CASES = [
    ("jetclass", "wqq_wjet", 30),
    ("jetnet", "zjet_g", 20),
    ("rodem", "tbqq_tt", 30),
    ("toptag", "tbqq_tt", 60),
    ("quarkgluon", "zjet_q", 60),
]


@pytest.fixture(scope="module")
def configs() -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["datasets"]
    for ds in cfg.values():
        if ds["detector"] not in known_cards() and ds["detector"] != "none":
            ds["detector"] = "cms_eflow"  # atlas_eflow is written by another engineer
    return cfg


@pytest.fixture(scope="module")
def chunks(tmp_path_factory, configs) -> dict:
    """One real chunk per dataset kind, built lazily and cached for the module."""
    cache: dict = {}
    root = tmp_path_factory.mktemp("single")

    def get(dataset: str, process: str, n: int):
        key = (dataset, process)
        if key not in cache:
            ds = copy.deepcopy(configs[dataset])
            ds["events_per_chunk"] = n
            lhe = root / f"{dataset}_{process}.lhe"
            generate_chunk_lhe(lhe, ds, dataset, process, "test", 3, 11)
            out = root / f"{dataset}_{process}.h5"
            stats = build_jets_chunk(lhe, out, ds, dataset, process, "test", 3, 11)
            cache[key] = (lhe, out, stats, ds)
        return cache[key]

    return get


@pytest.mark.parametrize(("dataset", "process", "n"), CASES)
def test_chunk_follows_data_contract(chunks, dataset, process, n):
    lhe, path, stats, ds = chunks(dataset, process, n)
    fs = get_feature_set(ds["features"])
    with h5py.File(path) as f:
        attrs = read_attrs(f)
        x, mask = f["particles"][:], f["mask"][:]
        jets = {k: f["jets"][k][:] for k in f["jets"]}
        assert {k: f["jets"][k].dtype for k in JET_COLUMNS} == {
            k: np.dtype(v) for k, v in JET_COLUMNS.items()
        }
    n_jets = stats["jets"]
    assert n_jets > 0 and x.shape == (n_jets, ds["n_particles"], len(fs.feature_names))
    assert x.dtype == np.float32 and mask.dtype == bool and mask.shape == x.shape[:2]
    assert attrs["feature_names"] == list(fs.feature_names) and attrs["feature_set"] == fs.name
    assert attrs["variant_names"] == ["nominal"] and attrs["process_names"] == ds["processes"]
    assert attrs["class_names"][jets["label"][0]] == get_process(process).label
    assert (
        attrs["dataset"] == dataset
        and attrs["split"] == "test"
        and attrs["detector"] == ds["detector"]
    )
    assert (attrs["detector_sha256"] == "") == (ds["detector"] == "none")
    # padding: zeros after the real constituents, which come first
    assert (
        np.all(x[~mask] == 0)
        and np.all(mask[:, :1])
        and np.all(np.diff(mask.astype(int), axis=1) <= 0)
    )
    assert mask.sum(axis=1).max() <= ds["n_particles"]
    # constituents sorted by pT, descending (recovered from the features)
    p4 = fs.four_momenta(x, mask, {k: jets[k] for k in ("pt", "eta", "phi")})
    pt = np.where(mask, np.hypot(p4["px"], p4["py"]), -1.0)
    assert np.all(np.diff(pt, axis=1)[mask[:, 1:]] <= 1e-3 * pt[:, :-1][mask[:, 1:]])
    # V = 1: one row per hard event, its own pair
    assert np.all(jets["variant"] == 0) and len(np.unique(jets["pair_id"])) == n_jets
    assert np.all(jets["chunk"] == 3) and np.all((jets["event"] >= 0) & (jets["event"] < n))
    assert np.all(jets["process"] == ds["processes"].index(process))
    # the paper's jet selection
    cuts = ds["jets"]
    assert np.all((jets["pt"] >= cuts["pt_min"]) & (jets["pt"] < cuts["pt_max"]))
    if "eta_max" in cuts:
        assert np.all(np.abs(jets["eta"]) < cuts["eta_max"])
    else:
        mt = np.hypot(jets["pt"], jets["mass"])
        assert np.all(
            np.abs(np.arcsinh(jets["pt"] * np.sinh(jets["eta"]) / mt)) < cuts["y_max"] + 1e-4
        )
    assert np.all(np.isfinite(x))
    # N2 is computed only where the dataset asks for it, else NaN ("not computed")
    assert np.all(np.isfinite(jets["n2"]) == bool(ds.get("n2", True)))
    # every jet contains the truth objects of its hard event
    _, events = read_lhe(lhe)
    for ev, eta, phi in zip(jets["event"], jets["eta"], jets["phi"], strict=True):
        for obj in tagged_objects(events[ev], get_process(process)):
            dphi = (obj.phi - phi + math.pi) % (2 * math.pi) - math.pi
            assert math.hypot(obj.eta - eta, dphi) < cuts["match_dr"] + 1e-5


def test_top_jets_contain_b_q_qprime(chunks):
    lhe, path, _, _ = chunks("toptag", "tbqq_tt", 60)
    _, events = read_lhe(lhe)
    with h5py.File(path) as f:
        rows = f["jets/event"][:]
        assert np.all(f["jets/parton_pid"][:] == 6)
    for i in rows:
        top, *decay = tagged_objects(events[i], get_process("tbqq_tt"))
        assert abs(top.pid) == 6 and len(decay) == 3
        ids = sorted(abs(p.pid) for p in decay)
        assert 5 in ids and all(1 <= i <= 5 for i in ids)
        # the two light quarks are the W's daughters, the W is the top's
        w_kids = [p for p in decay if abs(events[i].particles[p.mother1 - 1].pid) == 24]
        assert len(w_kids) == 2 and np.sign(sum(p.pid for p in w_kids)) in (np.sign(top.pid), 0)


def _particle(pid, status, m1, pt=100.0, eta=0.0, phi=0.0, m=0.0):
    px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
    e = math.sqrt(px * px + py * py + pz * pz + m * m)
    return LHEParticle(pid, status, m1, max(2, m1), 0, 0, px, py, pz, e, m)


def test_decay_chain_matching_on_constructed_events():
    # g g → t t̄; t → W+ b, W+ → u d̄ (hadronic); t̄ → W- b̄, W- → μ- ν̄ (leptonic)
    parts = [
        _particle(21, -1, 0), _particle(21, -1, 0),
        _particle(6, 2, 1, eta=1.5, m=173), _particle(-6, 2, 1, eta=-0.3, m=173),
        _particle(24, 2, 3, eta=1.4, m=80), _particle(5, 1, 3, eta=1.6),
        _particle(-24, 2, 4, eta=-0.2, m=80), _particle(-5, 1, 4, eta=-0.4),
        _particle(2, 1, 5, eta=1.3), _particle(-1, 1, 5, eta=1.5),
        _particle(13, 1, 7, eta=-0.1), _particle(-14, 1, 7, eta=-0.25),
    ]  # fmt: skip
    ev = LHEEvent(parts)
    had = tagged_objects(ev, get_process("tbqq_tt"))
    assert [p.pid for p in had] == [6, 5, 2, -1]  # t, b, q, q (record order)
    lep = tagged_objects(ev, get_process("tblv_tt"))
    assert [p.pid for p in lep] == [-6, -5, 13]  # the neutrino identifies but is not matched
    # an event with both tops hadronic has no t → bℓν
    parts_had = [*parts[:10], _particle(1, 1, 7, eta=-0.1), _particle(-2, 1, 7, eta=-0.25)]
    with pytest.raises(NoTaggedObject):
        tagged_objects(LHEEvent(parts_had), get_process("tblv_tt"))
    # ...and both qualify for t → bqq': the more central one (t̄ at η = -0.3) is tagged
    assert tagged_objects(LHEEvent(parts_had), get_process("tbqq_tt"))[0].pid == -6
    # existing processes keep their behaviour: boson + direct daughters
    zh = [_particle(1, -1, 0), _particle(-1, -1, 0), _particle(25, 2, 1, m=125),
          _particle(23, 2, 1, m=91), _particle(5, 1, 3), _particle(-5, 1, 3),
          _particle(12, 1, 4), _particle(-12, 1, 4)]  # fmt: skip
    assert [p.pid for p in tagged_objects(LHEEvent(zh), get_process("hbb_zh"))] == [25, 5, -5]
    with pytest.raises(NoTaggedObject):
        tagged_objects(LHEEvent(zh), get_process("hcc_zh"))


def test_quark_and_gluon_jets_are_labelled_by_the_hard_parton(chunks):
    _, path, _, ds = chunks("quarkgluon", "zjet_q", 60)
    with h5py.File(path) as f:
        attrs = read_attrs(f)
        assert attrs["class_names"] == ["quark", "gluon"]
        assert np.all(f["jets/label"][:] == 0)
        assert np.all((f["jets/parton_pid"][:] >= 1) & (f["jets/parton_pid"][:] <= 5))
    gluon = copy.deepcopy(ds)
    gluon["events_per_chunk"] = 20
    from jetforge.generation.hard import generate_hard_events

    events, _ = generate_hard_events(get_process("zjet_g"), 20, parse_hard(gluon), 5, 14000.0)
    assert {abs(tagged_objects(e, get_process("zjet_g"))[0].pid) for e in events} == {21}


def parse_hard(ds):
    from jetforge.generation.hard import hard_cuts_for

    return hard_cuts_for(ds, ds["processes"][0])


def test_rerun_is_byte_identical(chunks, tmp_path):
    lhe, path, _, ds = chunks("toptag", "tbqq_tt", 60)
    again = tmp_path / "again.h5"
    build_jets_chunk(lhe, again, ds, "toptag", "tbqq_tt", "test", 3, 11)
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(path.read_bytes()).digest()


def test_particle_level_candidates_flags():
    keys = ("px", "py", "pz", "E", "pid", "charge", "vx", "vy", "vz")
    rows = [
        (10.0, 0.0, 1.0, 10.1, 211, 1.0, 0.0, 0.1, 0.0),
        (5.0, 1.0, 0.0, 5.1, 22, 0.0, 0.0, 0.0, 0.0),
        (3.0, 0.0, 0.0, 3.0, -11, 1.0, 0.0, 0.0, 0.0),
        (2.0, 0.0, 0.0, 2.0, 13, -1.0, 0.0, 0.0, 0.0),
        (4.0, 0.0, 0.0, 4.1, 130, 0.0, 0.0, 0.0, 0.0),
        (4.0, 0.0, 0.0, 4.1, -2112, 0.0, 0.0, 0.0, 0.0),
        (7.0, 0.0, 0.0, 7.0, 14, 0.0, 0.0, 0.0, 0.0),
    ]
    parts = ak.Array([[dict(zip(keys, r, strict=True)) for r in rows]])
    c = particle_candidates(parts)
    assert ak.num(c).tolist() == [6]  # the neutrino is gone
    flags = {
        f: ak.to_list(c[f][0]) for f in ("is_ch", "is_photon", "is_electron", "is_muon", "is_nh")
    }
    assert flags["is_ch"] == [1, 0, 0, 0, 0, 0] and flags["is_photon"] == [0, 1, 0, 0, 0, 0]
    assert flags["is_electron"] == [0, 0, 1, 0, 0, 0] and flags["is_muon"] == [0, 0, 0, 1, 0, 0]
    assert flags["is_nh"] == [0, 0, 0, 0, 1, 1]
    assert c.d0[0, 0] == pytest.approx(-0.1) and c.d0_err[0, 0] == 0  # true IP, no error


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("processes",), ["qcd_zjet", "no_such_process"], "unknown process 'no_such_process'"),
        (("features",), "part18", "unknown feature set 'part18'"),
        (("detector",), "delphes_fcc", "unknown detector card 'delphes_fcc'"),
        (("jets", "pt_min"), 2000.0, "jets.pt_min: value 2000.0 must be below pt_max"),
        (("hard_cuts", "pt_min"), 5000.0, "hard_cuts.*must be below pt_max"),
        (("jets", "y_max"), 1.7, "exactly one of eta_max"),
        (("shower", "variants"), {"a": [], "b": []}, "exactly one"),
        (("n_particles",), 0, "n_particles"),
    ],
)
def test_bad_configs_raise_clear_errors(configs, path, value, match):
    ds = copy.deepcopy(configs["jetclass"])
    node = ds
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(DatasetConfigError, match=match):
        parse_config(ds)


def test_per_process_hard_cuts_are_checked(configs):
    ds = copy.deepcopy(configs["jetclass"])
    ds["hard_cuts_by_process"] = {"tblv_tt": {"pt_min": 1500.0}}
    with pytest.raises(DatasetConfigError, match=r"hard_cuts_by_process\.tblv_tt"):
        parse_config(ds)


# ----------------------------------------------------------------------------- validation


def test_mass_peak_check_on_constructed_samples():
    rng = np.random.default_rng(0)
    good = {
        "wqq": rng.normal(PDG_MASS["W"] * 1.01, 6.0, 3000),
        "tbqq": rng.normal(PDG_MASS["top"] * 0.985, 12.0, 3000),
        # a QCD-like tail below the peak must not pull the estimate
        "hbb": np.concatenate(
            [rng.normal(PDG_MASS["Higgs"], 8.0, 2000), rng.exponential(40, 2000)]
        ),
        "qcd": rng.exponential(50, 3000),  # no resonance: not checked
    }
    res = check_mass_peaks(good)
    assert set(res) == {"wqq", "tbqq", "hbb"} and all(r["status"] == "ok" for r in res.values())
    assert res["wqq"]["rel_shift"] == pytest.approx(0.01, abs=0.008)
    assert res["hbb"]["rel_shift"] == pytest.approx(0.0, abs=0.01)
    with pytest.raises(
        PhysicsValidationError,
        match=r"zqq: jet-mass peak .* GeV is \+[56]\.\d % from the PDG Z mass",
    ):
        check_mass_peaks({"zqq": rng.normal(PDG_MASS["Z"] * 1.06, 6.0, 3000)})
    few = check_mass_peaks({"zqq": rng.normal(PDG_MASS["Z"] * 1.2, 6.0, 50)})
    assert few["zqq"]["status"] == "insufficient"
    # a mass recomputed from truncated constituents (JetNet: 30) is reported, not judged
    top = {"tbqq": rng.normal(PDG_MASS["top"] * 0.84, 12.0, 3000)}
    assert check_mass_peaks(top, truncated_fraction={"tbqq": 0.97})["tbqq"]["status"] == "truncated"
    with pytest.raises(PhysicsValidationError, match="tbqq"):
        check_mass_peaks(top, truncated_fraction={"tbqq": 0.2})


def test_multiplicity_check_on_constructed_samples():
    rng = np.random.default_rng(1)
    ok = check_multiplicity(rng.poisson(30, 500), rng.poisson(45, 500), n_max=128)
    assert ok["status"] == "ok" and ok["difference"] > 10
    with pytest.raises(PhysicsValidationError, match="gluon jets must have more"):
        check_multiplicity(rng.poisson(45, 500), rng.poisson(30, 500), n_max=128)
    res = check_multiplicity(np.full(100, 30), np.full(100, 30), n_max=30, min_jets=50)
    assert res["status"] == "saturated"


def test_w_mass_peak_of_a_real_particle_level_sample(tmp_path, configs):
    """Real W → qq' jets at particle level (JetNet setup, Monash + MPI): the soft-drop peak
    lies within 3 % of the PDG W mass. 250 events give ~200 jets; the bootstrap error of
    the peak is ~0.3 GeV (0.4 %), far inside the 3 % tolerance."""
    ds = copy.deepcopy(configs["jetnet"])
    ds["events_per_chunk"] = 250
    ds["n_particles"] = 128  # keep enough constituents for the multiplicity plot
    lhe, out = tmp_path / "w.lhe", tmp_path / "w.h5"
    generate_chunk_lhe(lhe, ds, "jetnet", "wqq_wjet", "val", 0, 2)
    build_jets_chunk(lhe, out, ds, "jetnet", "wqq_wjet", "val", 0, 2)
    res = validate_dataset(out, tmp_path / "val", min_jets=100)
    w = res["mass_peaks"]["wqq"]
    assert w["status"] == "ok", w
    assert abs(w["rel_shift"]) < 0.03 and w["peak_err"] < 0.01 * PDG_MASS["W"]
    assert res["level"] == "particle" and res["tolerance"] == 0.03
    for ext in ("png", "pdf"):
        assert (tmp_path / "val" / f"overview.{ext}").stat().st_size > 0
    assert (tmp_path / "val" / "validation.json").exists()


def _paired_file(path, pt_a, pt_b, same_particles):
    from jetforge.io.h5 import JET_COLUMNS, write_jet_dataset

    n = len(pt_a)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4, 5)).astype(np.float32)
    xb = x if same_particles else rng.normal(size=(n, 4, 5)).astype(np.float32)
    parts = np.stack([x, xb], axis=1).reshape(2 * n, 4, 5)
    jets = {k: np.zeros(2 * n) for k in JET_COLUMNS}
    jets["pt"] = np.stack([pt_a, pt_b], axis=1).reshape(-1)
    jets["label"] = np.repeat(np.arange(n) % 2, 2)
    attrs = {"feature_names": list("abcde"), "class_names": ["q", "g"], "process_names": ["p"],
             "variant_names": ["fork_a", "fork_b"], "dataset": "hadfork"}
    write_jet_dataset(path, parts, np.ones((2 * n, 4), bool), jets, attrs)


def test_pair_validation_measures_correlation_and_catches_copies(tmp_path):
    from jetforge.datasets.validation import validate_pairs

    rng = np.random.default_rng(3)
    pt = rng.uniform(50, 200, 300)
    _paired_file(tmp_path / "ok.h5", pt, pt * rng.normal(1, 0.1, 300), same_particles=False)
    res = validate_pairs(tmp_path / "ok.h5", tmp_path / "ok")
    assert res["status"] == "ok" and 0.9 < res["pt_correlation"] < 1.0
    assert (tmp_path / "ok" / "overview.png").stat().st_size > 0
    _paired_file(tmp_path / "un.h5", pt, rng.uniform(50, 200, 300), same_particles=False)
    with pytest.raises(PhysicsValidationError, match="correlation"):
        validate_pairs(tmp_path / "un.h5", tmp_path / "un")
    _paired_file(tmp_path / "copy.h5", pt, pt, same_particles=True)
    with pytest.raises(PhysicsValidationError, match="identical"):
        validate_pairs(tmp_path / "copy.h5", tmp_path / "copy")
