"""What one experiment runs: splits, augmentation sets, pre-trainings and the fine-tuning grid.

Every experiment -- RS3L's SimCLR on re-simulated pairs (Harris et al., arXiv:2403.07066),
MPM, jBOT, JP-JEPA, the hadronization-fork methods of Rieck et al. -- is one block
``experiments.<name>`` read by the same functions here, so the workflow has one path:

    [tokenizer] -> pretrain (augset x repeat) -> probes
                -> finetune (task x grid(modes x augsets x n_train) x repeat) -> tables, figures

* **Augmentation sets** (``pretrain.augsets``: name -> variants of the dataset) are a
  pre-training axis: RS3L pre-trains one SimCLR space per set (Table III rows "all",
  "seed+FSR", "seed"). Without the key an experiment has one set, ``default``: the
  method's own pairing (single-jet methods make their own views; hadronization-fork pairs
  take every non-nominal fork).
* **The fine-tuning grid** is tasks x modes x augsets x labelled sizes x repeats. The
  ``finetune`` block gives the axes; a task may replace them with its own ``grid``, a list
  of partial axis overrides whose union is run (RS3L Table II: fixed / floating /
  supervised at one size, plus supervised at a smaller one).
* ``finetune.train_on_augmentations`` (RS3L §III B): fine-tunings and supervised
  trainings use the nominal jets *and* the variants of the augset; otherwise the nominal
  jets only, and the fine-tuning's variant set is called ``none``.

Library code (no Snakemake): the workflow's paths (``jetforge.workflow.targets``) and the
config checks (``jetforge.config``) both read the plan from here.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

DEFAULT_SPLITS = {"pretrain": "train", "probe_train": "val", "probe_test": "test"}
#: the one augmentation set of an experiment that declares none
DEFAULT_AUGSET = "default"
#: fine-tuning variant set of trainings on nominal jets only
NO_AUGSET = "none"
GRID_AXES = ("modes", "augsets", "n_train")


def splits(exp: Mapping[str, Any]) -> dict[str, str]:
    """Split of the experiment's dataset for each role; fine-tuning defaults to the probe
    splits (labelled jets the pre-training never saw)."""
    s = {**DEFAULT_SPLITS, **exp.get("splits", {})}
    s.setdefault("finetune_train", s["probe_train"])
    s.setdefault("finetune_test", s["probe_test"])
    return s


def augsets(exp: Mapping[str, Any]) -> dict[str, list[str]]:
    """Pre-training augmentation sets, name -> variant names (``{"default": []}`` when the
    experiment declares none: the method's own pairing)."""
    sets = exp["pretrain"].get("augsets")
    return {k: list(v) for k, v in sets.items()} if sets else {DEFAULT_AUGSET: []}


def pretrain_repeats(exp: Mapping[str, Any]) -> int:
    return int(exp["pretrain"].get("repeats", 1))


def pretrain_repeat_for(exp: Mapping[str, Any], repeat: int | str) -> int:
    """Fine-tuning repeat r starts from pre-training repeat r mod (number of pre-trainings)."""
    return int(repeat) % pretrain_repeats(exp)


def needs_tokenizer(exp: Mapping[str, Any]) -> bool:
    """Whether a tokenizer job runs before pre-training (MPM's VQ-VAE / K-means targets)."""
    return exp.get("tokenizer", {}).get("kind", "regression") != "regression"


def finetune_variant_set(exp: Mapping[str, Any], augset: str) -> str:
    """The augmentation set a fine-tuning trains on: the pre-training's where
    ``train_on_augmentations`` (RS3L §III B), else ``none`` (nominal jets only). Its name
    also seeds the labelled subset, so runs that see the same jets draw the same subset."""
    ft = exp.get("finetune") or {}
    return augset if ft.get("train_on_augmentations", False) else NO_AUGSET


def task_grids(exp: Mapping[str, Any], task: str) -> list[dict[str, list[Any]]]:
    """The task's grids: each a full set of axes (the ``finetune`` block's, overridden by
    one entry of the task's ``grid``)."""
    ft = exp["finetune"]
    base = {
        "modes": list(ft["modes"]),
        "augsets": list(ft.get("augsets") or augsets(exp)),
        "n_train": [int(n) for n in ft["n_train"]],
    }
    return [{**base, **{k: list(v) for k, v in g.items()}}
            for g in (ft["tasks"][task].get("grid") or [{}])]  # fmt: skip


def finetune_grid(exp: Mapping[str, Any], task: str | None = None) -> list[dict[str, Any]]:
    """One entry per fine-tuning job (task, mode, augset, n_train, repeat), in table order:
    task, grid entry, augset, labelled size, mode, repeat; duplicates dropped."""
    ft = exp.get("finetune")
    if not ft:
        return []
    runs: dict[tuple, dict[str, Any]] = {}
    for t in [task] if task else list(ft["tasks"]):
        for g in task_grids(exp, t):
            for aug, n, mode, r in itertools.product(
                g["augsets"], g["n_train"], g["modes"], range(int(ft.get("repeats", 1)))
            ):
                run = {"task": t, "mode": mode, "augset": aug, "n_train": int(n), "repeat": r}
                runs.setdefault(tuple(run.values()), run)
    return list(runs.values())


def setup_id(run: Mapping[str, Any]) -> str:
    """The id tables and figures group repeats by: ``{mode}-{augset}-n{n_train}``."""
    return f"{run['mode']}-{run['augset']}-n{run['n_train']}"


def init_backbone_run(spec: Mapping[str, Any], experiments: Mapping[str, Any]) -> dict[str, Any]:
    """The fine-tuning run ``pretrain.init_backbone`` names (Rieck et al. §5.4 hybrids), as
    an entry of :func:`finetune_grid`: ``augset`` may be left out where the task's grid has
    one (a backbone pre-training has one augset, ``default``), ``repeat`` defaults to 0."""
    other = experiments.get(str(spec["experiment"])) or {}
    sets = {r["augset"] for r in finetune_grid(other, str(spec["task"]))} if other.get(
        "finetune") and spec["task"] in other["finetune"].get("tasks", {}) else set()  # fmt: skip
    augset = spec.get("augset") or (next(iter(sets)) if len(sets) == 1 else DEFAULT_AUGSET)
    return {"task": str(spec["task"]), "mode": str(spec["mode"]), "augset": str(augset),
            "n_train": int(spec["n_train"]), "repeat": int(spec.get("repeat", 0))}  # fmt: skip
