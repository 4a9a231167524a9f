"""RS3L's tables (Harris et al., arXiv:2403.07066): rejection (Tables II, IV) and the
Wasserstein distance of the tagger output between shower variants (Tables III, V), computed
from one fine-tuning task's prediction files with the N_2 baseline row first."""

from __future__ import annotations

from pathlib import Path

from jetforge import experiment as X
from jetforge.paper_outputs import OutputJob, OutputKind
from jetforge.workflow import targets as T


def task_predictions(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    """Every prediction file of the spec's task, as the job's one input list."""
    files = T.predictions_for(config, experiment, spec["task"])
    return {"predictions": [p for fs in files.values() for p in fs]}


def _task_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    tasks = (config["experiments"][experiment].get("finetune") or {}).get("tasks", {})
    if spec.get("task") not in tasks:
        return [f"task {spec.get('task')!r} is not a fine-tuning task; tasks: {sorted(tasks)}"]
    return []


def _rejection_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs = _task_errors(config, experiment, spec)
    if not spec.get("efficiencies"):
        errs.append("efficiencies: a rejection table needs the signal efficiencies it quotes, "
                    "e.g. [0.3, 0.5, 0.7]")  # fmt: skip
    return errs


def _setups(job: OutputJob) -> dict[str, list[str]]:
    """Setup id -> prediction files, N_2 first (it is stored in every prediction file)."""
    setups = {X.setup_id(r): [] for r in X.finetune_grid(job.exp, job.spec["task"])}
    for run in X.finetune_grid(job.exp, job.spec["task"]):
        setups[X.setup_id(run)].append(T.prediction_path(job.experiment, run))
    missing = [p for files in setups.values() for p in files if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"{job.name}: prediction files missing: {missing}")
    return {"n2": next(iter(setups.values())), **setups}


def _title(job: OutputJob) -> str:
    return f"{job.paper} {job.name}: {job.spec['kind']} on {job.spec['task']}"


def build_rejection(job: OutputJob) -> None:
    from jetforge.reporting.tables import rejection_table

    rejection_table(_setups(job), list(job.spec["efficiencies"]), job.reference(),
                    job.out["csv"], job.out["md"], _title(job))  # fmt: skip


def build_wasserstein(job: OutputJob) -> None:
    from jetforge.reporting.tables import wasserstein_table

    ds = job.config["datasets"][job.exp["dataset"]]
    variants = list(ds["shower"]["variants"])[1:]
    wasserstein_table(_setups(job), variants, job.reference(), job.out["csv"], job.out["md"],
                      _title(job))  # fmt: skip


TASK_KEYS = frozenset({"task"})
REJECTION = OutputKind(task_predictions, build_rejection, _rejection_errors,
                       TASK_KEYS | {"efficiencies"})  # fmt: skip
WASSERSTEIN = OutputKind(task_predictions, build_wasserstein, _task_errors, TASK_KEYS)
