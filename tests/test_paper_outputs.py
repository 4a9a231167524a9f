"""Declared paper outputs (jetforge.paper_outputs): paths by paper, checks before any job."""

from __future__ import annotations

import copy

import pytest

from jetforge.config import ConfigError, load_config, validate_config
from jetforge.paper_outputs import TABLE_KINDS, declared, find, sub_config
from jetforge.workflow import targets as T


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_config("config/config.yaml")


def test_outputs_live_under_the_papers_name(cfg):
    c = copy.deepcopy(cfg)
    c["experiments"]["hadfork"]["tables"] = {
        "table9": {"kind": "rejection", "task": "qgtau", "efficiencies": [0.5]}
    }
    d = find(c, "tables", "rieck", "table9")
    assert d.experiment == "hadfork"
    assert d.paths()[0] == "results/tables/rieck/table9.csv"
    assert "results/tables/rieck/table9.md" in T.all_targets(c)


def test_sub_config_holds_only_what_the_job_reads(cfg):
    d = find(cfg, "tables", "rs3l", "table2")
    sub = sub_config(cfg, d)
    assert list(sub["experiments"]) == ["rs3l"] and list(sub["datasets"]) == ["rs3l"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "nope", "task": "hbb_vs_qcd"}, "'nope' is not one of"),
        ({"kind": "wasserstein", "task": "hbb_vs_qcd", "efficency": [0.5]}, "unknown key"),
        ({"kind": "rejection", "task": "hbb_vs_qcd"}, "needs the signal efficiencies"),
        ({"kind": "wasserstein", "task": "nope"}, "is not a fine-tuning task"),
        ({"kind": "wasserstein", "task": "hbb_vs_qcd", "experiments": ["ghost"]},
         "'ghost' is not an experiment"),
    ],
)
def test_bad_table_spec_is_refused_with_key_and_fix(cfg, spec, message):
    c = copy.deepcopy(cfg)
    c["experiments"]["rs3l"]["tables"]["table2"] = spec
    with pytest.raises(ConfigError, match=message) as err:
        validate_config(c)
    assert "experiments.rs3l.tables.table2" in str(err.value)


def test_two_experiments_may_not_write_one_paper_file(cfg):
    c = copy.deepcopy(cfg)
    c["experiments"]["hadfork_ae"]["tables"] = {"table1": {"kind": "wasserstein", "task": "x"}}
    c["experiments"]["hadfork"]["tables"] = {"table1": {"kind": "wasserstein", "task": "x"}}
    with pytest.raises(ConfigError, match="also declared by experiment"):
        validate_config(c)


def test_reserved_names_are_refused(cfg):
    c = copy.deepcopy(cfg)
    c["experiments"]["rs3l"]["tables"]["probes"] = c["experiments"]["rs3l"]["tables"]["table3"]
    with pytest.raises(ConfigError, match="name of another output"):
        validate_config(c)


def test_every_declared_kind_is_registered(cfg):
    assert {d.spec["kind"] for d in declared(cfg) if d.section == "tables"} <= set(TABLE_KINDS)
