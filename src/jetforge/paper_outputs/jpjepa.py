"""JP-JEPA's tables (Letellier, Vacheret, Jurie, arXiv:2606.14813), from the fine-tuning
grid's prediction files (and, for robustness, the classifiers saved beside them).

* ``jetclass_rejection`` (Table 1): accuracy, AUC and per-class rejection on a multi-class
  task, each signal class scored against the background class by S/(S+B) of the softmax
  outputs (§4.4 eq. (11)), at the paper's efficiency per class (Rej50, Rej99 for
  H→lνqq', Rej99.5 for t→blν);
* ``transfer`` (Table 2): accuracy, AUC, Rej50 and Rej30 of binary transfer tasks side
  by side (top tagging, quark–gluon);
* ``calibration`` (§2.4): expected calibration error, log loss and mean entropy;
* ``robustness`` (§2.3, Fig. 3(a)-(c)): accuracy and AUC with input variables, groups of
  them or a fraction of the particles removed at test time; generic: any experiment whose
  fine-tuning jobs store their classifier (``model.pt``).

Every table is one row per setup (``{mode}-{augset}-n{n_train}``, mean ± std over the
fine-tuning repeats, as ``table_io.mean_std_by`` makes) with the paper's number in
brackets in the same cell: Table 1's 13 metrics leave no room for a second column each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jetforge import experiment as X
from jetforge.lazy import lazy_module
from jetforge.paper_outputs import OutputJob, OutputKind
from jetforge.workflow import targets as T

if TYPE_CHECKING:
    import h5py
else:  # imported on first use: the config check (driver env) imports this module
    h5py = lazy_module("h5py")

#: how our modes are called in the paper's tables
MODE_LABELS = {
    "floating": "JP-JEPA fine-tuned",
    "supervised": "ParT from scratch",
    "fixed": "JP-JEPA frozen + head",
    "lora": "JP-JEPA LoRA",
}
#: which paper row a mode is compared with (keys of the reference entry's ``rows``)
PAPER_ROW = {"floating": "JP-JEPA (Mini)", "supervised": "ParT"}


# ----------------------------------------------------------------------- shared helpers


def owner(config: Mapping[str, Any], experiment: str, spec: Mapping[str, Any], task: str) -> str:
    """The experiment whose grid runs ``task``: the declaring one, else the first of the
    spec's ``experiments`` that has it (the paper config runs each transfer task in its own
    experiment, for its own repeats)."""
    for e in [experiment, *spec.get("experiments", [])]:
        exp = config["experiments"].get(e) or {}
        if task in ((exp.get("finetune") or {}).get("tasks") or {}):
            return str(e)
    return experiment


def task_spec(
    config: Mapping[str, Any], experiment: str, task: str, spec: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    e = owner(config, experiment, spec or {}, task)
    return ((config["experiments"][e].get("finetune") or {}).get("tasks") or {}).get(task)


def task_errors(
    config: dict,
    experiment: str,
    task: Any,
    multiclass: bool | None,
    spec: Mapping[str, Any] | None = None,
) -> list[str]:
    """The task exists (and is multi-class / binary when the kind needs it)."""
    t = task_spec(config, experiment, str(task), spec) if isinstance(task, str) else None
    if t is None:
        where = [experiment, *(spec or {}).get("experiments", [])]
        return [
            f"task {task!r} is not a fine-tuning task of {where}; give one of their finetune.tasks"
        ]
    if multiclass is not None and ("classes" in t) != multiclass:
        want = "multi-class ({classes: [...]})" if multiclass else "binary ({signal, background})"
        return [f"task {task!r} must be {want} for this kind"]
    return []


def runs_of(
    config: Mapping[str, Any], experiment: str, spec: Mapping[str, Any], task: str
) -> list[tuple[str, dict[str, Any]]]:
    """(owner experiment, grid run) of every fine-tuning job of ``task``, in grid order."""
    e = owner(config, experiment, spec, task)
    return [(e, r) for r in X.finetune_grid(config["experiments"][e], task)]


def setups(job: OutputJob, task: str) -> dict[str, list[str]]:
    """Setup id -> prediction files (one per repeat), in grid order."""
    out: dict[str, list[str]] = {}
    for e, run in runs_of(job.config, job.experiment, job.spec, task):
        out.setdefault(X.setup_id(run), []).append(T.prediction_path(e, run))
    return out


def task_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    tasks = spec.get("tasks") or [spec["task"]]
    runs = [er for t in tasks for er in runs_of(config, experiment, spec, t)]
    return {"predictions": [T.prediction_path(e, r) for e, r in runs]}


def read_predictions(path: str) -> dict[str, Any]:
    """Scores, labels and the class attrs of one predictions file."""
    with h5py.File(path, "r") as f:
        out = {
            "score": np.asarray(f["score"][()], np.float64),
            "label": np.asarray(f["label"][()], np.int64),
        }
        for a in ("classes", "signal", "background", "n_train"):
            if a in f.attrs:
                v = f.attrs[a]
                out[a] = [str(x) for x in v] if a == "classes" else v
    return out


def cell(mean: float, std: float, n: int, paper: Any = None, fmt: str = "{:.3f}") -> str:
    """``"0.412 ± 0.010 [0.858]"``: ours (± std over repeats when there are several), the
    paper's value in brackets."""
    if mean is None or not np.isfinite(mean):
        s = "—"
    else:
        s = fmt.format(mean) + (f" ± {fmt.format(std)}" if n > 1 else "")
    return s if paper is None else f"{s} [{paper}]"


