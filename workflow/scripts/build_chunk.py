"""Snakemake script: build one chunk of a dataset (builder chosen by the dataset's kind) → HDF5."""

import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from jetforge.workflow.logging import job_log
from jetforge.workflow.steps import build_chunk

with job_log(snakemake):
    build_chunk(
        lhe_path=snakemake.input.get("lhe"),
        out_path=snakemake.output[0],
        ds_cfg=snakemake.params.ds,
        dataset=snakemake.wildcards.dataset,
        process=snakemake.wildcards.process,
        split=snakemake.wildcards.split,
        chunk=int(snakemake.wildcards.chunk),
        base_seed=snakemake.params.seed,
        extra_inputs={k: v for k, v in snakemake.input.items() if k != "lhe"},
    )
