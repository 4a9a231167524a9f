# Every experiment's tables and figures, each one file a user can ask for: frozen-embedding
# probes, fine-tuned vs from scratch, the papers' numbered tables (ours beside the paper's),
# pre-training histories and the figures an experiment lists under `figures`.


rule probe_table:
    input:
        models=lambda wc: T.pretrained_models(config, wc.experiment),
        train=lambda wc: T.split_path(config, wc.experiment, "probe_train"),
        test=lambda wc: T.split_path(config, wc.experiment, "probe_test"),
    output:
        csv=report(
            "results/tables/{experiment}/probes.csv",
            caption="../report/probes.rst",
            category=paper_category,
            subcategory="probes",
        ),
        md="results/tables/{experiment}/probes.md",
        tex="results/tables/{experiment}/probes.tex",
    log:
        "logs/tables/{experiment}/probes.log",
    benchmark:
        "benchmarks/tables/{experiment}/probes.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        exp=experiment_cfg,
        seed=config["seed"],
        device=config.get("device", "auto"),
    script:
        "../scripts/experiment.py"


rule finetune_summary:
    input:
        lambda wc: T.finetune_predictions(config, wc.experiment),
    output:
        csv=report(
            "results/tables/{experiment}/finetune.csv",
            caption="../report/finetune.rst",
            category=paper_category,
            subcategory="fine-tuning",
        ),
        md="results/tables/{experiment}/finetune.md",
        tex="results/tables/{experiment}/finetune.tex",
        png=report(
            "results/figures/{experiment}/finetune.png",
            caption="../report/finetune.rst",
            category=paper_category,
            subcategory="fine-tuning",
        ),
        pdf="results/figures/{experiment}/finetune.pdf",
    log:
        "logs/tables/{experiment}/finetune.log",
    benchmark:
        "benchmarks/tables/{experiment}/finetune.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        exp=experiment_cfg,
    script:
        "../scripts/experiment.py"


rule paper_table:
    input:
        lambda wc: [
            p
            for fs in T.predictions_for(
                config,
                wc.experiment,
                config["experiments"][wc.experiment]["tables"][wc.table]["task"],
            ).values()
            for p in fs
        ],
    output:
        csv=report(
            "results/tables/{experiment}/{table}.csv",
            caption="../report/table.rst",
            category=paper_category,
            subcategory="{table}",
        ),
        md="results/tables/{experiment}/{table}.md",
        tex="results/tables/{experiment}/{table}.tex",
    log:
        "logs/tables/{experiment}/{table}.log",
    benchmark:
        "benchmarks/tables/{experiment}/{table}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        exp=experiment_cfg,
        ds=lambda wc: config["datasets"][
            config["experiments"][wc.experiment]["dataset"]
        ],
    script:
        "../scripts/paper_table.py"


rule task_figure:
    input:
        lambda wc: [
            p
            for fs in T.predictions_for(config, wc.experiment, wc.task).values()
            for p in fs
        ],
    output:
        png=report(
            "results/figures/{experiment}/{kind}_{task}.png",
            caption="../report/task_figure.rst",
            category=paper_category,
            subcategory="{task}",
        ),
        pdf="results/figures/{experiment}/{kind}_{task}.pdf",
    log:
        "logs/figures/{experiment}/{kind}_{task}.log",
    benchmark:
        "benchmarks/figures/{experiment}/{kind}_{task}.tsv"
    wildcard_constraints:
        kind="roc|scores",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        exp=experiment_cfg,
    script:
        "../scripts/figures.py"


rule pretrain_history_figure:
    input:
        lambda wc: T.pretrain_histories(config, wc.experiment, wc.augset),
    output:
        png=report(
            "results/figures/{experiment}/pretrain_history_{augset}.png",
            caption="../report/history.rst",
            category=paper_category,
            subcategory="pre-training",
        ),
        pdf="results/figures/{experiment}/pretrain_history_{augset}.pdf",
    log:
        "logs/figures/{experiment}/pretrain_history_{augset}.log",
    benchmark:
        "benchmarks/figures/{experiment}/pretrain_history_{augset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        exp=experiment_cfg,
    script:
        "../scripts/experiment.py"


rule embedding_figure:
    input:
        lambda wc: T.embedding_path(config, wc.experiment, wc.augset),
    output:
        png=report(
            "results/figures/{experiment}/{kind}_{augset}.png",
            caption="../report/embedding.rst",
            category=paper_category,
            subcategory="embedding",
        ),
        pdf="results/figures/{experiment}/{kind}_{augset}.pdf",
    log:
        "logs/figures/{experiment}/{kind}_{augset}.log",
    benchmark:
        "benchmarks/figures/{experiment}/{kind}_{augset}.tsv"
    wildcard_constraints:
        kind="tsne|corner",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        exp=experiment_cfg,
        seed=config["seed"],
    script:
        "../scripts/figures.py"
