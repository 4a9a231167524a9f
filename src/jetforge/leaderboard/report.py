"""``results/tables/leaderboard.{csv,md,tex}`` and ``results/figures/leaderboard/``.

The CSV is the full record (every metric's mean, std, rank and comparison with the best
entry); the Markdown and LaTeX show the protocol's headline columns as ``mean ± std [rank]``,
a ``*`` marking an entry significantly worse than the best at 95 % over seeds
(:mod:`jetforge.leaderboard.aggregate`). The header states the data (our generated
stand-in), the scale, the shared budget and every deviation, so the table cannot be read
as a paper-scale result. Figures: fine-tuned AUC against labelled jets per entry, and the
robustness-versus-accuracy plane (house style, "Simulation" label).

Analysis-env code: no torch; reads the jobs' ``metrics.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jetforge.leaderboard import aggregate as A
from jetforge.leaderboard.plan import BASELINES
from jetforge.reporting.table_io import write_table


def headline(n_train: Sequence[int]) -> dict[str, str]:
    """The protocol's headline columns of the Markdown / LaTeX table: metric -> header."""
    ft = {f"ft_auc_n{n}": f"fine-tuned AUC, {n} labels" for n in n_train}
    return {
        "knn_auc": "kNN AUC", "linear_auc": "linear AUC", **ft,
        "w_mean": "W(nominal, variants) ×10³", "drop_auc_loss": "AUC lost, dropped particles",
        "anomaly_auc": "anomaly AUC", "eff_rank": "effective rank",
        "pretrain_cpu_s": "pre-training CPU s",
    }  # fmt: skip


#: one marker per entry (ten or more entries outrun a colour cycle)
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "*", "h", "p")
#: headline metrics whose significant pairs the note leaves to the CSV (not a quality)
UNCOMPARED = ("eff_rank", "pretrain_cpu_s")
#: shown ×1000 (Wasserstein distances of scores in [0, 1] are ~1e-2)
SCALED = {"w_mean": 1000.0}


def load_records(paths: Sequence[str]) -> list[dict[str, Any]]:
    return [json.loads(Path(p).read_text()) for p in paths]


def _cell(row: Mapping[str, Any], m: str) -> str:
    mean = row.get(m, math.nan)
    if mean is None or math.isnan(mean):
        return "—"
    f = SCALED.get(m, 1.0)
    digits = 1 if m.startswith("pretrain_") else 3
    std = row[f"{m}_std"] * f
    star = " *" if row[f"{m}_vs_best"] == A.WORSE else ""
    return f"{mean * f:.{digits}f} ± {std:.{digits}f} [{int(row[f'{m}_rank'])}]{star}"


