# jetforge: self-supervised learning for LHC jets, end to end.
# The DAG: hard process (Pythia or your LHE) -> re-simulated shower variants -> detector ->
# anti-kt -> features (HDF5) -> pre-training -> fine-tuning / supervised -> tables, figures.
# `snakemake -n all` shows the plan; `snakemake results/tables/rs3l/table2.csv` builds one table.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/imports.smk"
include: "workflow/rules/generation.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/reporting.smk"
include: "workflow/rules/leaderboard.smk"


rule all:
    default_target: True
    input:
        all_targets(),
