"""Snakemake script: generate one chunk of hard events with Pythia and write LHE."""
from jetforge.workflow.steps import hard_process
from jetforge.workflow.logging import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    hard_process(
        out_path=snakemake.output[0],  # noqa: F821
        ds_cfg=snakemake.params.ds,  # noqa: F821
        dataset=snakemake.wildcards.dataset,  # noqa: F821
        process=snakemake.wildcards.process,  # noqa: F821
        split=snakemake.wildcards.split,  # noqa: F821
        chunk=int(snakemake.wildcards.chunk),  # noqa: F821
        base_seed=snakemake.params.seed,  # noqa: F821
    )
