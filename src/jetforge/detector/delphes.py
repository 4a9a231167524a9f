"""The real Delphes as a jetforge detector: HepMC3 out, ``DelphesHepMC3``, E-flow back in.

Why a second route next to :mod:`jetforge.detector.eflow`: the parametric model is a
re-implementation, and the RS3L samples (arXiv:2403.07066, §II B) are genuine Delphes E-flow
candidates. A user who has Delphes can select the card ``delphes_cms`` (``model: delphes``)
and get Delphes' own output through the same contract: particle-level events (format 2) in,
E-flow candidates (format 3) out, so nothing downstream changes.

The route is three steps, each usable on its own:

1. :func:`write_hepmc3` writes format-2 events as HepMC3 ASCII with ``pyhepmc``;
2. :func:`run_delphes` runs the ``DelphesHepMC3`` binary on it (fails at once with
   :class:`DelphesNotFoundError`, saying how to install it, when the binary is missing);
3. :func:`read_delphes_eflow` reads the ``EFlowTrack`` / ``EFlowPhoton`` /
   ``EFlowNeutralHadron`` branches of the ``Delphes`` tree with ``uproot``.

``uproot`` and ``pyhepmc`` are the optional ``[delphes]`` extra, imported only when a function
needs them, so importing :mod:`jetforge.detector` never requires them.

Reproducibility: Delphes seeds ROOT's ``gRandom`` from the top-level card variable
``RandomSeed`` (``modules/Delphes.cc``: ``gRandom->SetSeed(confReader->GetInt("::RandomSeed",
0))``), and 0, the default, means a time-based seed. :func:`run_delphes` therefore runs a
two-line wrapper card (``source <your card>`` then ``set RandomSeed <seed>``; see
:func:`_seeded_card` for how it keeps Delphes' relative ``source`` paths working) when given
a seed, and :func:`simulate_delphes` draws that seed from the ``rng`` it is handed, so one
jetforge seed gives one Delphes output (for a fixed Delphes build and card).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jetforge.detector.eflow import INPUT_FIELDS, OUTPUT_FIELDS, CardError
from jetforge.io.atomic import atomic_path
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")


#: Name of the tree every Delphes reader writes (``ExRootTreeWriter(outputFile, "Delphes")``).
TREE = "Delphes"
#: Default E-flow branches: (Track-class branch, photon Tower branch, neutral-hadron Tower
#: branch), as named by the ``TreeWriter`` of the stock Delphes CMS and ATLAS cards.
DEFAULT_BRANCHES: tuple[str, str, str] = ("EFlowTrack", "EFlowPhoton", "EFlowNeutralHadron")
DEFAULT_EXECUTABLE = "DelphesHepMC3"
#: Beam energy written to the two (status 4) beam protons of each HepMC3 event. Delphes
#: ignores beams for E-flow; they exist so every event is a well-formed HepMC3 graph.
DEFAULT_BEAM_ENERGY_GEV = 6500.0

#: Leaves read from the ``Track`` class (``classes/DelphesClasses.h``). ``Mass`` exists only
#: from Delphes 3.5 on and is optional (see :data:`TRACK_MASS_GEV`).
TRACK_LEAVES: tuple[str, ...] = (
    "PT", "Eta", "Phi", "Charge", "PID", "D0", "DZ", "ErrorD0", "ErrorDZ",
)  # fmt: skip
#: Leaves read from the ``Tower`` class: transverse energy, direction, energy.
TOWER_LEAVES: tuple[str, ...] = ("ET", "Eta", "Phi", "E")
#: The TreeWriter line that makes Delphes write each default branch (stock cards have them).
TREEWRITER_LINES: dict[str, str] = {
    "EFlowTrack": "add Branch HCal/eflowTracks EFlowTrack Track",
    "EFlowPhoton": "add Branch ECal/eflowPhotons EFlowPhoton Tower",
    "EFlowNeutralHadron": "add Branch HCal/eflowNeutralHadrons EFlowNeutralHadron Tower",
}
#: Track masses (GeV, PDG 2024) by |PID| for Delphes < 3.5 files, whose Track has no
#: ``Mass``; any other charged particle gets the pion mass, the usual tracking hypothesis.
TRACK_MASS_GEV: dict[int, float] = {
    11: 0.000510999, 13: 0.105658, 211: 0.139570, 321: 0.493677, 2212: 0.938272,
    3112: 1.197449, 3222: 1.189370, 3312: 1.32171, 3334: 1.67245,
}  # fmt: skip
PION_MASS_GEV = TRACK_MASS_GEV[211]
#: HepMC3 pseudo-mother of a displaced vertex: Pythia's "system" code and a
#: generator-specific status (HepMC3: 11-200), so no reader mistakes it for a particle.
PSEUDO_MOTHER_PID = 90
PSEUDO_MOTHER_STATUS = 11
PROTON_MASS_GEV = 0.938272

INSTALL_HINT = """\
The Delphes route needs the real Delphes (C++, built against ROOT). Install it with one of:
  * conda:  conda env create -f envs/delphes.yaml && conda activate jetforge-delphes
            (or, in an existing conda env: mamba install -c conda-forge delphes)
  * source: https://github.com/delphes/delphes (needs ROOT): cmake -S . -B build &&
            cmake --build build && cmake --install build, then put its bin/ on PATH.
  * without conda: ROOT from PyPI (`pip install root`, in its own venv) and Delphes'
            Makefile build, ~4 min on one core: docs/validation/delphes.md, section 1.
