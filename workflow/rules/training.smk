# One path for every experiment (jetforge.experiment): [tokenizer] -> pretrain (augset x
# repeat) -> finetune (task x mode x augset x n_train x repeat), and embedding export.
# Training rules ask for one GPU (`gpu=1`; `pretrain`: `pretrain.gpus`, data-parallel with
# torchrun inside the one job): unconstrained locally, mapped by the Slurm
# profile to a GPU partition; the code falls back to CPU when none is present.
# One thread per job here (the Slurm profile's set-threads gives GPU jobs more cores):
# measured on the 2-core reference machine, two one-thread jobs side by side step 1.5x
# (ParT-Mini, 2 x 1.6 s vs 1.2 s per batch of 32) to 1.6x (MPM's NormFormer) more than one
# two-thread job, and the many short jobs are single-threaded start-up (`import torch`).


rule tokenizer:
    # MPM's token targets (VQ-VAE or K-means, Golling et al. arXiv:2401.13537 §III B)
    input:
        lambda wc: T.split_path(config, wc.experiment, "pretrain"),
    output:
        "results/pretrain/{experiment}/tokenizer.pt",
    log:
        "logs/pretrain/{experiment}/tokenizer.log",
    benchmark:
        "benchmarks/pretrain/{experiment}/tokenizer.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: R.train_mem_mb(config, wc.experiment, "tokenizer"),
        runtime=lambda wc: R.train_runtime(config, wc.experiment, "tokenizer"),
        gpu=1,
    params:
        exp=experiment_cfg,
        seed=config["seed"],
        device=config.get("device", "auto"),
    script:
        "../scripts/experiment.py"


rule pretrain:
    input:
        unpack(lambda wc: T.pretrain_inputs(config, wc.experiment)),
    output:
        model="results/pretrain/{experiment}/{augset}/r{repeat}/model.pt",
        history="results/pretrain/{experiment}/{augset}/r{repeat}/history.csv",
    log:
        "logs/pretrain/{experiment}/{augset}/r{repeat}.log",
    benchmark:
        "benchmarks/pretrain/{experiment}/{augset}/r{repeat}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: R.train_mem_mb(config, wc.experiment, "pretrain"),
        runtime=lambda wc: R.train_runtime(config, wc.experiment, "pretrain"),
        gpu=lambda wc: config["experiments"][wc.experiment]["pretrain"].get("gpus", 1),
    params:
        exp=experiment_cfg,
        seed=config["seed"],
        device=config.get("device", "auto"),
    script:
        "../scripts/experiment.py"


rule finetune:
    input:
        unpack(
            lambda wc: T.finetune_inputs(
                config, wc.experiment, wc.task, wc.mode, wc.augset, wc.repeat
            )
        ),
    output:
        "results/finetune/{experiment}/{task}/{mode}/{augset}/n{ntrain}/r{repeat}/predictions.h5",
        # the classifier: a `pretrain.init_backbone` pre-training reads its backbone
        model="results/finetune/{experiment}/{task}/{mode}/{augset}/n{ntrain}/r{repeat}/model.pt",
    log:
        "logs/finetune/{experiment}/{task}/{mode}/{augset}/n{ntrain}/r{repeat}.log",
    benchmark:
        "benchmarks/finetune/{experiment}/{task}/{mode}/{augset}/n{ntrain}/r{repeat}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: R.train_mem_mb(config, wc.experiment, "finetune"),
        runtime=lambda wc: R.train_runtime(config, wc.experiment, "finetune", wc.ntrain),
        gpu=1,
    params:
        exp=experiment_cfg,
        seed=config["seed"],
        device=config.get("device", "auto"),
    script:
        "../scripts/experiment.py"


rule embed:
    input:
        model="results/pretrain/{experiment}/{augset}/r{repeat}/model.pt",
        data=lambda wc: T.read_path(
            config,
            wc.experiment,
            config["experiments"][wc.experiment]["dataset"],
            wc.split,
        ),
    output:
        "results/embeddings/{experiment}/{augset}/r{repeat}/{split}.h5",
    log:
        "logs/embeddings/{experiment}/{augset}/r{repeat}/{split}.log",
    benchmark:
        "benchmarks/embeddings/{experiment}/{augset}/r{repeat}/{split}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: R.train_mem_mb(config, wc.experiment, "embed"),
        runtime=lambda wc: R.train_runtime(config, wc.experiment, "embed"),
        gpu=1,
    params:
        exp=experiment_cfg,
        device=config.get("device", "auto"),
    script:
        "../scripts/experiment.py"
