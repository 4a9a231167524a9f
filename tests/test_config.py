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
        (lambda c: c["datasets"]["rs3l"]["jets"].__setitem__("R", -1), r"datasets\.rs3l\.jets\.R: value -1"),
        (lambda c: c["datasets"]["rs3l"].__setitem__("colour", 1), r"unknown key\(s\) \['colour'\]"),
        (lambda c: c["datasets"]["rs3l"]["processes"].append("ttbar_typo"), r"unknown process 'ttbar_typo'"),
        (lambda c: c["datasets"]["rs3l"]["hard_cuts"].update(pt_min=700.0), r"pt_min=700.0 must be below pt_max=600.0"),
        (lambda c: c["datasets"]["rs3l"].__setitem__("detector", "nodetector"), r"datasets\.rs3l\.detector"),
        (lambda c: c["experiments"]["rs3l"]["pretrain"]["augsets"].update(bad=["fsr_sideways"]), r"'fsr_sideways' is not an augmentation"),
        (lambda c: c["experiments"]["rs3l"]["finetune"]["setups"]["hbb_vs_qcd"].append({"mode": "frozen", "augset": "all", "n_train": 5}), r"value 'frozen' is not allowed"),
        (lambda c: c.__setitem__("device", "tpu"), r"config key device: value 'tpu'"),
        (lambda c: c["experiments"]["jbot"]["finetune"]["tasks"]["five_class"]["classes"].append("zprime"),
         r"experiments\.jbot\.finetune\.tasks\.five_class: 'zprime' is not a process of dataset 'jetnet'"),
        (lambda c: c["experiments"]["jpjepa"]["finetune"]["tasks"]["top"].__setitem__("dataset", "toptagg"),
         r"finetune\.tasks\.top\.dataset: 'toptagg' is not a dataset"),
        (lambda c: c["experiments"]["jpjepa"]["finetune"]["tasks"].__setitem__(
            "fork", {"dataset": "hadfork", "classes": ["hadfork_qq", "hadfork_gg"]}),
         r"tasks\.fork\.dataset: the task dataset 'hadfork' stores feature set None, which cannot be converted"),
        (lambda c: c["experiments"]["jpjepa"]["finetune"]["tasks"]["qg"].__setitem__("splits", {"train": "training"}),
         r"tasks\.qg\.splits\.train: dataset 'quarkgluon' has no split 'training'"),
        (lambda c: c["experiments"]["mpm"]["finetune"].__setitem__("modes", ["floating", "frozen"]),
         r"experiments\.mpm\.finetune\.modes.*'frozen'"),
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
    from jetforge.workflow.targets import ssl_task_files

    cfg = copy.deepcopy(default_config)
    assert ssl_task_files(cfg, "jpjepa", "top") == {
        "train": "results/datasets/toptag/as_part17/n128/train.h5",
        "test": "results/datasets/toptag/as_part17/n128/test.h5",
    }
    assert ssl_task_files(cfg, "jbot", "five_class") == {
        "train": "results/datasets/jetnet/val.h5", "test": "results/datasets/jetnet/test.h5",
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
    """The config Snakemake builds from config/config.yaml + the paper file(s)."""
    import yaml
    from snakemake.utils import update_config

    files = _paper_files(name)
    config = yaml.safe_load(files[0].read_text())
    for f in files[1:]:
        update_config(config, yaml.safe_load(f.read_text()))
    return config


def test_paper_configs_exist():
    papers = {"rs3l.yaml", "jbot.yaml", "mpm.yaml", "jpjepa.yaml", "hadfork.yaml"}
    assert papers <= set(PAPER_CONFIGS)
    assert set(PAPER_STACKS) <= set(PAPER_CONFIGS)


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_is_valid(name):
    validate_config(_merged(name))


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_leaves_no_stale_default_key(name, default_config):
    """An SSL experiment a paper config reuses by name (jbot, mpm, jpjepa, hadfork, ...) is
    merged key by key over the default's CPU-sized block: every default key must be
    restated, or a default value (a task, a dropout, a demo batch size) would survive into
    the paper run. The merged block must equal the paper file's block."""
    import yaml

    paper = yaml.safe_load((REPO / "config" / "paper" / name).read_text())
    merged = _merged(name)
    for exp, block in paper.get("experiments", {}).items():
        default = default_config["experiments"].get(exp)
        if default is None or default.get("kind") != "ssl":
            continue  # a new name, or the RS3L experiment (its paper file overrides sizes only)
        got = merged["experiments"][exp]
        assert got == block, (
            f"{name}: experiments.{exp} keeps default keys the paper file does not restate "
            f"under {sorted(k for k in got if got[k] != block.get(k))}"
        )


@pytest.mark.parametrize("name", ["config.yaml", *PAPER_CONFIGS])
def test_experiments_sharing_a_pretraining_agree_on_it(name, default_config):
    """SSL experiments with the same (method, backbone id, dataset) share one pre-training
    directory, trained with the first one's config: they must not differ in anything the
    pre-training reads (else the later ones silently get another pre-training)."""
    from jetforge.workflow.ssl import splits
    from jetforge.workflow.targets import is_ssl, ssl_key

    config = default_config if name == "config.yaml" else _merged(name)
    seen: dict[tuple, tuple[str, tuple]] = {}
    for exp_name, exp in config["experiments"].items():
        if not is_ssl(exp):
            continue
        key = tuple(ssl_key(exp).values())
        what = (exp["backbone"], exp["pretrain"], exp.get("tokenizer"), splits(exp)["pretrain"])
        if key in seen:
            first, first_what = seen[key]
            assert what == first_what, (
                f"{name}: experiments {first} and {exp_name} share the pre-training {key} but "
                "differ in backbone / pretrain / tokenizer / pre-training split; give one a "
                "backbone `id`"
            )
        else:
            seen[key] = (exp_name, what)


def test_null_finetune_drops_the_default_tasks():
    """config/paper/jpjepa.yaml sets `jpjepa.finetune: null`: the default's demo tasks
    (top, qg at n_train 100 / 250) must not run at paper scale; the paper's fine-tunings are
    their own experiments sharing its pre-training."""
    from jetforge.workflow.targets import all_targets, ssl_finetune_runs, ssl_models

    config = _merged("jpjepa.yaml")
    assert config["experiments"]["jpjepa"]["finetune"] is None
    assert ssl_finetune_runs(config, "jpjepa") == []
    targets = all_targets(config)
    assert "results/tables/jpjepa/finetune.md" not in targets
    assert "results/tables/jpjepa/probes.md" in targets
    for exp in ("jpjepa_jetclass", "jpjepa_top", "jpjepa_qg"):
        assert f"results/tables/{exp}/finetune.md" in targets
        assert ssl_models(config, exp) == ssl_models(config, "jpjepa")


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_dry_run_resolves(name, tmp_path):
    """`snakemake -n all` over config/config.yaml + the paper file exits 0. Every dataset's
    chunk counts are capped at 1 (a third config file): the paper-scale DAGs have up to
    ~80k chunk jobs and take minutes to plan, and the number of chunks changes nothing
    else in the plan (experiments, tasks, grids, conversions, tokenizers)."""
    import os
    import subprocess
    import sys

    import yaml

    def one_chunk(per_process: dict) -> dict:
        return {p: min(int(n), 1) for p, n in per_process.items()}

    datasets = _merged(name)["datasets"]
    small = {"datasets": {
        ds: {"chunks": {s: one_chunk(per) for s, per in d["chunks"].items()}}
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