If DelphesHepMC3 is installed but not on PATH, set `executable: /full/path/to/DelphesHepMC3`
in the detector card (resources/detectors/delphes_cms.yaml) or pass executable=... ."""


class DelphesNotFoundError(FileNotFoundError):
    """The Delphes executable is not installed / not on PATH; the message says how to fix it."""


class DelphesRunError(RuntimeError):
    """Delphes ran but failed (non-zero exit, no output, or an event count mismatch)."""


class DelphesOutputError(ValueError):
    """A Delphes ROOT file lacks the tree or a branch the reader needs; names file and branch."""


def _require(module: str) -> Any:
    """Import an optional dependency of the Delphes route or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"the Delphes route needs the Python package {module!r}; install the extra with "
            "`pip install -e '.[delphes]'` (uproot and pyhepmc)"
        ) from exc


# --------------------------------------------------------------------------------------
# 1. particle-level events -> HepMC3 ASCII
# --------------------------------------------------------------------------------------


def _flat_columns(particles: ak.Array) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Flat float64/int64 columns of all particles (format 2) and event offsets."""
    missing = [f for f in INPUT_FIELDS if f not in particles.fields]
    if missing:
        raise KeyError(
            f"particles lack fields {missing} (data contract 2); have {particles.fields}"
        )
    counts = ak.to_numpy(ak.num(particles, axis=1)).astype(np.int64)
    cols = {
        f: ak.to_numpy(ak.flatten(particles[f], axis=1)).astype(
            np.int64 if f == "pid" else np.float64, copy=False
        )
        for f in INPUT_FIELDS
    }
    return cols, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _hepmc_event(hep: Any, number: int, c: dict[str, np.ndarray], beam_energy: float) -> Any:
    """One GenEvent: beams -> primary vertex -> prompt particles and displaced vertices.

    HepMC3's reader rejects a vertex without incoming particles, and format 2 keeps no
    mothers, so each distinct displaced production point gets one pseudo-mother
    (:data:`PSEUDO_MOTHER_PID`, status :data:`PSEUDO_MOTHER_STATUS`) from the primary
    vertex carrying the summed four-momentum of the particles born there; its only job is to
    give those particles their production vertex position. Delphes uses status-1 particles
    only, so neither the beams nor the pseudo-mothers reach its detector modules. The vertex
    time is 0 (format 2 has none).
    """
    evt = hep.GenEvent(hep.Units.GEV, hep.Units.MM)
    evt.event_number = number
    pz_beam = float(np.sqrt(beam_energy**2 - PROTON_MASS_GEV**2))
    beams = []
    for sign in (1.0, -1.0):
        beam = hep.GenParticle((0.0, 0.0, sign * pz_beam, beam_energy), 2212, 4)
        beam.generated_mass = PROTON_MASS_GEV
        beams.append(beam)
    if not c["px"].size:
        # HepMC3's writer omits a vertex without outgoing particles but still counts it on
        # the 'E' line, which would make Delphes merge this event with the next: an empty
        # event is therefore just the two beams.
        for beam in beams:
            evt.add_particle(beam)
        return evt
    primary = hep.GenVertex((0.0, 0.0, 0.0, 0.0))
    for beam in beams:
        primary.add_particle_in(beam)
    evt.add_vertex(primary)

    px, py, pz, en = c["px"], c["py"], c["pz"], c["E"]
    mass = np.sqrt(np.maximum(en**2 - (px**2 + py**2 + pz**2), 0.0))

    def particle(k: int) -> Any:
        p = hep.GenParticle((px[k], py[k], pz[k], en[k]), int(c["pid"][k]), 1)
        p.generated_mass = float(mass[k])
        return p

    pos = np.stack([c["vx"], c["vy"], c["vz"]], axis=1)
    prompt = ~np.any(pos != 0.0, axis=1)
    for k in np.flatnonzero(prompt):
        primary.add_particle_out(particle(int(k)))
    displaced = np.flatnonzero(~prompt)
    if displaced.size:
        points, group = np.unique(pos[displaced], axis=0, return_inverse=True)
        order = np.argsort(group.reshape(-1), kind="stable")
        bounds = np.cumsum(np.bincount(group.reshape(-1), minlength=len(points)))[:-1]
        for point, members in zip(points, np.split(displaced[order], bounds), strict=True):
            p4 = np.array([a[members].sum() for a in (px, py, pz, en)])
            mother = hep.GenParticle(tuple(p4), PSEUDO_MOTHER_PID, PSEUDO_MOTHER_STATUS)
            mother.generated_mass = float(np.sqrt(max(p4[3] ** 2 - p4[:3] @ p4[:3], 0.0)))
            primary.add_particle_out(mother)
            vertex = hep.GenVertex((*map(float, point), 0.0))
            vertex.add_particle_in(mother)
            evt.add_vertex(vertex)
            for k in members:
                vertex.add_particle_out(particle(int(k)))
    return evt


def write_hepmc3(
    particles_events: ak.Array,
    path: str | os.PathLike[str],
    *,
    beam_energy_gev: float = DEFAULT_BEAM_ENERGY_GEV,
) -> Path:
    """Write particle-level events (format 2) to a HepMC3 ASCII file, atomically.

    Every particle is written with status 1, its PDG id, momentum (GeV), generated mass
    (from E and p) and a production vertex at its (vx, vy, vz) in mm; event ``i`` of the
    input is HepMC3 event number ``i``, and an event without particles still gets an (empty)
    event record so that Delphes' output stays aligned entry by entry. Returns the path.
    """
    hep = _require("pyhepmc")
    if not beam_energy_gev > PROTON_MASS_GEV:
        raise ValueError(f"beam_energy_gev must exceed the proton mass, got {beam_energy_gev}")
    cols, offsets = _flat_columns(particles_events)
    final = Path(path)
    with atomic_path(final) as tmp, hep.io.WriterAscii(str(tmp)) as writer:
        for i in range(offsets.size - 1):
            sl = slice(offsets[i], offsets[i + 1])
            event = {k: v[sl] for k, v in cols.items()}
            writer.write(_hepmc_event(hep, i, event, beam_energy_gev))
    return final


# --------------------------------------------------------------------------------------
# 2. running DelphesHepMC3
# --------------------------------------------------------------------------------------


def find_executable(executable: str = DEFAULT_EXECUTABLE) -> str:
    """Absolute path of the Delphes executable, or :class:`DelphesNotFoundError` at once."""
    text = os.fspath(executable)
    if os.sep in text or "/" in text:
        path = Path(text).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.resolve())
        raise DelphesNotFoundError(
            f"Delphes executable {text!r} does not exist or is not executable.\n{INSTALL_HINT}"
        )
    found = shutil.which(text)
    if found is None:
        raise DelphesNotFoundError(
            f"Delphes executable {text!r} was not found on PATH.\n{INSTALL_HINT}"
        )
    return found


#: Name of the wrapper card :func:`_seeded_card` writes (hidden, so it cannot shadow a card).
SEEDED_CARD = ".jetforge_seeded_card.tcl"


def _seeded_card(card: Path, seed: int, folder: Path) -> Path:
    """A wrapper card: the user's card, then ``set RandomSeed`` (read by modules/Delphes.cc).

    Delphes resolves every ``source`` relative to the folder of the *top* card it was given
    (``ExRootConfReader``: ``GetTopDir() + "/" + name``), so an absolute path in the wrapper
    becomes ``<wrapper folder>//abs/path`` and fails, and cards that ``source`` siblings
    (``source CLIC/CLICdet_BTag_50.tcl``) need their own folder as top folder. The wrapper
    therefore lives in ``folder/card/`` next to a symbolic link to every entry of the card's
    folder, and sources the card by its bare name: Delphes then sees the card's folder as
    it would see it when run on the card directly.
    """
    if not 1 <= seed <= 2**31 - 1:
        raise ValueError(f"Delphes RandomSeed must be in [1, 2^31-1] (0 = time-based), got {seed}")
    if any(ch in card.name for ch in "{}\\") or card.name == SEEDED_CARD:
        raise ValueError(
            f"Delphes card name {card.name!r} contains a Tcl special character ({{, }} or \\) "
            f"or is {SEEDED_CARD!r}; rename the card"
        )
    mirror = folder / "card"
    mirror.mkdir()
    for entry in card.parent.iterdir():
        if entry.name != SEEDED_CARD:
            (mirror / entry.name).symlink_to(entry)
    wrapper = mirror / SEEDED_CARD
    wrapper.write_text(
        "# written by jetforge.detector.delphes: the card below plus a fixed random seed\n"
        f"source {{{card.name}}}\nset RandomSeed {int(seed)}\n"
    )
    return wrapper


def run_delphes(
    card_path: str | os.PathLike[str],
    hepmc_path: str | os.PathLike[str],
    root_out: str | os.PathLike[str],
    executable: str = DEFAULT_EXECUTABLE,
    *,
    seed: int | None = None,
    timeout_s: float | None = None,
) -> Path:
    """Run ``DelphesHepMC3 card root_out hepmc`` and return ``root_out``.

    The executable is looked up first, so a missing Delphes raises
    :class:`DelphesNotFoundError` before anything is written. Delphes opens its output in
    ROOT's ``CREATE`` mode (it refuses an existing file), so it writes into a fresh temporary
    folder next to ``root_out``; the file is renamed into place only after Delphes exits 0,
    and the folder is removed in every case, so a failed or killed run leaves nothing at
    ``root_out``. Delphes runs with the card's folder as working directory, so cards that
    ``source`` sibling files (as Delphes' own validation card does) work. ``seed`` (1 ..
    2^31-1) fixes Delphes' ``RandomSeed``; without it Delphes seeds from the clock.
    """
    exe = find_executable(executable)
    card = Path(card_path).expanduser().resolve()
    if not card.is_file():
        raise FileNotFoundError(f"Delphes card {card} does not exist")
    hepmc = Path(hepmc_path).expanduser().resolve()
    if not hepmc.is_file():
        raise FileNotFoundError(f"HepMC3 input {hepmc} does not exist")
    final = Path(root_out).expanduser().resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.stem}.", suffix=".delphes", dir=final.parent))
    try:
        config = card if seed is None else _seeded_card(card, seed, work)
        tmp_out = work / final.name
        cmd = [exe, str(config), str(tmp_out), str(hepmc)]
        try:
            proc = subprocess.run(
                cmd, cwd=card.parent, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise DelphesRunError(
                f"Delphes did not finish within {timeout_s} s: {' '.join(cmd)}"
            ) from exc
        if proc.returncode != 0 or not tmp_out.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
            raise DelphesRunError(
                f"Delphes exited with status {proc.returncode}"
                f"{'' if tmp_out.is_file() else ' and wrote no output'}: {' '.join(cmd)}\n"
                f"last lines of its output:\n{tail}"
            )
        os.replace(tmp_out, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


# --------------------------------------------------------------------------------------
# 3. reading the E-flow branches
# --------------------------------------------------------------------------------------


def _missing_branch_error(path: Path, branch: str, leaf: str, tree: Any) -> DelphesOutputError:
    top = sorted({k.split("/")[0].split(".")[0] for k in tree.keys(recursive=True)})
    line = TREEWRITER_LINES.get(branch, f"add Branch <Module>/<array> {branch} <Class>")
    return DelphesOutputError(
        f"{path}: tree '{tree.name}' has no branch '{branch}.{leaf}' (branch '{branch}' "
        f"missing or not of the expected Delphes class). Branches present: {top}. Delphes "
        f"writes '{branch}' only when the card's TreeWriter has `{line}` (the stock "
        "delphes_card_CMS.tcl and delphes_card_ATLAS.tcl do); add that line, or pass the "
        "right branch names via `branches:` in the jetforge card / branches=... ."
    )


def _read_leaves(path: Path, tree: Any, branch: str, leaves: Sequence[str]) -> dict[str, ak.Array]:
    """``{leaf: float64 jagged array}`` for ``branch.leaf``; a clear error if a leaf is absent.

    Delphes stores Float_t/Int_t; converting before any arithmetic keeps the derived
    px, py, pz, E at float64 precision of the stored values.

    ``tree["EFlowTrack.PT"]`` is uproot's recursive lookup: it finds the leaf both inside a
    real Delphes split TClonesArray branch (``EFlowTrack/EFlowTrack.PT``) and as a top-level
    branch of that name.
    """
    uproot = _require("uproot")
    out: dict[str, ak.Array] = {}
    for leaf in leaves:
        try:
            out[leaf] = ak.values_astype(tree[f"{branch}.{leaf}"].array(library="ak"), np.float64)
        except uproot.KeyInFileError:
            raise _missing_branch_error(path, branch, leaf, tree) from None
    return out


def _candidates(fields: dict[str, ak.Array], template: ak.Array) -> ak.Array:
    """Format-3 records with every field present (zeros where not given), float64."""
    zero = ak.values_astype(template * 0, np.float64)
    return ak.zip(
        {f: ak.values_astype(fields[f], np.float64) if f in fields else zero for f in OUTPUT_FIELDS}
    )


def _track_mass(leaves: dict[str, ak.Array]) -> ak.Array:
    if "Mass" in leaves:
        return leaves["Mass"]
    apid = ak.to_numpy(ak.flatten(abs(leaves["PID"])))
    table = np.array([TRACK_MASS_GEV.get(int(p), PION_MASS_GEV) for p in apid], dtype=np.float64)
    return ak.unflatten(table, ak.num(leaves["PID"]))


def read_delphes_eflow(
    root_path: str | os.PathLike[str],
    branches: Sequence[str] = DEFAULT_BRANCHES,
    *,
    tree: str = TREE,
) -> ak.Array:
    """E-flow candidates (data contract 3) from a Delphes ROOT file, one list per entry.

    ``branches`` = (Track-class branch, photon Tower branch, neutral-hadron Tower branch).
    Tracks come from ``PT, Eta, Phi, Charge, PID, D0, DZ, ErrorD0, ErrorDZ`` (and ``Mass``
    when present, Delphes >= 3.5; else from |PID|, see :data:`TRACK_MASS_GEV`), with
    ``is_electron``/``is_muon`` from |PID| = 11/13 and ``is_ch`` for every other track (the
    eflow model's classes). D0, DZ and their errors are Delphes' millimetres, unchanged (the
    errors are 0 unless the card smears impact parameters). Photons and neutral hadrons are
    massless: p = ET (cos phi, sin phi, sinh eta), E from the ``E`` leaf. Per entry the order
    is tracks, photons, neutral hadrons, as in Delphes' EFlowMerger.
    """
    uproot = _require("uproot")
    if len(branches) != 3 or not all(isinstance(b, str) and b for b in branches):
        raise ValueError(
            "branches must be (track branch, photon branch, neutral-hadron branch), e.g. "
            f"{DEFAULT_BRANCHES}; got {branches!r}"
        )
    path = Path(root_path)
    if not path.is_file():
        raise FileNotFoundError(f"Delphes output {path} does not exist")
    b_trk, b_pho, b_nh = branches
    with uproot.open(path) as f:
        if tree not in f:
            raise DelphesOutputError(
                f"{path}: no tree '{tree}' (keys: {sorted(f.keys(cycle=False))}); is this a "
                "Delphes output file?"
            )
        t = f[tree]
        trk = _read_leaves(path, t, b_trk, TRACK_LEAVES)
        with contextlib.suppress(uproot.KeyInFileError):
            trk["Mass"] = ak.values_astype(t[f"{b_trk}.Mass"].array(library="ak"), np.float64)
        pho = _read_leaves(path, t, b_pho, TOWER_LEAVES)
        nh = _read_leaves(path, t, b_nh, TOWER_LEAVES)

    pt, eta, phi = trk["PT"], trk["Eta"], trk["Phi"]
    apid = abs(trk["PID"])
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    mass = _track_mass(trk)
    is_e, is_mu = apid == 11, apid == 13
    tracks = _candidates(
        {
            "px": px, "py": py, "pz": pz, "E": np.sqrt(px**2 + py**2 + pz**2 + mass**2),
            "charge": trk["Charge"], "is_electron": is_e, "is_muon": is_mu,
            "is_ch": ~(is_e | is_mu), "d0": trk["D0"], "dz": trk["DZ"],
            "d0_err": trk["ErrorD0"], "dz_err": trk["ErrorDZ"],
        },
        pt,
    )  # fmt: skip
    neutrals = []
    for leaves, flag in ((pho, "is_photon"), (nh, "is_nh")):
        et, eta_t, phi_t = leaves["ET"], leaves["Eta"], leaves["Phi"]
        neutrals.append(
            _candidates(
                {
                    "px": et * np.cos(phi_t), "py": et * np.sin(phi_t), "pz": et * np.sinh(eta_t),
                    "E": leaves["E"], flag: ak.ones_like(et),
                },
                et,
            )  # fmt: skip
        )
    return ak.concatenate([tracks, *neutrals], axis=1)


# --------------------------------------------------------------------------------------
# 4. the DETECTORS["delphes"] entry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DelphesSettings:
    """Validated ``model: delphes`` card."""

    delphes_card: str
    executable: str
    delphes_dir: str | None
    branches: tuple[str, str, str]
    beam_energy_gev: float


def parse_delphes_card(card: Mapping[str, Any]) -> DelphesSettings:
    """Validate a ``model: delphes`` card; errors name the key, the value and the fix."""
    name = card.get("name", "<unnamed>")
    dc = card.get("delphes_card")
    if not isinstance(dc, str) or not dc:
        raise CardError(
            f"card {name}: 'delphes_card' must name a Delphes .tcl card (e.g. "
            f"cards/delphes_card_CMS.tcl, relative to the Delphes install), got {dc!r}"
        )
    exe = card.get("executable", DEFAULT_EXECUTABLE)
    if not isinstance(exe, str) or not exe:
        raise CardError(f"card {name}: 'executable' must be a command or path, got {exe!r}")
    ddir = card.get("delphes_dir")
    if ddir is not None and not isinstance(ddir, str):
        raise CardError(f"card {name}: 'delphes_dir' must be a folder path or null, got {ddir!r}")
    branches = card.get("branches", list(DEFAULT_BRANCHES))
    if not isinstance(branches, list | tuple) or len(branches) != 3 or not all(
        isinstance(b, str) and b for b in branches
    ):
        raise CardError(
            f"card {name}: 'branches' must be [track, photon, neutral-hadron] branch names, "
            f"e.g. {list(DEFAULT_BRANCHES)}; got {branches!r}"
        )
    beam = card.get("beam_energy_gev", DEFAULT_BEAM_ENERGY_GEV)
    if not isinstance(beam, int | float) or not beam > PROTON_MASS_GEV:
        raise CardError(f"card {name}: 'beam_energy_gev' must be a number > 1 GeV, got {beam!r}")
    return DelphesSettings(dc, exe, ddir, (branches[0], branches[1], branches[2]), float(beam))


def resolve_delphes_card(settings: DelphesSettings, executable_path: str) -> Path:
    """The Delphes .tcl card: absolute as given, else under ``delphes_dir`` or the install.

    A relative ``delphes_card`` is looked up under ``delphes_dir`` (if set), then next to the
    executable (an in-source ``make`` build keeps ``cards/`` beside the binaries), then in
    the install prefix (Delphes' ``cards/CMakeLists.txt`` installs the cards to
    ``<prefix>/cards``; conda packages built with ``cmake --install`` follow it) and
    ``<prefix>/share/delphes``.
    """
    rel = Path(settings.delphes_card).expanduser()
    if rel.is_absolute():
        if rel.is_file():
            return rel
        raise FileNotFoundError(f"Delphes card {rel} (card key 'delphes_card') does not exist")
    exe_dir = Path(executable_path).resolve().parent
    bases = [Path(settings.delphes_dir).expanduser()] if settings.delphes_dir else []
    bases += [exe_dir, exe_dir.parent, exe_dir.parent / "share" / "delphes"]
    tried = [base / rel for base in bases]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"Delphes card {str(rel)!r} (card key 'delphes_card') not found; tried "
        f"{[str(p) for p in tried]}. Set 'delphes_card' to an absolute path or 'delphes_dir' "
        "to the Delphes folder that contains it."
    )


def delphes_root(
    particles: ak.Array,
    card: Mapping[str, Any],
    rng: np.random.Generator,
    root_out: str | os.PathLike[str],
) -> Path:
    """Particles (format 2) -> HepMC3 (temporary) -> Delphes -> ``root_out``, atomically.

    The one place both routes run Delphes: in-process (:func:`simulate_delphes`) and the
    workflow's own ``delphes`` rule, which keeps the ROOT file as its output. The
    ``RandomSeed`` is the first draw of ``rng`` (1 .. 2^31-1), so both routes give the same
    output for the same jetforge stream. Raises :class:`DelphesNotFoundError` before any
    HepMC3 is written when the executable is missing.
    """
    settings = parse_delphes_card(card)
    exe = find_executable(settings.executable)
    tcl = resolve_delphes_card(settings, exe)
    seed = int(rng.integers(1, 2**31 - 1))
    with tempfile.TemporaryDirectory(prefix="jetforge-delphes-") as tmp:
        hepmc = write_hepmc3(
            particles, Path(tmp) / "events.hepmc", beam_energy_gev=settings.beam_energy_gev
        )
        return run_delphes(tcl, hepmc, root_out, exe, seed=seed)


def read_delphes_events(
    root_path: str | os.PathLike[str], card: Mapping[str, Any], n_events: int
) -> ak.Array:
    """E-flow candidates of a Delphes file written for ``n_events`` input events.

    Delphes writes one tree entry per HepMC3 event (empty ones included, see
    :func:`write_hepmc3`); any other count means entries cannot be matched to their inputs.
    """
    cands = read_delphes_eflow(root_path, parse_delphes_card(card).branches)
    if len(cands) != n_events:
        raise DelphesRunError(
            f"{root_path}: Delphes returned {len(cands)} events for {n_events} input events; "
            "the outputs cannot be matched to their inputs"
        )
    return cands


def uses_delphes(ds_cfg: Mapping[str, Any]) -> bool:
    """Whether a dataset config's detector card runs the real Delphes (``model: delphes``).

    The workflow reads this to give such a dataset's generation jobs their own rule and
    env (envs/delphes.yaml: DelphesHepMC3 with ROOT, uproot, pyhepmc), so the other
    datasets' jobs never need Delphes installed.
    """
    from jetforge.detector import load_card

    name = ds_cfg.get("detector")
    if not isinstance(name, str) or name == "none":
        return False
    return load_card(name)[0].get("model") == "delphes"


def simulate_delphes(
    particles: ak.Array, card: Mapping[str, Any], rng: np.random.Generator
) -> ak.Array:
    """Detector-level E-flow candidates (format 3) from particles (format 2) via Delphes.

    Writes the events as HepMC3 into a temporary folder (``$TMPDIR``), runs Delphes with the
    ``.tcl`` card the jetforge card names and a ``RandomSeed`` drawn from ``rng``, reads the
    E-flow branches back and removes the folder. Raises :class:`DelphesNotFoundError` before
    any work when the executable is missing, and :class:`DelphesRunError` if Delphes returns
    a different number of events than it was given.
    """
    find_executable(parse_delphes_card(card).executable)
    with tempfile.TemporaryDirectory(prefix="jetforge-delphes-") as tmp:
        root = delphes_root(particles, card, rng, Path(tmp) / "delphes.root")
        return read_delphes_events(root, card, len(particles))
