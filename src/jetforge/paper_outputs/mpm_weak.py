"""MPM's weak supervision, Fig. 6 (Golling et al., arXiv:2401.13537 §V F).

Two samples of background jets, N signal jets added to one; a classifier learns to tell the
samples apart (:mod:`jetforge.training.weak`) and is evaluated on pure, truth-labelled test
jets. The paper's metric is the *significance improvement* "defined as the ratio of
significance before and after applying a threshold of 0.5 on the classifier output", the
significance being S/sqrt(B) of the jets passing: SI = ε_S(0.5) / sqrt(ε_B(0.5)). "Any value
of this metric below 2 is not considered to be particularly useful."

* table kind ``weak_supervision``: one row per (mode, N) -- SI and the true-label AUC,
  mean ± std over the repeats (the paper: 5 trainings).
* figure kind ``weak_supervision``: SI against N per mode ("Fixed", "Fine-tuned", from
  scratch), mean as line, std as band, the usefulness line SI = 2 dashed.

The spec's ``tasks`` (default: every ``weak`` task of the experiment) are the N values; all
must share signal, background and labelled background size so the N axis is the only
change. ``threshold`` (default 0.5, the paper's) is the cut on the classifier output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jetforge import experiment as X
from jetforge.paper_outputs import OutputJob, OutputKind
from jetforge.paper_outputs.mpm import MODE_LEGEND, MODE_STYLE
from jetforge.training.weak import n_signal
from jetforge.workflow import targets as T

#: the paper's cut on the classifier output (§V F)
THRESHOLD = 0.5
#: SI below this "is not considered to be particularly useful" (§V F)
USEFUL_SI = 2.0


def weak_tasks(config: dict, experiment: str, spec: dict) -> list[str]:
    """The spec's ``tasks`` or every weak task of the experiment, sorted by N."""
    tasks = (config["experiments"][experiment].get("finetune") or {}).get("tasks") or {}
    names = list(spec.get("tasks") or [t for t, s in tasks.items() if n_signal(s) is not None])
    return sorted((t for t in names if t in tasks and n_signal(tasks[t]) is not None),
                  key=lambda t: n_signal(tasks[t]))  # fmt: skip


def weak_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    """One prediction list per weak task (every mode, labelled size and repeat)."""
    return {t: [p for fs in T.predictions_for(config, experiment, t).values() for p in fs]
            for t in weak_tasks(config, experiment, spec)}  # fmt: skip


def _weak_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    """Named tasks exist and are weak; all share signal, background and n_train."""
    tasks = (config["experiments"][experiment].get("finetune") or {}).get("tasks") or {}
    errs = []
    for t in spec.get("tasks") or []:
        if t not in tasks:
            errs.append(f"tasks: {t!r} is not a fine-tuning task of experiment {experiment!r}; "
                        f"tasks: {sorted(tasks)}")  # fmt: skip
        elif n_signal(tasks[t]) is None:
            errs.append(f"tasks: {t!r} is not a weak task; add weak: {{n_signal: N}} to "
                        f"experiments.{experiment}.finetune.tasks.{t}")  # fmt: skip
    names = weak_tasks(config, experiment, spec)
    if not names and not errs:
        errs.append(f"tasks: experiment {experiment!r} has no weak fine-tuning task; add one "
                    "per injected signal N, e.g. weak_top_n20: {signal: tbqq_tt, background: "
                    "qcd_zjet, weak: {n_signal: 20}}")  # fmt: skip
    exp = config["experiments"][experiment]
    shapes = {t: (tasks[t].get("signal"), repr(tasks[t].get("background")),
                  tuple(sorted({int(n) for g in X.task_grids(exp, t) for n in g["n_train"]})))
              for t in names}  # fmt: skip
    if len(set(shapes.values())) > 1:
        errs.append(f"tasks: the weak tasks must differ only in weak.n_signal (same signal, "
                    f"background and n_train), got {shapes}")  # fmt: skip
    thr = spec.get("threshold", THRESHOLD)
    if not isinstance(thr, int | float) or not 0 < float(thr) < 1:
        errs.append(f"threshold: {thr!r} must be a number in (0, 1) (the paper's: 0.5)")
    return errs


