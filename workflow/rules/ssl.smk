# Generic self-supervised experiments (jBOT, MPM, JP-JEPA, ...): any registered method on
# any backbone and dataset, pre-trained under results/pretrain/{method}/{backbone}/{dataset},
# then probed (k-NN, linear) against the same backbone randomly initialised.


rule tokenizer:
    input:
        ssl_pretrain_split,
    output:
        "results/pretrain/{method}/{backbone}/{dataset}/tokenizer.pt",
    log:
        "logs/pretrain/{method}/{backbone}/{dataset}/tokenizer.log",
    benchmark:
        "benchmarks/pretrain/{method}/{backbone}/{dataset}/tokenizer.tsv"
    params:
        exp=ssl_exp,
        seed=config["seed"],
        device=config.get("device", "auto"),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=1,
    conda:
        "../../envs/training.yaml"
    script:
        "../scripts/ssl.py"


rule ssl_pretrain:
    input:
        unpack(ssl_pretrain_inputs),
    output:
        model="results/pretrain/{method}/{backbone}/{dataset}/r{repeat}/model.pt",
        history="results/pretrain/{method}/{backbone}/{dataset}/r{repeat}/history.csv",
    log:
        "logs/pretrain/{method}/{backbone}/{dataset}/r{repeat}.log",
    benchmark:
        "benchmarks/pretrain/{method}/{backbone}/{dataset}/r{repeat}.tsv"
    params:
        exp=ssl_exp,
        seed=config["seed"],
        device=config.get("device", "auto"),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=1,
    conda:
        "../../envs/training.yaml"
    script:
        "../scripts/ssl.py"


rule probe_table:
    input:
        unpack(probe_inputs),
    output:
        csv=report(
            "results/tables/{experiment}/probes.csv",
            caption="../report/probes.rst",
            category="{experiment}",
            subcategory="probes",
        ),
        md="results/tables/{experiment}/probes.md",
    log:
        "logs/tables/{experiment}/probes.log",
    benchmark:
        "benchmarks/tables/{experiment}/probes.tsv"
    params:
        exp=lambda wc: config["experiments"][wc.experiment],
        seed=config["seed"],
        device=config.get("device", "auto"),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/training.yaml"
    script:
        "../scripts/ssl.py"


rule pretrain_loss_figure:
    input:
        ssl_histories,
    output:
        png="results/figures/{experiment}/pretrain_loss.png",
        pdf="results/figures/{experiment}/pretrain_loss.pdf",
    log:
        "logs/figures/{experiment}/pretrain_loss.log",
    benchmark:
        "benchmarks/figures/{experiment}/pretrain_loss.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/ssl.py"


rule ssl_finetune:
    input:
        unpack(ssl_finetune_inputs),
    output:
        "results/finetune/{experiment}/{task}/{mode}/n{ntrain}/r{repeat}/predictions.h5",
    log:
        "logs/finetune/{experiment}/{task}/{mode}/n{ntrain}/r{repeat}.log",
    benchmark:
        "benchmarks/finetune/{experiment}/{task}/{mode}/n{ntrain}/r{repeat}.tsv"
    params:
        exp=lambda wc: config["experiments"][wc.experiment],
        seed=config["seed"],
        device=config.get("device", "auto"),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=1,
    conda:
        "../../envs/training.yaml"
    script:
        "../scripts/ssl.py"


rule finetune_summary:
    input:
        ssl_finetune_predictions,
    output:
        csv=report(
            "results/tables/{experiment}/finetune.csv",
            caption="../report/finetune.rst",
            category="{experiment}",
            subcategory="fine-tuning",
        ),
        md="results/tables/{experiment}/finetune.md",
        png=report(
            "results/figures/{experiment}/finetune.png",
            caption="../report/finetune.rst",
            category="{experiment}",
            subcategory="fine-tuning",
        ),
        pdf="results/figures/{experiment}/finetune.pdf",
    log:
        "logs/tables/{experiment}/finetune.log",
    benchmark:
        "benchmarks/tables/{experiment}/finetune.tsv"
    params:
        exp=lambda wc: config["experiments"][wc.experiment],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/ssl.py"
