# The papers' tables and figures, each one file a user can ask for.


rule paper_table:
    input:
        table_inputs,
    output:
        csv=report(
            "results/tables/{experiment}/{table}.csv",
            caption="../report/table.rst",
            category="{experiment}",
            subcategory="tables",
        ),
        md="results/tables/{experiment}/{table}.md",
    log:
        "logs/tables/{experiment}/{table}.log",
    benchmark:
        "benchmarks/tables/{experiment}/{table}.tsv"
    params:
        exp=lambda wc: config["experiments"][wc.experiment],
        ds=lambda wc: config["datasets"][config["experiments"][wc.experiment]["dataset"]],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/paper_table.py"


rule task_figure:
    input:
        task_predictions,
    output:
        png=report(
            "results/figures/{experiment}/{kind}_{task}.png",
            caption="../report/task_figure.rst",
            category="{experiment}",
            subcategory="{task}",
        ),
        pdf="results/figures/{experiment}/{kind}_{task}.pdf",
    log:
        "logs/figures/{experiment}/{kind}_{task}.log",
    benchmark:
        "benchmarks/figures/{experiment}/{kind}_{task}.tsv"
    wildcard_constraints:
        kind="roc|scores",
    params:
        exp=lambda wc: config["experiments"][wc.experiment],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/figures.py"


rule pretrain_history_figure:
    input:
        pretrain_histories,
    output:
        png=report(
            "results/figures/{experiment}/pretrain_history_{augset}.png",
            caption="../report/history.rst",
            category="{experiment}",
            subcategory="pre-training",
        ),
        pdf="results/figures/{experiment}/pretrain_history_{augset}.pdf",
    log:
        "logs/figures/{experiment}/pretrain_history_{augset}.log",
    benchmark:
        "benchmarks/figures/{experiment}/pretrain_history_{augset}.tsv"
    params:
        exp=lambda wc: config["experiments"][wc.experiment],
        kind="history",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/figures.py"


rule embedding_figure:
    input:
        "results/embeddings/{experiment}/{augset}/r0/test.h5",
    output:
        png=report(
            "results/figures/{experiment}/{kind}_{augset}.png",
            caption="../report/embedding.rst",
            category="{experiment}",
            subcategory="embedding",
        ),
        pdf="results/figures/{experiment}/{kind}_{augset}.pdf",
    log:
        "logs/figures/{experiment}/{kind}_{augset}.log",
    benchmark:
        "benchmarks/figures/{experiment}/{kind}_{augset}.tsv"
    wildcard_constraints:
        kind="tsne|corner",
    params:
        exp=lambda wc: config["experiments"][wc.experiment],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/figures.py"
