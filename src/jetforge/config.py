"""Loading and checking the workflow configuration.

Checked in three layers before any job runs: every number finite (JSON schema's ranges
never refuse NaN), the JSON schema (types, ranges, unknown keys, safe names, each method's
own keys) and cross-references the schema cannot express (a process name that exists in
the registry, ``pt_min < pt_max``, an augmentation set naming variants the dataset has, the
placeholders of an LHE path). Every error names the key path, the bad value and what is
allowed, so a user fixes it in one go.
"""

from __future__ import annotations

import math
import os
import string
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem found."""


def _path(parts) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def _registry_names(name: str) -> list[str]:
    """Names of one registry, without importing what they name (torch, generators)."""
    if name == "methods":
        from jetforge.methods import METHODS as reg
    elif name == "backbones":
        from jetforge.models import BACKBONES as reg
    elif name == "dataset_kinds":
        from jetforge.datasets import BUILDERS as reg
    elif name == "papers":
        from jetforge.papers import PAPERS as reg
    elif name == "feature_sets":
        from jetforge.jets.featuresets import FEATURE_SETS as reg
    elif name in ("table_kinds", "figure_kinds"):
        from jetforge.paper_outputs import KIND_REGISTRIES

        reg = KIND_REGISTRIES[name]
    else:
        raise KeyError(f"schema names unknown registry {name!r}")
    return sorted(reg)


def _fill_registry_enums(node: Any) -> Any:
    """Replace every ``{x-registry: NAME}`` of the schema by the registry's names as an
    enum: the registries are the one list of methods, backbones, dataset kinds and feature
    sets, so adding one never touches the schema."""
    if isinstance(node, dict):
        out = {k: _fill_registry_enums(v) for k, v in node.items() if k != "x-registry"}
        if "x-registry" in node:
            out["enum"] = _registry_names(node["x-registry"])
        return out
    if isinstance(node, list):
        return [_fill_registry_enums(v) for v in node]
    return node


def load_schema(schema_path: str | os.PathLike[str] = SCHEMA_PATH) -> dict[str, Any]:
    return _fill_registry_enums(yaml.safe_load(Path(schema_path).read_text()))


_RANGE_VALIDATORS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def schema_errors(
    config: dict[str, Any], schema_path: str | os.PathLike[str] = SCHEMA_PATH
) -> list[str]:
    import jsonschema

    schema = load_schema(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = _path(err.absolute_path)
        hint = " ".join(str(err.schema.get("description", "")).split())
        if "propertyNames" in err.schema_path:
            out.append(
                f"config key {where}: name {err.instance!r} is not allowed: {err.message}"
                + (f" ({hint})" if hint else "")
            )
        elif err.validator in ("additionalProperties", "unevaluatedProperties"):
            allowed = sorted(_declared(err.schema, schema))
            extra = (
                sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
            )
            if not extra:  # a declared key whose value failed: reported by its own check
                continue
            out.append(f"config key {where!s}: unknown key(s) {extra}; allowed keys: {allowed}")
        elif err.validator == "required":
            out.append(f"config key {where}: {err.message}")
        else:
            # the description says what fits (and, for a range, what the value means)
            shows = err.validator in ("pattern", "oneOf", "type", *_RANGE_VALIDATORS)
            why = err.message + (f" ({hint})" if shows and hint else "")
            out.append(f"config key {where}: value {err.instance!r} is not allowed: {why}")
    return list(dict.fromkeys(out))  # a block checked by two subschemas reports once


def _declared(node: dict[str, Any], root: dict[str, Any]) -> set[str]:
    """The keys a schema node declares: its ``properties`` and those of its ``allOf``
    entries (local ``$ref`` followed), i.e. what ``unevaluatedProperties`` lets through."""
    if "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    names = set(node.get("properties", {}))
    for sub in node.get("allOf", []):
        names |= _declared(sub, root)
    return names


def nonfinite_errors(node: Any, where: str = "") -> list[str]:
    """Every NaN or infinite number anywhere in the config, by key path.

    YAML spells them ``.nan`` / ``.inf``, and the schema's ranges cannot refuse them: every
    comparison with NaN is false, so ``minimum: 0`` lets ``.nan`` through, and ``.inf``
    passes any lower bound. One pass over the whole config covers cuts, temperatures and
    learning rates alike, including keys a later schema edit forgets to bound.
    """
    if isinstance(node, float) and not math.isfinite(node):
        return [
            f"config key {where or '<top level>'}: value {node!r} is not a finite number; "
            "write a finite value (YAML .nan / .inf are refused)"
        ]
    if isinstance(node, dict):
        keys = {k: f"{where}.{k}" if where else str(k) for k in node}
        return [e for k, v in node.items() for e in nonfinite_errors(v, keys[k])]
    if isinstance(node, list):
        return [e for i, v in enumerate(node) for e in nonfinite_errors(v, f"{where}[{i}]")]
    return []


def semantic_errors(config: dict[str, Any]) -> list[str]:
    from jetforge.detector import load_card
    from jetforge.generation.processes import PROCESSES

    errs: list[str] = []
    for name, ds in config.get("datasets", {}).items():
        key = f"datasets.{name}"
        for i, proc in enumerate(ds.get("processes", [])):
            if proc not in PROCESSES:
                errs.append(
                    f"config key {key}.processes[{i}]: unknown process {proc!r}; "
                    f"known: {sorted(PROCESSES)}"
                )
        cuts = ds.get("hard_cuts", {})
        if cuts.get("pt_min", 0) >= cuts.get("pt_max", float("inf")):
            errs.append(
                f"config key {key}.hard_cuts: pt_min={cuts['pt_min']} must be below "
                f"pt_max={cuts['pt_max']}"
            )
        for split, per_proc in ds.get("chunks", {}).items():
            for proc in per_proc:
                if proc not in ds.get("processes", []):
                    errs.append(
                        f"config key {key}.chunks.{split}.{proc}: process not in {key}.processes "
                        f"{ds.get('processes')}"
                    )
        kind = ds.get("kind", "resim")
        errs += _lhe_errors(key, kind, ds.get("hard_process") or {})
        variants = list(ds.get("shower", {}).get("variants", {}))
        if kind == "resim" and variants and variants[0] != "nominal":
            errs.append(
                f"config key {key}.shower.variants: the first variant must be 'nominal', "
                f"got {variants[0]!r}"
            )
        if kind == "resim":
            from jetforge.datasets.variants import variant_errors

            errs += variant_errors(key, ds)
        errs += _builder_errors(key, kind, ds)
        det = ds.get("detector")
        if det and det != "none":
            try:
                load_card(det)
            except (KeyError, FileNotFoundError) as exc:
                errs.append(f"config key {key}.detector: {exc}")
    for name, exp in config.get("experiments", {}).items():
        errs += _experiment_errors(config, f"experiments.{name}", exp)
    from jetforge.leaderboard.checks import leaderboard_errors
    from jetforge.paper_outputs import declaration_errors

    return errs + declaration_errors(config) + leaderboard_errors(config)


#: placeholders of ``hard_process.lhe_pattern``: one LHE file per process, split and chunk
LHE_FIELDS = ("process", "split", "chunk")


def _lhe_errors(key: str, kind: str, src: dict[str, Any]) -> list[str]:
    """``source: lhe`` needs a builder that reads LHE and a pattern naming one file per
    process, split and chunk: without ``{process}`` (or ``{split}``) one file would feed
    every class (or split), silently. The characters are checked by the schema."""
    from jetforge.datasets import uses_lhe

    if src.get("source") != "lhe":
        return []
    where = f"config key {key}.hard_process"
    if not uses_lhe(kind):
        return [f"{where}.source: 'lhe', but a {kind!r} dataset generates its hard process "
                "inside the chunk job; use source: pythia"]  # fmt: skip
    pattern = src.get("lhe_pattern", "")
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    except ValueError as exc:
        return [f"{where}.lhe_pattern: value {pattern!r} is not a valid pattern ({exc})"]
    missing = [f"{{{f}}}" for f in LHE_FIELDS if f not in fields]
    unknown = sorted(f"{{{f}}}" for f in fields - set(LHE_FIELDS))
    if not missing and not unknown:
        return []
    return [
        f"{where}.lhe_pattern: value {pattern!r} must contain each of {{process}}, {{split}} "
        f"and {{chunk}} and no other placeholder (missing {missing}, unknown {unknown}), "
        'e.g. "/data/mg5/{process}/{split}/chunk{chunk}.lhe"'
    ]


def _tokenizer_errors(key: str, exp: dict[str, Any]) -> list[str]:
    """MPM predicts the tokens of the tokenizer trained before it (``tokenizer.kind``,
    default regression = no tokenizer job): its ``target`` must be that kind, else the
    pre-training job stops at its start, after the datasets were generated."""
    pre = exp["pretrain"]
    if pre.get("method") != "mpm":
        return []
    target = pre.get("target", "vqvae")
    kind = (exp.get("tokenizer") or {}).get("kind", "regression")
    if target == kind:
        return []
    return [f"config key {key}.pretrain.target: value {target!r} but tokenizer.kind is {kind!r}; "
            "MPM predicts its tokenizer's tokens: set both to one of vqvae, kmeans, "
            "regression"]  # fmt: skip


def _pair_family_errors(key: str, exp: dict[str, Any]) -> list[str]:
    """``pretrain.pairs: augment`` pairs jets with augmentations made on the fly, not with
    the dataset's variants: an ``augsets`` block would be silently ignored."""
    pre = exp["pretrain"]
    if pre.get("pairs") != "augment" or not pre.get("augsets"):
        return []
    return [f"config key {key}.pretrain.augsets: value {sorted(pre['augsets'])} is not used "
            "with pretrain.pairs: augment (views are jBOT augmentations of each jet); drop "
            "augsets, or pair variants in another experiment (pairs: variants)"]  # fmt: skip


