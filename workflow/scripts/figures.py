"""Snakemake script: one of the paper's figures (ROC, scores, pre-training history, t-SNE,
corner)."""

import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

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
