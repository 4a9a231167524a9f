"""Snakemake script: one of the paper's figures (ROC, scores, pre-training history, t-SNE,
corner)."""
from jetforge.workflow.logging import job_log
from jetforge.workflow.steps import paper_figure

with job_log(snakemake):
    wc = snakemake.wildcards
    paper_figure(
        kind=snakemake.params.get("kind") or wc.kind,
        wildcards=dict(wc.items()),
        exp_cfg=snakemake.params.exp,
        inputs=list(snakemake.input),
        out_png=snakemake.output.png,
        seed=snakemake.params.get("seed", 0),
    )
