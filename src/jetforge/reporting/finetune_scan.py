"""Fine-tuned vs from-scratch summaries of the SSL experiments (table and figure).

Every SSL paper reproduced here makes the same argument: with few labelled jets a
pre-trained backbone beats the same backbone trained from scratch, and the gap closes as
the labelled set grows (MPM Figs. 3-5, jBOT Table 2, JP-JEPA Fig. 2(e), seed 001 Fig. 6).
So one summary serves all of them: for each task, labelled-set size and mode (frozen
backbone + head, fine-tuned, from scratch), the mean and spread over repeats of the test
accuracy, the AUC (macro one-vs-rest for multi-class tasks) and, for binary tasks, the
background rejection 1/ε_B at ε_S = 50 % (the top-tagging convention of ParT and JP-JEPA
Table 2). Everything is read from the predictions files' attributes, so the summary does
not depend on how the workflow named them.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jetforge.evaluation.metrics import rejection_at
from jetforge.evaluation.probes import classification_metrics
from jetforge.io.atomic import write_text
from jetforge.reporting.tables import decode_names, mean_std

#: how each fine-tuning mode is called in tables and legends
MODE_LABELS = {
    "fixed": "frozen backbone + head",
    "floating": "pre-trained, fine-tuned",
    "lora": "pre-trained, LoRA",
    "supervised": "from scratch",
}
MODE_ORDER = ("fixed", "floating", "lora", "supervised")
REJECTION_EFF = 0.5
METRICS = ("accuracy", "auc", "rejection")


def _attr(f: h5py.File, key: str) -> Any:
    v = f.attrs[key]
    return v.decode() if isinstance(v, bytes) else v


def run_metrics(path: str) -> dict[str, Any]:
    """Task, mode, n_train, repeat and test metrics of one ``predictions.h5``."""
    with h5py.File(path, "r") as f:
        score, label = f["score"][:], f["label"][:]
        names = decode_names(f.attrs["classes"]) if "classes" in f.attrs else None
        row: dict[str, Any] = {
            "task": str(_attr(f, "task")),
            "mode": str(_attr(f, "mode")),
            "n_train": int(f.attrs["n_train"]),
            "repeat": int(f.attrs["repeat"]),
        }
    m = classification_metrics(score, label, names)
    row["accuracy"], row["auc"] = m["accuracy"], m["auc"]
    row["rejection"] = (
        rejection_at(score, label, REJECTION_EFF) if score.ndim == 1 else float("nan")
    )
    return row


def summarise(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and standard deviation over repeats per (task, n_train, mode)."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for p in paths:
        r = run_metrics(p)
        groups[(r["task"], r["n_train"], r["mode"])].append(r)
    out = []
    for (task, n, mode), runs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], MODE_ORDER.index(kv[0][2]))
    ):
        row: dict[str, Any] = {"task": task, "n_train": n, "mode": mode, "n_repeats": len(runs)}
        for key in METRICS:
            mean, std = mean_std([r[key] for r in runs])
            row[key], row[f"{key}_std"] = mean, std
        out.append(row)
    return out


def _cell(mean: float, std: float, fmt: str) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:{fmt}} ± {std:{fmt}}" if np.isfinite(std) else f"{mean:{fmt}}"


def write_table(
    rows: Sequence[dict[str, Any]], out_csv: str, out_md: str, title: str, note: str = ""
) -> None:
    """CSV (one row per task, n_train, mode) and a Markdown table per task with the
    pre-trained - scratch accuracy difference."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_text(out_csv, buf.getvalue())
    md = [f"## {title}", ""]
    for task in dict.fromkeys(r["task"] for r in rows):
        trows = [r for r in rows if r["task"] == task]
        binary = any(np.isfinite(r["rejection"]) for r in trows)
        head = "| labelled jets | model | accuracy | AUC |" + (" 1/ε_B at ε_S = 0.5 |" if binary else "")
        md += [f"### {task}", "", head, "|---:|---|---:|---:|" + ("---:|" if binary else "")]
        for r in trows:
            line = (f"| {r['n_train']} | {MODE_LABELS[r['mode']]} | "
                    f"{_cell(r['accuracy'], r['accuracy_std'], '.3f')} | "
                    f"{_cell(r['auc'], r['auc_std'], '.3f')} |")  # fmt: skip
            if binary:
                line += f" {_cell(r['rejection'], r['rejection_std'], '.1f')} |"
            md.append(line)
        by = {(r["n_train"], r["mode"]): r for r in trows}
        deltas = [
            f"n = {n}: {by[(n, 'floating')]['accuracy'] - by[(n, 'supervised')]['accuracy']:+.3f}"
            for n in sorted({r["n_train"] for r in trows})
            if (n, "floating") in by and (n, "supervised") in by
        ]
        if deltas:
            md += ["", "Accuracy, fine-tuned minus from scratch: " + "; ".join(deltas) + "."]
        md.append("")
    md += [
        f"Mean ± standard deviation over {rows[0]['n_repeats']} trainings with different seeds; "
        "all models of one labelled-set size train on the same labelled jets. "
        "AUC: macro one-vs-rest for multi-class tasks." + (f" {note}" if note else "")
    ]
    write_text(out_md, "\n".join(md) + "\n")


def figure(rows: Sequence[dict[str, Any]], out_stem: str, title: str) -> None:
    """Test accuracy against the number of labelled jets, one panel per task, one line
    per mode (MPM Figs. 3-5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jetforge.reporting.figures import save_figure

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    style = {"fixed": ("tab:green", "s", ":"), "floating": ("tab:blue", "o", "-"),
             "lora": ("tab:purple", "D", "-."), "supervised": ("tab:red", "^", "--")}  # fmt: skip
    for ax, task in zip(axes[0], tasks, strict=True):
        for mode in MODE_ORDER:
            rs = sorted((r for r in rows if r["task"] == task and r["mode"] == mode),
                        key=lambda r: r["n_train"])  # fmt: skip
            if not rs:
                continue
            c, mk, ls = style[mode]
            ax.errorbar([r["n_train"] for r in rs], [r["accuracy"] for r in rs],
                        yerr=[np.nan_to_num(r["accuracy_std"]) for r in rs], color=c, marker=mk,
                        ls=ls, capsize=3, label=MODE_LABELS[mode])  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("labelled training jets")
        ax.set_ylabel("test accuracy")
        ax.set_title(task)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, str(Path(out_stem)))
