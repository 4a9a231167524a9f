"""Snakemake script of rules leaderboard_entry (one entry x pre-training seed, the whole
protocol) and leaderboard (table and figures): unpacks `snakemake` for
jetforge.leaderboard."""

import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from jetforge.workflow.logging import job_log

sm = snakemake
with job_log(sm):
    if sm.rule == "leaderboard_entry":
        import torch

        from jetforge.leaderboard.protocol import run_entry

        torch.set_num_threads(sm.threads)
        files = {k: sm.input[k] for k in ("pretrain", "probe_train", "probe_test")}
        run_entry(sm.params.lb, sm.wildcards.entry, int(sm.wildcards.repeat), sm.params.seed,
                  files, sm.output[0], sm.params.device)
    else:
        from jetforge.leaderboard.report import build

        build(list(sm.input), sm.params.lb, sm.params.ds, dict(sm.output.items()))
