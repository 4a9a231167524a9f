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


# The same job for datasets whose detector card runs the real Delphes (`model: delphes`,
# e.g. `detector: delphes_cms`): its own rule and env (envs/delphes.yaml: DelphesHepMC3,
# ROOT, uproot, pyhepmc), so no other dataset's job needs Delphes. Delphes runs inside the
# job on each variant of each chunk (HepMC3 in $TMPDIR, never stored).
from jetforge.detector.delphes import uses_delphes

#: dataset names this rule builds; a pattern that matches nothing when there are none
DELPHES_DATASETS = "|".join(
    n for n, ds in config["datasets"].items() if uses_delphes(ds)
)


use rule generate_block as generate_block_delphes with:
    wildcard_constraints:
        dataset=DELPHES_DATASETS or r"(?!)",
    conda:
        "../../envs/delphes.yaml"


ruleorder: generate_block_delphes > generate_block


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
