"""Rieck et al. (arXiv:2503.11632) Fig. 8: the autoencoder's taggers beside the contrastive
model's and the fully supervised ones, on the same gluon and tau tagging tasks.

The paper draws background rejection vs signal efficiency for (i) the backbone pre-trained
by the autoencoder (its "AE (vc)"), (ii) the contrastive backbone ("SSL", Fig. 6), (iii) the
same network trained from scratch, and (iv) hybrids (a supervised backbone with the
autoencoder's compressing MLP, "AE (gtag)", "AE (tautag)"). Here each row is one fine-tuning
setup of the listed experiments (mode as configured: a head on the autoencoder's frozen y,
"AE (vc)" as §5.4 trains it; LoRA on the contrastive backbone, Fig. 6's "SSL"; the network
from scratch), all from the same fine-tuning rule as Fig. 6. The hybrids (iv) are
experiments whose pre-training names ``pretrain.init_backbone`` (the supervised tagger's
backbone, frozen, under a fresh compressor and decoder trained by the autoencoder:
:mod:`jetforge.training.init_backbone`); their label is ``AE (<that run's task>)``.

* table kind ``rieck_taggers``: AUC and rejection at the given signal efficiencies per
  (task, model, labelled size), mean ± std over the fine-tuning repeats, first-fork jets;
  a listed experiment contributes the tasks it fine-tunes (a hybrid only its backbone's);
* figure kind ``rieck_tagger_roc``: the ROC of each model at its largest labelled size, one
  figure per task (Fig. 8a gluon, 8b tau).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from jetforge import experiment as X
from jetforge.paper_outputs import OutputJob, OutputKind
from jetforge.workflow import targets as T

#: the paper's names of the pre-trainings (``pretrain.method``) in Fig. 8's legend
METHOD_LABELS = {"hadfork_contrastive": "SSL (contrastive)", "ae_vicreg": "AE (vc)"}
#: ... and of a pre-training on a fine-tuned backbone (``pretrain.init_backbone``): the
#: paper's "AE (gtag)" / "AE (tautag)", the task of the supervised backbone in brackets
HYBRID_LABELS = {"ae_vicreg": "AE"}


def model_label(config: Mapping[str, Any], experiment: str, mode: str) -> str:
    """``SSL (contrastive), lora``, ``AE (gtag), fixed``; from-scratch runs are
    ``supervised`` whatever backbone pre-training their experiment has (none is used)."""
    if mode == "supervised":
        return "supervised (from scratch)"
    pre = config["experiments"][experiment]["pretrain"]
    method, init = pre["method"], pre.get("init_backbone")
    if init:
        return f"{HYBRID_LABELS.get(method, method)} ({init['task']}), {mode}"
    return f"{METHOD_LABELS.get(method, method)}, {mode}"


def _fine_tunes(config: Mapping[str, Any], experiment: str, task: str) -> bool:
    return task in ((config["experiments"].get(experiment) or {}).get("finetune") or {}).get(
        "tasks", {})  # fmt: skip


def tagger_runs(
    config: Mapping[str, Any], experiment: str, spec: Mapping[str, Any], task: str
) -> dict[tuple[str, int], list[str]]:
    """(model label, labelled size) -> prediction files (one per repeat) of ``task`` in the
    owner and those of the listed experiments that fine-tune it."""
    out: dict[tuple[str, int], list[str]] = {}
    for e in [experiment, *spec.get("experiments", [])]:
        if not _fine_tunes(config, e, task):
            continue
        for run in X.finetune_grid(config["experiments"][e], task):
            key = (model_label(config, e, run["mode"]), int(run["n_train"]))
            out.setdefault(key, []).append(T.prediction_path(e, run))
    return out


def _tasks(spec: Mapping[str, Any]) -> list[str]:
    return [str(t) for t in (spec.get("tasks") or [spec.get("task")])]


def _inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    files = [p for t in _tasks(spec) for fs in tagger_runs(config, experiment, spec, t).values()
             for p in fs]  # fmt: skip
    return {"predictions": files}


def _errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs = []
    tasks = _tasks(spec)
    for t in tasks:
        task = config["experiments"][experiment].get("finetune", {}).get("tasks", {})
        if t not in task:
            errs.append(
                f"tasks: {t!r} is not a fine-tuning task of {experiment!r}; Fig. 8 "
                "compares its tasks across the experiments (add it to finetune.tasks)"
            )
        elif "classes" in task[t]:
            errs.append(f"tasks: {t!r} is multi-class; Fig. 8 needs signal/background tasks")
    for e in spec.get("experiments", []):
        if not any(_fine_tunes(config, e, t) for t in tasks):
            errs.append(
                f"experiments: {e!r} fine-tunes none of the tasks {tasks}; Fig. 8 "
                "compares the same tasks across the experiments (add one to its "
                "finetune.tasks or drop it)"
            )
    for eff in spec.get("efficiencies", [0.5]):
        if not 0.0 < float(eff) < 1.0:
            errs.append(f"efficiencies: {eff} must lie in (0, 1)")
    return errs


def build_table(job: OutputJob) -> None:
    from jetforge.evaluation.metrics import auc, rejection_at
    from jetforge.reporting.table_io import mean_std_by, write_table
    from jetforge.reporting.tables import load_predictions

    effs = [float(e) for e in job.spec.get("efficiencies", [0.5])]
    long = []
    for task in _tasks(job.spec):
        for (model, n), files in tagger_runs(job.config, job.experiment, job.spec, task).items():
            for r, path in enumerate(files):
                p = load_predictions(path, ["score", "label"])
                first = p.nominal()
                s, y = p["score"][first], p["label"][first]
                row = {"task": task, "model": model, "n_train": n, "repeat": r, "auc": auc(s, y)}
                row.update({f"rej@{e:g}": rejection_at(s, y, e) for e in effs})
                long.append(row)
    data = mean_std_by(pd.DataFrame(long), ["task", "model", "n_train"],
                       ["auc", *[f"rej@{e:g}" for e in effs]])  # fmt: skip
    ds = job.config["datasets"][job.exp["dataset"]]
    notes = [
        "Fig. 8 as numbers: taggers on the backbone pre-trained by the VICReg-style "
        "autoencoder (AE (vc)) and by the contrastive loss (SSL), fine-tuned as configured "
        "(mode after the comma), the same network trained from scratch, and the hybrids "
        "AE (gtag) / AE (tautag): the from-scratch tagger's backbone of that task, frozen, "
        "under a compressor x -> y and decoder trained by the autoencoder, a head on y; "
        "first-fork test jets; mean ± std over fine-tuning repeats. The paper draws these "
        "curves only (no printed numbers): supervised best, the hybrids as good or almost, "
        "AE (vc) well below SSL.",
        f"Data: our generated stand-in of the hadronization-fork pairs (Pythia 8 + the "
        f"COCOA-like calorimeter stand-in, pile-up mu = {(ds.get('pileup') or {}).get('mu')}, "
        "paper: 150); labelled sizes in n_train (paper: up to ~1e5 jets).",
    ]
    notes += _setup_notes(job.config, [job.experiment, *job.spec.get("experiments", [])])
    write_table(data, job.out, f"{job.paper}: autoencoder vs contrastive taggers (Fig. 8)", notes)


def _setup_notes(config: Mapping[str, Any], experiments: list[str]) -> list[str]:
    """Where each hybrid's backbone comes from and each experiment's fine-tuning budget:
    rows trained for very different step counts are not a like-for-like comparison, so the
    table says what each got."""
    budgets, sources = [], []
    for e in experiments:
        x = config["experiments"][e]
        ft = x.get("finetune") or {}
        lora = f", LoRA adapters lr {ft['lr_lora']}" if "lr_lora" in ft else ""
        budgets.append(f"{e}: {ft.get('epochs')} epochs, batch {ft.get('batch_size')}, "
                       f"lr {ft.get('lr')}{lora}")  # fmt: skip
        init = x["pretrain"].get("init_backbone")
        if init:
            run = X.init_backbone_run(init, config["experiments"])
            sources.append(f"{model_label(config, e, 'fixed').split(',')[0]}: backbone of "
                           f"{init['experiment']} {run['task']} {run['mode']} n{run['n_train']} "
                           f"r{run['repeat']}")  # fmt: skip
    out = ["Fine-tuning budgets (n_train as the rows): " + "; ".join(budgets) + "."]
    return out + (["Hybrids: " + "; ".join(sources) + "."] if sources else [])


def build_roc(job: OutputJob) -> None:
    """Background rejection vs signal efficiency of each model at its largest labelled
    size: the mean over repeats, first-fork jets (the paper's Fig. 8 axes)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from jetforge.reporting.figures import _rejection_curve
    from jetforge.reporting.style import apply_style, label, save_figure
    from jetforge.reporting.tables import load_predictions

    task = str(job.spec["task"])
    largest: dict[str, tuple[int, list[str]]] = {}
    for (model, n), files in tagger_runs(job.config, job.experiment, job.spec, task).items():
        if n >= largest.get(model, (-1, []))[0]:
            largest[model] = (n, files)
    grid = np.linspace(0.01, 1.0, 199)
    apply_style()
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    for (model, (n, files)), color in zip(largest.items(), plt.cm.tab10.colors, strict=False):
        curves = []
        for path in files:
            p = load_predictions(path, ["score", "label"])
            first = p.nominal()
            curves.append(_rejection_curve(p["score"][first],
                                           p["label"][first].astype(np.int64), grid))  # fmt: skip
        ax.plot(grid, np.vstack(curves).mean(axis=0), color=color, lw=1.6,
                label=f"{model}, n = {n} [{len(curves)}x]")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel(r"Signal efficiency $\varepsilon_\mathrm{S}$")
    ax.set_ylabel(r"Background rejection $1/\varepsilon_\mathrm{B}$")
    ax.legend(frameon=False, fontsize=8)
    signal = job.exp["finetune"]["tasks"][task].get("signal")
    label(ax, rlabel=f"{signal} tagging, fork-pair stand-in")
    save_figure(fig, job.stem)


TABLE = OutputKind(_inputs, build_table, _errors, frozenset({"tasks", "efficiencies"}))
ROC = OutputKind(_inputs, build_roc, _errors, frozenset({"task"}))
