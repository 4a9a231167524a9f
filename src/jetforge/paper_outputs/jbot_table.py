"""Writing jBOT's Tables 2 and 3: our rows labelled as the paper's, the paper's numbers
(``resources/reference/jbot.yaml``) in the column beside each of ours, and the header that
says what the numbers are (data, scale, repeats, deviations; ../shared/PAPERS.md).

Matching our rows to the paper's (``tables.<id>.rows.<label>.setup`` in the reference):
frozen rows by ``{probe: knn | linear, size}``; fine-tuning rows by ``{mode, size,
fraction}`` where our smallest labelled size of a mode is the paper's ``fraction: 10`` and
the largest its ``fraction: 100`` (our sizes are ~1000x smaller, so by rank, not value).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from jetforge import experiment as X
from jetforge.paper_outputs import OutputJob
from jetforge.paper_outputs.jbot import (
    MODE_NAMES,
    PROBES,
    is_binary,
    size_of,
    symbol,
    task_rows,
)
from jetforge.workflow import targets as T


def metric_header(metric: str) -> str:
    if metric == "accuracy":
        return "Acc."
    if metric.startswith("auc_"):
        return f"AUC {metric[4:]}"
    if metric.startswith("eff_s@"):
        return f"ε_s({metric[6:]})"
    return metric.upper() if metric == "auc" else metric


def _fraction(row: pd.Series, sizes: dict[tuple[str, str], list[int]]) -> int | None:
    ns = sizes.get((row["experiment"], row["mode"]), [])
    if not ns:
        return None
    if row["n_train"] == ns[0]:
        return 10
    return 100 if row["n_train"] == ns[-1] else None


def paper_setup(row: pd.Series, size: str, sizes: dict) -> dict[str, Any] | None:
    """The reference ``setup`` our row stands for (None: the paper has no such row)."""
    if row["block"] == "frozen":
        if row["encoder"] != "jbot" or row["probe"] not in ("knn", "linear"):
            return None
        return {"probe": row["probe"], "size": size}
    if row["block"] == "fine-tuning" and row["mode"] in ("floating", "supervised"):
        frac = _fraction(row, sizes)
        return None if frac is None else {"mode": row["mode"], "size": size, "fraction": frac}
    return None


def paper_values(ref: dict[str, Any] | None, setup: dict[str, Any] | None
                 ) -> tuple[str | None, dict[str, float]]:  # fmt: skip
    if ref is None or setup is None:
        return None, {}
    for label, r in ref.get("rows", {}).items():
        if all(str(r["setup"].get(k)) == str(v) for k, v in setup.items()):
            return str(label), {str(k): float(v) for k, v in r["values"].items()}
    return None, {}


def row_label(row: pd.Series, size: str, available: dict[str, int]) -> str:
    if row["block"] == "frozen":
        who = f"jBOT-{size}" if row["encoder"] == "jbot" else f"random init {size}"
        return f"{PROBES[row['probe']]} ({who})"
    n = int(row["n_train"])
    pct = 100.0 * n / max(available[row["experiment"]], 1)
    if row["block"] == "gain":
        return f"jBOT-{size} − Sup.-{size} ({n} jets, {pct:.0f} %)"
    return f"{MODE_NAMES[row['mode']]}-{size} ({n} jets, {pct:.0f} %)"


def _cell(mean: float, std: float, n: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def _available(job: OutputJob, experiments: list[str]) -> dict[str, int]:
    """Labelled training jets of the task in each experiment's fine-tuning split."""
    out = {}
    for e in experiments:
        task = job.config["experiments"][e]["finetune"]["tasks"][job.spec["task"]]
        rows, _ = task_rows(T.task_files(job.config, e, job.spec["task"])["train"], task,
                            10**12, 0)  # fmt: skip
        out[e] = int(rows.size)
    return out


def write_classification(job: OutputJob, table: pd.DataFrame, metrics: list[str]) -> None:
    """Add labels and paper columns to the aggregated table and write csv/md/tex."""
    from jetforge.reporting.table_io import write_table

    ref = job.reference()
    exps = list(dict.fromkeys(table["experiment"]))
    available = _available(job, exps)
    ft = table[table["block"] == "fine-tuning"]
    sizes = {(e, m): sorted(set(g["n_train"])) for (e, m), g in ft.groupby(["experiment", "mode"])}
    labels, paper_labels, paper_cols = [], [], {m: [] for m in metrics}
    for _, row in table.iterrows():
        size = size_of(job, row["experiment"])
        labels.append(row_label(row, size, available))
        plabel, vals = paper_values(ref, paper_setup(row, size, sizes))
        paper_labels.append(plabel)
        for m in metrics:
            paper_cols[m].append(vals.get(m, np.nan))
    table = table.copy()
    table.insert(1, "model", labels)
    table["paper_row"] = paper_labels
    for m in metrics:
        table[f"paper_{m}"] = paper_cols[m]
    display = pd.DataFrame({"Model": table["model"]})
    for m in metrics:
        display[metric_header(m)] = [_cell(a, s, n) for a, s, n in
                                     zip(table[m], table[f"{m}_std"], table["n_repeats"],
                                         strict=True)]  # fmt: skip
        display[f"{metric_header(m)} paper"] = [
            "" if np.isnan(v) else f"{v:.4f}" for v in table[f"paper_{m}"]]
    write_table(table, job.out, _title(job), _notes(job, table, available), display=display)


