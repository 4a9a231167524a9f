"""The papers' numbered tables and figures, by kind: one registry, one rule each.

An experiment lists what of its paper it reproduces::

    tables:        {table2: {kind: rejection, task: hbb_vs_qcd, paper: II, efficiencies: [...]}}
    paper_figures: {fig7: {kind: roc_by_process, task: hbb_vs_qcd}}

and each lands where ../shared/PAPERS.md puts it, under the *paper's* short name (not the
experiment's: Rieck et al.'s outputs come from experiments ``hadfork`` and ``hadfork_ae``):
``results/tables/{paper}/{name}.{csv,md,tex}`` and ``results/figures/{paper}/{name}.{png,pdf}``,
so ``snakemake results/tables/jbot/table2.md`` rebuilds exactly jBOT's Table 2.

A kind is an :class:`OutputKind`: the files it reads (``inputs``), what its spec must hold
(``check``, run by the config validation before any job, and ``keys``, the spec keys it
accepts so a typo is refused), and how it is built (``build``). A new kind is its function
plus one line in :data:`TABLE_KINDS` or :data:`FIGURE_KINDS` (and its test).

Library code: the workflow (``jetforge.workflow.targets``, rules ``paper_table`` and
``paper_figure``) and the config checks read the declarations from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jetforge.papers import paper_of
from jetforge.registry import Registry

#: experiment config key -> (kind registry name, output folder, formats)
SECTIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "tables": ("table_kinds", "results/tables", ("csv", "md", "tex")),
    "paper_figures": ("figure_kinds", "results/figures", ("png", "pdf")),
}
#: output names that other rules own inside ``results/{tables,figures}/{experiment}/``
RESERVED_NAMES = ("probes", "finetune", "claims")
#: a kind's check message that starts with the spec key it is about ("task: ...")
_KEYED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*: ")
#: spec keys every kind accepts
COMMON_KEYS = frozenset({"kind", "paper", "caption", "experiments"})


def _no_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    return []


def _other_experiments(config: dict, experiment: str, spec: dict) -> list[str]:
    return [str(e) for e in spec.get("experiments", [])]


@dataclass(frozen=True)
class OutputJob:
    """Everything one table or figure job knows: a config holding only the experiments
    (and their datasets) it reads, so editing an unrelated experiment never reruns it."""

    config: dict[str, Any]
    experiment: str
    paper: str
    name: str
    spec: dict[str, Any]
    inputs: dict[str, list[str]]
    out: dict[str, str]

    @property
    def exp(self) -> dict[str, Any]:
        return self.config["experiments"][self.experiment]

    @property
    def stem(self) -> str:
        """Output path without extension (figure writers add ``.png`` and ``.pdf``)."""
        first = next(iter(self.out.values()))
        return str(Path(first).with_suffix(""))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def device(self) -> str:
        return str(self.config.get("device", "auto"))

    def reference(self) -> dict[str, Any] | None:
        """The paper's numbers for this output (``spec.paper`` names the entry of
        ``resources/reference/{paper}.yaml``), or None where we have none."""
        from jetforge.reporting.reference import load_reference_entry

        return load_reference_entry(self.paper, self.spec.get("paper"))


@dataclass(frozen=True)
class OutputKind:
    """How one kind of table or figure is made (see the module docstring)."""

    inputs: Callable[[dict, str, dict], dict[str, list[str]]]
    build: Callable[[OutputJob], None]
    check: Callable[[dict, str, dict], list[str]] = _no_errors
    keys: frozenset[str] = field(default_factory=frozenset)
    #: experiments besides the owner whose config the job reads (e.g. a comparison)
    experiments: Callable[[dict, str, dict], list[str]] = _other_experiments
    #: loads models or trains (more memory and threads than a table of numbers)
    heavy: bool = False


TABLE_KINDS = Registry("table kind", {
    "rejection": "jetforge.paper_outputs.rs3l:REJECTION",  # RS3L Tables II, IV
    "wasserstein": "jetforge.paper_outputs.rs3l:WASSERSTEIN",  # RS3L Tables III, V
    "pair_correlation": "jetforge.paper_outputs.rieck:PAIR_CORRELATION",  # Rieck Fig. 2 text
    "pair_similarity": "jetforge.paper_outputs.rieck:PAIR_SIMILARITY",  # Rieck Fig. 4a
    "knn_efficiency": "jetforge.paper_outputs.rieck:KNN_EFFICIENCY",  # Rieck §5.2
    "representation_comparison": "jetforge.paper_outputs.rieck:REPRESENTATION_COMPARISON",
    "jpjepa_jetclass": "jetforge.paper_outputs.jpjepa:JETCLASS_REJECTION",  # JP-JEPA Table 1
    "jpjepa_transfer": "jetforge.paper_outputs.jpjepa:TRANSFER",  # JP-JEPA Table 2
    "calibration": "jetforge.paper_outputs.jpjepa:CALIBRATION",  # JP-JEPA §2.4 (any task)
    "robustness": "jetforge.paper_outputs.jpjepa:ROBUSTNESS",  # JP-JEPA §2.3 (any experiment)
    "jpjepa_variants": "jetforge.paper_outputs.jpjepa:VARIANTS",  # JP-JEPA Tables 3-5
    "pretraining_variants": "jetforge.paper_outputs.mpm:PRETRAINING_VARIANTS",  # MPM Table I
    "weak_supervision": "jetforge.paper_outputs.mpm_weak:WEAK_TABLE",  # MPM Fig. 6 numbers
    "jbot_classification": "jetforge.paper_outputs.jbot:CLASSIFICATION",  # jBOT Tables 2, 3
    "jbot_anomaly": "jetforge.paper_outputs.jbot_anomaly:TABLE",  # jBOT Table 4
    "rieck_dark_jets": "jetforge.paper_outputs.rieck_anomaly:TABLE",  # Rieck §5.5, Fig. 9
    "rieck_taggers": "jetforge.paper_outputs.rieck_taggers:TABLE",  # Rieck Fig. 8 numbers
})  # fmt: skip

FIGURE_KINDS = Registry("figure kind", {
    "history": "jetforge.paper_outputs.rs3l:HISTORY",  # pre-training curves (RS3L Fig. 2)
    "variant_feature": "jetforge.paper_outputs.rs3l:VARIANT_FEATURE",  # RS3L Fig. 3
    "corner": "jetforge.paper_outputs.rs3l:CORNER",  # RS3L Fig. 4
    "tsne": "jetforge.paper_outputs.rs3l:TSNE",  # RS3L Fig. 5
    "roc": "jetforge.paper_outputs.rs3l:ROC",  # RS3L Fig. 6
    "roc_by_flavour": "jetforge.paper_outputs.rs3l:ROC_BY_FLAVOUR",  # RS3L Fig. 7
    "fork_pt": "jetforge.paper_outputs.rieck:FORK_PT",  # Rieck Fig. 2
    "pair_similarity": "jetforge.paper_outputs.rieck:PAIR_SIMILARITY_FIGURE",  # Rieck Fig. 4a
    "rejection_vs_size": "jetforge.paper_outputs.rieck:REJECTION_VS_SIZE",  # Rieck Fig. 6c, d
    "jpjepa_tsne": "jetforge.paper_outputs.jpjepa_figures:TSNE",  # JP-JEPA Fig. 2(a)-(c)
    "effective_rank": "jetforge.paper_outputs.jpjepa_figures:RANK",  # JP-JEPA Fig. 2(d)
    "jpjepa_size_scan": "jetforge.paper_outputs.jpjepa_figures:SIZE_SCAN",  # JP-JEPA Fig. 2(e)
    "jpjepa_class_rejection": "jetforge.paper_outputs.jpjepa_figures:CLASS_REJECTION",  # 2(f)
    "robustness": "jetforge.paper_outputs.jpjepa_figures:ROBUSTNESS_FIGURE",  # Fig. 3(a)-(c)
    "entropy": "jetforge.paper_outputs.jpjepa_figures:ENTROPY",  # JP-JEPA Fig. 3(d)
    "accuracy_vs_labels": "jetforge.paper_outputs.mpm:ACCURACY_VS_LABELS",  # MPM Figs. 3-5
    "cross_dataset_rejection": "jetforge.paper_outputs.mpm_transfer:CROSS_DATASET_REJECTION",
    "tokenizer_reconstruction": "jetforge.paper_outputs.mpm_figures:TOKENIZER_RECONSTRUCTION",
    "tsne_signal_fraction": "jetforge.paper_outputs.mpm_figures:TSNE_SIGNAL_FRACTION",  # MPM 8
    "weak_supervision": "jetforge.paper_outputs.mpm_weak:WEAK_FIGURE",  # MPM Fig. 6
    "jbot_augmented_jets": "jetforge.paper_outputs.jbot_figures:AUGMENTED_JETS",  # jBOT Fig. 3
    "jbot_learning_curves": "jetforge.paper_outputs.jbot_figures:LEARNING_CURVES",  # Fig. 4
    "jbot_attention": "jetforge.paper_outputs.jbot_figures:ATTENTION",  # jBOT Fig. 5
    "jbot_tsne": "jetforge.paper_outputs.jbot_figures:TSNE",  # jBOT Fig. 6
    "jbot_roc": "jetforge.paper_outputs.jbot_figures:ROC",  # jBOT Fig. 7
    "jbot_anomaly_scores": "jetforge.paper_outputs.jbot_anomaly:SCORES",  # jBOT Fig. 8
    "jbot_anomaly_roc": "jetforge.paper_outputs.jbot_anomaly:ROC",  # jBOT Fig. 9
    "rieck_anomaly_roc": "jetforge.paper_outputs.rieck_anomaly:FIGURE",  # Rieck Fig. 9
    "rieck_tagger_roc": "jetforge.paper_outputs.rieck_taggers:ROC",  # Rieck Fig. 8
})  # fmt: skip

KIND_REGISTRIES = {"table_kinds": TABLE_KINDS, "figure_kinds": FIGURE_KINDS}


@dataclass(frozen=True)
class Declared:
    """One declared output: ``experiments.<experiment>.<section>.<name>``."""

    section: str
    paper: str
    name: str
    experiment: str
    spec: dict[str, Any]

    @property
    def kind(self) -> OutputKind:
        return KIND_REGISTRIES[SECTIONS[self.section][0]][self.spec["kind"]]

    @property
    def stem(self) -> str:
        return f"{SECTIONS[self.section][1]}/{self.paper}/{self.name}"

    def paths(self) -> list[str]:
        return [f"{self.stem}.{ext}" for ext in SECTIONS[self.section][2]]


def declared(config: Mapping[str, Any]) -> Iterator[Declared]:
    """Every paper table and figure the config's experiments declare, in config order."""
    for experiment, exp in config.get("experiments", {}).items():
        paper = paper_of(experiment, exp) or experiment
        for section in SECTIONS:
            for name, spec in (exp.get(section) or {}).items():
                yield Declared(section, paper, name, experiment, dict(spec))


