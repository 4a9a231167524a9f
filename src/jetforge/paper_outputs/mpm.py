"""Masked particle modelling's tables and figures (Golling, Heinrich, Kagan, Klein, Leigh,
Osadchy, Raine, arXiv:2401.13537).

* Table I (kind ``pretraining_variants``): the design study of §V B. Each row is its own
  experiment -- one pre-training with an ordering (none / head / backbone), inputs
  (continuous / quantized) and target (VQ-VAE tokens, K-means tokens, regression) -- and
  is evaluated as the paper does: a linear head on the frozen backbone (fine-tuning mode
  ``fixed``), ten-class JetClass accuracy, mean over the fine-tuning seeds. The rows are
  read across experiments (the spec's ``experiments`` list), described from each one's
  own ``pretrain`` block (never from its name), and matched to the paper's row by that
  description.
* Fig. 3 (kind ``accuracy_vs_labels``): test accuracy against labelled jets for the frozen
  backbone ("Fixed"), the fine-tuned backbone and the same network from scratch, mean and
  standard deviation over the repeats as bands (Figs. 3-5 share the kind: in-context, new
  classes, out-of-domain tasks).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jetforge import experiment as X
from jetforge.paper_outputs import OutputJob, OutputKind
from jetforge.workflow import targets as T

#: how Table I names each setting (§V B, Table I columns)
ORDERING_LABELS = {"none": "no ordering", "head": "order head", "backbone": "order backbone"}
TARGET_LABELS = {"vqvae": "VQ-VAE classification", "kmeans": "K-means classification",
                 "regression": "regression"}  # fmt: skip
#: the paper's legend names of the fine-tuning modes (Fig. 3 caption)
MODE_LEGEND = {"fixed": "Fixed", "floating": "Fine-tuned", "lora": "LoRA",
               "supervised": "From scratch"}  # fmt: skip
MODE_STYLE = {"fixed": ("tab:green", "s", ":"), "floating": ("tab:blue", "o", "-"),
              "lora": ("tab:purple", "D", "-."), "supervised": ("tab:red", "^", "--")}  # fmt: skip


def variant_of(exp: Mapping[str, Any]) -> dict[str, str]:
    """(ordering, inputs, target) of an MPM pre-training, the Table I row it is."""
    p = exp["pretrain"]
    return {
        "ordering": str(p.get("ordering", "head")),
        "inputs": str(p.get("inputs", "continuous")),
        "target": str(p.get("target", "vqvae")),
    }


def _runs(config: dict, experiment: str, spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fine-tunings of one Table I row: the spec's task and mode, its labelled size
    (``n_train``, default the largest of the grid), every repeat."""
    exp = config["experiments"][experiment]
    runs = [r for r in X.finetune_grid(exp, spec["task"]) if r["mode"] == spec.get("mode", "fixed")]
    if not runs:
        return []
    n = int(spec.get("n_train") or max(r["n_train"] for r in runs))
    return [r for r in runs if r["n_train"] == n]


def variant_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    """One input list per row experiment (its prediction files), plus the pre-training
    split each read (the table states how many jets the variants were pre-trained on)."""
    out: dict[str, list[str]] = {}
    for e in spec.get("experiments", []):
        out[e] = [T.prediction_path(e, r) for r in _runs(config, e, spec)]
    rows = list(spec.get("experiments", []))
    if rows:
        out["pretrain_split"] = [T.split_path(config, rows[0], "pretrain")]
    return out


def _variant_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    """Every row an MPM experiment with the spec's task and mode in its grid; no two rows
    the same variant (the paper's row could not be told apart)."""
    errs: list[str] = []
    exps = config.get("experiments", {})
    rows = [e for e in spec.get("experiments", []) if e in exps]
    if not spec.get("experiments"):
        errs.append("experiments: list the experiments that are the table's rows (one "
                    "pre-training variant each), e.g. [mpm_t1_head_vqvae, ...]")  # fmt: skip
    if "task" not in spec:
        errs.append("task: name the fine-tuning task the rows are evaluated on, e.g. jetclass10")
        return errs
    seen: dict[tuple[str, ...], str] = {}
    for e in rows:
        exp = exps[e]
        if exp["pretrain"].get("method") != "mpm":
            errs.append(f"experiments: {e!r} is not an MPM pre-training (method "
                        f"{exp['pretrain'].get('method')!r})")  # fmt: skip
            continue
        if spec["task"] not in ((exp.get("finetune") or {}).get("tasks") or {}):
            errs.append(f"task: {spec['task']!r} is not a fine-tuning task of experiment {e!r}; "
                        f"add it to experiments.{e}.finetune.tasks")  # fmt: skip
            continue
        if not _runs(config, e, spec):
            errs.append(f"mode: experiment {e!r} runs no {spec.get('mode', 'fixed')!r} "
                        f"fine-tuning of {spec['task']!r} (n_train {spec.get('n_train')}); add "
                        f"it to experiments.{e}.finetune.modes")  # fmt: skip
        key = tuple(variant_of(exp).values())
        if key in seen:
            errs.append(f"experiments: {e!r} and {seen[key]!r} are the same variant {key}")
        seen[key] = e
    return errs


