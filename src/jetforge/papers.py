"""The five papers this workflow reproduces, by the short names used in paths and configs.

An experiment belongs to one paper (``experiments.<name>.paper``; by default the paper of
the same name): its tables read ``resources/reference/{paper}.yaml`` and `snakemake
--report` files its tables and figures under the paper's heading.
"""

from __future__ import annotations

from typing import Any

#: short name -> (citation shown to users, arXiv number)
PAPERS: dict[str, tuple[str, str]] = {
    "rs3l": ("RS3L: Harris, Kagan, Krupa, Maier, Woodward", "2403.07066"),
    "rieck": ("Rieck, Cranmer, Dreyer, Gross, Kakati, Kobylanskii, Merz, Soybelman", "2503.11632"),
    "mpm": ("MPM: Golling, Heinrich, Kagan, Klein, Leigh, Osadchy, Raine", "2401.13537"),
    "jbot": ("jBOT: Tsoi, Rankin", "2601.11719"),
    "jpjepa": ("JP-JEPA: Letellier, Vacheret, Jurie", "2606.14813"),
}


def paper_of(experiment: str, exp: dict[str, Any]) -> str | None:
    """The experiment's paper: its ``paper`` key, else its own name if that is a paper."""
    return exp.get("paper") or (experiment if experiment in PAPERS else None)


def report_category(experiment: str, exp: dict[str, Any]) -> str:
    """The `snakemake --report` heading of an experiment's outputs: the paper it reproduces
    ("rs3l: RS3L: Harris, ... (arXiv:2403.07066)"), or the experiment's own name."""
    paper = paper_of(experiment, exp)
    if paper is None:
        return experiment
    who, arxiv = PAPERS[paper]
    return f"{paper}: {who} (arXiv:{arxiv})"
