"""Loading and checking the workflow configuration.

Checked in two layers before any job runs: the JSON schema (types, ranges, unknown keys)
and cross-references the schema cannot express (a process name that exists in the
registry, ``pt_min < pt_max``, an augmentation set naming variants the dataset has). Every
error names the key path, the bad value and what is allowed, so a user fixes it in one go.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem found."""


def _path(parts) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def schema_errors(config: dict[str, Any], schema_path: str | os.PathLike[str] = SCHEMA_PATH) -> list[str]:
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = _path(err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
            out.append(
                f"config key {where!s}: unknown key(s) {extra}; allowed keys: {allowed}"
            )
        elif err.validator == "required":
            out.append(f"config key {where}: {err.message}")
        else:
            out.append(f"config key {where}: value {err.instance!r} is not allowed: {err.message}")
    return out


def semantic_errors(config: dict[str, Any]) -> list[str]:
    from jetforge.detector import load_card
    from jetforge.generation.processes import PROCESSES

    errs: list[str] = []
    for name, ds in config.get("datasets", {}).items():
        key = f"datasets.{name}"
        for i, proc in enumerate(ds.get("processes", [])):
            if proc not in PROCESSES:
                errs.append(
                    f"config key {key}.processes[{i}]: unknown process {proc!r}; known: {sorted(PROCESSES)}"
                )
        cuts = ds.get("hard_cuts", {})
        if cuts.get("pt_min", 0) >= cuts.get("pt_max", float("inf")):
            errs.append(
                f"config key {key}.hard_cuts: pt_min={cuts['pt_min']} must be below pt_max={cuts['pt_max']}"
            )
        for split, per_proc in ds.get("chunks", {}).items():
            for proc in per_proc:
                if proc not in ds.get("processes", []):
                    errs.append(
                        f"config key {key}.chunks.{split}.{proc}: process not in {key}.processes "
                        f"{ds.get('processes')}"
                    )
        src = ds.get("hard_process", {})
        if src.get("source") == "lhe" and "{chunk}" not in src.get("lhe_pattern", ""):
            errs.append(
                f"config key {key}.hard_process.lhe_pattern: {src.get('lhe_pattern')!r} must contain "
                "{process}, {split} and {chunk} placeholders when source is 'lhe'"
            )
        kind = ds.get("kind", "resim")
        variants = list(ds.get("shower", {}).get("variants", {}))
        if kind == "resim" and variants and variants[0] != "nominal":
            errs.append(
                f"config key {key}.shower.variants: the first variant must be 'nominal', got {variants[0]!r}"
            )
        errs += [f"config key {key}.{e}" for e in _builder_errors(kind, ds)]
        det = ds.get("detector")
        if det and det != "none":
            try:
                load_card(det)
            except (KeyError, FileNotFoundError) as exc:
                errs.append(f"config key {key}.detector: {exc}")
    for name, exp in config.get("experiments", {}).items():
        key = f"experiments.{name}"
        ds = config.get("datasets", {}).get(exp.get("dataset"))
        if ds is None:
            errs.append(
                f"config key {key}.dataset: {exp.get('dataset')!r} is not a dataset; defined: "
                f"{sorted(config.get('datasets', {}))}"
            )
            continue
        if exp.get("kind") == "ssl":
            from jetforge.workflow.ssl import splits

            for role, split in splits(exp).items():
                if split not in ds.get("chunks", {}):
                    errs.append(
                        f"config key {key}.splits.{role}: dataset {exp['dataset']!r} has no split "
                        f"{split!r}; it has {sorted(ds.get('chunks', {}))}"
                    )
            errs += _ssl_finetune_errors(config, key, exp)
            continue
        procs, variants = ds["processes"], list(ds["shower"]["variants"])
        pre = exp.get("pretrain", {})
        for p in pre.get("processes", []):
            if p not in procs:
                errs.append(f"config key {key}.pretrain.processes: {p!r} not in dataset processes {procs}")
        for aug, vs in pre.get("augsets", {}).items():
            for v in vs:
                if v not in variants or v == "nominal":
                    errs.append(
                        f"config key {key}.pretrain.augsets.{aug}: {v!r} is not an augmentation "
                        f"variant of dataset {exp['dataset']!r}; choose from {variants[1:]}"
                    )
        ft = exp.get("finetune", {})
        for task, t in ft.get("tasks", {}).items():
            for role in ("signal", "background"):
                if t.get(role) not in procs:
                    errs.append(f"config key {key}.finetune.tasks.{task}.{role}: {t.get(role)!r} not in {procs}")
        for task, setups in ft.get("setups", {}).items():
            if task not in ft.get("tasks", {}):
                errs.append(f"config key {key}.finetune.setups.{task}: no such task; tasks: {sorted(ft.get('tasks', {}))}")
            for i, s in enumerate(setups):
                if s.get("augset") not in pre.get("augsets", {}):
                    errs.append(
                        f"config key {key}.finetune.setups.{task}[{i}].augset: {s.get('augset')!r} "
                        f"is not one of pretrain.augsets {sorted(pre.get('augsets', {}))}"
                    )
        for split in ("pretrain", "finetune", "test"):
            if split not in ds.get("chunks", {}):
                errs.append(f"config key datasets.{exp['dataset']}.chunks: split {split!r} is required by {key}")
    return errs


def _builder_errors(kind: str, ds: dict[str, Any]) -> list[str]:
    """Checks a dataset builder makes of its own keys (its ``parse_config``), as messages."""
    import importlib

    module = {"single": "jetforge.datasets.single", "hadfork": "jetforge.datasets.hadfork"}.get(kind)
    if module is None:
        return []
    parse = getattr(importlib.import_module(module), "parse_config", None)
    if parse is None:
        return []
    try:
        parse(ds)
    except (ValueError, KeyError) as exc:
        return [str(exc).removeprefix("config key ")]
    return []


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    errs = schema_errors(config)
    if not errs:
        errs = semantic_errors(config)
    if errs:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(errs))
    return config


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        config = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    return validate_config(config or {})


