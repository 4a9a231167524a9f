"""Tests of the Delphes route (jetforge.detector.delphes).

Most of what is tested is everything around the DelphesHepMC3 binary, so that it runs
without one:

* the ROOT reader, on files written with uproot in Delphes' branch layout (``Delphes`` tree,
  ``EFlowTrack.PT`` ... leaves with ``EFlowTrack_size`` counters, Delphes' float32/int32
  types); uproot's recursive lookup of ``EFlowTrack.PT`` is the same call that finds the leaf
  inside a real split ``EFlowTrack`` TClonesArray branch;
* the HepMC3 writer, read back with pyhepmc (HepMC3's own C++ reader) and with a line-by-line
  transcription of the event bookkeeping of Delphes' ``DelphesHepMC3Reader`` (the part that
  decides where one event ends and which particles are stable);
* ``run_delphes`` / ``simulate_delphes`` plumbing, with a missing executable and with a
  clearly labelled *stand-in* script that honours DelphesHepMC3's command line, refuses an
  existing output (ROOT ``CREATE``) and writes the Delphes tree layout without any physics.

The real route (``test_real_*``) runs when ``DelphesHepMC3`` is on PATH (built from Delphes'
public source against the PyPI ROOT wheel: docs/validation/delphes.md) and is skipped
otherwise: the output contract through the registry, a card that ``source``s a sibling, and
an RS3L chunk built with ``detector: delphes_cms``.
"""

from __future__ import annotations

import math
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from jetforge.detector import DETECTORS, load_card, simulate
from jetforge.detector.delphes import (
    DEFAULT_BRANCHES,
    PION_MASS_GEV,
    PSEUDO_MOTHER_PID,
    DelphesNotFoundError,
    DelphesOutputError,
    DelphesRunError,
    find_executable,
    parse_delphes_card,
    read_delphes_eflow,
    resolve_delphes_card,
    run_delphes,
    simulate_delphes,
    write_hepmc3,
)
from jetforge.detector.eflow import OUTPUT_FIELDS, CardError

FIELDS = ("px", "py", "pz", "E", "pid", "charge", "vx", "vy", "vz")


def _events(rows: list[list[tuple]]) -> ak.Array:
    """Format-2 events from (px, py, pz, E, pid, charge, vx, vy, vz) tuples."""
    return ak.Array([[dict(zip(FIELDS, r, strict=True)) for r in ev] for ev in rows])


def _massive(px: float, py: float, pz: float, m: float, pid: int, q: float, v=(0.0, 0.0, 0.0)):
    return (px, py, pz, math.sqrt(px * px + py * py + pz * pz + m * m), pid, q, *v)


@pytest.fixture(scope="module")
def toy_events() -> ak.Array:
    """Prompt and displaced particles, two sharing a displaced vertex, and an empty event."""
    return _events(
        [
            [
                _massive(10.0, 2.0, 5.0, 0.13957, 211, 1.0),
                _massive(-3.0, 1.0, -40.0, 0.0, 22, 0.0),
                _massive(1.0, -1.5, 0.5, 0.13957, -211, -1.0, (1.5, -0.7, 3.0)),
                _massive(2.0, -2.0, 1.0, 0.13957, 211, 1.0, (1.5, -0.7, 3.0)),
                _massive(0.3, 0.4, 0.1, 0.0, 22, 0.0, (0.0, 0.0, -12.5)),
            ],
            [],
            [_massive(50.0, -20.0, 100.0, 0.497611, 130, 0.0)],
        ]
    )


@pytest.fixture(scope="module")
def pythia_events() -> ak.Array:
    """Five real Pythia 8 dijet events (format 2), with Pythia's decay vertices."""
    from jetforge.generation.pythia_setup import make_pythia
    from jetforge.generation.shower import _charge_lookup, _fill_vertex

    py = make_pythia(["HardQCD:all = on", "PhaseSpace:pTHatMin = 400", "PartonLevel:MPI = off"], 3)
    prt = py.nextBatch(5, "none").prt
    fin = prt[prt.status > 0]
    return ak.zip(
        {
            "px": fin.p.px, "py": fin.p.py, "pz": fin.p.pz, "E": fin.p.e, "pid": fin.id,
            "charge": _charge_lookup(py, fin.id), "vx": _fill_vertex(fin.vProd.px),
            "vy": _fill_vertex(fin.vProd.py), "vz": _fill_vertex(fin.vProd.pz),
        }
    )  # fmt: skip


