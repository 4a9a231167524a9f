"""Snakemake script of rules paper_claims (one paper) and claims (all papers)."""

import sys

# jetforge from this checkout: the rule's conda env holds only its third-party packages
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

import pandas as pd

from jetforge.reporting import claims as C
from jetforge.reporting.reference import load_claims
from jetforge.workflow.logging import job_log

sm = snakemake

with job_log(sm):
    if sm.rule == "paper_claims":
        paper = sm.wildcards.paper
        frame = C.claims_frame(load_claims(paper), available=sm.params.produced)
        C.write_claims(frame, dict(sm.output.items()), f"{paper}: the paper's claims, our verdict")
    else:
        frames = [pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in sm.input]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=C.COLUMNS)
        C.write_claims(frame, dict(sm.output.items()), "Claims of every paper: our verdict")
