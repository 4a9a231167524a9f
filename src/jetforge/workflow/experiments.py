"""Entry points of the experiment rules: what each rule of workflow/rules/training.smk and
reporting.smk does, callable without Snakemake (tests and notebooks call them directly).

Every experiment goes through the same rules (:mod:`jetforge.experiment`); the only thing a
rule learns from its wildcards is which augset, task, mode, labelled size and repeat.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from jetforge import experiment as X
from jetforge.workflow import targets as T

#: rules that run in the training env (torch); the others of this module run in the
#: analysis env, which has no torch (envs/*.yaml)
TORCH_RULES = frozenset({"tokenizer", "pretrain", "finetune", "embed", "probe_table"})


def tokenizer(exp: dict, train_h5: str, out_path: str, seed: int, device: str) -> None:
    from jetforge.methods.mpm_tokenizer import train_tokenizer

    train_tokenizer(train_h5, out_path, exp["tokenizer"], seed, device)


def pretrain(
    exp: dict, train_h5: str, out_dir: str, augset: str, repeat: int, seed: int, device: str,
    tokenizer: str | None = None, init_backbone: str | None = None,
) -> None:  # fmt: skip
    """One pre-training; with ``pretrain.gpus`` = N > 1 data-parallel over N local
    processes started by torchrun (one Slurm job holding the N GPUs rule ``pretrain``
    asks for), see :mod:`jetforge.training.distributed`. ``init_backbone``: the
    fine-tuning ``model.pt`` that ``pretrain.init_backbone`` names (rule input)."""
    from jetforge.training.distributed import torchrun_pretrain
    from jetforge.training.pretrain import run_pretrain

    cfg = copy.deepcopy(exp)
    if tokenizer:
        cfg["pretrain"]["tokenizer_path"] = tokenizer
    if init_backbone:
        cfg["pretrain"]["init_backbone_path"] = init_backbone
    args = dict(train_h5=train_h5, out_dir=out_dir, exp_cfg=cfg, augset=augset, repeat=repeat,
                seed=seed, device=device)  # fmt: skip
    n = int(cfg["pretrain"].get("gpus", 1))
    if n > 1:
        torchrun_pretrain(n, args)
    else:
        run_pretrain(**args)


def finetune(
    exp: dict, task: str, mode: str, augset: str, n_train: int, repeat: int, train_h5: str,
    test_h5: str, out_path: str, pretrained: str | None, seed: int, device: str,
) -> None:  # fmt: skip
    """One fine-tuning (or from-scratch) training; the pre-training's ``augset`` decides
    which jets it trains on (:func:`jetforge.experiment.finetune_variant_set`)."""
    from jetforge.training.finetune import run_finetune

    run_finetune(
        train_h5, test_h5, out_path, exp, task, mode, X.finetune_variant_set(exp, augset),
        n_train, repeat, seed, pretrained if mode != "supervised" else None, device,
    )  # fmt: skip


def finetune_summary(
    experiment: str, exp: dict, predictions: list[str], out_csv: str, out_md: str, out_png: str
) -> None:
    """Fine-tuned vs from-scratch table and accuracy-vs-labelled-jets figure."""
    from jetforge.reporting import finetune_scan

    # the pre-training augset of each file, from the grid that named the files
    by_path = {T.prediction_path(experiment, run): run["augset"] for run in X.finetune_grid(exp)}
    rows = finetune_scan.summarise(predictions, [by_path[p] for p in predictions])
    title = (
        f"{experiment}: fine-tuning {exp['pretrain']['method']} ({exp['backbone']['name']}, "
        f"pre-trained on {exp['dataset']}) vs from scratch"
    )
    transfer = {t: s["dataset"] for t, s in exp["finetune"]["tasks"].items() if "dataset" in s}
    note = "; ".join(f"task {t} runs on dataset {d}" for t, d in transfer.items())
    finetune_scan.write_table(rows, out_csv, out_md, title, note + ("." if note else ""))
    finetune_scan.figure(rows, str(Path(out_png).with_suffix("")), title)


def history_figure(experiment: str, exp: dict, history_csvs: list[str], out_png: str) -> None:
    """Pre-training history: RS3L Fig. 2's pair diagnostics where the method logs them
    (``cos_pos_*``), otherwise every loss term, mean over repeats."""
    import csv

    from jetforge.reporting import figures as F

    stem = str(Path(out_png).with_suffix(""))
    with open(history_csvs[0]) as f:
        header = next(csv.reader(f))
    if any(c.startswith("cos_pos_") for c in header):
        F.pretrain_history_figure(history_csvs, stem)
    else:
        title = (
            f"{experiment}: {exp['pretrain']['method']} pre-training ({exp['backbone']['name']})"
        )
        F.loss_history_figure(history_csvs, stem, title)


def run_rule(
    rule: str, wildcards: dict[str, str], inputs: dict[str, Any], input_list: list[str],
    outputs: dict[str, Any], output_list: list[str], params: dict[str, Any],
) -> None:  # fmt: skip
    """Dispatch one Snakemake job of the experiment rules (workflow/scripts/experiment.py)."""
    wc, p = wildcards, params
    if rule == "tokenizer":
        tokenizer(p["exp"], input_list[0], output_list[0], p["seed"], p["device"])
    elif rule == "pretrain":
        pretrain(p["exp"], inputs["train"], str(Path(outputs["model"]).parent), wc["augset"],
                 int(wc["repeat"]), p["seed"], p["device"], inputs.get("tokenizer"),
                 inputs.get("init_backbone"))  # fmt: skip
    elif rule == "finetune":
        finetune(p["exp"], wc["task"], wc["mode"], wc["augset"], int(wc["ntrain"]),
                 int(wc["repeat"]), inputs["train"], inputs["test"], output_list[0],
                 inputs.get("pretrained"), p["seed"], p["device"])  # fmt: skip
    elif rule == "embed":
        from jetforge.training.embed import export_embeddings

        export_embeddings(inputs["model"], inputs["data"], output_list[0], device=p["device"])
    elif rule == "probe_table":
        from jetforge.evaluation.probe_table import probe_table

        probe_table(
            wc["experiment"], p["exp"], list(inputs["models"]), inputs["train"],
            inputs["test"], outputs["csv"], outputs["md"], p["seed"], p["device"],
        )  # fmt: skip
    elif rule == "finetune_summary":
        finetune_summary(wc["experiment"], p["exp"], input_list, outputs["csv"], outputs["md"],
                         outputs["png"])  # fmt: skip
    elif rule == "pretrain_history_figure":
        history_figure(wc["experiment"], p["exp"], input_list, outputs["png"])
    else:
        raise ValueError(f"jetforge.workflow.experiments does not handle rule {rule!r}")
