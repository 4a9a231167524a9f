"""Snakemake script: physics validation figures and checks of one dataset split."""

import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from pathlib import Path

from jetforge.datasets.validation import validate_dataset, validate_pairs
from jetforge.io.atomic import write_json
from jetforge.workflow.logging import job_log

with job_log(snakemake):
    out_dir = Path(snakemake.output.png).parent
    paired = snakemake.params.kind == "hadfork"
    result = (validate_pairs if paired else validate_dataset)(snakemake.input[0], out_dir)
    # the checks' numbers also travel with the data (atomic, strict JSON: NaN -> null)
    write_json(snakemake.output.json, result)
