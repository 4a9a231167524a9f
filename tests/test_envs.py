"""The conda env of each rule family, built without conda and run alone (issue 12).

For each ``envs/*.yaml`` a virtual environment holding exactly its pip packages and their
dependency closure is built from the installed ones (tests/envtools.py: symlinks, no
network, ~1 s), then one real job of the family runs in it under ``python -I``, with the
driver env appended to ``sys.path`` as Snakemake's script preamble does:

* generation: a hard-process chunk (Pythia, LHE) and its re-simulated chunk (5 shower
  variants, detector, anti-kt, features, HDF5);
* training: workflow/scripts/experiment.py as rule ``pretrain`` (SimCLR, 2 epochs);
* analysis: workflow/scripts/experiment.py as rule ``pretrain_history_figure``;
* delphes: the Python half of the Delphes route (HepMC3 writer, ROOT reader; the
  DelphesHepMC3 binary is not available here);
* driver (envs/snakemake.yaml): ``snakemake -n all`` on the tiny config.

Each job must succeed, and the packages a family must not see are not importable in it
(torch in generation, Pythia in analysis and training, the physics stack in the driver).
Not verified: that conda resolves these lists (conda is not installable here); the pins
are the ones pyproject.toml installs, checked below.
"""

from __future__ import annotations

import pickle
import re
import time
from pathlib import Path

import pytest
from envtools import REPO, build_env, closure, env_requirements, run_isolated, site_packages
from packaging.utils import canonicalize_name

pytest.importorskip("snakemake")

FAMILIES = ("generation", "training", "analysis", "delphes", "snakemake")
#: import names a family must not reach, even through the appended driver env
FORBIDDEN = {
    "generation": ["torch", "matplotlib", "sklearn", "tensorboard"],
    "training": ["pythia8mc", "fastjet", "matplotlib"],
    "analysis": ["pythia8mc", "torch"],
    "delphes": ["torch", "matplotlib"],
    "snakemake": ["torch", "pythia8mc", "fastjet", "awkward", "h5py", "scipy", "matplotlib"],
}
#: the package each family is for (must be in its env)
REQUIRED = {
    "generation": "pythia8mc",
    "training": "torch",
    "analysis": "matplotlib",
    "delphes": "uproot",
    "snakemake": "snakemake",
}


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """family -> interpreter of its isolated env."""
    root = tmp_path_factory.mktemp("envs")
    return {f: build_env(closure(env_requirements(f)[0]).values(), root / f) for f in FAMILIES}


def _pyproject_pins() -> dict[str, str]:
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        lines += extra
    return {canonicalize_name(Requirement(x).name): str(Requirement(x).specifier) for x in lines}


@pytest.mark.parametrize("family", FAMILIES)
def test_env_file_pins_match_the_install(family: str) -> None:
    """Every env lists pip packages only (plus python, pip, and Delphes from conda-forge),
    each with the specifier pyproject.toml gives it, and no install of jetforge itself
    (`-e ../` breaks once Snakemake copies the file into .snakemake/conda)."""
    pip, conda = env_requirements(family)
    assert {re.split(r"[=<>!~ ]", c)[0] for c in conda} <= {"python", "pip", "delphes"}
    text = (REPO / "envs" / f"{family}.yaml").read_text()
    assert not re.search(r"^\s*-\s*-e\b", text, re.M) and "jetforge" not in {
        canonicalize_name(r.name) for r in pip
    }
    pins = _pyproject_pins()
    for req in pip:
        name = canonicalize_name(req.name)
        assert name in pins, f"{family}: {name} is not a dependency in pyproject.toml"
        assert str(req.specifier) == pins[name], f"{family}: {req} vs pyproject {pins[name]}"


