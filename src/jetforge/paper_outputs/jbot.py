"""jBOT's classification tables (Tsoi & Rankin, arXiv:2601.11719): Table 2 (five-class:
accuracy and per-class one-vs-rest AUC of q, g, W, Z, t) and Table 3 (top tagging, t vs
q + g: accuracy, AUC and signal efficiency ε_s at background efficiencies 10⁻¹, 10⁻²).

Each table has two blocks, as the paper's:

* **Frozen embedding (no labels)**, §4.4: a k-NN (k = 30) and a linear classifier on the
  frozen [CLS] of every pre-training repeat, *as the authors evaluate them*: Euclidean
  distance on the raw [CLS], uniform votes, the **labelled training set as the reference**
  (the split the fine-tunings draw from), the test split as test set. The cosine k-NN
  (ℓ2-normalised [CLS], what ``probes.md`` reports) is kept as an extra row, and the same
  probes of the backbone randomly initialised are the baseline ("frozen kNN ≫ random").
* **Fine-tuning (with labels)**: the task's fine-tunings (``floating``: pre-trained + LLRD,
  the paper's jBOT rows; ``supervised``: same network from scratch, "Sup." rows; ``fixed``
  where run: frozen backbone + MLP head) at each labelled size, read from their prediction
  files. The smallest size is the paper's "10 %" row, the largest its "100 %" row.

A table may list further experiments (``experiments: [jbot_b]``: jBOT-B) whose rows follow
the owner's, labelled by backbone size. The CSV has one row per setup with ``{metric}``,
``{metric}_std`` and ``n_repeats`` (seeds: pre-training repeats for probes, fine-tuning
repeats otherwise) and, where the paper has the row, ``paper_{metric}``; derived rows
``gain-n{n}`` hold fine-tuned minus from-scratch per repeat (same labelled jets), so the
claim "largest gain at 10 %" reads two rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetforge import experiment as X
from jetforge.paper_outputs import OutputJob, OutputKind
from jetforge.workflow import targets as T

#: JetNet process -> the paper's class symbol (jBOT §4.1: q, g, W, Z, t)
SYMBOLS = {"zjet_q": "q", "zjet_g": "g", "wqq_wjet": "W", "zqq_zjet": "Z", "tbqq_tt": "t"}
#: probes of the frozen [CLS]: setup prefix -> display name
PROBES = {"knn": "k-NN", "knn_cosine": "k-NN (cosine)", "linear": "Linear"}
MODE_NAMES = {"floating": "jBOT", "supervised": "Sup.", "fixed": "jBOT frozen + MLP"}


def symbol(process: str) -> str:
    return SYMBOLS.get(process, process)


# ----------------------------------------------------------------------------- spec


def _experiments(config: dict, experiment: str, spec: dict) -> list[str]:
    return list(dict.fromkeys([experiment, *map(str, spec.get("experiments", []))]))


def _task(config: dict, experiment: str, spec: dict) -> dict[str, Any]:
    return config["experiments"][experiment]["finetune"]["tasks"][spec["task"]]


def is_binary(task: dict[str, Any]) -> bool:
    return "classes" not in task


def _classification_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs: list[str] = []
    exps = config.get("experiments", {})
    for e in _experiments(config, experiment, spec):
        if e not in exps:
            continue  # reported by the common checks
        tasks = (exps[e].get("finetune") or {}).get("tasks", {})
        if spec.get("task") not in tasks:
            errs.append(f"task {spec.get('task')!r} is not a fine-tuning task of experiment "
                        f"{e!r}; its tasks: {sorted(tasks)}")  # fmt: skip
            continue
        if exps[e].get("backbone", {}).get("name") != "vit":
            errs.append(f"experiment {e!r}: jBOT tables probe the ViT [CLS]; backbone is "
                        f"{exps[e].get('backbone', {}).get('name')!r}")  # fmt: skip
        binary = is_binary(tasks[spec["task"]])
        if binary and not spec.get("efficiencies"):
            errs.append("efficiencies: a binary (top-tagging) table quotes ε_s at background "
                        "efficiencies, e.g. [0.1, 0.01] (jBOT Table 3)")  # fmt: skip
        if not binary and spec.get("efficiencies"):
            errs.append("efficiencies: only a binary task has a background efficiency; "
                        f"task {spec['task']!r} is multi-class: drop the key")  # fmt: skip
    return errs


def _classification_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"models": [], "data": [], "predictions": []}
    for e in _experiments(config, experiment, spec):
        files = T.task_files(config, e, spec["task"])
        out["models"] += T.pretrained_models(config, e)
        out["data"] += [files["train"], files["test"]]
        out["predictions"] += [p for fs in T.predictions_for(config, e, spec["task"]).values()
                               for p in fs]  # fmt: skip
    return {k: list(dict.fromkeys(v)) for k, v in out.items()}


# ----------------------------------------------------------------------------- metrics


def eff_at(scores: np.ndarray, labels: np.ndarray, eff_b: float) -> float:
    """Signal efficiency ε_s at background efficiency ``eff_b`` (jBOT Table 3), linear
    between the ROC points bracketing it."""
    from jetforge.evaluation.metrics import roc

    fpr, tpr, _ = roc(scores, labels)
    return float(np.interp(eff_b, fpr, tpr))


def metric_names(task: dict[str, Any], efficiencies: Sequence[float]) -> list[str]:
    """CSV metric columns: accuracy + per-class AUC (multi-class) or accuracy, AUC and
    ``eff_s@{ε_B}`` (binary)."""
    if is_binary(task):
        return ["accuracy", "auc", *[f"eff_s@{e:g}" for e in efficiencies]]
    return ["accuracy", *[f"auc_{symbol(c)}" for c in task["classes"]]]


def task_metrics(scores: np.ndarray, labels: np.ndarray, task: dict[str, Any],
                 efficiencies: Sequence[float]) -> dict[str, float]:  # fmt: skip
    """The table's metrics from class scores ``[N, C]`` (or ``[N]`` of a binary task)."""
    from jetforge.evaluation.metrics import classification_metrics

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if is_binary(task):
        p = s if s.ndim == 1 else s[:, 1]
        out = {"accuracy": float(((p > 0.5) == (y == 1)).mean()),
               "auc": classification_metrics(p, y)["auc"]}  # fmt: skip
        return out | {f"eff_s@{e:g}": eff_at(p, y, e) for e in efficiencies}
    names = [symbol(c) for c in task["classes"]]
    m = classification_metrics(s, y, names)
    return {k: m[k] for k in metric_names(task, efficiencies)}


