"""Snakemake script: one dataset split converted into another feature set (transfer)."""

import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

import logging

from jetforge.jets.convert import convert_file
from jetforge.workflow.logging import job_log

sm = snakemake

with job_log(sm):
    zeroed = convert_file(
        sm.input[0], sm.output[0], sm.wildcards.features, n_max=int(sm.wildcards.nmax)
    )
    logging.getLogger("jetforge").info(
        "%s -> %s (%s); zero-filled: %s", sm.input[0], sm.output[0], sm.wildcards.features,
        ", ".join(zeroed) or "none",
    )
