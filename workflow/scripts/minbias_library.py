"""Snakemake script: the minimum-bias library that pile-up is drawn from (generated once)."""

import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from jetforge.workflow.logging import job_log
from jetforge.workflow.steps import minbias_library

with job_log(snakemake):
    minbias_library(
        snakemake.output[0],
        snakemake.params.ds,
        snakemake.wildcards.dataset,
        snakemake.params.seed,
    )