def _experiment_errors(config: dict[str, Any], key: str, exp: dict[str, Any]) -> list[str]:
    """Cross-references of one experiment: its dataset, splits, processes, augmentation
    sets, fine-tuning tasks, grids and tables."""
    from jetforge import experiment as X

    ds = config.get("datasets", {}).get(exp.get("dataset"))
    if ds is None:
        return [f"config key {key}.dataset: {exp.get('dataset')!r} is not a dataset; defined: "
                f"{sorted(config.get('datasets', {}))}"]  # fmt: skip
    from jetforge.datasets import dataset_splits, variant_names

    errs: list[str] = []
    for role, split in X.splits(exp).items():
        if split not in dataset_splits(ds):
            errs.append(f"config key {key}.splits.{role}: dataset {exp['dataset']!r} has no split "
                        f"{split!r}; it has {sorted(dataset_splits(ds))}")  # fmt: skip

    procs, variants = ds.get("processes", []), variant_names(ds)
    for p in exp["pretrain"].get("processes") or []:
        if p not in procs:
            errs.append(
                f"config key {key}.pretrain.processes: {p!r} not in dataset processes {procs}"
            )
    for aug, vs in (exp["pretrain"].get("augsets") or {}).items():
        for v in vs:
            if v not in variants[1:]:
                errs.append(f"config key {key}.pretrain.augsets.{aug}: {v!r} is not an "
                            f"augmentation variant of dataset {exp['dataset']!r}; choose from "
                            f"{variants[1:]}")  # fmt: skip
    pre = exp["pretrain"]
    if pre.get("batch_size", 0) % pre.get("gpus", 1):
        errs.append(f"config key {key}.pretrain.batch_size: {pre['batch_size']} is the global "
                    f"batch and must split evenly over gpus={pre['gpus']}")  # fmt: skip
    late = [e for e in pre.get("snapshot_epochs") or [] if e > pre.get("epochs", 0)]
    if late:
        errs.append(f"config key {key}.pretrain.snapshot_epochs: {late} lie beyond "
                    f"pretrain.epochs={pre.get('epochs')}; list epoch counts up to it")  # fmt: skip
    errs += _features_errors(key, exp, ds)
    errs += _pair_family_errors(key, exp)
    errs += _finetune_errors(config, key, exp)
    errs += _yield_errors(config, key, exp)
    errs += _weak_errors(config, key, exp)
    errs += _shared_pretraining_errors(config, key, exp)
    errs += _init_backbone_errors(config, key, exp)
    errs += _tokenizer_errors(key, exp)
    from jetforge.models.interface import config_errors as capability_errors

    errs += [f"config key {key}.backbone.name: {e}" for e in capability_errors(
        pre.get("method", "simclr"), exp.get("backbone", {}).get("name"))]  # fmt: skip
    errs += _shared_tokenizer_errors(config, key, exp)
    return errs


