"""The Slurm profile (profiles/slurm, linked as `slurm` at the repository root) against
stand-in Slurm commands.

`sbatch`, `sacct`, `squeue`, `srun`, `scancel` and `sinfo` are one small script that records
its arguments and runs the job here: `sbatch` runs the wrapped command to its end and prints
the job id (`--parsable`), `sacct`/`squeue` answer the executor's status query
(`<jobid>|<STATE>` per job of the run's name), `srun` runs its command, `sinfo` lists a `cpu`
and a `gpu` partition. The real executor plugin builds every sbatch line; the test reads
them back and checks partition, GPU request, memory and time of every submitted job.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
CONFIGS = [REPO / "config" / "config.yaml", REPO / "config" / "tiny.yaml"]
GPU_RULES = {"tokenizer", "pretrain", "finetune", "embed", "leaderboard_entry"}
# The stand-in run: the tiny config with JetClass generated for two classes only (chunks
# of the others: none; the processes stay declared, since other experiments' tasks name
# them) and one fine-tuning mode, so MPM's path through all four GPU rules is ~20 jobs
# rather than ~70 (each job starts Snakemake twice here). On a few dozen jets the
# pre-training's collapse check (effective rank of the validation embedding) says nothing;
# job placement is the subject.
TWO_CLASS_JETCLASS = """
datasets:
  jetclass:
    events_per_chunk: 60
    batch_events: 60
    chunks:
      train: {qcd_zjet: 1, tbqq_tt: 1}
      val: {qcd_zjet: 1, tbqq_tt: 1}
      test: {qcd_zjet: 1, tbqq_tt: 1}
experiments:
  mpm:
    pretrain: {collapse_rank: null}
    tables: {}             # the paper's tables read tasks this overlay replaces
    paper_figures: {}
    finetune:
      tasks:
        top_vs_qcd: {classes: [qcd_zjet, tbqq_tt]}
      modes: [floating]
      n_train: [20]
"""

STAND_IN = r'''#!{python}
"""Stand-in Slurm command: records its arguments in $FAKE_SLURM/calls.jsonl, runs jobs here."""
import fcntl, json, os, subprocess, sys
from pathlib import Path

STATE = Path(os.environ["FAKE_SLURM"])
CMD, ARGS = Path(sys.argv[0]).name, sys.argv[1:]


def record(**extra):
    with open(STATE / "calls.jsonl", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps({"cmd": CMD, "args": ARGS, **extra}) + "\n")


def option(args, *names):
    """Value of the first of `names` given as `--opt value`, `--opt=value` or `-p value`."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1:]
    return None