def _rows(particles: ak.Array, i: int) -> np.ndarray:
    """Event i as a [n, 8] array (pid, px, py, pz, E, vx, vy, vz), rows sorted."""
    ev = particles[i]
    names = ("pid", "px", "py", "pz", "E", "vx", "vy", "vz")
    cols = [ak.to_numpy(ev[f]).astype(np.float64) for f in names]
    arr = np.stack(cols, axis=1) if len(ev) else np.zeros((0, 8))
    return arr[np.lexsort(arr.T[::-1])]


# ---------------------------------------------------------------------------------------
# HepMC3 writer
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["toy_events", "pythia_events"])
def test_hepmc3_round_trip_with_pyhepmc(which, request, tmp_path) -> None:
    hep = pytest.importorskip("pyhepmc")
    particles = request.getfixturevalue(which)
    path = write_hepmc3(particles, tmp_path / "ev.hepmc")
    assert path == tmp_path / "ev.hepmc"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev.hepmc"]  # no temporaries left
    with hep.open(path) as f:
        read = list(f)
    assert len(read) == len(particles)
    for i, evt in enumerate(read):
        assert evt.event_number == i
        assert evt.momentum_unit == hep.Units.GEV and evt.length_unit == hep.Units.MM
        final = [p for p in evt.particles if p.status == 1]
        got = np.array(
            [
                [p.pid, *p.momentum, *list(p.production_vertex.position)[:3]]
                for p in final
            ]
        ).reshape(-1, 8)
        got = got[np.lexsort(got.T[::-1])]
        np.testing.assert_array_equal(got[:, 0], _rows(particles, i)[:, 0])
        np.testing.assert_allclose(got, _rows(particles, i), rtol=1e-14, atol=1e-14)
        # the graph: two beams, pseudo-mothers carrying their vertex's summed momentum
        assert sorted(p.pid for p in evt.particles if p.status == 4) == [2212, 2212]
        for p in evt.particles:
            if p.pid == PSEUDO_MOTHER_PID:
                kids = p.end_vertex.particles_out
                assert all(k.status == 1 for k in kids)
                np.testing.assert_allclose(
                    list(p.momentum), np.sum([list(k.momentum) for k in kids], axis=0), rtol=1e-12
                )
                assert any(x != 0 for x in list(p.end_vertex.position)[:3])


def _delphes_reader_view(path: Path) -> list[list[tuple]]:
    """What DelphesHepMC3Reader (classes/DelphesHepMC3Reader.cc) makes of a HepMC3 file.

    A transcription of its bookkeeping, not of its physics: an 'E' line sets the vertex and
    particle counters, every new vertex code (from a 'V' line or a 'P' line's production
    vertex field, 0 = root) decrements the vertex counter, every 'P' line the particle
    counter, and the event is handed to the modules when they reach (-1, 0). Stable particles
    are status 1 with the position of their production vertex. Returns, per event handed
    over, the stable (pid, px, py, pz, E, x, y, z) tuples.
    """
    events: list[list[tuple]] = []
    n_vtx, n_prt = -2, -1  # Clear()
    positions: dict[int, tuple[float, float, float]] = {}
    particles: list[tuple] = []
    for line in path.read_text().splitlines():
        key, rest = line[:1], line[1:].split()
        if key == "E":
            _, n_vtx, n_prt = (int(x) for x in rest[:3])
            positions, particles = {}, []
        elif key == "V":
            code = int(rest[0])
            pos = (0.0, 0.0, 0.0)
            if "@" in line:
                pos = tuple(float(x) for x in line.split("@")[1].split()[:3])
            if code not in positions:
                n_vtx -= 1
            positions[code] = pos
        elif key == "P" and n_prt > 0:
            n_prt -= 1
            _, out_code, pid = (int(x) for x in rest[:3])
            px, py, pz, e, _m = (float(x) for x in rest[3:8])
            if out_code not in positions:
                n_vtx -= 1
                positions[out_code] = (0.0, 0.0, 0.0)
            particles.append((pid, px, py, pz, e, out_code, int(rest[8])))
        if n_vtx == -1 and n_prt == 0:  # EventReady()
            events.append(
                [(p[0], *p[1:5], *positions[p[5]]) for p in particles if p[6] == 1]
            )
            n_vtx, n_prt = -2, -1
    return events