def _weak_errors(config: dict[str, Any], key: str, exp: dict[str, Any]) -> list[str]:
    """Weak-supervision tasks (MPM §V F): binary, and N within the generated jets."""
    from jetforge.training.weak import weak_config_errors

    return weak_config_errors(config, key, exp)


def _shared_tokenizer_errors(config: dict[str, Any], key: str, exp: dict[str, Any]) -> list[str]:
    """``tokenizer_from: OTHER`` pre-trains on OTHER's tokens (MPM Table I rows share one
    tokenizer): OTHER must train that tokenizer on the same jets, or the targets would not
    be what this experiment's config says."""
    from jetforge import experiment as X

    owner = exp.get("tokenizer_from")
    if not owner:
        return []
    other = config.get("experiments", {}).get(owner)
    if other is None or not X.needs_tokenizer(other) or other.get("tokenizer_from"):
        return [f"config key {key}.tokenizer_from: value {owner!r} is not an experiment that "
                "trains its own tokenizer (tokenizer.kind vqvae or kmeans, no tokenizer_from); "
                f"experiments: {sorted(config.get('experiments', {}))}"]  # fmt: skip
    reads = {"dataset": lambda e: e["dataset"], "tokenizer": lambda e: e.get("tokenizer"),
             "features": lambda e: e.get("features"),
             "splits.pretrain": lambda e: X.splits(e)["pretrain"]}  # fmt: skip
    return [
        f"config key {key}.{what}: differs from experiments.{owner}.{what}, whose tokenizer this "
        "experiment uses (tokenizer_from); make them equal or drop tokenizer_from"
        for what, get in reads.items()
        if get(exp) != get(other)
    ]