def next_jobid():
    with open(STATE / "jobid", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        jobid = int(f.read() or 1000) + 1
        f.seek(0)
        f.truncate()
        f.write(str(jobid))
    return str(jobid)


def jobs_named(name):
    for path in sorted((STATE / "jobs").glob("*.json")):
        job = json.loads(path.read_text())
        if name is None or job["name"] == name:
            yield job


if CMD == "sbatch":
    jobid = next_jobid()
    record(jobid=jobid)
    log = Path(option(ARGS, "--output", "-o").replace("%j", jobid))
    env = dict(os.environ, SLURM_JOB_ID=jobid, SLURM_JOBID=jobid)
    with open(log, "w") as out:
        rc = subprocess.run(["/bin/sh", "-c", option(ARGS, "--wrap")], stdout=out,
                            stderr=subprocess.STDOUT, env=env,
                            cwd=option(ARGS, "-D", "--chdir") or os.getcwd()).returncode
    state = "COMPLETED" if rc == 0 else "FAILED"
    job = {"id": jobid, "name": option(ARGS, "--job-name", "-J"), "state": state}
    (STATE / "jobs").mkdir(exist_ok=True)
    (STATE / "jobs" / f"{jobid}.json").write_text(json.dumps(job))
    print(jobid)
elif CMD == "srun":
    record(jobid=os.environ.get("SLURM_JOB_ID"))
    i = 0
    while i < len(ARGS) and ARGS[i].startswith("-"):
        i += 1
    os.execvp(ARGS[i], ARGS[i:])
elif CMD in ("sacct", "squeue"):
    record()
    if "--name" in ARGS:  # the status query; other sacct calls (account, reasons) get nothing
        for job in jobs_named(option(ARGS, "--name")):
            print(f"{job['id']}|{job['state']}")
elif CMD == "sinfo":
    record()
    print("PARTITION\ncpu*\ngpu")
else:  # scancel
    record()
'''


def _install_stand_ins(root: Path) -> Path:
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    script = STAND_IN.replace("{python}", sys.executable)
    for name in ("sbatch", "sacct", "squeue", "srun", "scancel", "sinfo"):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _sbatch_flags(args: list[str]) -> dict:
    """Rule, partition, GPU request, memory and time of one recorded sbatch line."""

    def value(*names: str) -> str | None:
        for i, arg in enumerate(args):
            for name in names:
                if arg == name:
                    return args[i + 1]
                if arg.startswith(name + "="):
                    return arg[len(name) + 1 :]
        return None

    comment = value("--comment") or ""
    gpu = [a for a in args if a.startswith(("--gpus", "--gres", "--gpus-per"))]
    return {
        "rule": comment.removeprefix("rule_").split("_wildcards_")[0],
        "partition": value("-p", "--partition"),
        "gpu": " ".join(gpu),
        "mem": value("--mem"),
        "time": value("-t", "--time"),
        "cpus": value("--cpus-per-task", "--cpus-per-gpu"),
    }


def _gpu_rules_of_the_workflow() -> set[str]:
    """Rules whose `resources:` declare a GPU (`gpu=`), read from the rule files."""
    rules = set()
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule )", smk.read_text(), flags=re.M):
            head = re.match(r"rule (\w+):", block)
            if head and re.search(r"^\s+gpu=", block, flags=re.M):
                rules.add(head.group(1))
    return rules


def test_bare_profile_name_resolves_from_the_repository_root(monkeypatch) -> None:
    """`snakemake --profile slurm` in the repository root finds profiles/slurm."""
    from snakemake.cli import get_profile_dir

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(REPO / "nonexistent"))
    found = get_profile_dir("slurm")
    assert found is not None, "snakemake --profile slurm finds no profile in the repo root"
    assert found[1].resolve() == (PROFILE / "config.yaml").resolve()


def test_every_gpu_rule_runs_in_the_gpu_partition_of_the_profile() -> None:
    """The profile's GPU block covers exactly the rules that declare a GPU."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    cpu_partition = profile["default-resources"]["slurm_partition"]
    gpu_block = profile["set-resources"]
    assert _gpu_rules_of_the_workflow() == GPU_RULES == set(gpu_block)
    assert set(profile["set-threads"]) == GPU_RULES  # their cores: loader workers + host
    for rule, res in gpu_block.items():
        assert res["slurm_partition"] != cpu_partition, rule
    assert profile["executor"] == "slurm"


def test_slurm_plugin_is_installed() -> None:
    """The executor the profile names comes with `pip install -e .`."""
    import snakemake_executor_plugin_slurm  # noqa: F401
    import snakemake_executor_plugin_slurm_jobstep  # noqa: F401


class _Resources(dict):
    """A job's resources as the executor plugin reads them (`.get` and attributes)."""

    __getattr__ = dict.__getitem__


@pytest.mark.parametrize("style", ["gpus", "gres"])
def test_gpu_request_style_is_one_switch_in_the_profile(style: str) -> None:
    """As shipped, a GPU rule's gpu=1 becomes `--gpus=1`; with the two commented lines of
    the GPU block enabled it becomes `--gres=gpu:1` (and srun asks for no extra GPU)."""
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm_jobstep import get_gpu_setting

    text = (PROFILE / "config.yaml").read_text()
    if style == "gres":
        switched = re.sub(r'^(\s+)# (gpu: 0|gres: "gpu:1")$', r"\1\2", text, flags=re.M)
        assert switched.count("\n") == text.count("\n") and switched != text
        text = switched
    block = yaml.safe_load(text)["set-resources"]["pretrain"]
    job = types.SimpleNamespace(resources=_Resources({"gpu": 1, **block}))
    expected = {"gpus": " --gpus=1", "gres": " --gres=gpu:1"}[style]
    assert set_gres_string(job) == expected
    assert get_gpu_setting(job) == ("--gpus=1" if style == "gpus" else "")


def _dry_run_resources(stdout: str) -> dict[str, set[str]]:
    """Rule -> the distinct `resources:` lines of its jobs in a dry run's job listing."""
    out: dict[str, set[str]] = {}
    rule = None
    for line in stdout.splitlines():
        head = re.match(r"(?:local)?rule (\w+):", line)
        if head:
            rule = head.group(1)
        elif rule and line.strip().startswith("resources:"):
            out.setdefault(rule, set()).add(line.strip().removeprefix("resources:").strip())
    return out


def test_literal_command_places_every_rule_of_all(tmp_path: Path) -> None:
    """`snakemake --profile slurm all` from the repository root, as a dry run over every rule
    of `all`: GPU rules get the GPU partition and gpu=1, the others the CPU partition and no
    GPU, and every job has mem_mb and runtime."""
    cmd = [
        sys.executable, "-m", "snakemake", "--profile", "slurm", "all", "-n",
        "--directory", str(tmp_path), "--configfile", *map(str, CONFIGS),
    ]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-6000:]
    listing = _dry_run_resources(res.stdout + res.stderr)
    assert set(listing) >= GPU_RULES | {"generate_block", "merge_split"}
    for rule, lines in listing.items():
        for line in lines:
            res_of = dict(kv.split("=", 1) for kv in line.split(", "))
            assert int(res_of["mem_mb"]) > 0 and int(res_of["runtime"]) > 0, (rule, line)
            if rule in GPU_RULES:
                assert (res_of["slurm_partition"], res_of.get("gpu")) == ("gpu", "1"), line
            else:
                assert res_of["slurm_partition"] == "cpu", (rule, line)
                assert res_of.get("gpu", "0") == "0", (rule, line)


@pytest.mark.workflow
def test_profile_submits_every_job_where_it_belongs(tmp_path: Path) -> None:
    """MPM on the tiny config (JetClass cut to two classes) through its fine-tuning table and
    one embedding, with the real executor plugin and stand-in Slurm commands: tokenizer,
    pretrain, finetune and embed go to the GPU partition with one GPU; generation, datasets
    and the table to the CPU partition with none; every job states memory and time."""
    fake = tmp_path / "fake_slurm"
    bin_dir = _install_stand_ins(fake)
    work = tmp_path / "work"
    work.mkdir()
    overlay = tmp_path / "two_class_jetclass.yaml"
    overlay.write_text(TWO_CLASS_JETCLASS)
    targets = ["results/tables/mpm/finetune.csv", "results/embeddings/mpm/default/r0/test.h5"]
    cmd = [
        sys.executable, "-m", "snakemake", "--profile", str(PROFILE),
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
        "--jobs", "2", "--latency-wait", "5", "--retries", "0",
        "--seconds-between-status-checks", "1", "--slurm-init-seconds-before-status-checks", "1",
        *targets, "--configfile", *map(str, CONFIGS), str(overlay),
    ]  # fmt: skip
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SLURM": str(fake),
        "JETFORGE_NO_PROGRESS": "1",
    }
    start = time.monotonic()
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - start
    assert res.returncode == 0, f"{shlex.join(cmd)}\n{res.stderr[-8000:]}"
    for target in targets:
        assert (work / target).is_file(), target

    calls = [json.loads(line) for line in (fake / "calls.jsonl").read_text().splitlines()]
    jobs = {c["jobid"]: _sbatch_flags(c["args"]) for c in calls if c["cmd"] == "sbatch"}
    srun = {c["jobid"]: c["args"] for c in calls if c["cmd"] == "srun"}
    table = "\n".join(
        f"  {j['rule']:<16} -p {j['partition']:<4} {j['gpu'] or '-':<9} --mem {j['mem']:<6} "
        f"-t {j['time']:<4} cpus {j['cpus']}"
        for j in sorted(jobs.values(), key=lambda j: (j["rule"], j["partition"]))
    )
    print(f"\n{len(jobs)} sbatch jobs in {seconds:.0f} s:\n{table}")

    # every GPU rule but the leaderboard's (not on MPM's path; the dry run of `all` above
    # places it) ran, with the cores the profile's set-threads gives GPU jobs
    ran = GPU_RULES - {"leaderboard_entry"} | {"generate_block", "finetune_summary"}
    assert {j["rule"] for j in jobs.values()} >= ran
    cores = yaml.safe_load((PROFILE / "config.yaml").read_text())["set-threads"]
    assert set(srun) == set(jobs), "every sbatch job runs its rule through srun"
    for jobid, job in jobs.items():
        assert job["mem"] and int(job["mem"]) > 0, job
        assert job["time"] and int(job["time"]) > 0, job
        if job["rule"] in GPU_RULES:
            assert job["partition"] == "gpu", job
            assert job["cpus"] == str(cores[job["rule"]]), job
            assert job["gpu"] == "--gpus=1", job
            assert "--gpus=1" in srun[jobid], (job, srun[jobid])
        else:
            assert job["partition"] == "cpu", job
            assert job["gpu"] == "", job
            assert not any(a.startswith("--gpus") for a in srun[jobid]), (job, srun[jobid])
