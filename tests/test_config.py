"""The config is checked before any job runs, with messages that name key, value and fix."""

from __future__ import annotations

import copy

import pytest

from jetforge.config import ConfigError, validate_config


def test_default_config_is_valid(default_config):
    validate_config(copy.deepcopy(default_config))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c: c["datasets"]["rs3l"]["jets"].__setitem__("R", -1),
            r"datasets\.rs3l\.jets\.R: value -1",
        ),
        (
            lambda c: c["datasets"]["rs3l"].__setitem__("colour", 1),
            r"unknown key\(s\) \['colour'\]",
        ),
        (
            lambda c: c["datasets"]["rs3l"]["processes"].append("ttbar_typo"),
            r"unknown process 'ttbar_typo'",
        ),
        (
            lambda c: c["datasets"]["rs3l"]["hard_cuts"].update(pt_min=700.0),
            r"pt_min=700.0 must be below pt_max=600.0",
        ),
        (
            lambda c: c["datasets"]["rs3l"].__setitem__("detector", "nodetector"),
            r"datasets\.rs3l\.detector",
        ),
        (
            lambda c: c["experiments"]["rs3l"]["pretrain"]["augsets"].update(bad=["fsr_sideways"]),
            r"'fsr_sideways' is not an augmentation",
        ),
        (
            lambda c: c["experiments"]["rs3l"]["finetune"]["tasks"]["hbb_vs_qcd"]["grid"].append(
                {"modes": ["frozen"]}
            ),
            r"value 'frozen' is not allowed",
        ),
        (
            lambda c: c["experiments"]["rs3l"]["finetune"]["tasks"]["hbb_vs_qcd"]["grid"].append(
                {"augsets": ["seed_only"]}
            ),
            r"tasks\.hbb_vs_qcd: augset 'seed_only' is not one of pretrain\.augsets \['all'\]",
        ),
        (
            lambda c: c["experiments"]["rs3l"]["tables"]["table2"].__setitem__("task", "zqq"),
            r"tables\.table2\.task: 'zqq' is not a fine-tuning task",
        ),
        (
            lambda c: c["experiments"]["rs3l"]["tables"]["table2"].pop("efficiencies"),
            r"tables\.table2\.efficiencies: a rejection table needs",
        ),
        (
            lambda c: c["experiments"]["jbot"]["pretrain"].__setitem__("method", "byol"),
            r"pretrain\.method: value 'byol' is not allowed: 'byol' is not one of \['ae_vicreg'",
        ),
        (
            lambda c: c["experiments"]["jbot"]["backbone"].__setitem__("name", "resnet"),
            r"backbone\.name: value 'resnet' is not allowed",
        ),
        (
            lambda c: c["experiments"]["jbot"].__setitem__("pretrain_from", "mpm"),
            r"experiments\.jbot\.backbone: differs from experiments\.mpm\.backbone",
        ),
        (lambda c: c.__setitem__("device", "tpu"), r"config key device: value 'tpu'"),
        (
            lambda c: c["experiments"]["jbot"]["finetune"]["tasks"]["five_class"]["classes"].append(
                "zprime"
            ),
            r"experiments\.jbot\.finetune\.tasks\.five_class: 'zprime' is not a process of "
            r"dataset 'jetnet'",
        ),
        (
            lambda c: c["experiments"]["jpjepa"]["finetune"]["tasks"]["top"].__setitem__(
                "dataset", "toptagg"
            ),
            r"finetune\.tasks\.top\.dataset: 'toptagg' is not a dataset",
        ),
        (
            lambda c: c["experiments"]["jpjepa"]["finetune"]["tasks"].__setitem__(
                "fork", {"dataset": "hadfork", "classes": ["hadfork_qq", "hadfork_gg"]}
            ),
            r"tasks\.fork\.dataset: the task dataset 'hadfork' stores feature set None, "
            r"which cannot be converted",
        ),
        (
            lambda c: c["experiments"]["jpjepa"]["finetune"]["tasks"]["qg"].__setitem__(
                "splits", {"train": "training"}
            ),
            r"tasks\.qg\.splits\.train: dataset 'quarkgluon' has no split 'training'",
        ),
        (
            lambda c: c["experiments"]["mpm"]["finetune"].__setitem__(
                "modes", ["floating", "frozen"]
            ),
            r"experiments\.mpm\.finetune\.modes.*'frozen'",
        ),
    ],
)
def test_bad_values_are_named(default_config, mutate, expected):
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(ConfigError, match=expected):
        validate_config(cfg)


def test_transfer_tasks_read_converted_files(default_config):
    """A task on another dataset in another feature set reads its conversion into the
    backbone's inputs; a task on the experiment's own dataset reads the split itself."""
    from jetforge.workflow.targets import task_files

    cfg = copy.deepcopy(default_config)
    assert task_files(cfg, "jpjepa", "top") == {
        "train": "results/datasets/toptag/as_part17/n128/train.h5",
        "test": "results/datasets/toptag/as_part17/n128/test.h5",
    }
    assert task_files(cfg, "jbot", "five_class") == {  # jBOT fine-tunes on its training set
        "train": "results/datasets/jetnet/train.h5",
        "test": "results/datasets/jetnet/test.h5",
    }