#: jets a fine-tuning may ask for, as a fraction of those its dataset is expected to hold:
#: the yields are measured on small samples and fluctuate; a plan that needs every last
#: expected jet fails after hours of generation instead of at the config check
YIELD_MARGIN = 1.1


def expected_jets(ds: dict[str, Any], split: str, processes: list[str], n_variants: int) -> float:
    """Jets a split is expected to hold for ``processes`` x ``n_variants`` variants, from the
    dataset's measured ``expected_yield`` (0 for a process without one)."""
    yields, chunks = ds.get("expected_yield", {}), ds["chunks"].get(split, {})
    return sum(chunks.get(p, 0) * ds["events_per_chunk"] * yields.get(p, 0.0) * n_variants
               for p in processes)  # fmt: skip


def _yield_errors(config: dict[str, Any], key: str, exp: dict[str, Any]) -> list[str]:
    """Fine-tunings asking for more labelled jets than their split is expected to hold
    (where the dataset states ``expected_yield`` for every process of the task): refused
    now, with the chunk count that would do, rather than by the sampler after generation."""
    from jetforge import experiment as X

    ft = exp.get("finetune") or {}
    errs: list[str] = []
    for task, spec in (ft.get("tasks") or {}).items():
        name = spec.get("dataset", exp["dataset"])
        ds = config["datasets"].get(name, {})
        bg = spec.get("background") or []
        procs = list(spec.get("classes") or [spec.get("signal"), *([bg] if isinstance(bg, str)
                                                                  else bg)])  # fmt: skip
        if not set(procs) <= set(ds.get("expected_yield", {})):
            continue
        theirs = spec.get("splits", {}).get("train", "train")
        split = X.splits(exp)["finetune_train"] if name == exp["dataset"] else theirs
        need: dict[str, int] = {}  # augset -> largest n_train any grid asks of it
        for g in X.task_grids(exp, task):
            for aug in g["augsets"]:
                need[aug] = max(need.get(aug, 0), *map(int, g["n_train"]))
        for aug, n in need.items():
            extra = len(X.augsets(exp).get(aug, [])) if ft.get("train_on_augmentations") else 0
            have = expected_jets(ds, split, procs, 1 + extra)
            jets = n * (1 + float(ft.get("val_fraction", 0.0)))
            if jets * YIELD_MARGIN > have:
                errs.append(
                    f"config key {key}.finetune.tasks.{task}: n_train={n} (augset {aug!r}, "
                    f"{1 + extra} variant(s)) needs ~{jets:.0f} labelled jets but split {split!r} "
                    f"of dataset {name!r} is expected to hold {have:.0f} (datasets.{name}."
                    f"expected_yield x chunks x events_per_chunk); multiply the chunks of "
                    f"{procs} by {jets * YIELD_MARGIN / max(have, 1e-9):.2f} or lower n_train"
                )
    return errs


