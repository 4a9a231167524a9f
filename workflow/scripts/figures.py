"""Snakemake script: one of the paper's figures (ROC, scores, pre-training history, t-SNE, corner)."""
from jetforge.workflow.steps import paper_figure
from jetforge.workflow.logging import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    wc = snakemake.wildcards  # noqa: F821
    paper_figure(
        kind=snakemake.params.get("kind") or wc.kind,  # noqa: F821
        wildcards=dict(wc.items()),
        exp_cfg=snakemake.params.exp,  # noqa: F821
        inputs=list(snakemake.input),  # noqa: F821
        out_png=snakemake.output.png,  # noqa: F821
        seed=snakemake.params.get("seed", 0),  # noqa: F821
    )
