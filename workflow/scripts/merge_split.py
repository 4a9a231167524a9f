"""Snakemake script: merge the chunk files of one split (inside its generation jobs'
block folders, listed in merge order by the rule's params) into one HDF5 dataset."""

import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from jetforge.workflow.logging import job_log
from jetforge.workflow.steps import merge_split

with job_log(snakemake):
    merge_split(list(snakemake.params.chunks), snakemake.output[0])
