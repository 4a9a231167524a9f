# Pre-training (SSL), fine-tuning / supervised baselines, and embedding export.
# Training rules ask for one GPU (`gpu=1`): unconstrained locally, mapped by the Slurm
# profile to a GPU partition; the code falls back to CPU when none is present.


rule pretrain:
    input:
        train=pretrain_split,
    output:
        model="results/models/{experiment}/pretrain/{augset}/r{repeat}/model.pt",
        history="results/models/{experiment}/pretrain/{augset}/r{repeat}/history.csv",
    log:
        "logs/models/{experiment}/pretrain/{augset}/r{repeat}.log",
    benchmark:
        "benchmarks/models/{experiment}/pretrain/{augset}/r{repeat}.tsv"
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
        "../scripts/pretrain.py"


rule finetune:
    input:
        unpack(finetune_inputs),
    output:
        "results/models/{experiment}/{task}/{mode}/{augset}/n{ntrain}/r{repeat}/predictions.h5",
    log:
        "logs/models/{experiment}/{task}/{mode}/{augset}/n{ntrain}/r{repeat}.log",
    benchmark:
        "benchmarks/models/{experiment}/{task}/{mode}/{augset}/n{ntrain}/r{repeat}.tsv"
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
        "../scripts/finetune.py"


rule embed:
    input:
        model="results/models/{experiment}/pretrain/{augset}/r{repeat}/model.pt",
        data=experiment_split,
    output:
        "results/embeddings/{experiment}/{augset}/r{repeat}/{split}.h5",
    log:
        "logs/embeddings/{experiment}/{augset}/r{repeat}/{split}.log",
    benchmark:
        "benchmarks/embeddings/{experiment}/{augset}/r{repeat}/{split}.tsv"
    params:
        device=config.get("device", "auto"),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=1,
    conda:
        "../../envs/training.yaml"
    script:
        "../scripts/embed.py"
