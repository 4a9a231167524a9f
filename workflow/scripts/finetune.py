"""Snakemake script: fine-tune (fixed / floating) or train supervised, predict the test split."""
import torch

from jetforge.training.finetune import run_finetune
from jetforge.workflow.logging import log_to

torch.set_num_threads(snakemake.threads)  # noqa: F821

with log_to(snakemake.log[0]):  # noqa: F821
    wc = snakemake.wildcards  # noqa: F821
    run_finetune(
        train_h5=snakemake.input.train,  # noqa: F821
        test_h5=snakemake.input.test,  # noqa: F821
        out_path=snakemake.output[0],  # noqa: F821
        exp_cfg=snakemake.params.exp,  # noqa: F821
        task=wc.task,
        mode=wc.mode,
        augset=wc.augset,
        n_train=int(wc.ntrain),
        repeat=int(wc.repeat),
        seed=snakemake.params.seed,  # noqa: F821
        pretrained=snakemake.input.get("pretrained"),  # noqa: F821
        device=snakemake.params.device,  # noqa: F821
    )