def test_hepmc3_file_splits_into_the_right_delphes_events(
    toy_events, pythia_events, tmp_path
) -> None:
    pytest.importorskip("pyhepmc")
    both = ak.concatenate([toy_events, pythia_events])
    path = write_hepmc3(both, tmp_path / "ev.hepmc")
    seen = _delphes_reader_view(path)
    assert len(seen) == len(both)  # the empty event too: nothing merged, nothing dropped
    for i, stable in enumerate(seen):
        got = np.array(stable, dtype=np.float64).reshape(-1, 8)
        got = got[np.lexsort(got.T[::-1])]
        np.testing.assert_allclose(got, _rows(both, i), rtol=1e-14, atol=1e-14)


def test_hepmc3_writer_rejects_bad_input(tmp_path) -> None:
    pytest.importorskip("pyhepmc")
    with pytest.raises(KeyError, match="vx"):
        bad = ak.Array([[{"px": 1.0, "py": 0.0, "pz": 0.0, "E": 1.0}]])
        write_hepmc3(bad, tmp_path / "x.hepmc")
    assert not (tmp_path / "x.hepmc").exists()


# ---------------------------------------------------------------------------------------
# ROOT reader
# ---------------------------------------------------------------------------------------

TRACKS = [  # PT, Eta, Phi, Mass, Charge, PID, D0, DZ, ErrorD0, ErrorDZ
    [(12.0, 0.3, 1.0, 0.13957, 1, 211, 0.01, -0.02, 0.003, 0.004),
     (40.0, -1.2, -2.5, 0.000511, -1, 11, -0.005, 0.03, 0.002, 0.002),
     (7.0, 2.0, 3.0, 0.105658, 1, -13, 0.2, 0.1, 0.01, 0.02)],
    [],
    [(3.0, 0.0, 0.0, 0.493677, -1, -321, 0.0, 0.0, 0.0, 0.0)],
]  # fmt: skip
PHOTONS = [[(5.0, 0.1, -1.0)], [(2.0, -0.5, 0.4), (1.0, 3.5, 2.0)], []]  # ET, Eta, Phi
NEUTRAL_HADRONS = [[(8.0, -0.2, 2.2)], [], [(30.0, 1.1, -0.3)]]


def _tower_record(rows: list[list[tuple]]) -> ak.Array:
    cols = {k: [[r[j] for r in ev] for ev in rows] for j, k in enumerate(("ET", "Eta", "Phi"))}
    arr = {k: ak.values_astype(ak.Array(v), np.float32) for k, v in cols.items()}
    arr["E"] = ak.values_astype(arr["ET"] * np.cosh(arr["Eta"]), np.float32)
    arr["Eem"] = arr["E"]  # extra Tower leaves the reader must ignore
    return ak.zip(arr)


def _track_record(with_mass: bool) -> ak.Array:
    names = ("PT", "Eta", "Phi", "Mass", "Charge", "PID", "D0", "DZ", "ErrorD0", "ErrorDZ")
    out = {}
    for j, k in enumerate(names):
        if k == "Mass" and not with_mass:
            continue
        col = ak.Array([[r[j] for r in ev] for ev in TRACKS])
        out[k] = ak.values_astype(col, np.int32 if k in ("Charge", "PID") else np.float32)
    return ak.zip(out)


def write_delphes_like(path: Path, *, with_mass: bool = True, drop: str | None = None) -> Path:
    """A ROOT file in Delphes' layout: tree 'Delphes', leaves 'Branch.Leaf', 'Branch_size'."""
    uproot = pytest.importorskip("uproot")
    branches = {
        "EFlowTrack": _track_record(with_mass),
        "EFlowPhoton": _tower_record(PHOTONS),
        "EFlowNeutralHadron": _tower_record(NEUTRAL_HADRONS),
    }
    branches.pop(drop, None)
    with uproot.recreate(path) as f:
        f.mktree(
            "Delphes",
            {k: v.type for k, v in branches.items()},
            field_name=lambda outer, inner: f"{outer}.{inner}",
            counter_name=lambda counted: f"{counted}_size",
        )
        f["Delphes"].extend(branches)
    return path


