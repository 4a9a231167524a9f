"""Snakemake script: one generation job, a block of chunks (hard process + builder) → HDF5."""

import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from jetforge.workflow.logging import job_log
from jetforge.workflow.steps import generate_block

with job_log(snakemake):
    lhe = snakemake.input.get("lhe")
    generate_block(
        out_dir=snakemake.output[0],
        ds_cfg=snakemake.params.ds,
        dataset=snakemake.wildcards.dataset,
        process=snakemake.wildcards.process,
        split=snakemake.wildcards.split,
        chunks=list(snakemake.params.chunks),
        base_seed=snakemake.params.seed,
        lhe_paths=None if lhe is None else list(lhe),
        extra_inputs={k: v for k, v in snakemake.input.items() if k != "lhe"},
    )
