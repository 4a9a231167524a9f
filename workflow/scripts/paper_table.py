"""Snakemake script: one of the paper's tables with our numbers beside the paper's."""
from jetforge.workflow.logging import job_log
from jetforge.workflow.steps import paper_table

with job_log(snakemake):
    paper_table(
        experiment=snakemake.wildcards.experiment,
        table=snakemake.wildcards.table,
        exp_cfg=snakemake.params.exp,
        ds_cfg=snakemake.params.ds,
        inputs=list(snakemake.input),
        out_csv=snakemake.output.csv,
        out_md=snakemake.output.md,
    )
