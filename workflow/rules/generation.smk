# Event generation: hard process (Pythia, stored as LHE) and its re-simulated variants
# through detector, jet clustering and features, one chunk per job.


rule hard_process:
    output:
        T.HARD_LHE,
    log:
        "logs/" + T.HARD_LHE + ".log",
    benchmark:
        "benchmarks/" + T.HARD_LHE + ".tsv"
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
        T.CHUNK_H5,
    log:
        "logs/" + T.CHUNK_H5 + ".log",
    benchmark:
        "benchmarks/" + T.CHUNK_H5 + ".tsv"
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
