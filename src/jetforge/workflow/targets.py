"""Every file path the workflow produces, in one place.

The rules' output patterns and the input functions both come from here, so asking for
``results/tables/rs3l/table2.csv`` resolves to exactly the models, predictions and chunks
that table needs and nothing else.
"""

from __future__ import annotations

from typing import Any

GEN = "results/gen/{dataset}/{process}/{split}"
HARD_LHE = GEN + "/hard_{chunk}.lhe"
CHUNK_H5 = GEN + "/jets_{chunk}.h5"
SPLIT_H5 = "results/datasets/{dataset}/{split}.h5"
PILEUP_LIBRARY = "results/gen/{dataset}/minbias_library.h5"
PRETRAIN_DIR = "results/models/{experiment}/pretrain/{augset}/r{repeat}"
PREDICTIONS = "results/models/{experiment}/{task}/{mode}/{augset}/n{ntrain}/r{repeat}/predictions.h5"
EMBEDDINGS = "results/embeddings/{experiment}/{augset}/r{repeat}/{split}.h5"
TABLE = "results/tables/{experiment}/{table}"
FIGURES = "results/figures/{experiment}"


def hard_lhe_path(config: dict, dataset: str, process: str, split: str, chunk: str | int) -> str:
    ds = config["datasets"][dataset]
    src = ds.get("hard_process", {})
    if src.get("source", "pythia") == "lhe":
        return src["lhe_pattern"].format(process=process, split=split, chunk=chunk)
    return HARD_LHE.format(dataset=dataset, process=process, split=split, chunk=chunk)


def chunk_inputs(config: dict, dataset: str, process: str, split: str, chunk: str | int) -> dict[str, str]:
    """Inputs of one chunk job: the hard events (LHE builders) and any static library
    the builder declares (e.g. the pile-up minimum-bias library)."""
    from jetforge.datasets import uses_lhe

    ds = config["datasets"][dataset]
    out: dict[str, str] = {}
    if uses_lhe(ds.get("kind", "resim")):
        out["lhe"] = hard_lhe_path(config, dataset, process, split, chunk)
    if ds.get("pileup", {}).get("mu", 0) > 0:
        out["pileup_library"] = PILEUP_LIBRARY.format(dataset=dataset)
    return out


def chunk_h5_paths(config: dict, dataset: str, split: str) -> list[str]:
    ds = config["datasets"][dataset]
    per_proc = ds["chunks"].get(split)
    if per_proc is None:
        raise KeyError(f"dataset {dataset!r} has no split {split!r}; splits: {sorted(ds['chunks'])}")
    return [
        CHUNK_H5.format(dataset=dataset, process=proc, split=split, chunk=c)
        for proc in ds["processes"]
        for c in range(per_proc.get(proc, 0))
    ]


def split_path(config: dict, experiment: str, split: str) -> str:
    return SPLIT_H5.format(dataset=config["experiments"][experiment]["dataset"], split=split)


def setup_id(setup: dict[str, Any]) -> str:
    return f"{setup['mode']}-{setup['augset']}-n{setup['n_train']}"


def pretrain_repeat_for(exp: dict, repeat: int) -> int:
    """Fine-tuning repeat r starts from pre-training repeat r mod (number of pre-trainings)."""
    return int(repeat) % int(exp["pretrain"].get("repeats", 1))


def pretrained_model(config: dict, experiment: str, augset: str, repeat: int | str) -> str:
    exp = config["experiments"][experiment]
    r = pretrain_repeat_for(exp, int(repeat))
    return PRETRAIN_DIR.format(experiment=experiment, augset=augset, repeat=r) + "/model.pt"


def predictions_for(config: dict, experiment: str, task: str) -> dict[str, list[str]]:
    """Setup id → prediction files (one per repeat) for one task."""
    exp = config["experiments"][experiment]
    repeats = int(exp["finetune"]["repeats"])
    out: dict[str, list[str]] = {}
    for s in exp["finetune"]["setups"].get(task, []):
        out[setup_id(s)] = [
            PREDICTIONS.format(
                experiment=experiment, task=task, mode=s["mode"], augset=s["augset"],
                ntrain=s["n_train"], repeat=r,
            )
            for r in range(repeats)
        ]
    return out


def pretrain_histories(config: dict, experiment: str, augset: str) -> list[str]:
    exp = config["experiments"][experiment]
    return [
        PRETRAIN_DIR.format(experiment=experiment, augset=augset, repeat=r) + "/history.csv"
        for r in range(int(exp["pretrain"].get("repeats", 1)))
    ]


def figure_paths(config: dict, experiment: str) -> list[str]:
    exp = config["experiments"][experiment]
    base = FIGURES.format(experiment=experiment)
    stems = [f"{base}/roc_{task}" for task in exp["finetune"]["setups"]]
    stems += [f"{base}/scores_{task}" for task in exp["finetune"]["setups"]]
    for augset in exp["pretrain"]["augsets"]:
        stems += [f"{base}/{kind}_{augset}" for kind in ("pretrain_history", "tsne", "corner")]
    return [f"{s}.{ext}" for s in stems for ext in ("png", "pdf")]


def table_paths(config: dict, experiment: str) -> list[str]:
    exp = config["experiments"][experiment]
    return [
        f"{TABLE.format(experiment=experiment, table=t)}.{ext}"
        for t in exp.get("tables", {})
        for ext in ("csv", "md")
    ]


