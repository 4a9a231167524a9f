"""Per-family environments built from ``envs/*.yaml`` without conda (tests/test_envs.py).

conda cannot be installed where our tests run, so an env file is checked by building the
environment it describes from what is already installed: a fresh virtual environment
(``python -m venv --without-pip``, no network) whose ``site-packages`` holds symlinks to
exactly the env file's distributions and their dependency closure (``Requires-Dist`` with
markers evaluated, read through :mod:`importlib.metadata` from the interpreter running the
tests). A job run with that interpreter under ``-I`` sees nothing else: no ``PYTHONPATH``,
no user site, not the test venv's packages.

What a real ``--software-deployment-method conda`` job sees is mimicked too: Snakemake's
script preamble *appends* the driver's ``sys.path`` to the job's (so the job can unpickle
the ``snakemake`` object), hence :func:`job_sys_path` puts the driver env after the
family env. A package missing from a family env would therefore be found in the driver
env, as on a cluster; the forbidden-package checks look at both.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
ENVS = REPO / "envs"

#: conda-level dependencies an env file may list besides its ``pip:`` block: the
#: interpreter, pip itself, and C++ programs that have no wheel (Delphes)
CONDA_ONLY = {"python", "pip", "delphes"}


def env_requirements(name: str) -> tuple[list[Requirement], list[str]]:
    """``(pip requirements, conda package specs)`` of ``envs/<name>.yaml``; pip option
    lines (``--extra-index-url ...``) are skipped."""
    spec = yaml.safe_load((ENVS / f"{name}.yaml").read_text())
    pip: list[Requirement] = []
    conda: list[str] = []
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            pip += [Requirement(r) for r in dep["pip"] if not r.lstrip().startswith("-")]
        else:
            conda.append(str(dep))
    return pip, conda


@functools.cache
def _installed() -> dict[str, md.Distribution]:
    out: dict[str, md.Distribution] = {}
    for d in md.distributions():
        out.setdefault(canonicalize_name(d.metadata["Name"]), d)
    return out


def closure(reqs: Iterable[Requirement]) -> dict[str, md.Distribution]:
    """Every installed distribution ``reqs`` need, transitively (markers evaluated for
    this interpreter; extras followed where a requirement names them)."""
    inst = _installed()
    out: dict[str, md.Distribution] = {}
    todo = [(r, frozenset(r.extras)) for r in reqs]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if name not in inst:
            raise LookupError(f"{req} is not installed in {sys.prefix}")
        dist = inst[name]
        if not req.specifier.contains(dist.version, prereleases=True):
            raise LookupError(f"installed {name} {dist.version} does not satisfy {req}")
        if name in out and not extras:
            continue
        out[name] = dist
        for line in dist.requires or []:
            sub = Requirement(line)
            envs = [{"extra": e} for e in extras] or [{"extra": ""}]
            if sub.marker is None or any(sub.marker.evaluate(e) for e in envs):
                todo.append((sub, frozenset(sub.extras)))
    return out


def _top_levels(dist: md.Distribution) -> set[str]:
    return {f.parts[0] for f in dist.files or [] if f.parts and f.parts[0] != ".."}


@functools.cache
def _owners() -> dict[str, int]:
    """How many installed distributions put files under each top-level name."""
    count: dict[str, int] = {}
    for d in _installed().values():
        for top in _top_levels(d):
            count[top] = count.get(top, 0) + 1
    return count


def _link_dist(dist: md.Distribution, site: Path) -> None:
    """Symlink ``dist`` into ``site``: whole top-level directories it owns alone, file by
    file inside namespace directories shared with other distributions, and file by file
    what it installs outside ``site-packages`` (``../../../share/Pythia8``: Pythia finds
    its XML settings relative to the env's prefix)."""
    owners = _owners()
    for f in dist.files or []:
        if f.parts and f.parts[0] == ".." and "__pycache__" not in f.parts:
            target = Path(os.path.normpath(site / f))
            path = Path(str(dist.locate_file(f)))
            if path.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(path)
    for top in _top_levels(dist):
        src = Path(str(dist.locate_file(top)))
        if owners[top] == 1 or not src.is_dir():
            if not (site / top).exists() and src.exists():
                (site / top).symlink_to(src)
            continue
        for f in dist.files or []:
            if f.parts[0] != top:
                continue
            target = site / f
            path = Path(str(dist.locate_file(f)))
            if path.exists() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(path)


def build_env(dists: Iterable[md.Distribution], where: Path) -> Path:
    """A venv at ``where`` holding exactly ``dists``; returns its interpreter."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--symlinks", str(where)], check=True
    )
    site = where / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = site / "site-packages"
    for d in dists:
        _link_dist(d, site)
    return where / "bin" / "python"


def site_packages(python: Path) -> Path:
    v = sys.version_info
    return python.parents[1] / "lib" / f"python{v.major}.{v.minor}" / "site-packages"


def run_isolated(
    python: Path, code: str, cwd: Path, *, append: Iterable[Path] = (), timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -I -c code`` with ``append`` added at the end of ``sys.path`` (as
    Snakemake's script preamble appends the driver's path) and nothing else."""
    pre = f"import sys; sys.path.extend({[str(p) for p in append]!r})\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg", JETFORGE_NO_PROGRESS="1")
    return subprocess.run(
        [str(python), "-I", "-c", pre + code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
