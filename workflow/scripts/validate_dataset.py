"""Snakemake script: physics validation figures and checks of one dataset split."""
from pathlib import Path

from jetforge.datasets.validation import validate_dataset, validate_pairs
from jetforge.workflow.logging import log_to

with log_to(snakemake.log[0]):
    out_dir = Path(snakemake.output.png).parent
    paired = snakemake.params.kind == "hadfork"
    (validate_pairs if paired else validate_dataset)(snakemake.input[0], out_dir)
    # the checks' numbers also travel with the data
    Path(snakemake.output.json).write_text((out_dir / "validation.json").read_text())