def dataset_targets(config: dict) -> list[str]:
    """Every split of every dataset, plus its validation figures and checks."""
    out: list[str] = []
    for name, ds in config.get("datasets", {}).items():
        out += [SPLIT_H5.format(dataset=name, split=split) for split in ds["chunks"]]
        out += [f"results/datasets/{name}/validation.json"]
        out += [f"results/figures/datasets/{name}/overview.{ext}" for ext in ("png", "pdf")]
    return out


SSL_DIR = "results/pretrain/{method}/{backbone}/{dataset}"


def is_ssl(exp: dict) -> bool:
    return exp.get("kind", "rs3l") == "ssl"


def ssl_key(exp: dict) -> dict[str, str]:
    """The (method, backbone, dataset) wildcards naming an SSL experiment's pre-training."""
    return {
        "method": exp["pretrain"]["method"],
        "backbone": exp["backbone"].get("id", exp["backbone"]["name"]),
        "dataset": exp["dataset"],
    }


def ssl_experiment(config: dict, method: str, backbone: str, dataset: str) -> tuple[str, dict]:
    key = {"method": method, "backbone": backbone, "dataset": dataset}
    for name, exp in config.get("experiments", {}).items():
        if is_ssl(exp) and ssl_key(exp) == key:
            return name, exp
    raise KeyError(f"no ssl experiment pre-trains {method} with backbone {backbone} on {dataset}")


def ssl_models(config: dict, experiment: str) -> list[str]:
    exp = config["experiments"][experiment]
    base = SSL_DIR.format(**ssl_key(exp))
    return [f"{base}/r{r}/model.pt" for r in range(int(exp["pretrain"].get("repeats", 1)))]


SSL_PREDICTIONS = "results/finetune/{experiment}/{task}/{mode}/n{ntrain}/r{repeat}/predictions.h5"
CONVERTED_H5 = "results/datasets/{dataset}/as_{features}/n{nmax}/{split}.h5"


def dataset_feature_set(config: dict, dataset: str) -> str | None:
    """The feature set a dataset's files hold (:func:`jetforge.datasets.feature_set`)."""
    from jetforge.datasets import feature_set

    return feature_set(config["datasets"][dataset])


def ssl_task_files(config: dict, experiment: str, task: str) -> dict[str, str]:
    """Train and test files of one fine-tuning task of an SSL experiment.

    A task runs on the experiment's own dataset (splits ``finetune_train`` /
    ``finetune_test``) unless it names another ``dataset`` (transfer, e.g. JP-JEPA's top
    tagging and quark–gluon, §4.3; splits ``train`` / ``test`` unless the task sets
    ``splits``). A dataset stored in another feature set than the pre-training one is read
    through its conversion into the backbone's convention (rule ``convert_features``):
    the pre-training dataset's feature set *and* particle count (``n_particles``; e.g.
    JetClass's 128 for top tagging's 200 constituents, as ParT's top-tagging data config
    does: it also bounds the O(n^2) pair features).
    """
    from jetforge.workflow.ssl import splits

    exp = config["experiments"][experiment]
    spec = exp["finetune"]["tasks"][task]
    name = spec.get("dataset", exp["dataset"])
    if name == exp["dataset"]:
        s = splits(exp)
        roles = {"train": s["finetune_train"], "test": s["finetune_test"]}
    else:
        roles = {"train": "train", "test": "test", **spec.get("splits", {})}
    own, theirs = dataset_feature_set(config, exp["dataset"]), dataset_feature_set(config, name)
    if theirs == own:
        return {r: SPLIT_H5.format(dataset=name, split=sp) for r, sp in roles.items()}
    return {
        r: CONVERTED_H5.format(
            dataset=name, features=own, nmax=config["datasets"][exp["dataset"]]["n_particles"],
            split=sp,
        )
        for r, sp in roles.items()
    }


def ssl_finetune_runs(config: dict, experiment: str) -> list[dict[str, Any]]:
    """One entry per fine-tuning job: task, mode, n_train, repeat and its predictions file."""
    exp = config["experiments"][experiment]
    ft = exp.get("finetune")
    if not ft:
        return []
    return [
        {"task": task, "mode": mode, "n_train": int(n), "repeat": r,
         "path": SSL_PREDICTIONS.format(
             experiment=experiment, task=task, mode=mode, ntrain=int(n), repeat=r)}
        for task in ft["tasks"]
        for n in ft["n_train"]
        for mode in ft["modes"]
        for r in range(int(ft.get("repeats", 1)))
    ]  # fmt: skip


def ssl_model_for_repeat(config: dict, experiment: str, repeat: int | str) -> str:
    """The SSL model a fine-tuning repeat starts from (:func:`pretrain_repeat_for`)."""
    exp = config["experiments"][experiment]
    return ssl_models(config, experiment)[pretrain_repeat_for(exp, int(repeat))]


def ssl_targets(config: dict, experiment: str) -> list[str]:
    out = [f"results/tables/{experiment}/probes.{ext}" for ext in ("csv", "md")]
    out += [f"results/figures/{experiment}/pretrain_loss.{ext}" for ext in ("png", "pdf")]
    if config["experiments"][experiment].get("finetune"):
        out += [f"results/tables/{experiment}/finetune.{ext}" for ext in ("csv", "md")]
        out += [f"results/figures/{experiment}/finetune.{ext}" for ext in ("png", "pdf")]
    return out


def all_targets(config: dict) -> list[str]:
    """The papers' tables and figures, and every dataset with its validation."""
    out: list[str] = []
    for experiment, exp in config.get("experiments", {}).items():
        if is_ssl(exp):
            out += ssl_targets(config, experiment)
        else:
            out += table_paths(config, experiment) + figure_paths(config, experiment)
    return out + dataset_targets(config)
