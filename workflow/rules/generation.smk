# Event generation, one job per block of `chunks_per_job` chunks (jetforge.workflow.targets):
# for each chunk in turn, the hard process (Pythia, stored as LHE in the block's folder, or
# the user's LHE files) and the dataset's builder (re-simulated variants, single shower, or
# hadronization fork) through detector, jet clustering and features. Each chunk keeps its
# own seeds and file, so the split files do not depend on the block size.


rule generate_block:
    input:
        unpack(block_inputs),
    output:
        directory("results/gen/{dataset}/{process}/{split}/block_{block}"),
    log:
        "logs/gen/{dataset}/{process}/{split}/block_{block}.log",
    benchmark:
        "benchmarks/gen/{dataset}/{process}/{split}/block_{block}.tsv"
    conda:
        "../../envs/generation.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: R.generation_mem_mb(config["datasets"][wc.dataset]),
        runtime=lambda wc: R.generation_runtime(
            config["datasets"][wc.dataset], len(block_chunk_list(wc))
        ),
    params:
        ds=lambda wc: config["datasets"][wc.dataset],
        seed=config["seed"],
        chunks=block_chunk_list,
    script:
        "../scripts/generate_block.py"


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
        mem_mb=lambda wc: R.minbias_mem_mb(config["datasets"][wc.dataset]),
        runtime=lambda wc: R.minbias_runtime(config["datasets"][wc.dataset]),
    params:
        ds=lambda wc: config["datasets"][wc.dataset],
        seed=config["seed"],
    script:
        "../scripts/minbias_library.py"
