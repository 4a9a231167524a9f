"""Snakemake script: export the frozen embedding of a pre-trained backbone on one split."""
import torch

from jetforge.training.embed import export_embeddings
from jetforge.workflow.logging import log_to

torch.set_num_threads(snakemake.threads)  # noqa: F821

with log_to(snakemake.log[0]):  # noqa: F821
    export_embeddings(
        snakemake.input.model,  # noqa: F821
        snakemake.input.data,  # noqa: F821
        snakemake.output[0],  # noqa: F821
        device=snakemake.params.device,  # noqa: F821
    )