def _paper_rows(ref: Mapping[str, Any] | None) -> dict[tuple[str, str, str], float]:
    if not ref:
        return {}
    return {(str(r["ordering"]), str(r["inputs"]), str(r["target"])): float(r["accuracy"])
            for r in ref.get("rows", [])}  # fmt: skip


def _n_jets(path: str) -> int:
    """Jets in a prediction file (``label``) or a dataset split (``mask``)."""
    import h5py

    with h5py.File(path, "r") as f:
        return int(len(f["label"] if "label" in f else f["mask"]))


def _scale_note(job: OutputJob, rows: list[str]) -> str:
    exps = job.config["experiments"]
    epochs = sorted({int(exps[e]["pretrain"]["epochs"]) for e in rows})
    ft = exps[rows[0]]["finetune"]
    n_pre = _n_jets(job.inputs["pretrain_split"][0]) if job.inputs.get("pretrain_split") else None
    runs = _runs(job.config, rows[0], job.spec)
    with_test = [p for p in job.inputs.get(rows[0], []) if Path(p).exists()]
    n_test = _n_jets(with_test[0]) if with_test else None
    ds = exps[rows[0]]["dataset"]
    return (
        f"Data: our generated stand-in of JetClass (dataset {ds!r}, Pythia 8 + parametric "
        f"detector), not the public JetClass files. Scale: each variant pre-trained once on "
        f"{n_pre} jets for {'/'.join(map(str, epochs))} epochs (paper: 100M jets, 5 epochs); "
        f"linear head on the frozen backbone trained on {runs[0]['n_train'] if runs else '?'} "
        f"labelled jets for {ft.get('epochs')} epochs (paper: 20 epochs), tested on {n_test} "
        f"jets (paper: 1M); backbone {exps[rows[0]]['backbone'].get('dim')}-d x "
        f"{exps[rows[0]]['backbone'].get('n_blocks')} blocks (paper: width 1024, 8 blocks, ~40M "
        f"parameters). Particle inputs: feature set "
        f"{T.experiment_feature_set(job.config, rows[0])!r} (paper: p_T, η, φ, §IV)."
    )


def build_variants(job: OutputJob) -> None:
    """Table I: one row per variant experiment, ours (mean ± std over fine-tuning seeds)
    beside the paper's accuracy."""
    from jetforge.reporting.finetune_scan import run_metrics
    from jetforge.reporting.table_io import mean_std_by, write_table

    rows = list(job.spec["experiments"])
    paper = _paper_rows(job.reference())
    long = []
    for e in rows:
        files = job.inputs.get(e, [])
        missing = [p for p in files if not Path(p).exists()]
        if missing or not files:
            raise FileNotFoundError(f"{job.name}: prediction files of {e!r} missing: {missing}")
        v = variant_of(job.config["experiments"][e])
        for p in files:
            long.append({"experiment": e, **v, "accuracy": run_metrics(p)["accuracy"]})
    data = mean_std_by(pd.DataFrame(long), ["experiment", "ordering", "inputs", "target"],
                       ["accuracy"])  # fmt: skip
    data["paper_accuracy"] = [
        paper.get((o, i, t), np.nan)
        for o, i, t in zip(data["ordering"], data["inputs"], data["target"], strict=True)
    ]
    display = pd.DataFrame({
        "Ordering": data["ordering"].map(ORDERING_LABELS),
        "Inputs": data["inputs"],
        "Loss": data["target"].map(TARGET_LABELS),
        "accuracy (ours)": [f"{100 * m:.1f} ± {100 * s:.1f} %" for m, s in
                            zip(data["accuracy"], data["accuracy_std"], strict=True)],
        "accuracy (paper)": [f"{100 * a:.1f} %" if np.isfinite(a) else "—"
                             for a in data["paper_accuracy"]],
        "experiment": data["experiment"],
    })  # fmt: skip
    n_rep = sorted({int(n) for n in data["n_repeats"]})
    notes = [
        _scale_note(job, rows),
        f"Repeats: {'/'.join(map(str, n_rep))} linear-head trainings with different seeds on "
        "one pre-training per variant (as the paper: pre-training spread not included); ± is "
        "their standard deviation (paper: O(0.01 %)).",
        "Deviations: sizes above; the paper's accuracies are on the real JetClass, so only "
        "the ordering of the rows is comparable. Quantized inputs: the backbone reads the "
        "code vector of each particle's token (K-means centroid in standardised features, "
        "VQ-VAE effective codebook vector) through its linear embedding.",
    ]
    title = (f"{job.paper} Table I: linear probe of pre-training variants, ten-class "
             f"accuracy ({job.spec['task']})")  # fmt: skip
    write_table(data, job.out, title, notes, display=display)


