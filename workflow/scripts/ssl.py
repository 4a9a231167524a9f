"""Snakemake script for the generic SSL rules: tokenizer, pre-training, probes, fine-tuning,
summaries and the loss figure."""
import torch

from jetforge.workflow import ssl
from jetforge.workflow.logging import log_to

sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)

with log_to(sm.log[0]):
    if sm.rule == "tokenizer":
        ssl.train_tokenizer(sm.params.exp, sm.input[0], sm.output[0], sm.params.seed, sm.params.device)
    elif sm.rule == "ssl_pretrain":
        ssl.ssl_pretrain(
            sm.params.exp, sm.input.train, str(__import__("pathlib").Path(sm.output.model).parent),
            int(sm.wildcards.repeat), sm.params.seed, sm.params.device, sm.input.get("tokenizer"),
        )
    elif sm.rule == "probe_table":
        ssl.probe_table(
            sm.wildcards.experiment, sm.params.exp, list(sm.input.models), sm.input.train,
            sm.input.test, sm.output.csv, sm.output.md, sm.params.seed, sm.params.device,
        )
    elif sm.rule == "ssl_finetune":
        ssl.ssl_finetune(
            sm.params.exp, sm.wildcards.task, sm.wildcards.mode, int(sm.wildcards.ntrain),
            int(sm.wildcards.repeat), sm.input.train, sm.input.test, sm.output[0],
            sm.input.get("pretrained"), sm.params.seed, sm.params.device,
        )
    elif sm.rule == "finetune_summary":
        ssl.finetune_summary(
            sm.wildcards.experiment, sm.params.exp, list(sm.input), sm.output.csv, sm.output.md,
            sm.output.png,
        )
    elif sm.rule == "pretrain_loss_figure":
        ssl.loss_figure(list(sm.input), sm.output.png)
    else:
        raise ValueError(f"ssl.py does not handle rule {sm.rule!r}")
