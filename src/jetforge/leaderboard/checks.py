"""Config checks of the ``leaderboard`` block, run by :func:`jetforge.config.validate_config`
before any job: a bad value is refused naming its key, the value and the fix, instead of
failing (or worse, silently comparing unequal things) an hour into the run.

Driver-env code: no torch (method names come from the registry's names, not its classes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jetforge.leaderboard import plan
from jetforge.leaderboard.plan import BASELINES, BLOCK_KEYS, block

REQUIRED = ("dataset", "splits", "classes", "anomaly", "budget", "backbone", "finetune", "entries")
SPLIT_ROLES = ("pretrain", "probe_train", "probe_test")


def _dataset_errors(config: Mapping[str, Any], lb: Mapping[str, Any]) -> list[str]:
    from jetforge.datasets import dataset_splits

    key = "config key leaderboard"
    ds = config.get("datasets", {}).get(lb["dataset"])
    if ds is None:
        return [f"{key}.dataset: {lb['dataset']!r} is not a dataset; have "
                f"{sorted(config.get('datasets', {}))}"]  # fmt: skip
    errs = []
    have = dataset_splits(ds)
    for role in SPLIT_ROLES:
        split = lb["splits"].get(role)
        if split not in have:
            errs.append(f"{key}.splits.{role}: {split!r} is not a split of dataset "
                        f"{lb['dataset']!r}; it has {have}")  # fmt: skip
    procs = list(ds.get("processes", []))
    classes = list(lb["classes"])
    if len(classes) != 2 or len(set(classes)) != 2:
        errs.append(f"{key}.classes: {classes} must be two processes [background, signal]")
    for c in [*classes, lb["anomaly"]]:
        if c not in procs:
            errs.append(f"{key}: process {c!r} is not in datasets.{lb['dataset']}.processes "
                        f"{procs}")  # fmt: skip
    if lb["anomaly"] in classes:
        errs.append(f"{key}.anomaly: {lb['anomaly']!r} is one of the classes {classes}; the "
                    "anomaly class must be held out of pre-training and tagging")  # fmt: skip
    return errs


def _number_errors(lb: Mapping[str, Any]) -> list[str]:
    key = "config key leaderboard"
    errs = []
    for k in ("steps", "batch_size"):
        v = lb["budget"].get(k)
        if not isinstance(v, int) or v < 1:
            errs.append(f"{key}.budget.{k}: {v!r} must be a positive integer (the budget every "
                        "entry pre-trains with: optimizer steps x batch)")  # fmt: skip
    if not isinstance(lb.get("seeds", 1), int) or lb.get("seeds", 1) < 2:
        errs.append(f"{key}.seeds: {lb.get('seeds', 1)!r}; give >= 2 pre-training seeds (a "
                    "significance over seeds needs a measured spread)")  # fmt: skip
    n_train = lb["finetune"].get("n_train")
    if (not isinstance(n_train, list) or not n_train
            or any(not isinstance(n, int) or n < 1 for n in n_train)):  # fmt: skip
        errs.append(f"{key}.finetune.n_train: {n_train!r} must be a list of positive labelled "
                    "sizes (three in the protocol)")  # fmt: skip
    frac = (lb.get("robustness") or {}).get("drop_fraction", 0.5)
    if not isinstance(frac, (int, float)) or not 0.0 < float(frac) < 1.0:
        errs.append(f"{key}.robustness.drop_fraction: {frac!r} must lie in (0, 1) (share of "
                    "each jet's particles removed at test time)")  # fmt: skip
    return errs


def _entry_errors(config: Mapping[str, Any], lb: Mapping[str, Any]) -> list[str]:
    from jetforge.datasets import variant_names
    from jetforge.methods import METHODS

    variants = variant_names(config.get("datasets", {}).get(lb["dataset"], {}))
    errs = []
    entries = lb.get("entries") or {}
    if not entries:
        errs.append("config key leaderboard.entries: empty; list at least one entry")
    for name, spec in entries.items():
        key = f"config key leaderboard.entries.{name}"
        has_method, has_base = "method" in spec, "baseline" in spec
        if has_method == has_base:
            errs.append(f"{key}: give exactly one of 'method' (a pre-training method: "
                        f"{sorted(METHODS)}) or 'baseline' ({list(BASELINES)})")  # fmt: skip
            continue
        if has_method and spec["method"] not in METHODS:
            errs.append(f"{key}.method: {spec['method']!r} is not a pre-training method; "
                        f"registered: {sorted(METHODS)}")  # fmt: skip
        if has_base and spec["baseline"] not in BASELINES:
            errs.append(f"{key}.baseline: {spec['baseline']!r}; known: {list(BASELINES)}")
        if has_base and set(spec) - {"baseline", "label"}:
            errs.append(f"{key}: a baseline takes only 'label'; drop "
                        f"{sorted(set(spec) - {'baseline', 'label'})}")  # fmt: skip
        bad = [v for v in spec.get("augset") or [] if v not in variants[1:]]
        if bad:
            errs.append(f"{key}.augset: {bad} are not variants of dataset {lb['dataset']!r}; "
                        f"it has {variants[1:]} besides the nominal")  # fmt: skip
    return errs


def leaderboard_errors(config: Mapping[str, Any]) -> list[str]:
    """Everything wrong with the ``leaderboard`` block (empty without one)."""
    lb = block(config)
    if lb is None:
        return []
    key = "config key leaderboard"
    missing = [k for k in REQUIRED if k not in lb]
    unknown = sorted(set(lb) - BLOCK_KEYS)
    errs = [f"{key}: missing {k!r}" for k in missing]
    errs += [f"{key}: unknown key {k!r}; it accepts {sorted(BLOCK_KEYS)}" for k in unknown]
    if missing:
        return errs
    errs += _dataset_errors(config, lb) + _number_errors(lb) + _entry_errors(config, lb)
    if errs:
        return errs
    from jetforge.config import _yield_errors  # the experiments' check of labelled sizes

    first = next(iter(lb["entries"]))
    return _yield_errors(dict(config), "leaderboard", plan.experiment(lb, first))