def _shared_pretraining_errors(config: dict[str, Any], key: str, exp: dict[str, Any]) -> list[str]:
    """``pretrain_from: OTHER`` reuses OTHER's pre-trainings (results/pretrain/OTHER/...):
    OTHER must pre-train itself, and both must agree on everything the pre-training reads,
    or this experiment would silently fine-tune a backbone its config does not describe."""
    from jetforge import experiment as X

    owner = exp.get("pretrain_from")
    if not owner:
        return []
    other = config.get("experiments", {}).get(owner)
    if other is None or other.get("pretrain_from"):
        return [f"config key {key}.pretrain_from: {owner!r} is not an experiment that pre-trains "
                f"itself; experiments: {sorted(config.get('experiments', {}))}"]  # fmt: skip
    reads = {"dataset": lambda e: e["dataset"], "backbone": lambda e: e["backbone"],
             "pretrain": lambda e: e["pretrain"], "tokenizer": lambda e: e.get("tokenizer"),
             "features": lambda e: e.get("features"),
             "splits.pretrain": lambda e: X.splits(e)["pretrain"]}  # fmt: skip
    return [
        f"config key {key}.{what}: differs from experiments.{owner}.{what}, whose pre-trainings "
        f"this experiment reuses (pretrain_from); make them equal or drop pretrain_from"
        for what, get in reads.items()
        if get(exp) != get(other)
    ]


def _init_backbone_errors(config: dict[str, Any], key: str, exp: dict[str, Any]) -> list[str]:
    """``pretrain.init_backbone`` (Rieck et al. §5.4 hybrids): the fine-tuning run it names
    must be one the named experiment runs (so rule ``pretrain`` depends on a file the DAG
    builds), its backbone a plain one (no LoRA adapters) of the same config and features
    as ours, and the method one that can start from it; refused here, not after hours of
    the fine-tuning it waits for."""
    from jetforge import experiment as X
    from jetforge.methods import INIT_BACKBONE_METHODS  # torch-free (driver env)

    spec = exp["pretrain"].get("init_backbone")
    if not spec:
        return []
    at, exps = f"config key {key}.pretrain.init_backbone", config.get("experiments", {})
    method = exp["pretrain"].get("method")
    if method not in INIT_BACKBONE_METHODS:
        return [f"{at}: method {method!r} cannot start from a fine-tuned backbone; methods "
                f"that can: {sorted(INIT_BACKBONE_METHODS)} (or drop init_backbone)"]  # fmt: skip
    name, task = spec.get("experiment"), spec.get("task")
    other = exps.get(name)
    if other is None or not (other.get("finetune") or {}).get("tasks"):
        return [
            f"{at}.experiment: {name!r} is not an experiment that fine-tunes; experiments "
            f"with fine-tuning: {sorted(e for e, x in exps.items() if x.get('finetune'))}"
        ]
    if task not in other["finetune"]["tasks"]:
        return [f"{at}.task: {task!r} is not a fine-tuning task of experiments.{name}; its "
                f"tasks: {sorted(other['finetune']['tasks'])}"]  # fmt: skip
    run, grid = X.init_backbone_run(spec, exps), X.finetune_grid(other, task)
    if run["mode"] == "lora" or (name == key.removeprefix("experiments.")
                                 and run["mode"] != "supervised"):  # fmt: skip
        return [f"{at}.mode: {run['mode']!r} gives no plain backbone to start from (LoRA "
                "adapters, or this experiment's own pre-training: a cycle); name a "
                "supervised, fixed or floating run"]  # fmt: skip
    errs = [f"{at}.{k}: {run[k]!r} is not in experiments.{name}'s fine-tuning grid of task "
            f"{task!r}, which has {k} {sorted({r[k] for r in grid})}; use one of them or add "
            f"it to experiments.{name}.finetune" for k in ("mode", "augset", "n_train", "repeat")
            if run[k] not in {r[k] for r in grid}]  # fmt: skip
    if not errs and run not in grid:
        errs.append(f"{at}: {run} is not a run of experiments.{name}'s fine-tuning grid (a task "
                    f"grid excludes this combination); name one of its runs")  # fmt: skip
    for what in ("backbone", "features"):
        if exp.get(what) != other.get(what):
            errs.append(
                f"config key {key}.{what}: differs from experiments.{name}.{what}, whose "
                f"fine-tuned backbone pretrain.init_backbone loads; make them equal"
            )
    return errs