def _ssl_finetune_errors(config: dict, key: str, exp: dict) -> list[str]:
    """Fine-tuning tasks of an SSL experiment: their dataset, classes, splits and whether
    the task's dataset can be read in the backbone's input convention."""
    from jetforge.jets.featuresets import FEATURE_SETS
    from jetforge.workflow.targets import dataset_feature_set

    errs: list[str] = []
    datasets = config.get("datasets", {})
    own = dataset_feature_set(config, exp["dataset"])
    for task, spec in (exp.get("finetune") or {}).get("tasks", {}).items():
        tkey = f"config key {key}.finetune.tasks.{task}"
        name = spec.get("dataset", exp["dataset"])
        ds = datasets.get(name)
        if ds is None:
            errs.append(f"{tkey}.dataset: {name!r} is not a dataset; defined: {sorted(datasets)}")
            continue
        procs = ds.get("processes", [])
        for p in spec.get("classes", []) + [spec[r] for r in ("signal", "background") if r in spec]:
            if p not in procs:
                errs.append(f"{tkey}: {p!r} is not a process of dataset {name!r}; it has {procs}")
        if name != exp["dataset"]:
            for role, split in {"train": "train", "test": "test", **spec.get("splits", {})}.items():
                if split not in ds.get("chunks", {}):
                    errs.append(
                        f"{tkey}.splits.{role}: dataset {name!r} has no split {split!r}; it has "
                        f"{sorted(ds.get('chunks', {}))}"
                    )
            theirs = dataset_feature_set(config, name)
            if theirs != own:
                for what, fs in (("task dataset " + repr(name), theirs),
                                 ("pre-training dataset " + repr(exp["dataset"]), own)):  # fmt: skip
                    if fs not in FEATURE_SETS or FEATURE_SETS[fs].four_momenta is None:
                        errs.append(
                            f"{tkey}.dataset: the {what} stores feature set {fs!r}, which cannot "
                            f"be converted for transfer; convertible sets: "
                            f"{sorted(n for n, f in FEATURE_SETS.items() if f.four_momenta)}"
                        )
    return errs
