"""Snakemake script: the minimum-bias library that pile-up is drawn from (generated once)."""
from jetforge.workflow.logging import log_to
from jetforge.workflow.steps import minbias_library

with log_to(snakemake.log[0]):  # noqa: F821
    minbias_library(
        snakemake.output[0],  # noqa: F821
        snakemake.params.ds,  # noqa: F821
        snakemake.wildcards.dataset,  # noqa: F821
        snakemake.params.seed,  # noqa: F821
    )