def task_rows(h5: str, task: dict[str, Any], n_max: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Nominal jets of the task's classes (label = class index; binary: 1 = signal), at
    most ``n_max`` of them drawn uniformly (sorted rows)."""
    from jetforge.training.data import DatasetInfo, select_labelled_rows
    from jetforge.training.finetune import task_classes
    from jetforge.training.selection import select_class_rows

    nominal = [DatasetInfo.read(h5).nominal]
    classes, signal, background = task_classes(task)
    if classes is None:
        rows, y = select_labelled_rows(h5, signal, background, nominal)
    else:
        rows, y = select_class_rows(h5, classes, nominal)
    if rows.size > n_max:
        pick = np.sort(np.random.default_rng(seed).choice(rows.size, n_max, replace=False))
        rows, y = rows[pick], y[pick]
    return rows, y.astype(np.int64)


# ----------------------------------------------------------------------------- frozen probes


def random_backbones(model_pt: str, n: int, seed: int) -> list[Any]:
    """``n`` randomly initialised copies of the pre-trained backbone's architecture with its
    input standardisation (so the baseline loses for lack of training only)."""
    import torch

    from jetforge.evaluation.probe_table import input_preprocessing
    from jetforge.generation.seeds import derive_seed
    from jetforge.models.registry import build_backbone, load_backbone

    pre, payload = load_backbone(model_pt, map_location="cpu")
    out = []
    for i in range(n):
        torch.manual_seed(derive_seed("probe", "random-init", i, base=seed))
        rand = build_backbone(payload["backbone_cfg"])
        rand.load_state_dict(input_preprocessing(pre), strict=False)
        out.append(rand.eval())
    return out


def probe_scores(z_ref: np.ndarray, y_ref: np.ndarray, z_test: np.ndarray, k: int,
                 n_classes: int) -> dict[str, np.ndarray]:  # fmt: skip
    """Class scores ``[N, C]`` of the three frozen probes: Euclidean k-NN on the raw
    [CLS] with uniform votes (the authors' ``KNeighborsClassifier(30)``), cosine k-NN and
    logistic regression on standardised features (``StandardScaler`` +
    ``LogisticRegression(max_iter=1000)``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    def unit(z: np.ndarray) -> np.ndarray:
        return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)

    def proba(clf: Any, zt: np.ndarray) -> np.ndarray:
        p = np.zeros((zt.shape[0], n_classes))
        p[:, clf.classes_] = clf.predict_proba(zt)
        return p

    k = min(k, len(z_ref))
    knn = KNeighborsClassifier(n_neighbors=k).fit(z_ref, y_ref)
    cos = KNeighborsClassifier(n_neighbors=k).fit(unit(z_ref), y_ref)
    sc = StandardScaler().fit(z_ref)
    lin = LogisticRegression(max_iter=1000).fit(sc.transform(z_ref), y_ref)
    return {"knn": proba(knn, z_test), "knn_cosine": proba(cos, unit(z_test)),
            "linear": proba(lin, sc.transform(z_test))}  # fmt: skip


def frozen_rows(job: OutputJob, experiment: str) -> list[dict[str, Any]]:
    """One row per probe x encoder (pre-training repeats, random draws) of one experiment."""
    from jetforge.evaluation.probes import embed_rows
    from jetforge.generation.seeds import derive_seed
    from jetforge.training.engine import resolve_device

    exp = job.config["experiments"][experiment]
    task = exp["finetune"]["tasks"][job.spec["task"]]
    effs = [float(e) for e in job.spec.get("efficiencies", [])]
    probe = {"k": 30, "n_jets": 100000, "random_inits": 3, **exp.get("probe", {})}
    files = T.task_files(job.config, experiment, job.spec["task"])
    n = int(probe["n_jets"])
    ref_rows, y_ref = task_rows(files["train"], task, n, derive_seed("jbot", "ref", base=job.seed))
    te_rows, y_te = task_rows(files["test"], task, n, derive_seed("jbot", "test", base=job.seed))
    n_classes = 2 if is_binary(task) else len(task["classes"])
    device = str(resolve_device(job.device))
    models = T.pretrained_models(job.config, experiment)
    encoders = [("jbot", f"r{i}", m) for i, m in enumerate(models)]
    encoders += [("random", f"i{i}", m) for i, m in
                 enumerate(random_backbones(models[0], int(probe["random_inits"]), job.seed))]
    rows = []
    for who, seed_name, enc in encoders:
        z_ref = embed_rows(enc, files["train"], ref_rows, device=device).astype(np.float64)
        z_te = embed_rows(enc, files["test"], te_rows, device=device).astype(np.float64)
        for probe_name, s in probe_scores(z_ref, y_ref, z_te, int(probe["k"]), n_classes).items():
            suffix = "" if who == "jbot" else "_random"
            rows.append({"experiment": experiment, "setup": f"{experiment}:{probe_name}{suffix}",
                         "block": "frozen", "probe": probe_name, "encoder": who,
                         "seed": seed_name, "n_reference": int(ref_rows.size),
                         "n_test": int(te_rows.size), "n_train": 0,
                         **task_metrics(s, y_te, task, effs)})  # fmt: skip
    return rows


# ----------------------------------------------------------------------------- fine-tuning


def finetune_rows(job: OutputJob, experiment: str) -> list[dict[str, Any]]:
    """One row per fine-tuning run of the task (its prediction file), plus ``gain`` rows:
    fine-tuned minus from scratch of the same repeat (same labelled jets)."""
    import h5py

    exp = job.config["experiments"][experiment]
    task = exp["finetune"]["tasks"][job.spec["task"]]
    effs = [float(e) for e in job.spec.get("efficiencies", [])]
    rows: list[dict[str, Any]] = []
    for run in X.finetune_grid(exp, job.spec["task"]):
        path = T.prediction_path(experiment, run)
        if not Path(path).exists():
            raise FileNotFoundError(f"{job.name}: prediction file missing: {path}")
        with h5py.File(path, "r") as f:
            s, y = f["score"][:], f["label"][:]
            point = str(f.attrs.get("scan_point", ""))  # the scan's choice on validation
        rows.append({"experiment": experiment, "setup": f"{experiment}:{X.setup_id(run)}",
                     "block": "fine-tuning", "mode": run["mode"], "n_train": run["n_train"],
                     "seed": f"r{run['repeat']}", "n_test": int(len(y)), "scan_point": point,
                     **task_metrics(s, y, task, effs)})  # fmt: skip
    metrics = metric_names(task, effs)
    by = {(r["mode"], r["n_train"], r["seed"]): r for r in rows}
    for (mode, n, seed), r in list(by.items()):
        other = by.get(("supervised", n, seed))
        if mode == "floating" and other is not None:
            rows.append({"experiment": experiment, "setup": f"{experiment}:gain-n{n}",
                         "block": "gain", "mode": "gain", "n_train": n, "seed": seed,
                         **{m: r[m] - other[m] for m in metrics}})  # fmt: skip
    return rows


# ----------------------------------------------------------------------------- table


def size_of(job: OutputJob, experiment: str) -> str:
    return str(job.config["experiments"][experiment]["backbone"].get("size", "S"))


def build_classification(job: OutputJob) -> None:
    import pandas as pd

    from jetforge.paper_outputs.jbot_table import write_classification
    from jetforge.reporting.table_io import mean_std_by

    long = []
    for e in _experiments(job.config, job.experiment, job.spec):
        long += frozen_rows(job, e) + finetune_rows(job, e)
    df = pd.DataFrame(long)
    task = job.exp["finetune"]["tasks"][job.spec["task"]]
    metrics = metric_names(task, [float(e) for e in job.spec.get("efficiencies", [])])
    first = df.drop_duplicates("setup").set_index("setup")
    table = mean_std_by(df, "setup", metrics)
    for c in ("experiment", "block", "probe", "encoder", "mode", "n_train", "n_test"):
        if c in first:
            table[c] = table["setup"].map(first[c])
    if "scan_point" in df:  # every repeat's chosen point, e.g. "{'lr': 0.002} x2"
        chosen = df.dropna(subset=["scan_point"]).groupby("setup", sort=False)["scan_point"]
        table["scan_points"] = table["setup"].map(chosen.agg(_tally)).fillna("")
    write_classification(job, table, metrics)


def _tally(points: Any) -> str:
    """``"{'lr': 0.002} x2; {'lr': 0.0004} x1"``: the chosen scan points of the repeats."""
    counts = points[points != ""].value_counts()
    return "; ".join(f"{p} x{n}" for p, n in counts.items())


CLASSIFICATION = OutputKind(
    _classification_inputs, build_classification, _classification_errors,
    frozenset({"task", "efficiencies"}), experiments=_experiments, heavy=True,
)  # fmt: skip