# ---- paper-scale configs (config/paper/*.yaml), merged over config/config.yaml the way
# `snakemake --configfile config/config.yaml config/paper/X.yaml` merges them

from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAPER_CONFIGS = sorted(p.name for p in (REPO / "config" / "paper").glob("*.yaml"))
#: paper configs meant to be stacked on another one (named in their headers)
PAPER_STACKS = {"jpjepa_rs3l.yaml": ["rs3l.yaml"]}


def _paper_files(name: str) -> list[Path]:
    return [REPO / "config" / "config.yaml"] + [
        REPO / "config" / "paper" / f for f in [*PAPER_STACKS.get(name, []), name]
    ]


def _merged(name: str) -> dict:
    """The config the workflow composes from config/config.yaml + the paper file(s)."""
    from jetforge.config import compose_config

    return compose_config(_paper_files(name))


def test_the_config_check_imports_no_torch():
    """Snakemake's driver env (envs/: no torch, no scikit-learn) runs the config check on
    every invocation: the default, tiny and paper configs are checked without them."""
    import subprocess
    import sys

    code = ("import sys; from jetforge.config import load_config\n"
            "for f in ('tiny.yaml', *[f'paper/{p}' for p in ('rs3l.yaml', 'mpm.yaml', "
            "'jbot.yaml', 'jpjepa.yaml', 'hadfork.yaml', 'leaderboard.yaml')]):\n"
            "    load_config('config/config.yaml', 'config/' + f)\n"
            "print(sorted(m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules))"
            )  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True)  # fmt: skip
    assert res.stdout.strip() == "[]", res.stdout + res.stderr


def test_paper_configs_exist():
    papers = {"rs3l.yaml", "jbot.yaml", "mpm.yaml", "jpjepa.yaml", "hadfork.yaml"}
    assert papers <= set(PAPER_CONFIGS)
    assert set(PAPER_STACKS) <= set(PAPER_CONFIGS)


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_is_valid(name):
    validate_config(_merged(name))


def test_overlay_merges_settings_and_replaces_sets():
    """A later file states only what it changes; but the entries of a set (tasks, augsets,
    tables, chunk counts per process) it names replace the earlier set whole, so a default
    demo task never survives into a paper run."""
    from jetforge.config import overlay

    demo, paper = {"demo": {"classes": ["a", "b"]}}, {"paper": {"classes": ["c", "d"]}}
    base = {"experiments": {"e": {"finetune": {"lr": 1.0, "epochs": 5, "tasks": demo}}},
            "datasets": {"d": {"chunks": {"train": {"a": 1, "b": 2}}, "n": 3}}}  # fmt: skip
    over = {"experiments": {"e": {"finetune": {"lr": 2.0, "tasks": paper}}},
            "datasets": {"d": {"chunks": {"train": {"c": 5}}}}}  # fmt: skip
    got = overlay(base, over)
    assert got["experiments"]["e"]["finetune"] == {
        "lr": 2.0,
        "epochs": 5,
        "tasks": {"paper": {"classes": ["c", "d"]}},
    }
    assert got["datasets"]["d"] == {"chunks": {"train": {"c": 5}}, "n": 3}
    assert base["experiments"]["e"]["finetune"]["lr"] == 1.0  # inputs untouched


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_sets_are_the_paper_files(name):
    """Every task, augset and table set a paper file names is exactly the file's."""
    import yaml

    paper = yaml.safe_load((REPO / "config" / "paper" / name).read_text())
    merged = _merged(name)
    for exp, block in paper.get("experiments", {}).items():
        got = merged["experiments"][exp]
        if (block.get("finetune") or {}).get("tasks"):
            assert got["finetune"]["tasks"] == block["finetune"]["tasks"], exp
        if block.get("pretrain", {}).get("augsets"):
            assert got["pretrain"]["augsets"] == block["pretrain"]["augsets"], exp
        if block.get("tables"):
            assert got["tables"] == block["tables"], exp


def test_schema_enums_are_the_registries():
    """Methods, backbones, dataset kinds and feature sets are listed once, in their
    registries; the schema takes its enums from there."""
    from jetforge.config import load_schema
    from jetforge.datasets import BUILDERS
    from jetforge.jets.featuresets import FEATURE_SETS
    from jetforge.methods import METHODS
    from jetforge.models import BACKBONES

    schema = load_schema()
    exp = schema["$defs"]["experiment"]["properties"]
    assert exp["pretrain"]["properties"]["method"]["enum"] == sorted(METHODS)
    assert exp["backbone"]["properties"]["name"]["enum"] == sorted(BACKBONES)
    assert schema["$defs"]["dataset"]["properties"]["kind"]["enum"] == sorted(BUILDERS)
    feats = schema["$defs"]["single_dataset"]["properties"]["features"]["enum"]
    assert feats == sorted(FEATURE_SETS)
    assert "'x-registry':" not in str(schema)


