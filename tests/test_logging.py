"""A rule's log says what ran, how it went and, when it failed, why (issue 11)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from jetforge.workflow.logging import format_header, job_header, job_log, log_to

REPO = Path(__file__).resolve().parents[1]
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def _failing_job() -> None:
    logging.getLogger("jetforge.test").info("resumed at step %d", 7)
    print("printed from Python")
    os.write(1, b"written to fd 1 from C\n")
    os.write(2, b"written to fd 2 from C\n")
    raise RuntimeError("chunk 3 is corrupt")


def test_log_holds_header_info_c_output_and_traceback(tmp_path, capfd):
    log = tmp_path / "logs" / "job.log"
    header = format_header(
        "merge_split", {"dataset": "jetnet", "split": "test"}, ["a.h5", "b.h5"], ["out.h5"],
        threads=1, device="auto",
    )  # fmt: skip
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(RuntimeError, match="chunk 3 is corrupt"), log_to(log, header=header):
        _failing_job()
    text = log.read_text()
    assert "rule merge_split" in text and "dataset=jetnet, split=test" in text
    assert re.search(r"input: +a\.h5\n +b\.h5\n", text) and re.search(r"output: +out\.h5", text)
    assert re.search(r"threads: +1\n", text)
    assert re.search(
        r"device: +(cuda:0 \(.+\)|cpu \(no CUDA device found; device: auto fell back to CPU\))",
        text,
    )
    assert re.search(STAMP + r" INFO jetforge\.test: resumed at step 7\n", text)
    for line in ("printed from Python", "written to fd 1 from C", "written to fd 2 from C"):
        assert line in text
    assert re.search(STAMP + r" ERROR jetforge\.workflow: job failed after", text)
    assert "Traceback (most recent call last)" in text and "in _failing_job" in text
    assert text.rstrip().endswith("RuntimeError: chunk 3 is corrupt")
    # descriptors and the root logger are back as they were
    assert logging.getLogger().handlers == handlers
    os.write(1, b"back on the console\n")
    assert "back on the console" in capfd.readouterr().out


def test_job_header_from_the_snakemake_object(tmp_path):
    """What the scripts hand over: rule, wildcards, files, threads, params.device."""
    job = SimpleNamespace(
        rule="pretrain", wildcards={"experiment": "rs3l", "repeat": "0"},
        input=["results/datasets/rs3l/pretrain.h5"], output=["results/models/x/model.pt"],
        threads=4, params={"device": "cpu"}, log=[str(tmp_path / "x.log")],
    )  # fmt: skip
    text = job_header(job)
    assert "rule pretrain" in text and "experiment=rs3l, repeat=0" in text
    assert re.search(r"device: +cpu\n", text) and re.search(r"threads: +4\n", text)
    job.params = {}
    assert "cpu (this rule does not use an accelerator)" in job_header(job)


def test_job_log_sweeps_what_a_killed_run_left(tmp_path):
    out = tmp_path / "results" / "model.pt"
    out.parent.mkdir()
    stale = out.parent / ".model.abcd1234.tmp.pt"
    stale.write_text("half a model")
    os.utime(stale, (1_000_000_000, 1_000_000_000))  # older than this process
    job = SimpleNamespace(
        rule="pretrain", wildcards={}, input=[], output=[str(out)], threads=1, params={},
        log=[str(tmp_path / "job.log")],
    )  # fmt: skip
    with job_log(job):
        pass
    assert not stale.exists()
    assert f"swept stale temporary {stale}" in (tmp_path / "job.log").read_text()


def test_successful_job_logs_its_duration(tmp_path):
    log = tmp_path / "ok.log"
    with log_to(log, header="==== header\n"):
        logging.getLogger("jetforge.test").debug("not at INFO: stays out")
    text = log.read_text()
    assert text.startswith("==== header\n")
    assert re.search(STAMP + r" INFO jetforge\.workflow\.logging: job done in", text)
    assert "stays out" not in text and "Traceback" not in text


def test_a_failed_rule_leaves_its_traceback_in_its_log(tmp_path):
    """merge_split on corrupt chunk files (pre-created, so nothing is generated)."""
    import yaml

    from jetforge.workflow.targets import chunk_h5_paths

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    chunks = chunk_h5_paths(cfg, "jetnet", "test")
    for chunk in chunks:
        (tmp_path / chunk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / chunk).write_bytes(b"this is not an HDF5 file\n")
    target = "results/datasets/jetnet/test.h5"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(REPO / "config" / "config.yaml"),
           str(REPO / "config" / "tiny.yaml"), "--cores", "1", target]  # fmt: skip
    env = {**os.environ, "JETFORGE_NO_PROGRESS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode != 0, res.stdout[-2000:]
    assert "rule generate_block" not in res.stdout + res.stderr  # nothing was generated
    text = (tmp_path / "logs" / "datasets" / "jetnet" / "test.log").read_text()
    assert "rule merge_split" in text and "dataset=jetnet, split=test" in text
    assert chunks[0] in text  # the header lists the inputs
    assert "Traceback (most recent call last)" in text and "merge_split" in text
    last = text.rstrip().splitlines()[-1]
    assert re.match(r"[\w.]+(Error|Exception)\b", last), text[-2000:]
    assert not (tmp_path / target).exists()
    assert not list((tmp_path / target).parent.glob(".*tmp*"))  # no partial file either
