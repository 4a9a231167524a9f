"""The whole workflow, `all` on the default config with the tiny overrides, end to end."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _cmd(workdir: Path, *configfiles: Path) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--configfile", *map(str, configfiles)]  # fmt: skip


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [*_cmd(workdir, REPO / "config" / "config.yaml", REPO / "config" / "tiny.yaml"), *args]
    env = {**os.environ, "JETFORGE_NO_PROGRESS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)


def test_dry_run_of_all_resolves_every_target(tmp_path):
    """Every path jetforge.workflow.targets asks for is produced by some rule."""
    res = _snakemake(tmp_path, "-n", "all")
    assert res.returncode == 0, res.stderr[-3000:]
    for rule in ("paper_table", "paper_figure", "paper_claims", "claims", "leaderboard_entry"):
        assert rule in res.stdout, rule


def test_one_table_builds_only_what_it_needs(tmp_path):
    res = _snakemake(tmp_path, "-n", "results/tables/rs3l/table2.csv")
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    assert "paper_table" in out and "finetune" in out and "pretrain" in out
    assert "task_figure" not in out and "paper_figure" not in out and "claims" not in out
    assert "wqq_vs_qcd" not in out


def test_bad_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  rs3l:\n    jets:\n      R: -0.4\n")
    cmd = [*_cmd(tmp_path, REPO / "config" / "config.yaml", bad), "-n", "all"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode != 0
    assert "datasets.rs3l.jets.R: value -0.4" in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_default_all_on_tiny_config(tmp_path):
    res = _snakemake(tmp_path, "--cores", "2", "all")
    if res.returncode != 0:
        logs = (
            "\n".join(
                f"--- {p}\n{p.read_text()[-3000:]}" for p in (tmp_path / "logs").rglob("*.log")
            )
            if (tmp_path / "logs").exists()
            else ""
        )
        pytest.fail(f"snakemake failed:\n{res.stderr[-6000:]}\n{logs[-6000:]}")
    tables = tmp_path / "results" / "tables" / "rs3l"
    for t in ("table2", "table3", "table4", "table5"):
        assert (tables / f"{t}.md").stat().st_size > 100
        with (tables / f"{t}.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert (tables / f"{t}.tex").read_text().count("\\begin{tabular}") == 1
        assert len(rows) >= 3
        for row in rows:
            ours = {
                k: v
                for k, v in row.items()
                if k and not k.startswith("paper") and "@" in k or k.startswith("w_")
            }
            values = [
                float(v) for k, v in ours.items() if v not in ("", None) and not k.endswith("_std")
            ]
            assert values, row
            assert all(math.isfinite(v) for v in values), row
            if t in ("table2", "table4"):
                assert all(v > 1 for v in values), row
            else:
                assert all(v >= 0 for v in values), row
    figures = tmp_path / "results" / "figures" / "rs3l"
    for stem in (
        *("fig2", "fig3a", "fig3b", "fig4", "fig5", "fig6", "fig7"),  # the paper's numbering
        "pretrain_history_all",
        "scores_hbb_vs_qcd",
        "scores_wqq_vs_qcd",
    ):
        for ext in ("png", "pdf"):
            assert (figures / f"{stem}.{ext}").stat().st_size > 5000, stem
    # RS3L's 8-d space is probed like every other method's (one experiment path)
    with (tables / "probes.csv").open() as fh:
        probes = list(csv.DictReader(fh))
    assert {r["encoder"] for r in probes} >= {"pre-trained r0", "random init (mean of 3)"}
    assert all(0 <= float(r["knn_acc"]) <= 1 for r in probes)
    # nothing half-written left behind
    assert not list((tmp_path / "results").rglob("*.tmp*"))
    # the HTML report builds (Pygments is a dependency for it) with every paper in it
    res = _snakemake(tmp_path, "--report", str(tmp_path / "report.zip"))
    assert res.returncode == 0, res.stderr[-3000:]
    import zipfile

    with zipfile.ZipFile(tmp_path / "report.zip") as z:
        html = z.read("report/report.html").decode()
    for author in ("Harris", "Golling", "Tsoi", "Letellier", "Rieck"):
        assert author in html, author
