"""Snakemake script: the minimum-bias library that pile-up is drawn from (generated once)."""
from jetforge.workflow.logging import log_to
from jetforge.workflow.steps import minbias_library

with log_to(snakemake.log[0]):
    minbias_library(
        snakemake.output[0],
        snakemake.params.ds,
        snakemake.wildcards.dataset,
        snakemake.params.seed,
    )
