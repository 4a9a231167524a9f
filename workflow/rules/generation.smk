# Event generation: hard process (Pythia, stored as LHE) and its re-simulated variants
# through detector, jet clustering and features, one chunk per job.


rule hard_process:
    output:
        "results/gen/{dataset}/{process}/{split}/hard_{chunk}.lhe",
    log:
        "logs/gen/{dataset}/{process}/{split}/hard_{chunk}.log",
    benchmark:
        "benchmarks/gen/{dataset}/{process}/{split}/hard_{chunk}.tsv"
    params:
        ds=lambda wc: config["datasets"][wc.dataset],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        "../../envs/generation.yaml"
    script:
        "../scripts/hard_process.py"


rule resim_chunk:
    input:
        lhe=hard_lhe_input,
    output:
        "results/gen/{dataset}/{process}/{split}/jets_{chunk}.h5",
    log:
        "logs/gen/{dataset}/{process}/{split}/jets_{chunk}.log",
    benchmark:
        "benchmarks/gen/{dataset}/{process}/{split}/jets_{chunk}.tsv"
    params:
        ds=lambda wc: config["datasets"][wc.dataset],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/generation.yaml"
    script:
        "../scripts/resim_chunk.py"
