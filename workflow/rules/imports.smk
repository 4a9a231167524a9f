# Importing the public releases (datasets of kind `import`, jetforge.datasets.importers):
# one job per split reads the source files (JetClass ROOT, JetNet HDF5, top-tagging pandas
# HDF5, quark-gluon npz) into results/datasets/{dataset}/{split}.h5, the file merge_split
# writes for a generated dataset; every rule downstream reads it the same way. The two
# rules never compete for a file: their {dataset} constraints split the config's datasets.
import re as _re

from jetforge.datasets.importers import split_sources

_IMPORTED = [n for n, d in config["datasets"].items() if d.get("kind") == "import"]
#: {dataset} of rule import_split: the import datasets (none: a regex matching nothing)
IMPORTED_DATASETS = "|".join(map(_re.escape, _IMPORTED)) or "(?!x)x"
#: {dataset} of rule merge_split: every other name (the wildcard is followed by "/")
GENERATED_DATASETS = rf"(?!(?:{IMPORTED_DATASETS})/)[A-Za-z0-9_]+"


rule import_split:
    input:
        lambda wc: split_sources(config["datasets"][wc.dataset], wc.split),
    output:
        "results/datasets/{dataset}/{split}.h5",
    log:
        "logs/datasets/{dataset}/import_{split}.log",
    benchmark:
        "benchmarks/datasets/{dataset}/import_{split}.tsv"
    wildcard_constraints:
        dataset=IMPORTED_DATASETS,
    conda:
        "../../envs/generation.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        ds=lambda wc: config["datasets"][wc.dataset],
    script:
        "../scripts/import_split.py"
