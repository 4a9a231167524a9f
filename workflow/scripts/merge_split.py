"""Snakemake script: merge the chunk files of one split into one HDF5 dataset."""
from jetforge.workflow.steps import merge_split
from jetforge.workflow.logging import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    merge_split(list(snakemake.input), snakemake.output[0])  # noqa: F821
