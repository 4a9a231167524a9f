"""Snakemake script: re-simulate one chunk of hard events under every variant → HDF5."""
from jetforge.workflow.steps import resim_chunk
from jetforge.workflow.logging import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    resim_chunk(
        lhe_path=snakemake.input.lhe,  # noqa: F821
        out_path=snakemake.output[0],  # noqa: F821
        ds_cfg=snakemake.params.ds,  # noqa: F821
        dataset=snakemake.wildcards.dataset,  # noqa: F821
        process=snakemake.wildcards.process,  # noqa: F821
        split=snakemake.wildcards.split,  # noqa: F821
        chunk=int(snakemake.wildcards.chunk),  # noqa: F821
        base_seed=snakemake.params.seed,  # noqa: F821
    )
