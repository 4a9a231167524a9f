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
        "train": "results/datasets/toptag/as_part17/train.h5",
        "test": "results/datasets/toptag/as_part17/test.h5",
    }
    assert ssl_task_files(cfg, "jbot", "five_class") == {
        "train": "results/datasets/jetnet/val.h5", "test": "results/datasets/jetnet/test.h5",
    }
