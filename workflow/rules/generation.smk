# Event generation: hard process (Pythia, stored as LHE) and, one chunk per job, the
# dataset's builder (re-simulated variants, single shower, or hadronization fork) through
# detector, jet clustering and features.


rule hard_process:
    output:
        "results/gen/{dataset}/{process}/{split}/hard_{chunk}.lhe",
    log:
        "logs/gen/{dataset}/{process}/{split}/hard_{chunk}.log",
    benchmark:
        "benchmarks/gen/{dataset}/{process}/{split}/hard_{chunk}.tsv"
    conda:
        "../../envs/generation.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        ds=lambda wc: config["datasets"][wc.dataset],
        seed=config["seed"],
    script:
        "../scripts/hard_process.py"


rule build_chunk:
    input:
        unpack(chunk_inputs),
    output:
        "results/gen/{dataset}/{process}/{split}/jets_{chunk}.h5",
    log:
        "logs/gen/{dataset}/{process}/{split}/jets_{chunk}.log",
    benchmark:
        "benchmarks/gen/{dataset}/{process}/{split}/jets_{chunk}.tsv"
    conda:
        "../../envs/generation.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        ds=lambda wc: config["datasets"][wc.dataset],
        seed=config["seed"],
    script:
        "../scripts/build_chunk.py"


rule minbias_library:
    output:
        "results/gen/{dataset}/minbias_library.h5",
    log:
        "logs/gen/{dataset}/minbias_library.log",
    benchmark:
        "benchmarks/gen/{dataset}/minbias_library.tsv"
    conda:
        "../../envs/generation.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        ds=lambda wc: config["datasets"][wc.dataset],
        seed=config["seed"],
    script:
        "../scripts/minbias_library.py"
