"""The papers' own numbers: ``resources/reference/{paper}.yaml``.

One file per paper (short names in :data:`jetforge.papers.PAPERS`), transcribed by hand with
table/figure, row and column cited. Two sections are read here:

* ``tables``: one entry per table (or figure whose text states numbers) of the paper, keyed
  as the experiment's ``tables.<name>.paper`` says (RS3L: ``II``); the table writers put its
  values in the column next to ours;
* ``claims``: the paper's headline claims, each a comparison of two rows of one of our
  tables that :mod:`jetforge.reporting.claims` turns into a verdict.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from jetforge.paths import resources_dir


def reference_path(paper: str) -> Path:
    return resources_dir() / "reference" / f"{paper}.yaml"


@cache
def _load(path: str) -> dict[str, Any]:
    doc = yaml.safe_load(Path(path).read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a reference file is a mapping with `tables` and `claims`")
    return doc


def load_reference_file(paper: str) -> dict[str, Any]:
    """The whole reference file of ``paper`` ({} where we have transcribed nothing)."""
    path = reference_path(paper)
    return _load(str(path)) if path.exists() else {}


def load_reference_entry(paper: str, entry: str | None) -> dict[str, Any] | None:
    """One ``tables`` entry (with its key as ``id``), or None: no entry named, or no file.

    A named entry missing from an existing file is an error: the config promises a paper
    column the file cannot fill.
    """
    if entry is None:
        return None
    path = reference_path(paper)
    if not path.exists():
        return None
    tables = _load(str(path)).get("tables", {})
    if str(entry) not in {str(k) for k in tables}:
        raise KeyError(f"{path}: no table {entry!r}; have {sorted(map(str, tables))}")
    key = next(k for k in tables if str(k) == str(entry))
    return {"id": str(entry), **tables[key]}


def load_claims(paper: str) -> list[dict[str, Any]]:
    """The paper's claims (``claims`` list of its reference file), each with ``paper`` set."""
    return [{**c, "paper": paper} for c in load_reference_file(paper).get("claims", [])]