def test_reader_on_delphes_layout(tmp_path) -> None:
    path = write_delphes_like(tmp_path / "delphes.root")
    import uproot

    keys = uproot.open(path)["Delphes"].keys()
    assert "EFlowTrack.PT" in keys and "EFlowTrack_size" in keys  # Delphes' names
    out = read_delphes_eflow(path)
    assert out.fields == list(OUTPUT_FIELDS)
    assert ak.to_list(ak.num(out)) == [5, 2, 2]
    for f in OUTPUT_FIELDS:
        assert ak.flatten(out[f]).type.content.primitive == "float64"
    for i in range(3):
        ev = out[i]
        n_t, n_p = len(TRACKS[i]), len(PHOTONS[i])
        for k, (pt, eta, phi, m, q, pid, d0, dz, e0, ez) in enumerate(TRACKS[i]):
            c = ev[k]
            pt32, eta32, phi32, m32 = (float(np.float32(x)) for x in (pt, eta, phi, m))
            expect_p = (pt32 * math.cos(phi32), pt32 * math.sin(phi32), pt32 * math.sinh(eta32))
            assert (c.px, c.py, c.pz) == pytest.approx(expect_p, rel=1e-12)
            assert c.E == pytest.approx(math.sqrt(sum(x * x for x in expect_p) + m32**2), rel=1e-12)
            assert c.charge == q
            assert (c.is_electron, c.is_muon, c.is_ch) == (
                float(abs(pid) == 11), float(abs(pid) == 13), float(abs(pid) not in (11, 13))
            )
            assert c.is_photon == 0 and c.is_nh == 0
            ip = (c.d0, c.dz, c.d0_err, c.dz_err)
            assert ip == pytest.approx((d0, dz, e0, ez), rel=1e-6, abs=1e-9)
        for k, (et, eta, phi) in enumerate(PHOTONS[i] + NEUTRAL_HADRONS[i]):
            c = ev[n_t + k]
            is_photon = k < n_p
            assert (c.is_photon, c.is_nh) == (float(is_photon), float(not is_photon))
            assert c.charge == 0 and c.is_ch == 0 and c.d0 == 0 and c.d0_err == 0
            assert math.hypot(c.px, c.py) == pytest.approx(et, rel=1e-6)
            assert math.atan2(c.py, c.px) == pytest.approx(phi, abs=1e-6)
            assert c.E == pytest.approx(et * math.cosh(eta), rel=1e-6)
            assert c.E**2 - (c.px**2 + c.py**2 + c.pz**2) == pytest.approx(0.0, abs=1e-4 * c.E**2)


def test_reader_without_track_mass_uses_pid(tmp_path) -> None:
    out = read_delphes_eflow(write_delphes_like(tmp_path / "old.root", with_mass=False))
    tracks = out[out.charge != 0]
    p2 = tracks.px**2 + tracks.py**2 + tracks.pz**2
    mass = np.sqrt(ak.to_numpy(ak.flatten(tracks.E**2 - p2)).clip(0))
    # 211 -> pion, 11 -> electron, -13 -> muon, -321 -> kaon (PDG)
    np.testing.assert_allclose(mass, [PION_MASS_GEV, 0.000511, 0.105658, 0.493677], atol=2e-5)


@pytest.mark.parametrize("drop", ["EFlowPhoton", "EFlowTrack"])
def test_reader_names_missing_branch(tmp_path, drop) -> None:
    path = write_delphes_like(tmp_path / "partial.root", drop=drop)
    with pytest.raises(DelphesOutputError) as err:
        read_delphes_eflow(path)
    msg = str(err.value)
    assert str(path) in msg and f"'{drop}." in msg and "add Branch" in msg and "TreeWriter" in msg


def test_reader_names_missing_tree_and_file(tmp_path) -> None:
    uproot = pytest.importorskip("uproot")
    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f["Events"] = {"x": np.arange(3.0)}
    with pytest.raises(DelphesOutputError, match=r"other\.root.*no tree 'Delphes'"):
        read_delphes_eflow(path)
    with pytest.raises(FileNotFoundError, match="nope.root"):
        read_delphes_eflow(tmp_path / "nope.root")
    with pytest.raises(ValueError, match="branches must be"):
        read_delphes_eflow(path, branches=("EFlowTrack",))


# ---------------------------------------------------------------------------------------
# running Delphes: missing executable, stand-in executable
# ---------------------------------------------------------------------------------------


