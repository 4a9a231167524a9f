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
    ],
)
def test_bad_values_are_named(default_config, mutate, expected):
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(ConfigError, match=expected):
        validate_config(cfg)