PRETRAINING_VARIANTS = OutputKind(variant_inputs, build_variants, _variant_errors,
                                  frozenset({"task", "mode", "n_train"}))  # fmt: skip


# ---- Figs. 3-5: accuracy against labelled jets -------------------------------------------


def task_predictions(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    files = T.predictions_for(config, experiment, spec["task"])
    return {"predictions": [p for fs in files.values() for p in fs]}


#: what the figure may draw (jetforge.reporting.finetune_scan.METRICS), and its axis label
METRIC_LABELS = {"accuracy": "Accuracy", "auc": "AUC",
                 "rejection": "Background rejection at 50 % signal efficiency"}  # fmt: skip


def _task_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    tasks = (config["experiments"][experiment].get("finetune") or {}).get("tasks", {})
    if spec.get("task") not in tasks:
        return [f"task {spec.get('task')!r} is not a fine-tuning task of experiment "
                f"{experiment!r}; tasks: {sorted(tasks)}"]  # fmt: skip
    metric = spec.get("metric", "accuracy")
    if metric not in METRIC_LABELS:
        return [f"metric: {metric!r} is not one of {sorted(METRIC_LABELS)}"]
    task = tasks[spec["task"]]
    if metric == "rejection" and "classes" in task:
        return [f"metric: rejection needs a binary task (signal/background); task "
                f"{spec['task']!r} has classes {task['classes']}: use accuracy or auc"]  # fmt: skip
    return []


def draw_accuracy_vs_labels(rows: list[dict[str, Any]], out_stem: str, title: str,
                            rlabel: str, metric: str = "accuracy") -> None:  # fmt: skip
    """Mean ``metric`` (line) ± std over repeats (band) per mode, log x (MPM Figs. 3-5)."""
    import matplotlib.pyplot as plt

    from jetforge.reporting.style import apply_style, label, save_figure

    apply_style()
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    for mode in MODE_LEGEND:
        rs = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["n_train"])
        if not rs:
            continue
        c, mk, ls = MODE_STYLE[mode]
        n = np.array([r["n_train"] for r in rs], dtype=float)
        m = np.array([r[metric] for r in rs])
        s = np.nan_to_num(np.array([r[f"{metric}_std"] for r in rs]))
        ax.plot(n, m, color=c, marker=mk, ls=ls, label=MODE_LEGEND[mode])
        ax.fill_between(n, m - s, m + s, color=c, alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("Number of labelled training samples")
    ax.set_ylabel(METRIC_LABELS[metric])
    if metric == "rejection":
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    label(ax, rlabel=rlabel)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out_stem)


def build_accuracy_vs_labels(job: OutputJob) -> None:
    from jetforge.reporting.finetune_scan import summarise

    files = job.inputs["predictions"]
    missing = [p for p in files if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"{job.name}: prediction files missing: {missing}")
    rows = summarise(files)
    n_rep = max(r["n_repeats"] for r in rows)
    metric = str(job.spec.get("metric", "accuracy"))
    title = job.spec.get("caption") or (
        f"{job.paper} {job.name}: {metric} vs labelled jets, task {job.spec['task']} "
        f"(mean ± std over {n_rep} repeats)"
    )
    ds = job.exp["finetune"]["tasks"][job.spec["task"]].get("dataset", job.exp["dataset"])
    draw_accuracy_vs_labels(rows, job.stem, title, f"our stand-in of {ds}", metric)


ACCURACY_VS_LABELS = OutputKind(task_predictions, build_accuracy_vs_labels, _task_errors,
                                frozenset({"task", "metric"}))  # fmt: skip