def find(config: Mapping[str, Any], section: str, paper: str, name: str) -> Declared:
    """The declaration behind ``results/{tables|figures}/{paper}/{name}``."""
    for d in declared(config):
        if (d.section, d.paper, d.name) == (section, paper, name):
            return d
    have = sorted(f"{d.paper}/{d.name}" for d in declared(config) if d.section == section)
    raise KeyError(f"no {section} entry {paper}/{name} in the config; declared: {have}")


def involved(config: Mapping[str, Any], d: Declared) -> list[str]:
    """The owner experiment first, then the others the kind reads."""
    others = d.kind.experiments(dict(config), d.experiment, d.spec)
    return list(dict.fromkeys([d.experiment, *others]))


def sub_config(config: Mapping[str, Any], d: Declared) -> dict[str, Any]:
    """The part of the config one output job reads: seed, device, its experiments (plus
    those they share pre-trainings with) and their datasets, including transfer tasks'."""
    names = involved(config, d)
    exps = config["experiments"]
    for e in list(names):
        src = exps[e].get("pretrain_from")
        if src and src not in names:
            names.append(src)
    datasets: list[str] = []
    for e in names:
        datasets.append(exps[e]["dataset"])
        for task in ((exps[e].get("finetune") or {}).get("tasks") or {}).values():
            if "dataset" in task:
                datasets.append(task["dataset"])
    return {
        "seed": config.get("seed", 0),
        "device": config.get("device", "auto"),
        "experiments": {e: exps[e] for e in names},
        "datasets": {n: config["datasets"][n] for n in dict.fromkeys(datasets)},
    }