def test_card_and_registry() -> None:
    card, _ = load_card("delphes_cms")
    assert card["model"] == "delphes" and DETECTORS["delphes"] is simulate_delphes
    settings = parse_delphes_card(card)
    assert settings.delphes_card == "cards/delphes_card_CMS.tcl"
    assert settings.executable == "DelphesHepMC3" and settings.branches == DEFAULT_BRANCHES
    with pytest.raises(CardError, match="'delphes_card'"):
        parse_delphes_card({k: v for k, v in card.items() if k != "delphes_card"})
    with pytest.raises(CardError, match="'branches'"):
        parse_delphes_card({**card, "branches": ["EFlowTrack"]})


def test_missing_executable_fails_fast_and_writes_nothing(
    tmp_path, monkeypatch, toy_events
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    (tmp_path / "card.tcl").write_text("set ExecutionPath {}\n")
    (tmp_path / "in.hepmc").write_text("")
    out = tmp_path / "out" / "delphes.root"
    t0 = time.perf_counter()
    with pytest.raises(DelphesNotFoundError) as err:
        run_delphes(tmp_path / "card.tcl", tmp_path / "in.hepmc", out)
    assert time.perf_counter() - t0 < 1.0
    msg = str(err.value)
    hints = (
        "'DelphesHepMC3'", "conda env create -f envs/delphes.yaml",
        "mamba install -c conda-forge delphes", "github.com/delphes/delphes", "executable:",
    )  # fmt: skip
    for hint in hints:
        assert hint in msg
    assert not out.exists() and not out.parent.exists()
    with pytest.raises(DelphesNotFoundError, match="does not exist"):
        exe = str(tmp_path / "bin" / "Delphes")
        run_delphes(tmp_path / "card.tcl", tmp_path / "in.hepmc", out, executable=exe)
    # through the registry, as the workflow calls it: fails before writing any HepMC3
    card, _ = load_card("delphes_cms")
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("jetforge-delphes-*"))
    with pytest.raises(DelphesNotFoundError, match="conda-forge"):
        simulate(toy_events, card, np.random.default_rng(0))
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("jetforge-delphes-*")) == before


FAKE_DELPHES = '''\
#!{python}
"""STAND-IN for DelphesHepMC3, NOT Delphes: same command line and CREATE semantics; writes
the Delphes tree layout with every charged status-1 particle as an EFlowTrack, photons as
EFlowPhoton and other neutrals as EFlowNeutralHadron, unsmeared. Logs what it was given."""
import json, math, os, pathlib, sys

config, out, inp = sys.argv[1:4]
log = dict(argv=sys.argv[1:], cwd=os.getcwd(), config=pathlib.Path(config).read_text())
pathlib.Path(os.environ["FAKE_DELPHES_LOG"]).write_text(json.dumps(log))
if os.environ.get("FAKE_DELPHES_FAIL"):
    print("** ERROR: stand-in told to fail", file=sys.stderr)
    sys.exit(1)
if pathlib.Path(out).exists():
    print("** ERROR: can't create output file " + out, file=sys.stderr)
    sys.exit(1)
import awkward as ak, numpy as np, pyhepmc, uproot
Q = {{211: 1, 321: 1, 2212: 1, 11: -1, 13: -1}}
trk, pho, nh = [], [], []
with pyhepmc.open(inp) as f:
    for evt in f:
        t, p, n = [], [], []
        for x in evt.particles:
            if x.status != 1:
                continue
            px, py, pz, e = x.momentum
            pt = math.hypot(px, py)
            eta, phi = math.asinh(pz / pt), math.atan2(py, px)
            q = int(math.copysign(Q.get(abs(x.pid), 0), x.pid))
            if q:
                t.append(dict(PT=pt, Eta=eta, Phi=phi, Mass=x.generated_mass, Charge=q, PID=x.pid,
                              D0=0.0, DZ=0.0, ErrorD0=0.0, ErrorDZ=0.0))
            else:
                (p if x.pid == 22 else n).append(dict(ET=pt, Eta=eta, Phi=phi, E=e))
        trk.append(t); pho.append(p); nh.append(n)
def rec(rows, fields, ints=()):
    return ak.zip({{k: ak.values_astype(ak.Array([[r[k] for r in ev] for ev in rows]),
                                        np.int32 if k in ints else np.float32) for k in fields}})
b = {{"EFlowTrack": rec(trk, ["PT", "Eta", "Phi", "Mass", "Charge", "PID", "D0", "DZ", "ErrorD0",
                             "ErrorDZ"], ("Charge", "PID")),
      "EFlowPhoton": rec(pho, ["ET", "Eta", "Phi", "E"]),
      "EFlowNeutralHadron": rec(nh, ["ET", "Eta", "Phi", "E"])}}
with uproot.recreate(out) as f:
    f.mktree("Delphes", {{k: v.type for k, v in b.items()}},
             field_name=lambda o, i: o + "." + i, counter_name=lambda c: c + "_size")
    f["Delphes"].extend(b)
'''


