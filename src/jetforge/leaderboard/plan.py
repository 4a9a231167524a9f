"""What the leaderboard runs: its entries, the experiment block each runs as, and paths.

The config block ``leaderboard`` (config/config.yaml; paper scale in
config/paper/leaderboard.yaml) holds what every entry shares -- dataset and splits, the
tagging task (``classes: [background, signal]``), the held-out ``anomaly`` class, the
backbone, the pre-training ``budget`` (optimizer steps x batch) and optimiser, the probe,
fine-tuning and robustness settings, the number of pre-training ``seeds`` -- and
``entries``, one per objective x augmentation family or baseline::

    simclr_fsr: {label: "SimCLR × FSR up/down", method: simclr, augset: [fsr_up, fsr_down]}
    jpjepa:     {label: "JP-JEPA", method: jepa, predictor: {...}, ...}
    supervised: {label: "supervised (scratch)", baseline: supervised}

An entry's other keys are its method's own hyperparameters (merged over the shared
``pretrain`` block); ``augset`` lists the re-simulated variants a pair method draws its
positive from. Why one shared block: the comparison is only fair when nothing but the
objective and the augmentation differs, so the budget and backbone cannot be per entry.

Library code without torch (the config check runs in the driver env).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

#: baselines: no pre-training; ``supervised`` trains the backbone from scratch on the
#: labelled jets, ``random_init`` probes the frozen, randomly initialised backbone
BASELINES = ("supervised", "random_init")
#: keys of an entry that are not method hyperparameters
ENTRY_KEYS = frozenset({"label", "method", "baseline", "augset"})
#: keys of the ``leaderboard`` block
BLOCK_KEYS = frozenset({
    "dataset", "splits", "classes", "anomaly", "seeds", "budget", "backbone", "pretrain",
    "probe", "finetune", "robustness", "entries", "cost",
})  # fmt: skip
METRICS_JSON = "results/leaderboard/{entry}/r{repeat}/metrics.json"
TABLE_STEM = "results/tables/leaderboard"
FIGURE_DIR = "results/figures/leaderboard"
FIGURES = ("accuracy_vs_labels", "robustness_vs_accuracy")
TABLE_FORMATS = ("csv", "md", "tex")
TASK = "tag"


def block(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``leaderboard`` block, or None when the config has none."""
    return config.get("leaderboard") or None


def seeds(lb: Mapping[str, Any]) -> int:
    return int(lb.get("seeds", 1))


def entry_label(lb: Mapping[str, Any], entry: str) -> str:
    return str(lb["entries"][entry].get("label", entry))


def baseline_of(lb: Mapping[str, Any], entry: str) -> str | None:
    return lb["entries"][entry].get("baseline")


def experiment(lb: Mapping[str, Any], entry: str) -> dict[str, Any]:
    """The ``experiments.<name>``-shaped block an entry runs as (read by
    :func:`jetforge.training.pretrain.run_pretrain` and
    :func:`jetforge.training.finetune.run_finetune`): the shared backbone, the shared
    pre-training block with the budget and the entry's method on top, one binary task."""
    spec = lb["entries"][entry]
    background, signal = (str(c) for c in lb["classes"])
    budget = lb["budget"]
    pretrain = {
        **copy.deepcopy(lb.get("pretrain", {})),
        **{k: copy.deepcopy(v) for k, v in spec.items() if k not in ENTRY_KEYS},
        "method": spec.get("method", "none"),
        "processes": [background, signal],
        "steps": int(budget["steps"]),
        "batch_size": int(budget["batch_size"]),
        "repeats": seeds(lb),
    }
    pretrain.setdefault("epochs", 1)  # `steps` decides; the engine needs a value
    if spec.get("augset"):
        pretrain["augsets"] = {entry: [str(v) for v in spec["augset"]]}
    ft = copy.deepcopy(lb["finetune"])
    ft.update(tasks={TASK: {"signal": signal, "background": background}}, modes=["floating"],
              repeats=seeds(lb))  # fmt: skip
    return {
        "dataset": lb["dataset"],
        "splits": dict(lb["splits"]),
        "backbone": copy.deepcopy(lb["backbone"]),
        "pretrain": pretrain,
        "probe": dict(lb.get("probe", {})),
        "finetune": ft,
    }


def augset_name(lb: Mapping[str, Any], entry: str) -> str | None:
    """The augmentation set a pair method pre-trains on (named after the entry)."""
    return entry if lb["entries"][entry].get("augset") else None


def metrics_path(entry: str, repeat: int | str) -> str:
    return METRICS_JSON.format(entry=entry, repeat=repeat)


def metrics_files(config: Mapping[str, Any]) -> list[str]:
    """Every (entry, seed) job's ``metrics.json``, entries in config order."""
    lb = block(config)
    if lb is None:
        return []
    return [metrics_path(e, r) for e in lb["entries"] for r in range(seeds(lb))]


def split_file(config: Mapping[str, Any], role: str) -> str:
    """The dataset file read in ``role`` (pretrain, probe_train, probe_test)."""
    lb = block(config)
    assert lb is not None
    return f"results/datasets/{lb['dataset']}/{lb['splits'][role]}.h5"


def output_paths() -> dict[str, str]:
    """The leaderboard table (csv, md, tex) and figures (png, pdf), by output name."""
    out = {ext: f"{TABLE_STEM}.{ext}" for ext in TABLE_FORMATS}
    for fig in FIGURES:
        for ext in ("png", "pdf"):
            out[f"{fig}_{ext}"] = f"{FIGURE_DIR}/{fig}.{ext}"
    return out


def targets(config: Mapping[str, Any]) -> list[str]:
    """What ``all`` builds of the leaderboard (nothing without a ``leaderboard`` block)."""
    return list(output_paths().values()) if block(config) else []


#: slowest ParT training throughput measured on our 2-core machines under load (jets/s,
#: a tiny ParT: 20-35 jets/s with six jobs sharing two cores; ~900 when idle): sizes the
#: Slurm time limit of a job, which must not kill a slow but healthy one
SLOW_JETS_PER_S = 20.0


def runtime_minutes(lb: Mapping[str, Any]) -> int:
    """Time limit of one (entry, seed) job: pre-training (two views per sample) plus every
    fine-tuning at :data:`SLOW_JETS_PER_S`, twice over, at least 30 min."""
    b, ft = lb["budget"], lb["finetune"]
    jets = 2 * int(b["steps"]) * int(b["batch_size"])
    jets += sum(int(n) for n in ft["n_train"]) * int(ft.get("epochs", 1))
    return max(30, int(2 * jets / SLOW_JETS_PER_S / 60) + 1)
