"""Dataset builders: from hard events to jet datasets in the HDF5 data contract.

A dataset's ``kind`` (config ``datasets.<name>.kind``) selects its chunk builder. Every
builder has the signature of :func:`jetforge.datasets.resim.build_resim_chunk` and writes
one HDF5 chunk (docs/data-contract.md, format 4); the workflow merges chunks per split.
Builders are imported lazily so that generating one dataset never imports the others'
dependencies.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# kind -> ("module:function", reads hard events from LHE?)
BUILDERS: dict[str, tuple[str, bool]] = {
    "resim": ("jetforge.datasets.resim:build_resim_chunk", True),  # RS3L re-simulated variants
    "single": ("jetforge.datasets.single:build_jets_chunk", True),  # one shower per hard event
    "hadfork": ("jetforge.datasets.hadfork:build_hadfork_chunk", False),  # fork at hadronization
}


def builder(kind: str) -> Callable[..., dict[str, Any]]:
    try:
        target, _ = BUILDERS[kind]
    except KeyError:
        raise KeyError(f"unknown dataset kind {kind!r}; known kinds: {sorted(BUILDERS)}") from None
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def uses_lhe(kind: str) -> bool:
    """Whether the builder re-showers stored hard events (and so needs the LHE rule)."""
    return BUILDERS[kind][1]
