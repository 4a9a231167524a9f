# The cross-method comparison (jetforge.leaderboard): one job per (entry, pre-training
# seed) that pre-trains and runs the whole protocol in-process, then one job for the table
# and figures. Nothing here without a `leaderboard` block in the config.
from jetforge.leaderboard import plan as LB


rule leaderboard_entry:
    input:
        pretrain=lambda wc: LB.split_file(config, "pretrain"),
        probe_train=lambda wc: LB.split_file(config, "probe_train"),
        probe_test=lambda wc: LB.split_file(config, "probe_test"),
    output:
        "results/leaderboard/{entry}/r{repeat}/metrics.json",
    log:
        "logs/leaderboard/{entry}/r{repeat}.log",
    benchmark:
        "benchmarks/leaderboard/{entry}/r{repeat}.tsv"
    wildcard_constraints:
        entry=r"[A-Za-z0-9_]+",
    conda:
        "../../envs/training.yaml"
    # one thread: the tiny default ParT gains nothing from two, and two threads' OpenMP
    # barriers on a busy machine ran 26 jets/s against 600 for one (measured 2026-12-05)
    threads: 1
    resources:
        mem_mb=4000,
        runtime=lambda wc: LB.runtime_minutes(config["leaderboard"]),
        gpu=1,
    params:
        lb=lambda wc: config["leaderboard"],
        seed=config["seed"],
        device=config.get("device", "auto"),
    script:
        "../scripts/leaderboard.py"


rule leaderboard:
    input:
        lambda wc: LB.metrics_files(config),
    output:
        csv=report(
            "results/tables/leaderboard.csv",
            caption="../report/leaderboard.rst",
            category="leaderboard",
        ),
        md="results/tables/leaderboard.md",
        tex="results/tables/leaderboard.tex",
        accuracy_vs_labels_png=report(
            "results/figures/leaderboard/accuracy_vs_labels.png",
            caption="../report/leaderboard.rst",
            category="leaderboard",
        ),
        accuracy_vs_labels_pdf="results/figures/leaderboard/accuracy_vs_labels.pdf",
        robustness_vs_accuracy_png=report(
            "results/figures/leaderboard/robustness_vs_accuracy.png",
            caption="../report/leaderboard.rst",
            category="leaderboard",
        ),
        robustness_vs_accuracy_pdf="results/figures/leaderboard/robustness_vs_accuracy.pdf",
    log:
        "logs/tables/leaderboard.log",
    benchmark:
        "benchmarks/tables/leaderboard.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=15,
    params:
        lb=lambda wc: config["leaderboard"],
        ds=lambda wc: config["datasets"][config["leaderboard"]["dataset"]],
    script:
        "../scripts/leaderboard.py"