def test_pretrain_from_shares_the_owners_pretrainings():
    """config/paper/jpjepa.yaml: `jpjepa.finetune: null` drops the default's demo tasks; the
    paper's fine-tunings are their own experiments reusing its pre-trainings
    (`pretrain_from: jpjepa`)."""
    from jetforge.workflow.targets import all_targets, finetune_predictions, pretrained_models

    config = _merged("jpjepa.yaml")
    assert config["experiments"]["jpjepa"]["finetune"] is None
    assert finetune_predictions(config, "jpjepa") == []
    targets = all_targets(config)
    assert "results/tables/jpjepa/finetune.md" not in targets
    assert "results/tables/jpjepa/probes.md" in targets
    for exp in ("jpjepa_jetclass", "jpjepa_top", "jpjepa_qg"):
        assert f"results/tables/{exp}/finetune.md" in targets
        assert pretrained_models(config, exp) == pretrained_models(config, "jpjepa")
        assert pretrained_models(config, exp)[0].startswith("results/pretrain/jpjepa/")


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_dry_run_resolves(name, tmp_path):
    """`snakemake -n all` over config/config.yaml + the paper file exits 0. Every dataset's
    chunk counts are capped at 1 (a third config file), with events per chunk raised so
    the expected yields still cover the fine-tuning sizes: the number of chunks changes
    nothing else in the plan (experiments, tasks, grids, conversions, tokenizers)."""
    import os
    import subprocess
    import sys

    import yaml

    def one_chunk(per_process: dict) -> dict:
        return {p: min(int(n), 1) for p, n in per_process.items()}

    def most(d: dict) -> int:  # one chunk as big as the most a process had: same yields
        return max([int(n) for per in d["chunks"].values() for n in per.values()] or [1])

    datasets = _merged(name)["datasets"]
    small = {"datasets": {
        ds: {"chunks": {s: one_chunk(per) for s, per in d["chunks"].items()},
             "events_per_chunk": int(d["events_per_chunk"]) * most(d)}
        for ds, d in datasets.items()
    }}  # fmt: skip
    small_yaml = tmp_path / "one_chunk.yaml"
    small_yaml.write_text(yaml.safe_dump(small))
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(tmp_path), "all", "-n", "-q",
        "--configfile", *map(str, _paper_files(name)), str(small_yaml),
    ]  # fmt: skip
    env = {**os.environ, "JETFORGE_NO_PROGRESS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]


def test_every_method_declares_its_pretrain_keys():
    """Each registered method has its ``pretrain_<method>`` entry in the schema (selected
    by ``method``), holding every key its class reads: the schema, not the torch-importing
    class, is what validates a config before any job."""
    from jetforge.config import load_schema
    from jetforge.methods import METHODS
    from jetforge.methods.jbot import DEFAULTS as JBOT_KEYS
    from jetforge.methods.jepa import JPJEPA

    defs = load_schema()["$defs"]
    selected = {c["if"]["properties"]["method"]["const"] for c in defs["method_keys"]["allOf"]}
    assert selected == set(METHODS)
    for name in METHODS:
        assert f"pretrain_{name}" in defs, name
    assert set(JBOT_KEYS) <= set(defs["pretrain_jbot"]["properties"])
    assert set(JPJEPA._CONFIG_KEYS) <= set(defs["pretrain_jepa"]["properties"])


def test_tokenizer_kinds_are_the_tokenizers():
    from jetforge.config import load_schema
    from jetforge.methods.mpm import TARGETS
    from jetforge.methods.mpm_tokenizer import TOKENIZERS

    defs = load_schema()["$defs"]
    assert set(defs["tokenizer"]["properties"]["kind"]["enum"]) == set(TOKENIZERS)
    assert tuple(defs["pretrain_mpm"]["properties"]["target"]["enum"]) == TARGETS


def test_finetuning_beyond_the_expected_yield_is_refused_before_any_job() -> None:
    """RS3L's paper grid asks for 8M labelled jets; the chunks must be expected to give
    them (datasets.rs3l.expected_yield), else the sampler would fail after generation."""
    from jetforge.config import ConfigError, load_config, validate_config

    validate_config(load_config("config/config.yaml", "config/paper/rs3l.yaml"))
    cfg = load_config("config/config.yaml", "config/paper/rs3l.yaml")
    cfg["datasets"]["rs3l"]["chunks"]["finetune"]["hbb_zh"] = 2000
    with pytest.raises(ConfigError, match=r"n_train=8000000 \(augset 'seed', 2 variant") as err:
        validate_config(cfg)
    assert "multiply the chunks" in str(err.value)