def _rej_fmt(v: float) -> str:
    return "{:.1f}" if v < 100 else "{:.0f}"


def setup_label(sid: str) -> str:
    """``floating-default-n200`` -> ``JP-JEPA fine-tuned (n=200)``; the augmentation set
    is named only when it is not the default one."""
    mode, *rest = sid.split("-")
    n = rest.pop() if rest and rest[-1][:1] == "n" and rest[-1][1:].isdigit() else None
    extra = [r for r in ["-".join(rest)] if r and r not in (X.DEFAULT_AUGSET, X.NO_AUGSET)]
    extra += [f"n={n[1:]}"] if n else []
    return MODE_LABELS.get(mode, mode) + (f" ({', '.join(extra)})" if extra else "")


def scale_note(job: OutputJob, task: str) -> str:
    """Data and scale of the task's trainings, for the table note."""
    exp = job.config["experiments"][owner(job.config, job.experiment, job.spec, task)]
    ds = exp["dataset"]
    spec = task_spec(job.config, job.experiment, task, job.spec) or {}
    ft = exp["finetune"]
    sizes = sorted({r["n_train"] for r in X.finetune_grid(exp, task)})
    return (
        f"Data: our Pythia + Delphes-like stand-in of {spec.get('dataset', ds)} "
        f"(not the public file); pre-trained on our {ds} stand-in "
        f"({exp['pretrain'].get('epochs')} epochs, {X.pretrain_repeats(exp)} pre-training "
        f"seeds), fine-tuned on {sizes} labelled jets for {ft.get('epochs')} epochs "
        f"(paper: full sets, Table 8), {ft.get('repeats', 1)} repeats (mean ± std); "
        "paper values (ParT-Mini scale, full data) in [brackets]."
    )


# ------------------------------------------------------------------------ Table 1


def class_rejections(
    score: np.ndarray,
    label: np.ndarray,
    classes: Sequence[str],
    background: str,
    effs: Mapping[str, float],
) -> dict[str, float]:
    """Rejection of ``background`` jets at the class's signal efficiency, each signal class
    scored S/(S+B) with the softmax outputs (JP-JEPA §4.4 eq. (11)); other classes' jets
    are left out of that class's ROC."""
    from jetforge.evaluation.metrics import rejection_at

    b = classes.index(background)
    out = {}
    for proc, eff in effs.items():
        s = classes.index(proc)
        sel = (label == s) | (label == b)
        if not ((label[sel] == s).any() and (label[sel] == b).any()):
            out[f"rej_{proc}"] = float("nan")
            continue
        ps, pb = score[sel, s], score[sel, b]
        r = ps / np.clip(ps + pb, 1e-12, None)
        out[f"rej_{proc}"] = rejection_at(r, (label[sel] == s).astype(np.int8), float(eff))
    return out