def output_inputs(config: Mapping[str, Any], section: str, paper: str, name: str
                  ) -> dict[str, list[str]]:  # fmt: skip
    d = find(config, section, paper, name)
    return d.kind.inputs(dict(config), d.experiment, d.spec)


def declaration_errors(config: Mapping[str, Any]) -> list[str]:
    """Unknown kinds and spec keys, clashing names, and each kind's own checks."""
    errs: list[str] = []
    seen: dict[tuple[str, str, str], str] = {}
    for d in declared(config):
        key = f"config key experiments.{d.experiment}.{d.section}.{d.name}"
        registry = KIND_REGISTRIES[SECTIONS[d.section][0]]
        if d.spec.get("kind") not in registry:
            errs.append(f"{key}.kind: {d.spec.get('kind')!r} is not a {registry.kind}; "
                        f"registered: {sorted(registry)}")  # fmt: skip
            continue
        if d.name in RESERVED_NAMES:
            errs.append(f"{key}: {d.name!r} is the name of another output; rename it")
        where = (d.section, d.paper, d.name)
        if where in seen:
            errs.append(f"{key}: {d.stem} is also declared by experiment {seen[where]!r}")
        seen[where] = d.experiment
        kind = d.kind
        unknown = sorted(set(d.spec) - COMMON_KEYS - kind.keys)
        if unknown:
            errs.append(f"{key}: unknown key(s) {unknown} for kind {d.spec['kind']!r}; it "
                        f"accepts {sorted(COMMON_KEYS | kind.keys)}")  # fmt: skip
        for other in _other_experiments(dict(config), d.experiment, d.spec):
            if other not in config.get("experiments", {}):
                errs.append(f"{key}.experiments: {other!r} is not an experiment")
        if not unknown:  # "task: ..." from a kind's check names the spec key it is about
            errs += [f"{key}.{e}" if _KEYED.match(e) else f"{key}: {e}"
                     for e in kind.check(dict(config), d.experiment, d.spec)]  # fmt: skip
    return errs


def run(section: str, config: dict[str, Any], experiment: str, paper: str, name: str,
        inputs: dict[str, list[str]], out: dict[str, str]) -> None:  # fmt: skip
    """Build one declared output (the rules' entry point, callable without Snakemake)."""
    d = find(config, section, paper, name)
    d.kind.build(OutputJob(config, experiment, paper, name, d.spec, inputs, out))
