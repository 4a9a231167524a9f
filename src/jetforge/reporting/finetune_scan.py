"""Fine-tuned vs from-scratch summaries of the SSL experiments (table and figure).

Every SSL paper reproduced here makes the same argument: with few labelled jets a
pre-trained backbone beats the same backbone trained from scratch, and the gap closes as
the labelled set grows (MPM Figs. 3-5, jBOT Table 2, JP-JEPA Fig. 2(e), Rieck et al. Fig. 6).
So one summary serves all of them: for each task, labelled-set size and mode (frozen
backbone + head, fine-tuned, from scratch), the mean and spread over repeats of the test
accuracy, the AUC (macro one-vs-rest for multi-class tasks) and, for binary tasks, the
background rejection 1/ε_B at ε_S = 50 % (the top-tagging convention of ParT and JP-JEPA
Table 2). Everything is read from the predictions files' attributes, so the summary does
not depend on how the workflow named them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from jetforge.evaluation.metrics import classification_metrics, rejection_at
from jetforge.reporting.table_io import mean_std_by
from jetforge.reporting.table_io import write_table as write_table_io
from jetforge.reporting.tables import decode_names

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
            "augset": str(_attr(f, "augset")) if "augset" in f.attrs else "none",
            "n_train": int(f.attrs["n_train"]),
            "repeat": int(f.attrs["repeat"]),
        }
    m = classification_metrics(score, label, names)
    row["accuracy"], row["auc"] = m["accuracy"], m["auc"]
    row["rejection"] = (
        rejection_at(score, label, REJECTION_EFF) if score.ndim == 1 else float("nan")
    )
    return row


def summarise(paths: Sequence[str], augsets: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Mean and standard deviation (ddof=1) over repeats per (task, augset, n_train, mode).

    ``augsets``: the pre-training augmentation set of each file (the workflow knows it from
    the fine-tuning grid); without it the file's own ``augset`` attr. Trainings from
    different augmentation sets are never averaged as if they were repeats. One row per
    predictions file, reduced by ``table_io.mean_std_by``; rows sorted by task, augset,
    labelled-set size and ``MODE_ORDER`` so a table reads frozen → fine-tuned → scratch.
    """
    runs = pd.DataFrame([run_metrics(p) for p in paths])
    if augsets is not None:
        runs["augset"] = list(augsets)
    stats = mean_std_by(runs, ["task", "augset", "n_train", "mode"], list(METRICS))
    stats["_order"] = stats["mode"].map(MODE_ORDER.index)
    stats = stats.sort_values(["task", "augset", "n_train", "_order"], kind="stable")
    columns = ["task", "augset", "n_train", "mode", "n_repeats"]
    columns += [c for m in METRICS for c in (m, f"{m}_std")]
    return [
        {k: (int(v) if k in ("n_train", "n_repeats") else v) for k, v in row.items()}
        for row in stats[columns].to_dict("records")
    ]


def _cell(mean: float, std: float, fmt: str) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:{fmt}} ± {std:{fmt}}" if np.isfinite(std) else f"{mean:{fmt}}"


def _cells(mean: pd.Series, std: pd.Series, fmt: str) -> list[str]:
    return [_cell(m, s, fmt) for m, s in zip(mean, std, strict=True)]


def _display(rows: pd.DataFrame) -> pd.DataFrame:
    """Human columns; the rejection only where some task is binary (multi-class has none)."""
    out = pd.DataFrame({
        "task": rows["task"],
        **({"augset": rows["augset"]} if rows["augset"].nunique() > 1 else {}),
        "labelled jets": rows["n_train"].astype(str),
        "model": rows["mode"].map(MODE_LABELS),
        "accuracy": _cells(rows["accuracy"], rows["accuracy_std"], ".3f"),
        "AUC": _cells(rows["auc"], rows["auc_std"], ".3f"),
    })  # fmt: skip
    if np.isfinite(rows["rejection"]).any():
        out["1/ε_B at ε_S = 0.5"] = _cells(rows["rejection"], rows["rejection_std"], ".1f")
    return out


def _tag(augset: str, only: set[str]) -> str:
    return "" if augset in only else f" ({augset})"


def _deltas(rows: pd.DataFrame) -> list[str]:
    """"Accuracy, fine-tuned minus from scratch" per task: the papers' headline gap."""
    acc = rows.pivot_table(index=["task", "augset", "n_train"], columns="mode", values="accuracy")
    if not {"floating", "supervised"} <= set(acc.columns):
        return []
    gap = (acc["floating"] - acc["supervised"]).dropna()
    one = set(rows["augset"]) if rows["augset"].nunique() == 1 else set()
    return [
        f"Accuracy, fine-tuned minus from scratch ({task}): "
        + "; ".join(f"n = {n}{_tag(a, one)}: {d:+.3f}" for (_, a, n), d in g.items())
        + "."
        for task, g in gap.groupby(level="task", sort=False)
    ]


def write_table(
    rows: Sequence[dict[str, Any]], out_csv: str, out_md: str, title: str, note: str = ""
) -> None:
    """CSV (one row per task, n_train, mode), Markdown and LaTeX (``table_io.write_table``),
    with the pre-trained − scratch accuracy difference per task in the note."""
    df = pd.DataFrame(list(rows))
    notes = _deltas(df) + [
        f"Mean ± standard deviation over {rows[0]['n_repeats']} trainings with different seeds; "
        "all models of one labelled-set size train on the same labelled jets. "
        "AUC: macro one-vs-rest for multi-class tasks." + (f" {note}" if note else "")
    ]
    write_table_io(df, {"csv": out_csv, "md": out_md}, title, notes, display=_display(df))


def figure(rows: Sequence[dict[str, Any]], out_stem: str, title: str) -> None:
    """Test accuracy against the number of labelled jets, one panel per task, one line
    per mode (MPM Figs. 3-5), bars = std over repeats; house style, "Simulation" label."""
    import matplotlib.pyplot as plt

    from jetforge.reporting.style import apply_style, label, save_figure

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    apply_style()
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    style = {"fixed": ("tab:green", "s", ":"), "floating": ("tab:blue", "o", "-"),
             "lora": ("tab:purple", "D", "-."), "supervised": ("tab:red", "^", "--")}  # fmt: skip
    augsets = list(dict.fromkeys(r.get("augset", "none") for r in rows))
    for ax, task in zip(axes[0], tasks, strict=True):
        for mode, (k, aug) in itertools.product(MODE_ORDER, enumerate(augsets)):
            key = (task, mode, aug)
            mine = (r for r in rows if (r["task"], r["mode"], r.get("augset", "none")) == key)
            rs = sorted(mine, key=lambda r: r["n_train"])
            if not rs:
                continue
            c, mk, ls = style[mode]
            name = MODE_LABELS[mode] + (f" ({aug})" if len(augsets) > 1 else "")
            ax.errorbar([r["n_train"] for r in rs], [r["accuracy"] for r in rs],
                        yerr=[np.nan_to_num(r["accuracy_std"]) for r in rs], color=c, marker=mk,
                        ls=ls, capsize=3, label=name, alpha=1.0 - 0.25 * k)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("labelled training jets")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        label(ax, rlabel=task)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, str(Path(out_stem)))