def multiclass_rows(
    job: OutputJob, task: str, effs: Mapping[str, float], background: str
) -> pd.DataFrame:
    """One row per prediction file: setup, repeat, accuracy, macro AUC, rejections."""
    from jetforge.evaluation.metrics import classification_metrics

    rows = []
    for sid, files in setups(job, task).items():
        for r, path in enumerate(files):
            p = read_predictions(path)
            m = classification_metrics(p["score"], p["label"], p["classes"])
            rows.append(
                {
                    "setup": sid,
                    "repeat": r,
                    "acc": m["accuracy"],
                    "auc": m["auc"],
                    **class_rejections(p["score"], p["label"], p["classes"], background, effs),
                }
            )
    return pd.DataFrame(rows)


def _class_effs(spec: Mapping[str, Any], classes: Sequence[str]) -> dict[str, float]:
    """Signal efficiency of each signal class: 0.5 unless ``class_efficiencies`` says
    otherwise (Table 1: Rej99 for H→lνqq', Rej99.5 for t→blν)."""
    bkg = spec.get("background", classes[0])
    given = {str(k): float(v) for k, v in (spec.get("class_efficiencies") or {}).items()}
    return {c: given.get(c, 0.5) for c in classes if c != bkg}


def _jetclass_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs = task_errors(config, experiment, spec.get("task"), multiclass=True, spec=spec)
    if errs:
        return errs
    classes = task_spec(config, experiment, spec["task"], spec)["classes"]
    bkg = spec.get("background", classes[0])
    if bkg not in classes:
        errs.append(f"background {bkg!r} is not a class of task {spec['task']!r}: {classes}")
    for c, e in (spec.get("class_efficiencies") or {}).items():
        if c not in classes or c == bkg:
            errs.append(
                f"class_efficiencies: {c!r} is not a signal class of task "
                f"{spec['task']!r} (classes {classes}, background {bkg!r})"
            )
        if not 0.0 < float(e) < 1.0:
            errs.append(f"class_efficiencies.{c}: {e} must lie in (0, 1)")
    return errs


def _display(
    data: pd.DataFrame, metrics: list[str], ref: dict, head: Callable[[str], str],
    fmt: Callable[[str, float], str],
) -> pd.DataFrame:  # fmt: skip
    """Human frame of a per-setup table: "mean ± std [paper]" per metric column."""
    display = pd.DataFrame({"setup": [setup_label(s) for s in data["setup"]]})
    for m in metrics:
        display[head(m)] = [
            cell(row[m], row[f"{m}_std"], int(row["n_repeats"]),
                 _paper_value(ref, row["setup"], m), fmt(m, row[m]))  # fmt: skip
            for _, row in data.iterrows()
        ]
    return display


def build_jetclass(job: OutputJob) -> None:
    from jetforge.reporting.table_io import mean_std_by, write_table

    task = job.spec["task"]
    classes = list(task_spec(job.config, job.experiment, task, job.spec)["classes"])
    bkg = job.spec.get("background", classes[0])
    effs = _class_effs(job.spec, classes)
    long = multiclass_rows(job, task, effs, bkg)
    metrics = ["acc", "auc", *[f"rej_{c}" for c in effs]]
    data = mean_std_by(long, "setup", metrics)
    ref = job.reference() or {}
    display = _display(
        data, metrics, ref,
        lambda m: m if not m.startswith("rej_") else f"{m[4:]} Rej{effs[m[4:]] * 100:g}",
        lambda m, v: _rej_fmt(v) if m.startswith("rej_") else "{:.3f}",
    )  # fmt: skip
    notes = [
        scale_note(job, task),
        f"Rejection of {bkg} jets with S/(S+B) of the softmax outputs (eq. 11) at the "
        f"efficiency in the header, on {_n_test(job, task)} test "
        "jets: a rejection is bounded by the background jets tested. AUC: macro mean "
        "of one-vs-rest AUCs.",
    ]
    write_table(data, job.out, f"JP-JEPA Table 1: {task} classification", notes, display)


def _n_test(job: OutputJob, task: str) -> int:
    first = next(iter(setups(job, task).values()))[0]
    with h5py.File(first, "r") as f:
        return int(f["label"].shape[0])


