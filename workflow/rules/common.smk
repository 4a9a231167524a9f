# Config loading, validation and the input functions shared by all rules.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from jetforge.config import ConfigError, validate_config
from jetforge.workflow import targets as T

try:
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    experiment=r"[A-Za-z0-9_]+",
    process=r"[A-Za-z0-9_]+",
    split=r"[a-z]+",
    chunk=r"\d+",
    augset=r"[A-Za-z0-9_]+",
    repeat=r"\d+",
    task=r"[A-Za-z0-9_]+",
    mode=r"fixed|floating|supervised",
    ntrain=r"\d+",
    table=r"table\d+",


def all_targets():
    return T.all_targets(config)


def hard_lhe_input(wc):
    return T.hard_lhe_path(config, wc.dataset, wc.process, wc.split, wc.chunk)


def split_chunks(wc):
    return T.chunk_h5_paths(config, wc.dataset, wc.split)