def test_every_rule_names_an_env_and_every_script_finds_the_package() -> None:
    """Each rule with a script has `conda:` pointing at an existing env file, and each
    script puts <checkout>/src on sys.path before importing jetforge."""
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for rule in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            if "script:" not in rule:
                continue
            name = rule.split(":", 1)[0]
            m = re.search(r'conda:\s*\n\s*"\.\./\.\./envs/(\w+)\.yaml"', rule)
            assert m, f"{smk.name}: rule {name} names no envs/*.yaml"
            assert m.group(1) in FAMILIES[:4], f"rule {name}: env {m.group(1)}"
    for script in sorted((REPO / "workflow" / "scripts").glob("*.py")):
        text = script.read_text()
        boot = text.find('sys.path.insert(0, f"{snakemake.scriptdir}/../../src")')
        first = text.find("from jetforge")
        assert 0 <= boot < first, f"{script.name}: no sys.path insertion before jetforge"


def _job(
    envs: dict[str, Path], family: str, code: str, cwd: Path, timeout: float = 120
) -> tuple[str, float]:
    """Run ``code`` in ``family``'s env (driver env appended, as Snakemake does) and check
    the forbidden packages are out of reach there; returns stdout and seconds."""
    driver = site_packages(envs["snakemake"])
    probe = (
        "import importlib.util as u\n"
        f"bad = [m for m in {FORBIDDEN[family]!r} if u.find_spec(m) is not None]\n"
        f"assert not bad, f'reachable in {family}: {{bad}}'\n"
        f"assert u.find_spec({REQUIRED[family]!r}) is not None\n"
    )
    t0 = time.perf_counter()
    res = run_isolated(envs[family], probe + code, cwd, append=[driver], timeout=timeout)
    assert res.returncode == 0, f"{family} job failed:\n{res.stdout}\n{res.stderr[-4000:]}"
    return res.stdout, time.perf_counter() - t0


def _script_job(rule: str, script: str, io: dict, threads: int = 1) -> str:
    """Code running ``workflow/scripts/<script>`` as Snakemake would: a pickled
    ``snakemake`` object (the real class, unpickled through the appended driver env)."""
    from snakemake.iocontainers import (
        InputFiles,
        Log,
        OutputFiles,
        Params,
        ResourceList,
        Snakemake,
        Wildcards,
    )

    sm = Snakemake(
        InputFiles(fromdict=io["input"]), OutputFiles(fromdict=io["output"]),
        Params(fromdict=io["params"]), Wildcards(fromdict=io["wildcards"]), threads,
        ResourceList(fromdict={"_cores": threads}), Log(fromdict={"log": io["log"]}), {},
        rule, None, str(REPO / "workflow" / "scripts"),
    )  # fmt: skip
    blob = pickle.dumps(sm, protocol=4)
    path = REPO / "workflow" / "scripts" / script
    return (
        f"import pickle, runpy\nsnakemake = pickle.loads({blob!r})\n"
        f"runpy.run_path({str(path)!r}, init_globals={{'snakemake': snakemake}})\n"
    )


def test_generation_job(envs: dict[str, Path], tmp_path: Path) -> None:
    from jetforge.config import compose_config

    cfg = compose_config([REPO / "config" / "config.yaml", REPO / "config" / "tiny.yaml"])
    ds = {**cfg["datasets"]["rs3l"], "events_per_chunk": 20}
    code = f"""
import sys
sys.path.insert(0, {str(REPO / "src")!r})
import h5py
from jetforge.datasets import builder
from jetforge.generation.hard import write_hard_chunk
ds = {ds!r}
write_hard_chunk("hard.lhe", ds, "rs3l", "hbb_zh", "pretrain", 0, 7)
builder("resim")("hard.lhe", "jets.h5", ds, "rs3l", "hbb_zh", "pretrain", 0, 7)
with h5py.File("jets.h5") as f:
    print("jets", f["particles"].shape[0], list(f.attrs["variant_names"]))
"""
    out, secs = _job(envs, "generation", code, tmp_path)
    n, variants = re.search(r"jets (\d+) (.*)", out).groups()  # type: ignore[union-attr]
    assert int(n) > 0 and "alt_shower" in variants
    print(f"generation job: {n} jets, {secs:.1f} s")