def _paper_value(ref: Mapping[str, Any], sid: str, metric: str) -> Any:
    """The paper's number for our setup's mode: ``rows`` of the reference entry, the row
    named by its ``modes`` (mode -> paper row) or else :data:`PAPER_ROW`."""
    row = {**PAPER_ROW, **(ref.get("modes") or {})}.get(sid.partition("-")[0])
    return ((ref.get("rows") or {}).get(row) or {}).get(metric) if row else None


# ------------------------------------------------------------------------ Table 2


def binary_rows(job: OutputJob, tasks: Sequence[str], effs: Sequence[float]) -> pd.DataFrame:
    """One row per (``{mode}-{augset}``, repeat) at each task's largest labelled size (the
    paper fine-tunes on the full sets): ``{task}_acc``, ``{task}_auc``,
    ``{task}_rej@{eff}`` and ``{task}_n_train``."""
    from jetforge.evaluation.metrics import auc, rejection_at

    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for task in tasks:
        runs = runs_of(job.config, job.experiment, job.spec, task)
        n = max(r["n_train"] for _, r in runs)
        for e, run in (er for er in runs if er[1]["n_train"] == n):
            p = read_predictions(T.prediction_path(e, run))
            sid = f"{run['mode']}-{run['augset']}"
            row = rows.setdefault((sid, run["repeat"]), {"setup": sid, "repeat": run["repeat"]})
            row[f"{task}_n_train"] = n
            row[f"{task}_acc"] = float(((p["score"] > 0.5) == (p["label"] == 1)).mean())
            row[f"{task}_auc"] = auc(p["score"], p["label"])
            for eff in effs:
                row[f"{task}_rej@{eff:g}"] = rejection_at(p["score"], p["label"], eff)
    return pd.DataFrame(list(rows.values()))


def _transfer_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    tasks = spec.get("tasks")
    if not tasks:
        return ["tasks: list the binary transfer tasks side by side, e.g. [top, qg]"]
    errs = [e for t in tasks for e in task_errors(config, experiment, t, False, spec)]
    for e in spec.get("efficiencies") or [0.5, 0.3]:
        if not 0.0 < float(e) < 1.0:
            errs.append(f"efficiencies: {e} must lie in (0, 1)")
    return errs


def build_transfer(job: OutputJob) -> None:
    from jetforge.reporting.table_io import mean_std_by, write_table

    tasks = list(job.spec["tasks"])
    effs = [float(e) for e in job.spec.get("efficiencies") or [0.5, 0.3]]
    long = binary_rows(job, tasks, effs)
    metrics = [f"{t}_{m}" for t in tasks for m in ["acc", "auc", *[f"rej@{e:g}" for e in effs]]]
    data = mean_std_by(long, "setup", metrics)
    for t in tasks:
        data[f"{t}_n_train"] = long.groupby("setup", sort=False)[f"{t}_n_train"].first().to_numpy()
    ref = job.reference() or {}
    def head(m: str) -> str:
        task, metric = m.split("_", 1)
        rej = metric.startswith("rej")
        return f"{task} Rej{float(metric[4:]) * 100:g}" if rej else f"{task} {metric}"

    display = _display(
        data, metrics, ref, head,
        lambda m, v: _rej_fmt(v) if m.split("_", 1)[1].startswith("rej") else "{:.3f}",
    )  # fmt: skip
    notes = [
        scale_note(job, tasks[0]),
        "Transfer: the JetClass encoder reads the transfer sets in its 17 features, "
        "the inputs they lack zeroed (§4.1, 'padding missing variables'). Accuracy at "
        "score 0.5; Rej at the signal efficiency in the header.",
    ]
    write_table(data, job.out, f"JP-JEPA Table 2: transfer to {', '.join(tasks)}", notes, display)


# ------------------------------------------------------------------------ calibration


def _calibration_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs = task_errors(config, experiment, spec.get("task"), None, spec)
    if int(spec.get("bins", 15)) < 1:
        errs.append(f"bins: {spec.get('bins')} must be >= 1")
    return errs


