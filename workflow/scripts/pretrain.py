"""Snakemake script: self-supervised pre-training of one backbone (one augset, one repeat)."""
import torch

from pathlib import Path

from jetforge.training.pretrain import run_pretrain
from jetforge.workflow.logging import log_to

torch.set_num_threads(snakemake.threads)  # noqa: F821

with log_to(snakemake.log[0]):  # noqa: F821
    run_pretrain(
        train_h5=snakemake.input.train,  # noqa: F821
        out_dir=str(Path(snakemake.output.model).parent),  # noqa: F821
        exp_cfg=snakemake.params.exp,  # noqa: F821
        augset=snakemake.wildcards.augset,  # noqa: F821
        repeat=int(snakemake.wildcards.repeat),  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
        device=snakemake.params.device,  # noqa: F821
    )