def test_training_job(envs: dict[str, Path], tmp_path: Path) -> None:
    from test_training import EXP, write_format4

    h5 = write_format4(tmp_path / "pretrain.h5", {"qcd_zjet": 20, "hbb_zh": 20}, seed=1)
    out = tmp_path / "pre" / "all" / "r0"
    io = {
        "input": {"train": str(h5)},
        "output": {"model": str(out / "model.pt"), "history": str(out / "history.csv")},
        "params": {"exp": EXP, "seed": 3, "device": "cpu"},
        "wildcards": {"experiment": "toy", "augset": "all", "repeat": "0"},
        "log": str(tmp_path / "pretrain.log"),
    }
    _, secs = _job(envs, "training", _script_job("pretrain", "experiment.py", io), tmp_path)
    assert (out / "model.pt").stat().st_size > 0
    assert len((out / "history.csv").read_text().splitlines()) == 1 + EXP["pretrain"]["epochs"]
    print(f"training job: {secs:.1f} s")


def test_analysis_job(envs: dict[str, Path], tmp_path: Path) -> None:
    hist = tmp_path / "history.csv"
    hist.write_text(
        "epoch,step,loss,val_loss,lr,cos_pos_qcd,cos_pos_hbb,cos_class_means\n"
        "1,4,2.5,2.6,0.001,0.5,0.6,0.1\n2,8,2.2,2.4,0.001,0.7,0.7,-0.2\n"
    )
    png = tmp_path / "fig" / "pretrain_history_all.png"
    io = {
        "input": {"h0": str(hist)},
        "output": {"png": str(png), "pdf": str(png.with_suffix(".pdf"))},
        "params": {"exp": {"pretrain": {"method": "simclr"}, "backbone": {"name": "edgeconv"}}},
        "wildcards": {"experiment": "toy", "augset": "all"},
        "log": str(tmp_path / "fig.log"),
    }
    code = _script_job("pretrain_history_figure", "experiment.py", io)
    _, secs = _job(envs, "analysis", code, tmp_path)
    assert png.stat().st_size > 0 and png.with_suffix(".pdf").stat().st_size > 0
    print(f"analysis job: {secs:.1f} s")


def test_delphes_python_half(envs: dict[str, Path], tmp_path: Path) -> None:
    from test_delphes import write_delphes_like

    root = write_delphes_like(tmp_path / "delphes.root")
    code = f"""
import sys
sys.path.insert(0, {str(REPO / "src")!r})
from jetforge.detector import delphes
cands = delphes.read_delphes_eflow({str(root)!r})
delphes._require("pyhepmc"); delphes._require("pythia8mc")
try:
    delphes.find_executable("DelphesHepMC3-not-installed")
except delphes.DelphesNotFoundError:
    pass
print("events", len(cands))
"""
    out, secs = _job(envs, "delphes", code, tmp_path)
    assert int(out.split()[-1]) > 0
    print(f"delphes job: {secs:.1f} s")


def test_driver_dry_run(envs: dict[str, Path], tmp_path: Path) -> None:
    """Snakemake parses the workflow, validates the tiny config and plans `all` with only
    the driver env (no awkward, h5py, scipy, fastjet, torch, Pythia)."""
    cfg = [str(REPO / "config" / f) for f in ("config.yaml", "tiny.yaml")]
    code = (
        "import sys\nfrom snakemake.cli import main\n"
        f"sys.argv = ['snakemake', '--snakefile', {str(REPO / 'Snakefile')!r}, '--directory',"
        f" {str(tmp_path)!r}, '--configfile', *{cfg!r}, '-n', 'all', '--quiet', 'rules']\n"
        "main()\n"
    )
    out, secs = _job(envs, "snakemake", code, tmp_path)
    assert re.search(r"^pretrain\s+\d+", out, re.M), out
    print(f"driver dry run: {secs:.1f} s")
