"""Snakemake script: physics validation figures and checks of one dataset split."""
from pathlib import Path

from jetforge.datasets.validation import validate_dataset
from jetforge.workflow.logging import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    out_dir = Path(snakemake.output.png).parent  # noqa: F821
    result = validate_dataset(snakemake.input[0], out_dir)  # noqa: F821
    # validate_dataset writes validation.json next to the figures; the rule also keeps a
    # copy beside the dataset so the numbers travel with the data
    Path(snakemake.output.json).write_text((out_dir / "validation.json").read_text())  # noqa: F821
