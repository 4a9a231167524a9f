"""Snakemake script: generate one chunk of hard events with Pythia and write LHE."""

import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from jetforge.workflow.logging import job_log
from jetforge.workflow.steps import hard_process

with job_log(snakemake):
    hard_process(
        out_path=snakemake.output[0],
        ds_cfg=snakemake.params.ds,
        dataset=snakemake.wildcards.dataset,
        process=snakemake.wildcards.process,
        split=snakemake.wildcards.split,
        chunk=int(snakemake.wildcards.chunk),
        base_seed=snakemake.params.seed,
    )
