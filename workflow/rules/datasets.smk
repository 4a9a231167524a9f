# Merging generated chunks into one HDF5 file per dataset split (data contract 4).


rule merge_split:
    input:
        split_chunks,
    output:
        "results/datasets/{dataset}/{split}.h5",
    log:
        "logs/datasets/{dataset}/{split}.log",
    benchmark:
        "benchmarks/datasets/{dataset}/{split}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        "../../envs/generation.yaml"
    script:
        "../scripts/merge_split.py"
