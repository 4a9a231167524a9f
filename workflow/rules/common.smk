# Config loading, validation and the input functions shared by all rules.
# Output paths are spelled out in each rule; jetforge.workflow.targets computes the same
# paths for input functions and `all` (tests/test_workflow.py checks they agree).
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
    mode=r"fixed|floating|lora|supervised",
    ntrain=r"\d+",
    table=r"table\d+",
    features=r"[a-z0-9_]+",
    nmax=r"\d+",


def all_targets():
    return T.all_targets(config)


def chunk_inputs(wc):
    return T.chunk_inputs(config, wc.dataset, wc.process, wc.split, wc.chunk)


def split_chunks(wc):
    return T.chunk_h5_paths(config, wc.dataset, wc.split)


def pretrain_split(wc):
    return T.split_path(config, wc.experiment, "pretrain")


def experiment_split(wc):
    return T.split_path(config, wc.experiment, wc.split)


def finetune_inputs(wc):
    inputs = {
        "train": T.split_path(config, wc.experiment, "finetune"),
        "test": T.split_path(config, wc.experiment, "test"),
    }
    if wc.mode != "supervised":
        inputs["pretrained"] = T.pretrained_model(config, wc.experiment, wc.augset, wc.repeat)
    return inputs


def task_predictions(wc):
    return [p for fs in T.predictions_for(config, wc.experiment, wc.task).values() for p in fs]


def table_inputs(wc):
    spec = config["experiments"][wc.experiment]["tables"][wc.table]
    return [p for fs in T.predictions_for(config, wc.experiment, spec["task"]).values() for p in fs]


def pretrain_histories(wc):
    return T.pretrain_histories(config, wc.experiment, wc.augset)


def validation_split(wc):
    splits = list(config["datasets"][wc.dataset]["chunks"])
    split = "test" if "test" in splits else splits[0]
    return T.SPLIT_H5.format(dataset=wc.dataset, split=split)


def dataset_targets(wc):
    return T.dataset_targets(config)


def ssl_exp(wc):
    return T.ssl_experiment(config, wc.method, wc.backbone, wc.dataset)[1]


def ssl_pretrain_split(wc):
    from jetforge.workflow.ssl import splits

    return T.SPLIT_H5.format(dataset=wc.dataset, split=splits(ssl_exp(wc))["pretrain"])


def ssl_pretrain_inputs(wc):
    exp = ssl_exp(wc)
    inputs = {"train": ssl_pretrain_split(wc)}
    if exp.get("tokenizer", {}).get("kind", "regression") != "regression":
        inputs["tokenizer"] = f"results/pretrain/{wc.method}/{wc.backbone}/{wc.dataset}/tokenizer.pt"
    return inputs


def probe_inputs(wc):
    from jetforge.workflow.ssl import splits

    exp = config["experiments"][wc.experiment]
    s = splits(exp)
    return {
        "models": T.ssl_models(config, wc.experiment),
        "train": T.SPLIT_H5.format(dataset=exp["dataset"], split=s["probe_train"]),
        "test": T.SPLIT_H5.format(dataset=exp["dataset"], split=s["probe_test"]),
    }


def ssl_histories(wc):
    return [p.replace("model.pt", "history.csv") for p in T.ssl_models(config, wc.experiment)]


def ssl_finetune_inputs(wc):
    inputs = T.ssl_task_files(config, wc.experiment, wc.task)
    if wc.mode != "supervised":
        inputs["pretrained"] = T.ssl_model_for_repeat(config, wc.experiment, wc.repeat)
    return inputs


def ssl_finetune_predictions(wc):
    return [r["path"] for r in T.ssl_finetune_runs(config, wc.experiment)]
