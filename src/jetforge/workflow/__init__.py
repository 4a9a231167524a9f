"""Glue between Snakemake and the package: target paths and the per-rule entry points."""