def _title(job: OutputJob) -> str:
    task = job.exp["finetune"]["tasks"][job.spec["task"]]
    if is_binary(task):
        bkg = task["background"]
        bkg = " + ".join(symbol(b) for b in ([bkg] if isinstance(bkg, str) else bkg))
        what = f"top tagging, {symbol(task['signal'])} vs {bkg}"
    else:
        what = "five-class classification, " + ", ".join(symbol(c) for c in task["classes"])
    return (f"jBOT (Tsoi & Rankin, arXiv:2601.11719) Table {job.spec.get('paper', '?')}: "
            f"{what}; frozen-embedding probes and fine-tuning vs from scratch")  # fmt: skip


def _notes(job: OutputJob, table: pd.DataFrame, available: dict[str, int]) -> list[str]:
    """Data, scale, repeats and every deviation from the paper (../shared/PAPERS.md)."""
    from jetforge.training.selection import select_jet_rows

    notes = []
    for e in available:
        exp = job.config["experiments"][e]
        pre, ft, probe = exp["pretrain"], exp["finetune"], exp.get("probe", {})
        pre_rows, _ = select_jet_rows(T.split_path(job.config, e, "pretrain"),
                                      pre.get("processes"))  # fmt: skip
        fr = table[(table["experiment"] == e) & (table["block"] == "frozen")]
        ft_rows = table[(table["experiment"] == e) & (table["block"] == "fine-tuning")]
        sizes = sorted({int(n) for n in ft_rows["n_train"]})
        scan = ft.get("scan") or {}
        notes.append(
            f"{e} (jBOT-{size_of(job, e)}): data = our Pythia 8 stand-in of JetNet "
            f"(dataset {exp['dataset']!r}, particle level, 30 particles as η_rel, φ_rel, "
            f"p_T,rel, valid), not the Zenodo JetNet files. Pre-trained on {pre_rows.size} jets "
            f"of {pre.get('processes') or 'all classes'} for {pre['epochs']} epochs at batch "
            f"{pre['batch_size']} (paper: ~700k jets, 100 epochs, batch 1024), "
            f"{X.pretrain_repeats(exp)} pre-training repeat(s). Frozen probes: k = "
            f"{min(int(probe.get('k', 30)), available[e])}, "
            f"reference = {available[e]} labelled training jets (capped at probe.n_jets), "
            f"{int(fr['n_test'].max()) if len(fr) else 0} test jets. Fine-tuning: labelled "
            f"sizes {sizes} "
            f"of {available[e]} available (the paper's 10 % and 100 % of its ~704k five-class "
            "or ~425k t/q/g training jets), "
            f"{ft['epochs']} epochs, batch {ft['batch_size']}, "
            + (f"scan {scan} with the best point on validation jets (finetune.val_fraction "
               f"{ft.get('val_fraction')}) (paper: 6 learning rates × 5 LLRD factors)"
               if scan else
               f"one point lr {ft['lr']}, LLRD {ft.get('llrd')} (paper: best of 6 learning "
               "rates × 5 LLRD factors)")
            + f", {ft.get('repeats', 1)} repeat(s)."
        )  # fmt: skip
    if "scan_points" in table:
        picks = [f"{m}: {p}" for m, p in zip(table["model"], table["scan_points"], strict=True)
                 if isinstance(p, str) and p]  # fmt: skip
        if picks:
            notes.append("Scan points chosen on the validation jets (per repeat): "
                         + "; ".join(picks) + ".")  # fmt: skip
    notes.append(
        "± = standard deviation over seeds (frozen rows: pre-training repeats or random "
        "draws; fine-tuning rows: trainings with different seeds on the same labelled jets); "
        "the paper's ± are its own spreads and are not shown. Paper columns: the row of the "
        "paper's table our row stands for (frozen probes by probe and model size; "
        "fine-tuning by mode, size and labelled fraction, smallest = 10 %, largest = 100 %). "
        "k-NN: Euclidean on the raw [CLS], uniform votes, training set as reference, as the "
        "authors evaluate it; k-NN (cosine) and the random-init rows are ours. Gain rows: "
        "fine-tuned minus from scratch per repeat. At this scale the numbers demonstrate the "
        "protocol; they are not the paper's result."
    )
    return notes
