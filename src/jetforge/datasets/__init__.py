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

# kind -> ("module:function", reads hard events from LHE?, feature set written when the
# config names none: None = a layout no feature set describes, e.g. tracks + cells)
BUILDERS: dict[str, tuple[str, bool, str | None]] = {
    "resim": ("jetforge.datasets.resim:build_resim_chunk", True, "rs3l"),  # RS3L variants
    "single": ("jetforge.datasets.single:build_jets_chunk", True, None),  # config `features`
    "hadfork": ("jetforge.datasets.hadfork:build_hadfork_chunk", False, None),  # tracks + cells
    # the public releases, read from their files: no chunk jobs; the workflow's rule
    # import_split calls this once per split (feature set: IMPORT_FEATURE_SETS[format])
    "import": ("jetforge.datasets.importers:import_split", False, None),
}

#: feature set each import format is stored in (jetforge.datasets.importers.FORMATS),
#: here so that config checks and targets need not import uproot or the readers
IMPORT_FEATURE_SETS: dict[str, str] = {
    "jetclass_root": "part17",  # ParT / JetClass 17 particle features
    "jetnet_h5": "jetnet",  # (etarel, phirel, ptrel, mask)
    "toptag_h5": "kinematic4",  # (E, px, py, pz)
    "quarkgluon_npz": "pid_kin",  # ParT qg_kinpid 13 features
}


#: variant names of the builders that fix them (resim datasets name theirs in the config:
#: ``shower.variants``); read by config checks without importing the builders
FIXED_VARIANTS: dict[str, tuple[str, ...]] = {
    "single": ("nominal",),
    "hadfork": ("fork_a", "fork_b"),  # one shower, two hadronizations (Rieck et al.)
    "import": ("nominal",),
}


def variant_names(ds: dict[str, Any]) -> list[str]:
    """Variant names a dataset config's files hold (first = nominal)."""
    kind = ds.get("kind", "resim")
    if kind in FIXED_VARIANTS:
        return list(FIXED_VARIANTS[kind])
    return list(ds.get("shower", {}).get("variants", {}))


def builder(kind: str) -> Callable[..., dict[str, Any]]:
    try:
        target = BUILDERS[kind][0]
    except KeyError:
        raise KeyError(f"unknown dataset kind {kind!r}; known kinds: {sorted(BUILDERS)}") from None
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def uses_lhe(kind: str) -> bool:
    """Whether the builder re-showers stored hard events (and so needs the LHE rule)."""
    return BUILDERS[kind][1]


def feature_set(ds: dict[str, Any]) -> str | None:
    """The feature set (``jetforge.jets.featuresets``) a dataset config's files hold."""
    if ds.get("kind") == "import":
        return IMPORT_FEATURE_SETS.get(ds.get("format", ""))
    return ds.get("features", BUILDERS[ds.get("kind", "resim")][2])


def dataset_splits(ds: dict[str, Any]) -> list[str]:
    """The splits a dataset config has: ``files`` of an import, else ``chunks``."""
    if ds.get("kind") == "import":
        return list(ds.get("files") or {})
    return list(ds.get("chunks") or {})
