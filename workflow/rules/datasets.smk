# Merging generated chunks into one HDF5 file per dataset split (data contract 4).


rule merge_split:
    input:
        split_blocks,
    output:
        "results/datasets/{dataset}/{split}.h5",
    log:
        "logs/datasets/{dataset}/{split}.log",
    benchmark:
        "benchmarks/datasets/{dataset}/{split}.tsv"
    wildcard_constraints:
        dataset=GENERATED_DATASETS,  # import datasets: rule import_split (imports.smk)
    conda:
        "../../envs/generation.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: R.merge_mem_mb(config["datasets"][wc.dataset]),
        runtime=lambda wc: R.merge_runtime(config["datasets"][wc.dataset], wc.split),
    params:
        chunks=split_chunk_files,  # the chunk files inside the block folders, in merge order
    script:
        "../scripts/merge_split.py"


rule convert_features:
    # a dataset read in another feature set (transfer: JP-JEPA pre-trained on JetClass's
    # 17 ParT features, fine-tuned on top tagging's four-momenta); missing inputs zeroed
    input:
        "results/datasets/{dataset}/{split}.h5",
    output:
        "results/datasets/{dataset}/as_{features}/n{nmax}/{split}.h5",
    log:
        "logs/datasets/{dataset}/as_{features}/n{nmax}/{split}.log",
    benchmark:
        "benchmarks/datasets/{dataset}/as_{features}/n{nmax}/{split}.tsv"
    conda:
        "../../envs/generation.yaml"
    threads: 1
    resources:
        mem_mb=R.convert_mem_mb(),
        runtime=lambda wc: R.convert_runtime(config["datasets"][wc.dataset], wc.split),
    script:
        "../scripts/convert_features.py"


rule validate_dataset:
    input:
        validation_split,
    output:
        json="results/datasets/{dataset}/validation.json",
        png=report(
            "results/figures/datasets/{dataset}/overview.png",
            caption="../report/dataset.rst",
            category="datasets",
            subcategory="{dataset}",
        ),
        pdf="results/figures/datasets/{dataset}/overview.pdf",
    log:
        "logs/datasets/{dataset}/validation.log",
    benchmark:
        "benchmarks/datasets/{dataset}/validation.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        kind=lambda wc: config["datasets"][wc.dataset].get("kind", "resim"),
    script:
        "../scripts/validate_dataset.py"


rule datasets:
    default_target: False
    input:
        dataset_targets,
