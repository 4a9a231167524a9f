# Merging generated chunks into one HDF5 file per dataset split (data contract 4).


rule merge_split:
    input:
        split_chunks,
    output:
        T.SPLIT_H5,
    log:
        "logs/" + T.SPLIT_H5 + ".log",
    benchmark:
        "benchmarks/" + T.SPLIT_H5 + ".tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        "../../envs/generation.yaml"
    script:
        "../scripts/merge_split.py"
