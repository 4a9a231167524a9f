"""Every file path the workflow produces, in one place.

The rules' output patterns and the input functions both come from here, so asking for
``results/tables/rs3l/table2.csv`` resolves to exactly the models, predictions and chunks
that table needs and nothing else. What an experiment runs is decided by
:mod:`jetforge.experiment`; this module only names the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jetforge import experiment as X

GEN = "results/gen/{dataset}/{process}/{split}"
#: one generation job's folder: chunks ``block·k … block·k + k − 1`` (k = chunks_per_job)
BLOCK_DIR = GEN + "/block_{block}"
HARD_LHE = BLOCK_DIR + "/hard_{chunk}.lhe"
CHUNK_H5 = BLOCK_DIR + "/jets_{chunk}.h5"
SPLIT_H5 = "results/datasets/{dataset}/{split}.h5"
CONVERTED_H5 = "results/datasets/{dataset}/as_{features}/n{nmax}/{split}.h5"
PILEUP_LIBRARY = "results/gen/{dataset}/minbias_library.h5"
TOKENIZER = "results/pretrain/{experiment}/tokenizer.pt"
PRETRAIN_DIR = "results/pretrain/{experiment}/{augset}/r{repeat}"
PREDICTIONS = (
    "results/finetune/{experiment}/{task}/{mode}/{augset}/n{ntrain}/r{repeat}/predictions.h5"
)
EMBEDDINGS = "results/embeddings/{experiment}/{augset}/r{repeat}/{split}.h5"
TABLE = "results/tables/{experiment}/{table}"
FIGURES = "results/figures/{experiment}"
TABLE_FORMATS = ("csv", "md", "tex")
#: results/tables/{paper}/claims.* and results/tables/claims.* (jetforge.reporting.claims)
CLAIMS_DIR = "results/tables"
#: figure kinds an experiment may list under ``figures`` (per task, or per augset)
TASK_FIGURES = ("roc", "scores")


def _exp(config: dict, experiment: str) -> dict[str, Any]:
    return config["experiments"][experiment]


def chunks_per_job(ds: dict[str, Any]) -> int:
    """Chunks one generation job builds, one after the other (``chunks_per_job``, default 1).

    Why blocks: at paper scale a chunk is minutes of work and a dataset tens of thousands
    of chunks; one job per chunk gave DAGs of 80k+ jobs that take minutes to build and
    drown a scheduler. A block changes only how chunks are grouped into jobs: every chunk
    keeps its own seeds and file, so the split files are the same bytes for any block size.
    """
    return int(ds.get("chunks_per_job", 1))


def n_chunks(config: dict, dataset: str, process: str, split: str) -> int:
    ds = config["datasets"][dataset]
    per_proc = ds["chunks"].get(split)
    if per_proc is None:
        raise KeyError(
            f"dataset {dataset!r} has no split {split!r}; splits: {sorted(ds['chunks'])}"
        )
    return int(per_proc.get(process, 0))


def block_chunks(config: dict, dataset: str, process: str, split: str, block: str | int) -> range:
    """Chunk indices of one generation job (the last block of a split may be shorter)."""
    k = chunks_per_job(config["datasets"][dataset])
    n = n_chunks(config, dataset, process, split)
    first = int(block) * k
    if not 0 <= first < n:
        raise KeyError(f"{dataset}/{process}/{split}: no block {block} ({n} chunks, {k} per job)")
    return range(first, min(first + k, n))


def block_dirs(config: dict, dataset: str, split: str) -> list[str]:
    """Every generation job's folder of a split, in merge order (processes as listed)."""
    ds = config["datasets"][dataset]
    k = chunks_per_job(ds)
    return [
        BLOCK_DIR.format(dataset=dataset, process=proc, split=split, block=b)
        for proc in ds["processes"]
        for b in range(-(-n_chunks(config, dataset, proc, split) // k))
    ]


def hard_lhe_path(config: dict, dataset: str, process: str, split: str, chunk: str | int) -> str:
    """The hard events of one chunk: the user's LHE file (``source: lhe``) or the one the
    chunk's generation job writes into its block folder."""
    ds = config["datasets"][dataset]
    src = ds.get("hard_process", {})
    if src.get("source", "pythia") == "lhe":
        return src["lhe_pattern"].format(process=process, split=split, chunk=chunk)
    block = int(chunk) // chunks_per_job(ds)
    return HARD_LHE.format(dataset=dataset, process=process, split=split, block=block,
                           chunk=chunk)  # fmt: skip


def block_inputs(
    config: dict, dataset: str, process: str, split: str, block: str | int
) -> dict[str, str | list[str]]:
    """Inputs of one generation job: the user's LHE files of its chunks (``source: lhe``;
    Pythia hard events are generated inside the job) and any static library the builder
    declares (e.g. the pile-up minimum-bias library)."""
    from jetforge.datasets import uses_lhe

    ds = config["datasets"][dataset]
    out: dict[str, str | list[str]] = {}
    from_lhe = ds.get("hard_process", {}).get("source", "pythia") == "lhe"
    if uses_lhe(ds.get("kind", "resim")) and from_lhe:
        chunks = block_chunks(config, dataset, process, split, block)
        out["lhe"] = [hard_lhe_path(config, dataset, process, split, c) for c in chunks]
    if ds.get("pileup", {}).get("mu", 0) > 0:
        out["pileup_library"] = PILEUP_LIBRARY.format(dataset=dataset)
    return out


def chunk_h5_paths(config: dict, dataset: str, split: str) -> list[str]:
    """Every chunk file of a split, in merge order (processes as listed, chunks ascending)."""
    ds = config["datasets"][dataset]
    k = chunks_per_job(ds)
    return [
        CHUNK_H5.format(dataset=dataset, process=proc, split=split, block=c // k, chunk=c)
        for proc in ds["processes"]
        for c in range(n_chunks(config, dataset, proc, split))
    ]


def split_path(config: dict, experiment: str, role: str) -> str:
    """The dataset file an experiment reads in ``role`` (pretrain, probe_train, ...)."""
    exp = _exp(config, experiment)
    return read_path(config, experiment, exp["dataset"], X.splits(exp)[role])


def experiment_feature_set(config: dict, experiment: str) -> str | None:
    """The feature set an experiment's backbone reads: its ``features`` key (e.g. MPM's
    ``ptetaphi``, Golling et al., arXiv:2401.13537 §IV), else its dataset's own."""
    exp = _exp(config, experiment)
    return exp.get("features") or dataset_feature_set(config, exp["dataset"])


def read_path(config: dict, experiment: str, dataset: str, split: str) -> str:
    """The file ``experiment`` reads of ``dataset``'s ``split``: the split as stored when it
    holds the experiment's feature set, else its conversion into it (rule
    ``convert_features``, padded to the pre-training dataset's ``n_particles``).

    The one place where an experiment's input columns are chosen: every job (tokenizer,
    pre-training, probes, embedding, fine-tuning, paper outputs) reads the file named
    here, the file records its ``feature_names``, ``model.pt`` records them too, and
    :func:`jetforge.training.data.check_model_features` refuses a model on other columns.
    """
    own = experiment_feature_set(config, experiment)
    if dataset_feature_set(config, dataset) == own:
        return SPLIT_H5.format(dataset=dataset, split=split)
    nmax = config["datasets"][_exp(config, experiment)["dataset"]]["n_particles"]
    return CONVERTED_H5.format(dataset=dataset, features=own, nmax=nmax, split=split)


def pretrain_inputs(config: dict, experiment: str) -> dict[str, str]:
    inputs = {"train": split_path(config, experiment, "pretrain")}
    exp = _exp(config, experiment)
    if X.needs_tokenizer(exp):
        inputs["tokenizer"] = TOKENIZER.format(experiment=exp.get("tokenizer_from") or experiment)
    if exp["pretrain"].get("init_backbone"):
        inputs["init_backbone"] = init_backbone_model(config, experiment)
    return inputs


def init_backbone_run(config: dict, experiment: str) -> dict[str, Any]:
    """The fine-tuning run ``pretrain.init_backbone`` names, as a grid entry of its
    experiment (:func:`jetforge.experiment.init_backbone_run`)."""
    return X.init_backbone_run(_exp(config, experiment)["pretrain"]["init_backbone"],
                               config["experiments"])  # fmt: skip


def init_backbone_model(config: dict, experiment: str) -> str:
    """The classifier of that run (rule ``finetune``'s ``model`` output): Rieck et al.
    §5.4's hybrids start from its backbone."""
    spec = _exp(config, experiment)["pretrain"]["init_backbone"]
    return classifier_path(prediction_path(str(spec["experiment"]),
                                           init_backbone_run(config, experiment)))  # fmt: skip


def pretrain_owner(config: dict, experiment: str) -> str:
    """The experiment whose pre-trainings this one uses: itself, or ``pretrain_from``."""
    return str(_exp(config, experiment).get("pretrain_from") or experiment)


def pretrained_models(config: dict, experiment: str, augset: str | None = None) -> list[str]:
    """``model.pt`` of every pre-training (each augset, or one, x repeats)."""
    exp = _exp(config, experiment)
    sets = [augset] if augset else list(X.augsets(exp))
    owner = pretrain_owner(config, experiment)
    return [
        PRETRAIN_DIR.format(experiment=owner, augset=a, repeat=r) + "/model.pt"
        for a in sets
        for r in range(X.pretrain_repeats(exp))
    ]


def pretrained_model(config: dict, experiment: str, augset: str, repeat: int | str) -> str:
    """The pre-training a fine-tuning repeat starts from (:func:`X.pretrain_repeat_for`)."""
    r = X.pretrain_repeat_for(_exp(config, experiment), repeat)
    owner = pretrain_owner(config, experiment)
    return PRETRAIN_DIR.format(experiment=owner, augset=augset, repeat=r) + "/model.pt"


def pretrain_histories(config: dict, experiment: str, augset: str) -> list[str]:
    return [
        p.replace("model.pt", "history.csv") for p in pretrained_models(config, experiment, augset)
    ]


def dataset_feature_set(config: dict, dataset: str) -> str | None:
    """The feature set a dataset's files hold (:func:`jetforge.datasets.feature_set`)."""
    from jetforge.datasets import feature_set

    return feature_set(config["datasets"][dataset])


def task_files(config: dict, experiment: str, task: str) -> dict[str, str]:
    """Train and test files of one fine-tuning task.

    A task runs on the experiment's own dataset (splits ``finetune_train`` /
    ``finetune_test``) unless it names another ``dataset`` (transfer, e.g. JP-JEPA's top
    tagging and quark–gluon, §4.3; splits ``train`` / ``test`` unless the task sets
    ``splits``). A dataset stored in another feature set than the pre-training one is read
    through its conversion into the backbone's convention (:func:`read_path`): the
    experiment's feature set *and* the pre-training dataset's particle count (``n_particles``; e.g.
    JetClass's 128 for top tagging's 200 constituents, as ParT's top-tagging data config
    does: it also bounds the O(n^2) pair features).
    """
    exp = _exp(config, experiment)
    spec = exp["finetune"]["tasks"][task]
    name = spec.get("dataset", exp["dataset"])
    if name == exp["dataset"]:
        s = X.splits(exp)
        roles = {"train": s["finetune_train"], "test": s["finetune_test"]}
    else:
        roles = {"train": "train", "test": "test", **spec.get("splits", {})}
    return {r: read_path(config, experiment, name, sp) for r, sp in roles.items()}


def finetune_inputs(config: dict, experiment: str, task: str, mode: str, augset: str,
                    repeat: int | str) -> dict[str, str]:  # fmt: skip
    inputs = task_files(config, experiment, task)
    if mode != "supervised":
        inputs["pretrained"] = pretrained_model(config, experiment, augset, repeat)
    return inputs


def prediction_path(experiment: str, run: dict[str, Any]) -> str:
    return PREDICTIONS.format(
        experiment=experiment, task=run["task"], mode=run["mode"], augset=run["augset"],
        ntrain=run["n_train"], repeat=run["repeat"],
    )  # fmt: skip


def classifier_path(predictions: str) -> str:
    """Where a fine-tuning job stores its classifier (``model.pt``, rule ``finetune``'s
    ``model`` output) beside its predictions file."""
    return str(Path(predictions).with_name("model.pt"))


def finetune_predictions(config: dict, experiment: str) -> list[str]:
    return [prediction_path(experiment, r) for r in X.finetune_grid(_exp(config, experiment))]


def predictions_for(config: dict, experiment: str, task: str) -> dict[str, list[str]]:
    """Setup id (``{mode}-{augset}-n{n_train}``) -> prediction files, one per repeat."""
    out: dict[str, list[str]] = {}
    for run in X.finetune_grid(_exp(config, experiment), task):
        out.setdefault(X.setup_id(run), []).append(prediction_path(experiment, run))
    return out


def embedding_path(config: dict, experiment: str, augset: str) -> str:
    """The embedding of the probe test split by pre-training r0 (t-SNE and corner plots)."""
    split = X.splits(_exp(config, experiment))["probe_test"]
    owner = pretrain_owner(config, experiment)
    return EMBEDDINGS.format(experiment=owner, augset=augset, repeat=0, split=split)


def _both(stem: str, exts: tuple[str, ...] = ("png", "pdf")) -> list[str]:
    return [f"{stem}.{ext}" for ext in exts]


def experiment_targets(config: dict, experiment: str) -> list[str]:
    """Probes, pre-training histories, fine-tuning summary, the paper tables and the
    figures the experiment lists."""
    exp = _exp(config, experiment)
    tables, figures = TABLE.replace("/{table}", ""), FIGURES
    out: list[str] = []
    if exp.get("summaries", True):  # false: a study row another output reads
        out += _both(f"{tables}/probes", TABLE_FORMATS)
        out += [p for a in X.augsets(exp) for p in _both(f"{figures}/pretrain_history_{a}")]
        if exp.get("finetune"):
            out += _both(f"{tables}/finetune", TABLE_FORMATS) + _both(f"{figures}/finetune")
    from jetforge.paper_outputs import declared

    out += [p for d in declared(config) if d.experiment == experiment for p in d.paths()]
    tasks = list((exp.get("finetune") or {}).get("tasks", {}))
    for kind in exp.get("figures", []):
        keys = tasks if kind in TASK_FIGURES else list(X.augsets(exp))
        out += [p for k in keys for p in _both(f"{figures}/{kind}_{k}")]
    return [p.format(experiment=experiment) for p in out]


def dataset_targets(config: dict) -> list[str]:
    """Every split of every dataset, plus its validation figures and checks."""
    from jetforge.datasets import dataset_splits

    out: list[str] = []
    for name, ds in config.get("datasets", {}).items():
        out += [SPLIT_H5.format(dataset=name, split=split) for split in dataset_splits(ds)]
        out += [f"results/datasets/{name}/validation.json"]
        out += [f"results/figures/datasets/{name}/overview.{ext}" for ext in ("png", "pdf")]
    return out


def papers_in(config: dict) -> list[str]:
    """The papers the config's experiments reproduce (each gets its claims table)."""
    from jetforge.papers import paper_of

    found = [paper_of(e, x) for e, x in config.get("experiments", {}).items()]
    return list(dict.fromkeys(p for p in found if p))


def claims_inputs(config: dict, paper: str) -> list[str]:
    """The tables the paper's claims read that this config produces (the others are
    reported as not run, so asking for the claims never builds what the config omits)."""
    from jetforge.reporting.claims import claim_tables
    from jetforge.reporting.reference import load_claims

    produced = set(experiment_outputs(config))
    need = [t for c in load_claims(paper) for t in claim_tables(c)]
    return [t for t in dict.fromkeys(need) if t in produced]


def experiment_outputs(config: dict) -> list[str]:
    out: list[str] = []
    for experiment in config.get("experiments", {}):
        out += experiment_targets(config, experiment)
    return out


def all_targets(config: dict) -> list[str]:
    """Every experiment's tables and figures, each paper's claims and the claims of all of
    them, and every dataset with its validation."""
    from jetforge.leaderboard.plan import targets as leaderboard_targets

    out = experiment_outputs(config) + leaderboard_targets(config)
    for paper in papers_in(config):
        out += _both(f"{CLAIMS_DIR}/{paper}/claims", TABLE_FORMATS)
    return out + _both(f"{CLAIMS_DIR}/claims", TABLE_FORMATS) + dataset_targets(config)
