# Pre-training (SSL), fine-tuning / supervised baselines, and embedding export.
# Training rules ask for one GPU (`gpu=1`): unconstrained locally, mapped by the Slurm
# profile to a GPU partition; the code falls back to CPU when none is present.


rule pretrain:
    input:
        train=lambda wc: T.split_path(config, wc.experiment, "pretrain"),
    output:
        model=T.PRETRAIN_DIR + "/model.pt",
        history=T.PRETRAIN_DIR + "/history.csv",
    log:
        "logs/" + T.PRETRAIN_DIR + "/pretrain.log",
    benchmark:
        "benchmarks/" + T.PRETRAIN_DIR + "/pretrain.tsv"
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


def finetune_inputs(wc):
    inputs = {
        "train": T.split_path(config, wc.experiment, "finetune"),
        "test": T.split_path(config, wc.experiment, "test"),
    }
    if wc.mode != "supervised":
        inputs["pretrained"] = T.pretrained_model(config, wc.experiment, wc.augset, wc.repeat)
    return inputs


rule finetune:
    input:
        unpack(finetune_inputs),
    output:
        T.PREDICTIONS,
    log:
        "logs/" + T.PREDICTIONS + ".log",
    benchmark:
        "benchmarks/" + T.PREDICTIONS + ".tsv"
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
        model=T.PRETRAIN_DIR + "/model.pt",
        data=lambda wc: T.split_path(config, wc.experiment, wc.split),
    output:
        T.EMBEDDINGS,
    log:
        "logs/" + T.EMBEDDINGS + ".log",
    benchmark:
        "benchmarks/" + T.EMBEDDINGS + ".tsv"
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