def display(summary: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    cols = [m for m in columns if m in summary.columns]
    rows = [{"entry": r["label"], "seeds": int(r["n_repeats"]),
             **{columns[m]: _cell(r, m) for m in cols}} for _, r in summary.iterrows()]  # fmt: skip
    return pd.DataFrame(rows)


def notes(lb: Mapping[str, Any], ds: Mapping[str, Any], summary: pd.DataFrame,
          records: Sequence[Mapping[str, Any]]) -> list[str]:  # fmt: skip
    """The header: data, scale, budget, protocol, significance, deviations."""
    b, bb, ft = lb["budget"], lb["backbone"], lb["finetune"]
    scale = ("a CPU-size demonstration, not the papers' scale (a small ParT, a pre-training "
             "budget of minutes)" if b["steps"] * b["batch_size"] < 10**6 else
             "the paper-scale configuration")  # fmt: skip
    rec = {k: max(int(r.get(k, 0)) for r in records)
           for k in ("n_pretrain_jets", "n_probe_train", "n_probe_test", "n_anomaly")}
    variants = list(ds.get("shower", {}).get("variants", {}))[1:]
    arch = ", ".join(f"{k} {bb[k]}" for k in ("embed_dims", "num_layers", "num_cls_layers",
                                               "num_heads") if k in bb)  # fmt: skip
    heads = headline([int(n) for n in ft["n_train"]])
    sig = [f"{heads[m]}: " + (", ".join(f"{a} > {c}" for a, c in A.significant_pairs(summary, m))
                              or "none")
           for m in heads if m in summary.columns and m not in UNCOMPARED]  # fmt: skip
    return [
        (f"Data: our generated stand-in, dataset {lb['dataset']!r}: Pythia 8 hard process and "
         f"shower, re-simulated variants {variants} of the same hard events (alt_shower: "
         "Vincia standing in for Herwig 7), parametric CMS-like E-flow detector (our stand-in "
         f"for Delphes/Geant4). Task {lb['classes'][1]} vs {lb['classes'][0]}; held-out "
         f"anomaly class {lb['anomaly']} (never pre-trained or tagged on)."),
        (f"Scale: {rec['n_pretrain_jets']} nominal pre-training jets, probes on "
         f"{rec['n_probe_train']} / {rec['n_probe_test']} jets (anomaly: {rec['n_anomaly']}), "
         f"fine-tuning on {ft['n_train']} labelled jets for {ft.get('epochs')} epoch(s), "
         f"{int(summary['n_repeats'].max())} pre-training seeds per entry."),
        (f"Budget, the same for every entry: {b['steps']} optimizer steps × batch "
         f"{b['batch_size']} (pair methods: {b['batch_size']} nominal jets + one re-simulated "
         f"variant each; single-jet methods: {b['batch_size']} jets, views made by the "
         f"method). Backbone for all: ParT ({arch}); shared optimiser settings "
         f"{dict(lb.get('pretrain', {}))}."),
        ("Protocol: kNN (cosine, k = "
         f"{lb.get('probe', {}).get('k', 30)}) and linear probes of the frozen embedding; "
         "fine-tuned AUC (supervised: same backbone from scratch) on nominal test jets; "
         "W = 1-d Wasserstein distance of the output of the tagger fine-tuned on the most "
         "labels between nominal and each variant, averaged over variants (RS3L Table III, "
         "arXiv:2403.07066); AUC lost when "
         f"{lb.get('robustness', {}).get('drop_fraction', 0.5):g} of each jet's particles "
         "are dropped (JP-JEPA §2.3, arXiv:2606.14813); anomaly AUC of the kNN distance score "
         "(jBOT eq. (5), arXiv:2601.11719); uncentred effective rank of test embeddings; "
         "pre-training CPU seconds (all threads) measured in the job."),
        ("Cells: mean ± std (ddof=1) over pre-training seeds [rank by mean, 1 = best]; "
         "* = significantly worse than the best entry (Welch t, 95 % two-sided, as "
         "results/tables/claims). Significant differences, a > b = a better than b (for W "
         "and AUC lost: lower; effective rank and cost: see the CSV): " + "; ".join(sig) + "."),
        (f"Deviations: {scale}; every method's own loss with one shared optimiser setting; "
         "objective × augmentation combinations not in this table are not run in this "
         "config (config/paper/leaderboard.yaml lists every one, with the hadronization "
         f"fork). Baselines: {', '.join(BASELINES)} (random init: frozen metrics only; "
         "supervised: fine-tuning metrics only; neither has a pre-training cost)."),
    ]


def write_table_files(records: Sequence[Mapping[str, Any]], lb: Mapping[str, Any],
                      ds: Mapping[str, Any], out: Mapping[str, str]) -> pd.DataFrame:  # fmt: skip
    summary = A.summarise(records)
    shown = display(summary, headline([int(n) for n in lb["finetune"]["n_train"]]))
    title = ("Leaderboard: self-supervised objectives × augmentations on one backbone, one "
             "dataset, one protocol")  # fmt: skip
    write_table(summary, {k: out[k] for k in ("csv", "md", "tex")}, title,
                notes(lb, ds, summary, records), display=shown)  # fmt: skip
    return summary


def _xy(summary: pd.DataFrame, m: str) -> tuple[np.ndarray, np.ndarray]:
    return summary[m].to_numpy(float), summary[f"{m}_std"].to_numpy(float)


def accuracy_figure(summary: pd.DataFrame, n_train: Sequence[int], stem: str) -> None:
    """Fine-tuned test AUC against labelled jets, one line per entry (bars: std over
    pre-training seeds); the from-scratch baseline dashed."""
    import matplotlib.pyplot as plt

    from jetforge.reporting.style import apply_style, label, save_figure

    apply_style()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for i, r in summary.iterrows():
        ys = [r.get(f"ft_auc_n{n}", math.nan) for n in n_train]
        if all(math.isnan(y) for y in ys):
            continue
        es = [r.get(f"ft_auc_n{n}_std", 0.0) for n in n_train]
        ls = "--" if r["entry"] == "supervised" else "-"
        ax.errorbar(n_train, ys, yerr=es, marker=MARKERS[int(i) % len(MARKERS)], ls=ls,
                    color=plt.cm.tab10(int(i) % 10), capsize=3, label=r["label"])  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("labelled training jets")
    ax.set_ylabel("fine-tuned test AUC (nominal jets)")
    ax.legend(fontsize=7)
    label(ax, rlabel="generated stand-in, CPU scale")
    fig.tight_layout()
    save_figure(fig, stem)


def robustness_figure(summary: pd.DataFrame, n_max: int, stem: str) -> None:
    """The robustness-versus-accuracy plane: fine-tuned AUC (most labels) against the
    Wasserstein distance nominal vs variants (left) and the AUC lost to dropped particles
    (right); lower-right is better in both."""
    import matplotlib.pyplot as plt

    from jetforge.reporting.style import apply_style, label, save_figure

    apply_style()
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.6))
    x, xe = _xy(summary, f"ft_auc_n{n_max}")
    for ax, m, name in ((axes[0], "w_mean", "W(nominal, variants) of tagger output"),
                        (axes[1], "drop_auc_loss", "AUC lost with dropped particles")):
        y, ye = _xy(summary, m)
        for i, lab in enumerate(summary["label"]):
            if math.isnan(x[i]) or math.isnan(y[i]):
                continue
            ax.errorbar(x[i], y[i], xerr=xe[i], yerr=ye[i], marker=MARKERS[i % len(MARKERS)],
                        color=plt.cm.tab10(i % 10), capsize=3, label=lab)  # fmt: skip
        ax.set_xlabel(f"fine-tuned test AUC, {n_max} labels")
        ax.set_ylabel(name)
    axes[0].legend(fontsize=7)
    label(axes[0], rlabel="generated stand-in, CPU scale")
    fig.tight_layout()
    save_figure(fig, stem)


def build(metrics_files: Sequence[str], lb: Mapping[str, Any], ds: Mapping[str, Any],
          out: Mapping[str, str]) -> pd.DataFrame:  # fmt: skip
    """The rule ``leaderboard``: table and both figures from every job's metrics."""
    records = load_records(metrics_files)
    summary = write_table_files(records, lb, ds, out)
    n_train = [int(n) for n in lb["finetune"]["n_train"]]
    accuracy_figure(summary, n_train, str(Path(out["accuracy_vs_labels_png"]).with_suffix("")))
    robustness_figure(summary, max(n_train),
                      str(Path(out["robustness_vs_accuracy_png"]).with_suffix("")))  # fmt: skip
    return summary
