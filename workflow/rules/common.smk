# Config loading, validation and the input functions shared by all rules.
# Output paths are spelled out in each rule; jetforge.workflow.targets computes the same
# paths for input functions and `all` (tests/test_workflow.py checks they agree).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.utils import update_config

from jetforge.config import ConfigError, compose_config, validate_config
from jetforge.workflow import resources as R
from jetforge.workflow import targets as T

# The config is composed by jetforge's overlay (task, augset, table and chunk mappings are
# replaced whole by a later file, not merged), then `--config key=value` on top.
try:
    _composed = compose_config([*workflow.configfiles, *workflow.overwrite_configfiles])
    update_config(_composed, dict(workflow.config_settings.config))
    config.clear()
    config.update(_composed)
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    experiment=r"[A-Za-z0-9_]+",
    process=r"[A-Za-z0-9_]+",
    split=r"[a-z]+",
    chunk=r"\d+",
    block=r"\d+",
    augset=r"[A-Za-z0-9_]+",
    repeat=r"\d+",
    task=r"[A-Za-z0-9_]+",
    mode=r"fixed|floating|lora|supervised",
    ntrain=r"\d+",
    features=r"[a-z0-9_]+",
    nmax=r"\d+",


def all_targets():
    return T.all_targets(config)


def block_inputs(wc):
    return T.block_inputs(config, wc.dataset, wc.process, wc.split, wc.block)


def block_chunk_list(wc):
    return list(T.block_chunks(config, wc.dataset, wc.process, wc.split, wc.block))


def split_blocks(wc):
    return T.block_dirs(config, wc.dataset, wc.split)


def split_chunk_files(wc):
    return T.chunk_h5_paths(config, wc.dataset, wc.split)


def experiment_cfg(wc):
    return config["experiments"][wc.experiment]


def paper_category(wc):
    from jetforge.papers import report_category

    return report_category(wc.experiment, config["experiments"][wc.experiment])


def validation_split(wc):
    from jetforge.datasets import dataset_splits

    splits = dataset_splits(config["datasets"][wc.dataset])
    split = "test" if "test" in splits else splits[0]
    return T.SPLIT_H5.format(dataset=wc.dataset, split=split)


def dataset_targets(wc):
    return T.dataset_targets(config)


#: a paper table's name: anything but the names of the per-experiment tables
PAPER_OUTPUT_NAME = r"(?!(?:probes|finetune|claims)\b)[A-Za-z0-9_]+"


def paper_output_inputs(wc, section):
    from jetforge.paper_outputs import output_inputs

    return output_inputs(config, section, wc.paper, wc.name)


def paper_output_config(wc, section):
    from jetforge.paper_outputs import find, sub_config

    return sub_config(config, find(config, section, wc.paper, wc.name))


def _paper_output_heavy(wc, section):
    from jetforge.paper_outputs import find

    return find(config, section, wc.paper, wc.name).kind.heavy


def paper_output_mem_mb(wc, section):
    # a heavy kind loads models and embeds, as the probe tables do (their peaks in the
    # default run: 0.45-1.6 GB); the others read CSV and prediction files (figures and
    # tables of the default run: <= 0.7 GB)
    return 4000 if _paper_output_heavy(wc, section) else 1500


def paper_output_runtime(wc, section):
    return 60 if _paper_output_heavy(wc, section) else 15


def paper_output_category(wc):
    from jetforge.papers import PAPERS

    who, arxiv = PAPERS.get(wc.paper, (wc.paper, ""))
    return f"{wc.paper}: {who} (arXiv:{arxiv})" if arxiv else wc.paper