@pytest.fixture()
def fake_install(tmp_path, monkeypatch) -> Path:
    """<prefix>/bin/DelphesHepMC3 (the stand-in) and <prefix>/cards/delphes_card_CMS.tcl."""
    pytest.importorskip("uproot")
    pytest.importorskip("pyhepmc")
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "cards").mkdir()
    exe = prefix / "bin" / "DelphesHepMC3"
    exe.write_text(FAKE_DELPHES.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    (prefix / "cards" / "delphes_card_CMS.tcl").write_text("# stand-in card\n")
    monkeypatch.setenv("PATH", f"{prefix / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DELPHES_LOG", str(tmp_path / "fake.log"))
    return prefix


def test_simulate_through_registry_with_stand_in(
    fake_install, toy_events, pythia_events, tmp_path
) -> None:
    import json

    card, _ = load_card("delphes_cms")  # the real card: bare DelphesHepMC3 found on PATH
    particles = ak.concatenate([toy_events, pythia_events])
    out = simulate(particles, card, np.random.default_rng(7))
    assert out.fields == list(OUTPUT_FIELDS) and len(out) == len(particles)
    charged = ak.to_numpy(ak.sum(particles.charge != 0, axis=1))
    assert ak.to_list(ak.sum(out.charge != 0, axis=1)) == charged.tolist()
    assert ak.to_list(ak.num(out)) == ak.to_list(ak.num(particles))
    # momenta survive HepMC3 -> (stand-in) ROOT float32 -> reader
    np.testing.assert_allclose(ak.sum(out.E, axis=1), ak.sum(particles.E, axis=1), rtol=1e-5)
    log = json.loads((tmp_path / "fake.log").read_text())
    assert log["cwd"] == str(fake_install / "cards")
    # the wrapper sources the card by its bare name from a mirror of the card's folder
    # (Delphes resolves `source` against the top card's folder, not the working directory)
    assert "source {delphes_card_CMS.tcl}" in log["config"] and "set RandomSeed " in log["config"]
    assert Path(log["argv"][0]).name == ".jetforge_seeded_card.tcl"
    seed = int(log["config"].split("set RandomSeed ")[1].split()[0])
    assert seed == np.random.default_rng(7).integers(1, 2**31 - 1)  # a function of the rng alone
    # everything in the temporary folder is gone
    assert not Path(log["argv"][1]).parent.exists()


def test_run_delphes_is_atomic(fake_install, toy_events, tmp_path, monkeypatch) -> None:
    hepmc = write_hepmc3(toy_events, tmp_path / "in.hepmc")
    card = fake_install / "cards" / "delphes_card_CMS.tcl"
    out_dir = tmp_path / "out"
    out = run_delphes(card, hepmc, out_dir / "d.root", seed=12345)
    assert out == (out_dir / "d.root").resolve() and len(read_delphes_eflow(out)) == 3
    assert sorted(p.name for p in out_dir.iterdir()) == ["d.root"]
    # an existing output is replaced (Delphes itself refuses to overwrite: it writes elsewhere)
    assert run_delphes(card, hepmc, out_dir / "d.root").is_file()
    # a failing run raises with Delphes' own message and leaves nothing behind
    monkeypatch.setenv("FAKE_DELPHES_FAIL", "1")
    with pytest.raises(DelphesRunError, match="stand-in told to fail"):
        run_delphes(card, hepmc, out_dir / "e.root")
    assert sorted(p.name for p in out_dir.iterdir()) == ["d.root"]
    with pytest.raises(ValueError, match="RandomSeed"):
        run_delphes(card, hepmc, out_dir / "f.root", seed=0)
    with pytest.raises(FileNotFoundError, match="not found; tried"):
        bad_card = {**load_card("delphes_cms")[0], "delphes_card": "cards/nope.tcl"}
        simulate_delphes(toy_events, bad_card, np.random.default_rng(0))


def test_missing_python_extra_says_how_to_install(monkeypatch, toy_events, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "pyhepmc", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[delphes\]'"):
        write_hepmc3(toy_events, tmp_path / "x.hepmc")
    assert not (tmp_path / "x.hepmc").exists()


# ---------------------------------------------------------------------------------------
# the real DelphesHepMC3 (skipped unless it is on PATH)
# ---------------------------------------------------------------------------------------

real_delphes = pytest.mark.skipif(
    shutil.which("DelphesHepMC3") is None,
    reason="DelphesHepMC3 not on PATH (build recipe: docs/validation/delphes.md)",
)


def _check_contract(out: ak.Array, n_events: int) -> None:
    """Format 3 as every consumer reads it: fields, float64, one type flag per candidate,
    tracks charged, photons and neutral hadrons neutral and massless."""
    assert out.fields == list(OUTPUT_FIELDS) and len(out) == n_events
    flat = {f: ak.to_numpy(ak.flatten(out[f])) for f in OUTPUT_FIELDS}
    assert all(v.dtype == np.float64 for v in flat.values())
    flags = ("is_electron", "is_muon", "is_ch", "is_photon", "is_nh")
    assert np.all(sum(flat[f] for f in flags) == 1)
    track = (flat["is_electron"] + flat["is_muon"] + flat["is_ch"]) == 1
    assert np.all((flat["charge"] != 0) == track)
    neutral = ~track
    p2 = flat["px"] ** 2 + flat["py"] ** 2 + flat["pz"] ** 2
    np.testing.assert_allclose(p2[neutral], flat["E"][neutral] ** 2, rtol=1e-4)
    assert np.all(flat["E"] > 0) and np.all(np.isfinite(np.stack(list(flat.values()))))


@real_delphes
def test_real_delphes_through_registry(toy_events, pythia_events) -> None:
    card, _ = load_card("delphes_cms")
    particles = ak.concatenate([pythia_events, toy_events])
    out = simulate(particles, card, np.random.default_rng(3))
    _check_contract(out, len(particles))
    assert len(out[len(pythia_events) + 1]) == 0  # the empty event stays one empty entry
    n = ak.to_numpy(ak.num(out))[: len(pythia_events)]
    assert np.all(n > 50)  # 400 GeV dijets: every kind of candidate, in every event
    for flag in ("is_ch", "is_photon", "is_nh"):
        assert np.all(ak.to_numpy(ak.sum(out[flag], axis=1))[: len(pythia_events)] > 0)
    # Delphes' RandomSeed comes from the rng: same rng, same output; another, another
    again = simulate(particles, card, np.random.default_rng(3))
    assert ak.all(ak.flatten(again.px) == ak.flatten(out.px))
    other = simulate(particles, card, np.random.default_rng(4))
    assert not ak.all(ak.num(other) == ak.num(out)) or not ak.all(
        ak.flatten(other.px) == ak.flatten(out.px)
    )
    # tracks above 5 GeV carry the charged p_T of |eta| < 2 (95 % efficiency, 1-2 % smearing)
    vis = pythia_events[pythia_events.charge != 0]
    pt = np.hypot(vis.px, vis.py)
    vis_pt = ak.sum(pt[(pt > 5.0) & (abs(np.arcsinh(vis.pz / pt)) < 2.0)])
    trk = out[: len(pythia_events)]
    trk_pt = np.hypot(trk.px, trk.py)
    trk_eta = np.arcsinh(trk.pz / trk_pt)
    ratio = ak.sum(trk_pt[(trk.charge != 0) & (trk_pt > 5.0) & (abs(trk_eta) < 2.0)]) / vis_pt
    assert 0.8 < ratio < 1.05


@real_delphes
def test_real_delphes_card_sourcing_a_sibling(tmp_path, pythia_events) -> None:
    """The bug of issue 17: a card that `source`s a file next to it, run with a seed."""
    stock = resolve_delphes_card(
        parse_delphes_card(load_card("delphes_cms")[0]), find_executable("DelphesHepMC3")
    )
    cards = tmp_path / "my cards"  # a space: Tcl braces in the wrapper keep it one word
    cards.mkdir()
    (cards / "base.tcl").symlink_to(stock)
    (cards / "mine.tcl").write_text("source base.tcl\n")
    hepmc = write_hepmc3(pythia_events[:2], tmp_path / "two.hepmc")
    out = run_delphes(cards / "mine.tcl", hepmc, tmp_path / "out" / "d.root", seed=99)
    assert len(read_delphes_eflow(out)) == 2
    assert sorted(p.name for p in out.parent.iterdir()) == ["d.root"]  # temporaries gone


@real_delphes
def test_real_delphes_builds_an_rs3l_chunk(tmp_path, hbb_lhe, default_config) -> None:
    """`detector: delphes_cms` through the RS3L builder: a chunk in data contract 4."""
    import h5py

    from jetforge.datasets.resim import build_resim_chunk
    from jetforge.io.h5 import read_attrs

    ds = {**default_config["datasets"]["rs3l"], "detector": "delphes_cms"}
    out = tmp_path / "jets_0.h5"
    stats = build_resim_chunk(hbb_lhe, out, ds, "rs3l", "hbb_zh", "test", 0, base_seed=1)
    assert stats["kept_pairs"] > 0
    with h5py.File(out) as f:
        attrs = read_attrs(f)
        assert attrs["detector"] == "delphes_cms"
        assert attrs["detector_sha256"] == load_card("delphes_cms")[1]
        v = len(attrs["variant_names"])
        jets = {k: f["jets"][k][:] for k in f["jets"]}
        assert len(jets["pt"]) == stats["kept_pairs"] * v
        assert np.all(jets["pt"] > 450) and np.all(np.abs(jets["eta"]) < 0.1)
        mask = f["mask"][:]
        assert np.all(mask.sum(axis=1) >= 3) and np.all(f["particles"][:][~mask] == 0)
        assert np.all(np.isfinite(f["particles"][:]))


# ---------------------------------------------------------------------------------------
# the workflow: Delphes datasets get their own rule and env
# ---------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def _snakemake(workdir: Path, overrides: str, *args: str) -> subprocess.CompletedProcess:
    """Snakemake on the default + tiny config and ``overrides`` (YAML), in ``workdir``."""
    extra = workdir / "delphes.yaml"
    extra.write_text(overrides)
    configs = [REPO / "config" / "config.yaml", REPO / "config" / "tiny.yaml", extra]
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", *map(str, configs), *args]  # fmt: skip
    env = {**os.environ, "JETFORGE_NO_PROGRESS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)


def test_delphes_dataset_runs_in_its_own_rule(tmp_path) -> None:
    """`detector: delphes_cms` sends the dataset's generation jobs to generate_block_delphes
    (conda: envs/delphes.yaml); every other dataset stays with generate_block."""
    target = "results/datasets/rs3l/test.h5"
    res = _snakemake(tmp_path, "datasets:\n  rs3l: {detector: delphes_cms}\n", "-n", target)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = [line.split()[0] for line in res.stdout.splitlines() if line.startswith("generate")]
    assert jobs and set(jobs) == {"generate_block_delphes"}, jobs
    res = _snakemake(tmp_path, "seed: 1\n", "-n", target)
    jobs = [line.split()[0] for line in res.stdout.splitlines() if line.startswith("generate")]
    assert res.returncode == 0 and jobs and set(jobs) == {"generate_block"}, jobs
    smk = (REPO / "workflow" / "rules" / "generation.smk").read_text()
    rule = smk.split("use rule generate_block as generate_block_delphes", 1)[1]
    assert '"../../envs/delphes.yaml"' in rule.split("ruleorder:")[0]


@real_delphes
@pytest.mark.workflow
def test_real_delphes_workflow_builds_an_rs3l_block(tmp_path) -> None:
    """One RS3L generation job through the workflow with the real Delphes (500 QCD events:
    the tiny config's chunk; ~1 min of Pythia and Delphes on an idle core)."""
    import h5py

    block = "results/gen/rs3l/qcd_zjet/test/block_0"
    overrides = "datasets:\n  rs3l: {detector: delphes_cms}\n"
    res = _snakemake(tmp_path, overrides, "--cores", "1", block)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "generate_block_delphes" in res.stdout + res.stderr
    with h5py.File(tmp_path / block / "jets_0.h5") as f:
        assert f.attrs["detector"] == "delphes_cms" and len(f["jets"]["pt"]) > 0
