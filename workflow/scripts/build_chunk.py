"""Snakemake script: build one chunk of a dataset (builder chosen by the dataset's kind) → HDF5."""
from jetforge.workflow.logging import log_to
from jetforge.workflow.steps import build_chunk

with log_to(snakemake.log[0]):  # noqa: F821
    build_chunk(
        lhe_path=snakemake.input.get("lhe"),  # noqa: F821
        out_path=snakemake.output[0],  # noqa: F821
        ds_cfg=snakemake.params.ds,  # noqa: F821
        dataset=snakemake.wildcards.dataset,  # noqa: F821
        process=snakemake.wildcards.process,  # noqa: F821
        split=snakemake.wildcards.split,  # noqa: F821
        chunk=int(snakemake.wildcards.chunk),  # noqa: F821
        base_seed=snakemake.params.seed,  # noqa: F821
        extra_inputs={k: v for k, v in snakemake.input.items() if k != "lhe"},  # noqa: F821
    )