def significance_improvement(score: np.ndarray, label: np.ndarray,
                             threshold: float = THRESHOLD) -> float:  # fmt: skip
    """ε_S / sqrt(ε_B) of the jets with ``score > threshold`` (MPM §V F). No background jet
    passing would divide by zero: ε_B is floored at one jet (1 / n_B), a lower bound on SI
    for the test set's size rather than an infinity."""
    sig, bkg = score[label == 1], score[label == 0]
    if sig.size == 0 or bkg.size == 0:
        raise ValueError(f"significance improvement needs both classes, got {sig.size} signal "
                         f"and {bkg.size} background jets")  # fmt: skip
    eff_s = float(np.mean(sig > threshold))
    eff_b = max(float(np.mean(bkg > threshold)), 1.0 / bkg.size)
    return eff_s / np.sqrt(eff_b)


def weak_rows(job: OutputJob) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per (mode, N): SI and AUC mean ± std over repeats, and the scale facts."""
    import h5py

    from jetforge.evaluation.metrics import classification_metrics

    tasks = job.exp["finetune"]["tasks"]
    thr = float(job.spec.get("threshold", THRESHOLD))
    long, n_test = [], 0
    for task in weak_tasks(job.config, job.experiment, job.spec):
        files = job.inputs.get(task, [])
        missing = [p for p in files if not Path(p).exists()]
        if missing or not files:
            raise FileNotFoundError(f"{job.name}: prediction files of {task!r} missing: {missing}")
        for p in files:
            with h5py.File(p, "r") as f:
                score, label = f["score"][:], f["label"][:]
                mode, n = str(f.attrs["mode"]), int(f.attrs["n_train"])
            n_test = int(label.size)
            long.append({"mode": mode, "n_signal": n_signal(tasks[task]), "task": task,
                         "n_background": n, "sic": significance_improvement(score, label, thr),
                         "auc": classification_metrics(score, label, None)["auc"]})  # fmt: skip
    frame = pd.DataFrame(long)
    order = {m: i for i, m in enumerate(MODE_LEGEND)}
    frame["_o"] = frame["mode"].map(lambda m: order.get(m, len(order)))
    frame = frame.sort_values(["_o", "n_signal"], kind="stable").drop(columns="_o")
    data = _mean_std(frame)
    half = data["n_background"] // 2
    data.insert(2, "signal_fraction", data["n_signal"] / (half + data["n_signal"]))
    return data, {"n_test": n_test, "threshold": thr}


def _mean_std(frame: pd.DataFrame) -> pd.DataFrame:
    from jetforge.reporting.table_io import mean_std_by

    return mean_std_by(frame, ["mode", "n_signal", "task", "n_background"], ["sic", "auc"])


def _notes(job: OutputJob, data: pd.DataFrame, facts: dict[str, Any]) -> list[str]:
    ft = job.exp["finetune"]
    task = job.exp["finetune"]["tasks"][data["task"].iloc[0]]
    ds = task.get("dataset", job.exp["dataset"])
    n_bkg = int(data["n_background"].iloc[0])
    reps = "/".join(map(str, sorted({int(n) for n in data["n_repeats"]})))
    return [
        f"Data: our generated stand-in of JetClass (dataset {ds!r}, Pythia 8 + parametric "
        f"detector), signal {task['signal']} vs background {task['background']}. Scale: two "
        f"samples of {n_bkg // 2} background jets each (paper: 1M each), N signal jets "
        f"added to the first; {ft.get('epochs')} epochs (paper: up to 50 with early "
        f"stopping), validation share {ft.get('val_fraction', 0)} drawn as further mixed "
        f"samples with the same signal fraction; tested on {facts['n_test']} truth-labelled "
        "jets; backbone pre-trained on the stand-in's training split (paper: 100M jets).",
        f"Metric: significance improvement ε_S/√ε_B at a cut of {facts['threshold']} on the "
        "classifier output (the paper's definition, §V F); with no background jet passing, "
        "ε_B is floored at one test jet. AUC: true labels, same test jets. The paper states "
        f"SI < {USEFUL_SI:g} is not useful; it gives curves only (Fig. 6), no numbers.",
        f"Repeats: {reps} trainings with different seeds per (mode, N) on one labelled draw "
        "(paper: 5); ± is their standard deviation.",
        "Deviations: sizes above -- with this few jets the mixed samples differ by a handful "
        "of signal jets, so the spread is large; modes fixed / floating / supervised are the "
        "paper's Fixed / Fine-tuned / from scratch.",
    ]


def build_weak_table(job: OutputJob) -> None:
    from jetforge.reporting.table_io import write_table

    data, facts = weak_rows(job)
    display = pd.DataFrame({
        "Mode": data["mode"].map(lambda m: MODE_LEGEND.get(m, m)),
        "N (signal injected)": data["n_signal"],
        "signal fraction (sample 1)": [f"{100 * f:.1f} %" for f in data["signal_fraction"]],
        "SI (ours)": [f"{m:.2f} ± {s:.2f}" for m, s in zip(data["sic"], data["sic_std"],
                                                           strict=True)],
        "AUC (ours)": [f"{m:.3f} ± {s:.3f}" for m, s in zip(data["auc"], data["auc_std"],
                                                            strict=True)],
        "SI (paper)": "— (Fig. 6 only)",
    })  # fmt: skip
    title = f"{job.paper} Fig. 6 (§V F): weak supervision, significance improvement vs N"
    write_table(data, job.out, title, _notes(job, data, facts), display=display)


def build_weak_figure(job: OutputJob) -> None:
    """SI vs N per mode, mean line and std band; SI = 2 (useful) and 1 (no gain) marked."""
    import matplotlib.pyplot as plt

    from jetforge.reporting.style import apply_style, label, save_figure

    data, facts = weak_rows(job)
    apply_style()
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    for mode in MODE_LEGEND:
        d = data[data["mode"] == mode]
        if d.empty:
            continue
        c, mk, ls = MODE_STYLE[mode]
        n, m, s = (d[k].to_numpy(float) for k in ("n_signal", "sic", "sic_std"))
        ax.plot(n, m, color=c, marker=mk, ls=ls, label=MODE_LEGEND[mode])
        ax.fill_between(n, m - s, m + s, color=c, alpha=0.2, lw=0)
    ax.axhline(USEFUL_SI, color="grey", ls="--", lw=1, label=f"SI = {USEFUL_SI:g}")
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    n_pos = data["n_signal"][data["n_signal"] > 0]
    if len(n_pos) == len(data) and n_pos.max() >= 10 * n_pos.min():  # paper scale: 1k-50k
        ax.set_xscale("log")
    ax.set_xlabel("Injected signal jets N")
    ax.set_ylabel(f"Significance improvement (cut {facts['threshold']:g})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ds = job.exp["finetune"]["tasks"][data["task"].iloc[0]].get("dataset", job.exp["dataset"])
    label(ax, rlabel=f"our stand-in of {ds}")
    n_rep = int(data["n_repeats"].max())
    fig.suptitle(job.spec.get("caption") or (
        f"{job.paper} {job.name}: weak supervision, {int(data['n_background'].iloc[0]) // 2} "
        f"background jets per sample (mean ± std over {n_rep} repeats)"), fontsize=9)  # fmt: skip
    fig.tight_layout()
    save_figure(fig, job.stem)


_KEYS = frozenset({"tasks", "threshold"})
WEAK_TABLE = OutputKind(weak_inputs, build_weak_table, _weak_errors, _KEYS)
WEAK_FIGURE = OutputKind(weak_inputs, build_weak_figure, _weak_errors, _KEYS)
