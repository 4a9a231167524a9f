"""Snakemake script of the experiment rules (tokenizer, pretrain, finetune, embed, probes,
fine-tuning summary, pre-training history): unpacks `snakemake` for
jetforge.workflow.experiments."""

import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from jetforge.workflow import experiments
from jetforge.workflow.logging import job_log

sm = snakemake
if sm.rule in experiments.TORCH_RULES:  # the analysis env (summary, history) has no torch
    import torch

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
