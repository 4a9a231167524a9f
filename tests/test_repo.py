"""Repository hygiene that runs itself (scikit-hep repo-review, snakemake-workflows catalogue):
ruff with the rules of pyproject.toml, ``snakemake --lint``, the citation / licence /
pre-commit files, and a config README that names every experiment key of the schema."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LINTED = ["src", "workflow/scripts", "tests", "bench"]
PAPERS_ARXIV = ("2403.07066", "2503.11632", "2401.13537", "2601.11719", "2606.14813")


def _run(cmd: list[str], cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_ruff_check_is_clean() -> None:
    res = _run([sys.executable, "-m", "ruff", "check", "--no-cache", *LINTED])
    assert res.returncode == 0, f"ruff check {' '.join(LINTED)}:\n{res.stdout}{res.stderr}"


def test_snakemake_lint_is_clean(tmp_path: Path) -> None:
    """``snakemake --lint`` exits 1 on any finding (missing log, absolute path, ...)."""
    res = _run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(REPO), "--lint", "-n"],
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, f"snakemake --lint:\n{res.stdout}{res.stderr}"


def test_snakefmt_leaves_the_workflow_unchanged() -> None:
    """The pre-commit hook's formatter has nothing to do on the committed rules."""
    snakefmt = Path(sys.executable).with_name("snakefmt")
    res = _run([str(snakefmt), "--check", "Snakefile", "workflow/rules"])
    assert res.returncode == 0, f"snakefmt --check:\n{res.stdout}{res.stderr}"


@pytest.mark.parametrize(
    "name", ["LICENSE", "CITATION.cff", ".pre-commit-config.yaml", "config/README.md"]
)
def test_repository_file_exists(name: str) -> None:
    assert (REPO / name).is_file(), f"{name} is missing"


def test_license_is_mit() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the jetforge developers" in text


def test_citation_cites_the_five_papers() -> None:
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["license"] == "MIT"
    refs = yaml.safe_dump(cff["references"])
    missing = [a for a in PAPERS_ARXIV if a not in refs]
    assert not missing, f"CITATION.cff references lack arXiv:{missing}"


def test_pre_commit_ruff_matches_the_pinned_ruff() -> None:
    from importlib.metadata import version

    cfg = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    repos = {r["repo"].rstrip("/").rsplit("/", 1)[-1]: r for r in cfg["repos"]}
    assert repos["ruff-pre-commit"]["rev"] == f"v{version('ruff')}"
    assert "ruff" in [h["id"] for h in repos["ruff-pre-commit"]["hooks"]]
    assert "snakefmt" in [h["id"] for h in repos["snakefmt"]["hooks"]]


def _property_names(node: Any) -> Iterator[str]:
    """Every key under a ``properties`` mapping, recursively (also inside allOf, items,
    additionalProperties, ...)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "properties" and isinstance(v, dict):
                yield from v
            yield from _property_names(v)
    elif isinstance(node, list):
        for v in node:
            yield from _property_names(v)


def test_config_readme_explains_every_experiment_key() -> None:
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    names = set(_property_names(schema["$defs"]["experiment"]))
    names |= set(_property_names(schema["$defs"]["engine"]))  # pretrain / finetune allOf
    assert {"pretrain", "finetune", "augsets", "tasks", "grid", "llrd"} <= names
    readme = (REPO / "config" / "README.md").read_text()
    missing = sorted(n for n in names if f"`{n}`" not in readme and f"`{n}." not in readme
                     and f".{n}`" not in readme)  # fmt: skip
    assert not missing, f"config/README.md does not explain {missing}"