def build_calibration(job: OutputJob) -> None:
    from jetforge.evaluation.calibration import calibration_metrics
    from jetforge.reporting.table_io import mean_std_by, write_table

    task, bins = job.spec["task"], int(job.spec.get("bins", 15))
    rows = []
    for sid, files in setups(job, task).items():
        for r, path in enumerate(files):
            p = read_predictions(path)
            rows.append(
                {"setup": sid, "repeat": r, **calibration_metrics(p["score"], p["label"], bins)}
            )
    metrics = ["ece", "log_loss", "mean_entropy"]
    data = mean_std_by(pd.DataFrame(rows), "setup", metrics)
    ref = job.reference() or {}
    display = pd.DataFrame({"setup": [setup_label(s) for s in data["setup"]]})
    for m, head in zip(metrics, ["ECE", "log loss", "mean entropy (nats)"], strict=True):
        display[head] = [
            cell(
                row[m],
                row[f"{m}_std"],
                int(row["n_repeats"]),
                _paper_value(ref, row["setup"], m),
                "{:.4f}",
            )
            for _, row in data.iterrows()
        ]
    notes = [
        scale_note(job, task),
        f"ECE with {bins} equal-width confidence bins (eq. 13; the paper does not state "
        "K, 15 is Guo et al.'s); log loss eq. (12); entropy of each prediction in nats.",
    ]
    write_table(data, job.out, f"JP-JEPA §2.4: calibration on {task}", notes, display)


# ------------------------------------------------------------------------ robustness


def backbone_features(config: Mapping[str, Any], experiment: str) -> list[str]:
    """The per-particle variables the experiment's backbone reads: its ``feature_names``,
    else those of its dataset's feature set."""
    exp = config["experiments"][experiment]
    names = exp.get("backbone", {}).get("feature_names")
    if names:
        return [str(n) for n in names]
    from jetforge.jets.featuresets import get_feature_set

    fs = T.dataset_feature_set(dict(config), exp["dataset"])
    return list(get_feature_set(fs).feature_names) if fs else []


