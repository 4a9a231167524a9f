"""Snakemake script: merge the chunk files of one split into one HDF5 dataset."""
from jetforge.workflow.logging import log_to
from jetforge.workflow.steps import merge_split

with log_to(snakemake.log[0]):
    merge_split(list(snakemake.input), snakemake.output[0])
