"""Snakemake script of rules paper_table and paper_figure: one declared output of a paper
(jetforge.paper_outputs)."""

import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

import os

from jetforge.paper_outputs import find, run
from jetforge.workflow.logging import job_log

sm = snakemake
# kinds that load models import torch themselves; it reads this on import
os.environ.setdefault("OMP_NUM_THREADS", str(sm.threads))

with job_log(sm):
    cfg, section = sm.params.cfg, sm.params.section
    d = find(cfg, section, sm.wildcards.paper, sm.wildcards.name)
    inputs = {k: [str(v)] if isinstance(v, str) else list(v) for k, v in sm.input.items()}
    run(section, cfg, d.experiment, d.paper, d.name, inputs, dict(sm.output.items()))