def robustness_groups(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    from jetforge.evaluation.robustness import JETCLASS_GROUPS

    groups = spec.get("groups")
    return {
        str(k): [str(x) for x in v]
        for k, v in (groups if groups is not None else JETCLASS_GROUPS).items()
    }


def _robust_runs(
    config: Mapping[str, Any], experiment: str, spec: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """The grid runs evaluated: the task's largest labelled size (or ``n_train``)."""
    runs = runs_of(config, experiment, spec, spec["task"])
    n = int(spec.get("n_train") or max(r["n_train"] for _, r in runs))
    return [(e, r) for e, r in runs if r["n_train"] == n]


def robustness_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    preds = [T.prediction_path(e, r) for e, r in _robust_runs(config, experiment, spec)]
    e = owner(config, experiment, spec, spec["task"])
    return {"predictions": preds, "test": [T.task_files(config, e, spec["task"])["test"]]}


def _robustness_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    from jetforge.evaluation.robustness import group_errors

    errs = task_errors(config, experiment, spec.get("task"), None, spec)
    if errs:
        return errs
    feats = backbone_features(config, owner(config, experiment, spec, spec["task"]))
    errs += group_errors(robustness_groups(spec), feats)
    errs += [
        f"fractions: {f} must lie in (0, 1)"
        for f in spec.get("fractions", [])
        if not 0.0 < float(f) < 1.0
    ]
    sizes = {r["n_train"] for _, r in runs_of(config, experiment, spec, spec["task"])}
    if spec.get("n_train") is not None and int(spec["n_train"]) not in sizes:
        errs.append(
            f"n_train: {spec['n_train']} is not a labelled size of task "
            f"{spec['task']!r}: {sorted(sizes)}"
        )
    return errs


def build_robustness(job: OutputJob) -> None:
    from jetforge.evaluation.metrics import classification_metrics
    from jetforge.evaluation.robustness import (
        classifier_path,
        evaluate_perturbed,
        load_classifier,
        perturbations,
    )
    from jetforge.reporting.table_io import mean_std_by, write_table

    spec, test = job.spec, job.inputs["test"][0]
    perts = perturbations(
        backbone_features(job.config, owner(job.config, job.experiment, spec, spec["task"])),
        robustness_groups(spec),
        [float(f) for f in spec.get("fractions", [])],
        bool(spec.get("single", True)),
    )
    runs = _robust_runs(job.config, job.experiment, spec)
    first = read_predictions(T.prediction_path(*runs[0]))
    rows_idx = _robust_rows(test, first, spec, job.seed)
    rows = []
    for e, run in runs:
        pred = T.prediction_path(e, run)
        model_pt = classifier_path(pred)
        if not model_pt.exists():
            raise FileNotFoundError(
                f"{model_pt}: the fine-tuning job of {pred} did not store "
                "its classifier; rerun it with this version"
            )
        model = load_classifier(model_pt, scores=test)
        scores = evaluate_perturbed(model, test, rows_idx[0], perts, job.seed)
        for p in perts:
            m = classification_metrics(
                scores[f"{p.kind}:{p.name}"], rows_idx[1], first.get("classes")
            )
            rows.append(
                {
                    "setup": X.setup_id(run),
                    "repeat": run["repeat"],
                    "dropped_kind": p.kind,
                    "dropped": p.name,
                    "acc": m["accuracy"],
                    "auc": m["auc"],
                }
            )
    long = pd.DataFrame(rows)
    single = long[long["dropped_kind"] == "single"]
    if not single.empty:  # Fig. 3(a)'s summary: the mean over single variables, per training
        mean = single.groupby(["setup", "repeat"], sort=False)[["acc", "auc"]].mean().reset_index()
        long = pd.concat([long, mean.assign(dropped_kind="single_mean", dropped="mean")])
    data = mean_std_by(long, ["setup", "dropped_kind", "dropped"], ["acc", "auc"])
    display = data[["setup", "dropped_kind", "dropped"]].copy()
    display["setup"] = [setup_label(s) for s in data["setup"]]
    ref = job.reference() or {}
    display["acc"] = [
        cell(r["acc"], r["acc_std"], int(r["n_repeats"]),
             _paper_value(ref, r["setup"], f"{r['dropped_kind']}:{r['dropped']}"))
        for _, r in data.iterrows()
    ]  # fmt: skip
    display["auc"] = [cell(r["auc"], r["auc_std"], int(r["n_repeats"])) for _, r in data.iterrows()]
    notes = [
        scale_note(job, spec["task"]),
        f"Removed at test time on {rows_idx[0].size} test jets (stored value set to 0; "
        "particles masked out, each jet keeps one). Our ParT derives its pairwise "
        "four-vector features from part_pt_log / part_deta / part_dphi, so removing "
        "those also changes the interaction inputs (the paper's ParT reads separate "
        "four-vectors). In [brackets]: the accuracies §2.3 states (JetClass, full scale, "
        "JP-JEPA vs ParT; the rest are drawn only, Fig. 3).",
    ]
    write_table(data, job.out, f"JP-JEPA §2.3: robustness on {spec['task']}", notes, display)


def _robust_rows(
    test: str, first: Mapping[str, Any], spec: Mapping[str, Any], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Test rows of the task (as the predictions list them) and their labels, subsampled
    to ``n_jets`` (stratified by nothing: a uniform draw, sorted)."""
    from jetforge.training.finetune import _labelled_rows

    classes = first.get("classes")
    signal, background = first.get("signal", ""), first.get("background", "")
    rows, labels = _labelled_rows(test, classes, str(signal), str(background), None)
    n = int(spec.get("n_jets") or rows.size)
    if n < rows.size:
        pick = np.sort(np.random.default_rng(seed).choice(rows.size, n, replace=False))
        rows, labels = rows[pick], labels[pick]
    return rows, labels


# ------------------------------------------------------------------ Tables 3, 4, 5


def _variant_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in spec.get("experiments", []):
        exp = config["experiments"][e]
        out[e] = [
            T.prediction_path(e, r)
            for t in spec["tasks"]
            for r in X.finetune_grid(exp, t)
            if r["mode"] == spec.get("mode", "floating")
        ]
        if spec.get("probe"):
            out[e].append(f"results/tables/{e}/probes.csv")
    return out


def _variant_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs = []
    if not spec.get("experiments") or not spec.get("tasks"):
        errs.append(
            "experiments and tasks: the variant experiments (rows) and the tasks whose "
            "fine-tunings they compare"
        )
    mode = spec.get("mode", "floating")
    have: set[str] = set()
    for e in spec.get("experiments", []):
        ft = (config["experiments"].get(e) or {}).get("finetune") or {}
        have |= set(ft.get("tasks") or {})
        if ft.get("tasks") and mode not in (ft.get("modes") or []):
            errs.append(f"mode: {mode!r} is not run by {e!r} ({ft.get('modes')})")
    errs += [
        f"tasks: {t!r} is a fine-tuning task of none of {spec.get('experiments')}"
        for t in spec.get("tasks", [])
        if t not in have
    ]
    return errs


#: what an unset ``describe`` key means, where "None" would not say it
_UNSET = {"pretrain.subset": "all"}


def _describe(exp: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``pretrain.regularizer=koleo, finetune.steps=50000``: what a variant changes
    (``pretrain.subset=0.05``: pre-trained on the first 5 % of each class, JP-JEPA Table 3)."""
    out = []
    for k in keys:
        v: Any = exp
        for part in k.split("."):
            v = v.get(part) if isinstance(v, Mapping) else None
        out.append(f"{k.rsplit('.', 1)[-1]}={_UNSET.get(k, v) if v is None else v}")
    return ", ".join(out)


def build_variants(job: OutputJob) -> None:
    """One row per (variant experiment, labelled size): fine-tuned metrics of each task
    (binary: acc, AUC, Rej50, Rej30; multi-class: acc, AUC) and, with ``probe``, the
    frozen encoder's effective rank and AUC_emb from the experiment's probe table."""
    from jetforge.evaluation.metrics import auc, classification_metrics, rejection_at
    from jetforge.reporting.table_io import mean_std_by, write_table

    long = []
    mode, tasks = job.spec.get("mode", "floating"), list(job.spec["tasks"])
    for e in job.spec["experiments"]:
        exp = job.config["experiments"][e]
        mine = [t for t in tasks if t in (exp.get("finetune") or {}).get("tasks", {})]
        for t in mine:
            for r in (r for r in X.finetune_grid(exp, t) if r["mode"] == mode):
                p = read_predictions(T.prediction_path(e, r))
                n = r["n_train"] if len(tasks) == 1 else -1  # several tasks: one row each
                row = {
                    "experiment": e,
                    "variant": _describe(exp, job.spec.get("describe", [])),
                    "n_train": n,
                    "repeat": r["repeat"],
                    f"{t}_n_train": r["n_train"],
                }
                m = classification_metrics(p["score"], p["label"], p.get("classes"))
                row.update({f"{t}_acc": m["accuracy"], f"{t}_auc": m["auc"]})
                if "classes" not in p:
                    row[f"{t}_auc"] = auc(p["score"], p["label"])
                    for eff in (0.5, 0.3):
                        row[f"{t}_rej@{eff:g}"] = rejection_at(p["score"], p["label"], eff)
                long.append(row)
    keys = ["experiment", "variant", "n_train", "repeat"]
    df = pd.DataFrame(long).groupby(keys, sort=False).first().reset_index()
    metrics = [c for c in df.columns if c not in keys and not c.endswith("_n_train")]
    data = mean_std_by(df, keys[:3], metrics)
    for c in (c for c in df.columns if c.endswith("_n_train")):
        data[c] = df.groupby(keys[:3], sort=False)[c].first().to_numpy()
    if job.spec.get("probe"):
        for col in ("effective_rank", "auc_emb"):
            data[col] = [_probe_mean(e, col) for e in data["experiment"]]
    ref = (job.reference() or {}).get("rows") or {}
    display = data[["variant", "n_train"] if len(tasks) == 1 else ["variant"]].copy()
    for m in [*metrics, *(c for c in ("effective_rank", "auc_emb") if c in data)]:
        display[m.replace("_", " ")] = [
            cell(
                r[m],
                r.get(f"{m}_std", 0.0),
                int(r["n_repeats"]) if f"{m}_std" in r else 1,
                _variant_paper(ref, r["experiment"], int(r["n_train"]), m),
                fmt=_rej_fmt(r[m]) if "rej" in m else "{:.3f}",
            )
            for _, r in data.iterrows()
        ]
    notes = [
        *variant_scale_notes(job.config, job.spec["experiments"], tasks),
        f"Rows: the variant experiments {job.spec['experiments']}, mode {mode}; paper values "
        "(ParT-Mini, JetClass / full transfer sets) in [brackets] where the paper has the row.",
    ]
    if (data["n_repeats"] == 1).any():
        notes.insert(0, "Single-seed rows (one pre-training, one fine-tuning, as the paper's "
                     "Tables 3-5): no spread is measured, so no difference here is significant.")
    title = job.spec.get("caption") or f"JP-JEPA {job.name}: variants"
    write_table(data, job.out, title, notes, display)


def _variant_paper(ref: Mapping[str, Any], experiment: str, n_train: int, metric: str) -> Any:
    """The paper's number of a variant row: ``rows["<experiment> n=<N>"]`` where the
    experiment has several labelled sizes, else ``rows[<experiment>]``."""
    row = ref.get(f"{experiment} n={n_train}") or ref.get(experiment) or {}
    return row.get(metric)


def variant_scale_notes(
    config: Mapping[str, Any], experiments: Sequence[str], tasks: Sequence[str]
) -> list[str]:
    """What each row trained on: pre-training (own or shared) epochs / steps and seeds,
    fine-tuning sizes, epochs / steps and repeats; data named as our stand-ins."""
    out = []
    for e in experiments:
        exp = config["experiments"][e]
        pt, ft = exp["pretrain"], exp.get("finetune") or {}
        src = exp.get("pretrain_from") or e
        budget = f"{pt['steps']} steps" if pt.get("steps") else f"{pt.get('epochs')} epochs"
        ftb = f"{ft['steps']} steps" if ft.get("steps") else f"{ft.get('epochs')} epochs"
        mine = [t for t in tasks if t in (ft.get("tasks") or {})]
        sizes = sorted({r["n_train"] for t in mine for r in X.finetune_grid(exp, t)})
        sub = config["experiments"][src]["pretrain"].get("subset")
        part = f"the first {100 * float(sub):g} % of each class of " if sub is not None else ""
        out.append(
            f"{e}: pre-trained ({src}) on {part}our Pythia stand-in of {exp['dataset']} "
            f"for {budget}, "
            f"batch {pt.get('batch_size')}, {X.pretrain_repeats(config['experiments'][src])} "
            f"seed(s); fine-tuned on {sizes} labelled jets of {mine} for {ftb}, "
            f"{ft.get('repeats', 1)} repeat(s)."
        )
    return out


def _probe_mean(experiment: str, col: str) -> float:
    """Mean over pre-training seeds of the frozen encoder's ``col`` (probe table rows
    ``pre-trained r*``) on the [CLS] output (App. C: ER([CLS]), AUC_emb([CLS])), not the
    mean-pooled particle tokens the probe table also lists."""
    df = pd.read_csv(f"results/tables/{experiment}/probes.csv")
    rows = df[df["encoder"].astype(str).str.startswith("pre-trained")]
    if "embedding" in rows:
        rows = rows[rows["embedding"] == "output"]
    return float(rows[col].mean()) if col in rows else float("nan")


TASK_KEYS = frozenset({"task"})
VARIANTS = OutputKind(
    _variant_inputs,
    build_variants,
    _variant_errors,
    frozenset({"tasks", "mode", "probe", "describe"}),
)
JETCLASS_REJECTION = OutputKind(
    task_inputs, build_jetclass, _jetclass_errors, TASK_KEYS | {"background", "class_efficiencies"}
)
TRANSFER = OutputKind(
    task_inputs, build_transfer, _transfer_errors, frozenset({"tasks", "efficiencies"})
)
CALIBRATION = OutputKind(task_inputs, build_calibration, _calibration_errors, TASK_KEYS | {"bins"})
ROBUSTNESS = OutputKind(
    robustness_inputs,
    build_robustness,
    _robustness_errors,
    TASK_KEYS | {"n_train", "n_jets", "groups", "fractions", "single"},
    heavy=True,
)


def table_csv(job_or_paper: OutputJob | str, name: str) -> str:
    paper = job_or_paper.paper if isinstance(job_or_paper, OutputJob) else job_or_paper
    return str(Path("results/tables") / paper / f"{name}.csv")
