# The papers' tables and figures, each one file a user can ask for.


def table_inputs(wc):
    spec = config["experiments"][wc.experiment]["tables"][wc.table]
    return [p for files in T.predictions_for(config, wc.experiment, spec["task"]).values() for p in files]


rule paper_table:
    input:
        table_inputs,
    output:
        csv=T.TABLE + ".csv",
        md=T.TABLE + ".md",
    log:
        "logs/" + T.TABLE + ".log",
    benchmark:
        "benchmarks/" + T.TABLE + ".tsv"
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


rule roc_figure:
    input:
        lambda wc: [p for fs in T.predictions_for(config, wc.experiment, wc.task).values() for p in fs],
    output:
        png=T.FIGURES + "/roc_{task}.png",
        pdf=T.FIGURES + "/roc_{task}.pdf",
    log:
        "logs/" + T.FIGURES + "/roc_{task}.log",
    benchmark:
        "benchmarks/" + T.FIGURES + "/roc_{task}.tsv"
    params:
        exp=lambda wc: config["experiments"][wc.experiment],
        kind="roc",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/figures.py"


rule score_figure:
    input:
        lambda wc: [p for fs in T.predictions_for(config, wc.experiment, wc.task).values() for p in fs],
    output:
        png=T.FIGURES + "/scores_{task}.png",
        pdf=T.FIGURES + "/scores_{task}.pdf",
    log:
        "logs/" + T.FIGURES + "/scores_{task}.log",
    benchmark:
        "benchmarks/" + T.FIGURES + "/scores_{task}.tsv"
    params:
        exp=lambda wc: config["experiments"][wc.experiment],
        kind="scores",
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
        lambda wc: T.pretrain_histories(config, wc.experiment, wc.augset),
    output:
        png=T.FIGURES + "/pretrain_history_{augset}.png",
        pdf=T.FIGURES + "/pretrain_history_{augset}.pdf",
    log:
        "logs/" + T.FIGURES + "/pretrain_history_{augset}.log",
    benchmark:
        "benchmarks/" + T.FIGURES + "/pretrain_history_{augset}.tsv"
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
        T.EMBEDDINGS.replace("{repeat}", "0").replace("{split}", "test"),
    output:
        png=T.FIGURES + "/{kind}_{augset}.png",
        pdf=T.FIGURES + "/{kind}_{augset}.pdf",
    log:
        "logs/" + T.FIGURES + "/{kind}_{augset}.log",
    benchmark:
        "benchmarks/" + T.FIGURES + "/{kind}_{augset}.tsv"
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
