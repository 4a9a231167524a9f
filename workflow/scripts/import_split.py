"""Snakemake script: read one split of a public release into the jet data contract."""

import json
import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from jetforge.datasets.importers import import_split
from jetforge.workflow.logging import job_log

with job_log(snakemake):
    stats = import_split(
        snakemake.params.ds, snakemake.wildcards.dataset, snakemake.wildcards.split,
        snakemake.output[0],
    )  # fmt: skip
    print(json.dumps(stats, indent=1))