def _builder_errors(key: str, kind: str, ds: dict[str, Any]) -> list[str]:
    """Checks a dataset builder makes of its own keys (its ``parse_config``), as messages:
    run here so that whatever the builder refuses is refused before any job, even where
    the schema and the builder drift apart."""
    import importlib

    module = {"single": "jetforge.datasets.single", "hadfork": "jetforge.datasets.hadfork",
              "import": "jetforge.datasets.importers"}.get(kind)  # fmt: skip
    if module is None:
        return []
    parse = getattr(importlib.import_module(module), "parse_config", None)
    if parse is None:
        return []
    try:
        parse(ds)
    except (ValueError, KeyError) as exc:
        msg = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
        if msg.startswith("config key "):
            return [f"config key {key}.{msg.removeprefix('config key ')}"]
        return [f"config key {key}: {msg}"]
    return []


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` unchanged, or ConfigError listing every problem (numbers, schema, then
    cross-references: those assume a config of the right shape, so they wait for it)."""
    errs = nonfinite_errors(config) + schema_errors(config)
    if not errs:
        errs = semantic_errors(config)
    if errs:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(errs))
    return config


#: mappings an overlay replaces whole instead of merging key by key: their entries form a
#: set (tasks, augmentation sets, tables, chunk counts per process, shower variants), so an
#: entry of the default that a paper file does not name must not survive into the paper run
REPLACED = (
    "experiments.*.pretrain.augsets",
    "experiments.*.finetune.tasks",
    "experiments.*.tables",
    "experiments.*.paper_figures",
    "datasets.*.chunks.*",
    "datasets.*.shower.variants",
    "leaderboard.entries",
)


def _replaced(path: tuple[str, ...]) -> bool:
    return any(
        len(pat) == len(path) and all(p in ("*", k) for p, k in zip(pat, path, strict=True))
        for pat in (r.split(".") for r in REPLACED)
    )


def overlay(
    base: dict[str, Any], over: dict[str, Any], path: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``base`` with ``over`` laid on top: mappings merge key by key (a paper file states
    only what the paper states), except the :data:`REPLACED` ones, which ``over`` replaces
    whole; anything else (lists, values, null) replaces."""
    import copy

    out = dict(base)
    for k, v in over.items():
        p = (*path, str(k))
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not _replaced(p):
            out[k] = overlay(out[k], v, p)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        config = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_error(path, exc)) from None
    if config is not None and not isinstance(config, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of keys, got {type(config).__name__}"
        )
    return config or {}


def _yaml_error(path: str | os.PathLike[str], exc: yaml.YAMLError) -> str:
    """``file, line L, column C: problem (context)``: PyYAML's own text names the source
    as ``<unicode string>`` and spreads the position over several lines."""
    mark = getattr(exc, "problem_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return f"config file {path}{where}: not valid YAML: {problem}" + (
        f" ({context})" if context else ""
    )


def compose_config(paths: list[str | os.PathLike[str]]) -> dict[str, Any]:
    """The config of a run: each file laid over the previous ones (:func:`overlay`), e.g.
    config/config.yaml, then config/paper/jbot.yaml."""
    config: dict[str, Any] = {}
    for path in paths:
        config = overlay(config, read_config_file(path))
    return config


def load_config(*paths: str | os.PathLike[str]) -> dict[str, Any]:
    return validate_config(compose_config(list(paths)))


def _features_errors(key: str, exp: dict[str, Any], ds: dict[str, Any]) -> list[str]:
    """``features: SET`` (the backbone reads the experiment's data converted into feature set
    SET, e.g. MPM's (p_T, η, φ)): a dataset stored in another set must give back
    four-momenta for the conversion (jetforge.jets.convert)."""
    from jetforge.datasets import feature_set
    from jetforge.jets.featuresets import FEATURE_SETS

    want = exp.get("features")
    if want is None or want not in FEATURE_SETS:  # unknown names: refused by the schema enum
        return []
    have = feature_set(ds)
    if have != want and (have not in FEATURE_SETS or FEATURE_SETS[have].four_momenta is None):
        return [f"config key {key}.features: dataset {exp['dataset']!r} stores feature set "
                f"{have!r}, which cannot be converted to {want!r} (no four-momenta inverse); "
                f"drop {key}.features or use a dataset stored in one of "
                f"{sorted(n for n, f in FEATURE_SETS.items() if f.four_momenta)}"]  # fmt: skip
    return []


def _finetune_errors(config: dict, key: str, exp: dict) -> list[str]:
    """Fine-tuning tasks: their dataset, classes, splits, grid augsets and whether the
    task's dataset can be read in the backbone's input convention."""
    from jetforge import experiment as X
    from jetforge.datasets import dataset_splits, feature_set
    from jetforge.jets.featuresets import FEATURE_SETS

    errs: list[str] = []
    ft = exp.get("finetune") or {}
    for needs in ("patience", "scan"):
        if ft.get(needs) and not ft.get("val_fraction", 0) > 0:
            errs.append(f"config key {key}.finetune.{needs}: {ft[needs]!r} selects on validation "
                        f"jets; set {key}.finetune.val_fraction > 0 (e.g. 0.2)")  # fmt: skip
    datasets = config.get("datasets", {})
    own = exp.get("features") or feature_set(datasets[exp["dataset"]])
    for task, spec in (exp.get("finetune") or {}).get("tasks", {}).items():
        tkey = f"config key {key}.finetune.tasks.{task}"
        for g in X.task_grids(exp, task):
            for a in g["augsets"]:
                if a not in X.augsets(exp):
                    errs.append(f"{tkey}: augset {a!r} is not one of pretrain.augsets "
                                f"{sorted(X.augsets(exp))}")  # fmt: skip
        name = spec.get("dataset", exp["dataset"])
        ds = datasets.get(name)
        if ds is None:
            errs.append(f"{tkey}.dataset: {name!r} is not a dataset; defined: {sorted(datasets)}")
            continue
        procs = ds.get("processes", [])
        named = [spec[r] for r in ("signal", "background") if r in spec]
        named = [p for n in named for p in ([n] if isinstance(n, str) else n)]  # list background
        for p in spec.get("classes", []) + named:
            if p not in procs:
                errs.append(f"{tkey}: {p!r} is not a process of dataset {name!r}; it has {procs}")
        if name != exp["dataset"]:
            for role, split in {"train": "train", "test": "test", **spec.get("splits", {})}.items():
                if split not in dataset_splits(ds):
                    errs.append(
                        f"{tkey}.splits.{role}: dataset {name!r} has no split {split!r}; it has "
                        f"{sorted(dataset_splits(ds))}"
                    )
            theirs = feature_set(ds)
            if theirs != own:
                pairs = (("task dataset " + repr(name), theirs),
                         ("backbone's input (features / pre-training dataset)", own))  # fmt: skip
                for what, fs in pairs:
                    if fs not in FEATURE_SETS or FEATURE_SETS[fs].four_momenta is None:
                        errs.append(
                            f"{tkey}.dataset: the {what} stores feature set {fs!r}, which cannot "
                            f"be converted for transfer; convertible sets: "
                            f"{sorted(n for n, f in FEATURE_SETS.items() if f.four_momenta)}"
                        )
    return errs


def main(argv: list[str] | None = None) -> int:
    """``python -m jetforge.config FILE...``: compose and validate config files as the
    workflow does, without Snakemake. Snakemake reads ``--configfile`` YAML itself before
    any jetforge code runs, and its message for a syntax error ("Config file is not valid
    JSON or YAML") names neither file nor line; this one does."""
    import sys

    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m jetforge.config CONFIG.yaml [OVERLAY.yaml ...]", file=sys.stderr)
        return 2
    try:
        validate_config(compose_config(list(paths)))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"valid: {' + '.join(paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
