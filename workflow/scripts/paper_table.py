"""Snakemake script: one of the paper's tables with our numbers beside the paper's."""
from jetforge.workflow.steps import paper_table
from jetforge.workflow.logging import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    paper_table(
        experiment=snakemake.wildcards.experiment,  # noqa: F821
        table=snakemake.wildcards.table,  # noqa: F821
        exp_cfg=snakemake.params.exp,  # noqa: F821
        ds_cfg=snakemake.params.ds,  # noqa: F821
        inputs=list(snakemake.input),  # noqa: F821
        out_csv=snakemake.output.csv,  # noqa: F821
        out_md=snakemake.output.md,  # noqa: F821
    )
