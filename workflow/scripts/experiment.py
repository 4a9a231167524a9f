"""Snakemake script of the experiment rules (tokenizer, pretrain, finetune, embed, probes,
fine-tuning summary, pre-training history): unpacks `snakemake` for
jetforge.workflow.experiments."""

import torch

from jetforge.workflow import experiments
from jetforge.workflow.logging import job_log

sm = snakemake
torch.set_num_threads(sm.threads)

with job_log(sm):
    experiments.run_rule(
        sm.rule,
        dict(sm.wildcards.items()),
        dict(sm.input.items()),
        list(sm.input),
        dict(sm.output.items()),
        list(sm.output),
        dict(sm.params.items()),
    )
