"""Snakemake script: generate one chunk of hard events with Pythia and write LHE."""
from jetforge.workflow.logging import log_to
from jetforge.workflow.steps import hard_process

with log_to(snakemake.log[0]):
    hard_process(
        out_path=snakemake.output[0],
        ds_cfg=snakemake.params.ds,
        dataset=snakemake.wildcards.dataset,
        process=snakemake.wildcards.process,
        split=snakemake.wildcards.split,
        chunk=int(snakemake.wildcards.chunk),
        base_seed=snakemake.params.seed,
    )
