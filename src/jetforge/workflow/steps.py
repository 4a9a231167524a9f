"""Entry points of the workflow's generation, dataset and reporting rules.

Each function is what one rule does, callable without Snakemake (tests and notebooks call
them directly); the scripts in workflow/scripts only unpack the ``snakemake`` object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jetforge.workflow import targets as T


def hard_process(
    out_path: str, ds_cfg: dict, dataset: str, process: str, split: str, chunk: int, base_seed: int
) -> dict:
    """Hard events of one chunk as LHE (`hard_cuts`, overridden per process if configured)."""
    from jetforge.generation.hard import write_hard_chunk

    run = write_hard_chunk(out_path, ds_cfg, dataset, process, split, chunk, base_seed)
    print(json.dumps({k: v for k, v in run.items() if k != "settings"}, indent=1))
    return run


def build_chunk(
    lhe_path: str | None,
    out_path: str,
    ds_cfg: dict,
    dataset: str,
    process: str,
    split: str,
    chunk: int,
    base_seed: int,
    extra_inputs: dict[str, str] | None = None,
) -> dict:
    """One dataset chunk with the builder of the dataset's ``kind`` (jetforge.datasets)."""
    from jetforge.datasets import builder, uses_lhe

    kind = ds_cfg.get("kind", "resim")
    build = builder(kind)
    args = (out_path, ds_cfg, dataset, process, split, chunk, base_seed)
    if uses_lhe(kind):
        stats = build(lhe_path, *args)
    else:
        stats = build(lhe_path, *args, extra_inputs=dict(extra_inputs or {}))
    print(json.dumps(stats, indent=1, default=str))
    return stats


#: config keys that say how chunks are grouped into jobs, not what a chunk holds: left out
#: of the dataset config a builder sees (and stores in each chunk's ``config_json``), so a
#: chunk's bytes do not depend on the block size
SCHEDULING_KEYS = ("chunks_per_job",)


def chunk_config(ds_cfg: dict) -> dict:
    """The dataset config as a chunk builder sees it (:data:`SCHEDULING_KEYS` removed)."""
    return {k: v for k, v in ds_cfg.items() if k not in SCHEDULING_KEYS}


def generate_block(
    out_dir: str,
    ds_cfg: dict,
    dataset: str,
    process: str,
    split: str,
    chunks: list[int],
    base_seed: int,
    lhe_paths: list[str] | None = None,
    extra_inputs: dict[str, str] | None = None,
) -> list[dict]:
    """One generation job: for each chunk of the block, in order, the hard events (Pythia,
    written as ``hard_{chunk}.lhe``, unless ``lhe_paths`` gives the user's files, one per
    chunk) and the chunk file ``jets_{chunk}.h5``, exactly as one job per chunk made them.

    The block is built in a sibling temporary folder and renamed into place when every
    chunk is done, so a killed job never leaves a folder that looks finished. Memory stays
    that of one chunk: each chunk's events are released before the next one starts.
    """
    import shutil

    from jetforge.datasets import uses_lhe

    cfg = chunk_config(ds_cfg)
    if lhe_paths is not None and len(lhe_paths) != len(chunks):
        raise ValueError(f"{out_dir}: {len(lhe_paths)} LHE files for {len(chunks)} chunks")
    final = Path(out_dir)
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    needs_lhe = uses_lhe(cfg.get("kind", "resim"))
    stats = []
    for i, chunk in enumerate(chunks):
        lhe = None
        if needs_lhe:
            lhe = lhe_paths[i] if lhe_paths is not None else str(tmp / f"hard_{chunk}.lhe")
            if lhe_paths is None:
                hard_process(lhe, cfg, dataset, process, split, chunk, base_seed)
        args = (lhe, str(tmp / f"jets_{chunk}.h5"), cfg, dataset, process, split, chunk)
        stats.append(build_chunk(*args, base_seed, extra_inputs))
    if final.exists():  # an empty folder made for the job (Snakemake, a rerun)
        final.rmdir()
    tmp.rename(final)
    return stats


def minbias_library(out_path: str, ds_cfg: dict, dataset: str, base_seed: int) -> None:
    """The pile-up library: minimum-bias events generated once, overlaid by every chunk."""
    from jetforge.generation.pileup import generate_minbias_library
    from jetforge.generation.seeds import derive_seed

    pu = ds_cfg["pileup"]
    generate_minbias_library(
        out_path,
        int(pu["library_events"]),
        derive_seed(dataset, "minbias", base=base_seed),
        sqrt_s=float(ds_cfg.get("sqrt_s", 13000.0)),
        pt_min=float(pu.get("library_pt_min", 0.0)),
    )
    print(f"wrote {pu['library_events']} minimum-bias events to {out_path}")


def merge_split(inputs: list[str], output: str) -> int:
    from jetforge.io.h5 import merge_jet_datasets

    n = merge_jet_datasets(inputs, output)
    print(f"merged {len(inputs)} chunk files into {output}: {n} jets")
    return n


def _setups(experiment: str, exp_cfg: dict, task: str) -> dict[str, list[str]]:
    return T.predictions_for({"experiments": {experiment: exp_cfg}}, experiment, task)


def _with_n2(setups: dict[str, list[str]]) -> dict[str, list[str]]:
    """Prepend the N2 baseline row; N2 is stored in every prediction file (data contract 5)."""
    return {"n2": next(iter(setups.values())), **setups}


def paper_figure(
    kind: str,
    wildcards: dict[str, Any],
    exp_cfg: dict,
    inputs: list[str],
    out_png: str,
    seed: int = 0,
) -> None:
    from jetforge.reporting import figures as F

    stem = str(Path(out_png).with_suffix(""))
    experiment = wildcards["experiment"]
    if kind == "roc":
        setups = _with_n2(_setups(experiment, exp_cfg, wildcards["task"]))
        F.roc_figure(setups, stem, title=f"{experiment}: {wildcards['task']}")
    elif kind == "scores":
        F.score_ratio_figure(inputs, stem)
    elif kind == "history":
        F.pretrain_history_figure(inputs, stem)
    elif kind == "tsne":
        F.tsne_figure(inputs[0], stem, n_jets=int(exp_cfg.get("tsne_jets", 600)), seed=seed)
    elif kind == "corner":
        F.corner_figure(inputs[0], stem)
    else:
        raise ValueError(f"unknown figure kind {kind!r}")
