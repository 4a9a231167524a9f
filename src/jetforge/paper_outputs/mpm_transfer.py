"""Masked particle modelling's Fig. 5 (right): taggers fine-tuned on one dataset, tested on
another (Golling, Heinrich, Kagan, Klein, Leigh, Osadchy, Raine, arXiv:2401.13537 §V E).

The paper fine-tunes its JetClass-pre-trained backbone on RODEM top vs QCD and draws the
QCD rejection at 50 % top efficiency on the RODEM test set (left, kind
``accuracy_vs_labels`` with ``metric: rejection``) and on the JetClass test set (right),
both against the RODEM labelled-set size. A fine-tuning job tests on its own task's test
split only, so this kind (``cross_dataset_rejection``) loads each fine-tuned classifier
(``model.pt`` beside its predictions, jetforge.evaluation.robustness) and scores the
signal and background jets of another dataset's split, read in the experiment's feature
set (jetforge.workflow.targets.read_path: for MPM the same (p_T, η, φ) on both datasets,
nothing zero-filled). The curves are drawn as Fig. 3-5's (mean ± std over repeats).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jetforge.paper_outputs import OutputJob, OutputKind
from jetforge.workflow import targets as T

#: signal efficiency of the rejection (MPM §V E: "QCD background rejection ... at 50 %
#: top-jet signal efficiency")
EFFICIENCY = 0.5


def transfer_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    """The task's predictions (their classifiers lie beside them) and the other split."""
    files = T.predictions_for(config, experiment, spec["task"])
    test = T.read_path(config, experiment, spec["test_dataset"], spec.get("split", "test"))
    return {"predictions": [p for fs in files.values() for p in fs], "test": [test]}


def _transfer_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    tasks = (config["experiments"][experiment].get("finetune") or {}).get("tasks", {})
    task = tasks.get(spec.get("task"))
    if task is None:
        return [f"task: {spec.get('task')!r} is not a fine-tuning task of experiment "
                f"{experiment!r}; tasks: {sorted(tasks)}"]  # fmt: skip
    if "classes" in task or task.get("weak"):
        return [f"task: {spec['task']!r} is not a plain binary (signal/background) task"]
    ds = config.get("datasets", {}).get(spec.get("test_dataset"))
    if ds is None:
        return [f"test_dataset: {spec.get('test_dataset')!r} is not a dataset; defined: "
                f"{sorted(config.get('datasets', {}))}"]  # fmt: skip
    from jetforge.datasets import dataset_splits

    errs, split = [], spec.get("split", "test")
    if split not in dataset_splits(ds):
        errs.append(f"split: dataset {spec['test_dataset']!r} has no split {split!r}; it "
                    f"has {sorted(dataset_splits(ds))}")  # fmt: skip
    for role in ("signal", "background"):
        if spec.get(role) not in ds.get("processes", []):
            errs.append(f"{role}: {spec.get(role)!r} is not a process of dataset "
                        f"{spec['test_dataset']!r}; it has {ds.get('processes', [])}")  # fmt: skip
    return errs


def cross_rejection(pred: str, test_h5: str, signal: str, background: str) -> dict[str, Any]:
    """Mode, n_train, repeat and the rejection at :data:`EFFICIENCY` on ``test_h5`` of the
    classifier that wrote ``pred``."""
    import h5py
    import torch

    from jetforge.evaluation.metrics import rejection_at
    from jetforge.evaluation.robustness import classifier_path, load_classifier
    from jetforge.training.data import select_labelled_rows
    from jetforge.training.finetune import predict

    with h5py.File(pred, "r") as f:
        row = {k: f.attrs[k] for k in ("mode", "n_train", "repeat")}
    rows, labels = select_labelled_rows(test_h5, signal, background, None)
    model = load_classifier(classifier_path(pred), scores=test_h5)
    scores = predict(model, test_h5, rows, torch.device("cpu"))
    row = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in row.items()}
    return {**row, "n_test": int(rows.size),
            "rejection": rejection_at(scores, labels, EFFICIENCY)}  # fmt: skip


def build_transfer(job: OutputJob) -> None:
    """Fig. 5 (right): rejection on ``test_dataset`` vs the task's labelled-set size."""
    import pandas as pd

    from jetforge.paper_outputs.mpm import draw_accuracy_vs_labels
    from jetforge.reporting.table_io import mean_std_by

    files = job.inputs["predictions"]
    missing = [p for p in files if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"{job.name}: prediction files missing: {missing}")
    test_h5 = job.inputs["test"][0]
    runs = pd.DataFrame([cross_rejection(p, test_h5, job.spec["signal"], job.spec["background"])
                         for p in files])  # fmt: skip
    stats = mean_std_by(runs, ["mode", "n_train"], ["rejection"])
    rows = [{**r, "n_train": int(r["n_train"])} for r in stats.to_dict("records")]
    n_rep = int(stats["n_repeats"].max())
    task = job.exp["finetune"]["tasks"][job.spec["task"]]
    trained_on = task.get("dataset", job.exp["dataset"])
    title = job.spec.get("caption") or (
        f"{job.paper} {job.name}: fine-tuned on our stand-in of {trained_on} "
        f"({job.spec['task']}), tested on {int(runs['n_test'].iloc[0])} jets of our stand-in "
        f"of {job.spec['test_dataset']} ({job.spec['signal']} vs {job.spec['background']}); "
        f"mean ± std over {n_rep} repeats"
    )
    draw_accuracy_vs_labels(rows, job.stem, title, f"tested on {job.spec['test_dataset']}",
                            "rejection")  # fmt: skip


CROSS_DATASET_REJECTION = OutputKind(
    transfer_inputs, build_transfer, _transfer_errors,
    frozenset({"task", "test_dataset", "split", "signal", "background"}), heavy=True,
)  # fmt: skip
