"""Third-party modules imported on first use, so each job imports only what it runs.

Why: the workflow's rule families run in separate conda envs (``envs/*.yaml``) that hold
only their own packages: the Snakemake driver validates the config (which reads the
detector, feature-set and method registries) without awkward, scipy, h5py, fastjet or
torch; a generation job never has torch, an analysis job never Pythia. A module whose
*functions* need awkward but whose *names* the config checks read binds
``ak = lazy_module("awkward")`` instead of ``import awkward as ak``: importing the module
costs nothing, and the first ``ak.<name>`` imports awkward for real (an env lacking it
then fails there, naming the package). tests/test_envs.py runs each family with only its
env's packages.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _LazyModule(ModuleType):
    """Stands for module ``name`` until an attribute is read; then imports it and copies
    its namespace in, so later reads are plain module-attribute lookups (no overhead in
    hot loops)."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)  # introspection (copy, pickle) must not import
        module = importlib.import_module(self.__name__)
        self.__dict__.update(
            {k: v for k, v in vars(module).items() if k not in ("__name__", "__spec__")}
        )
        return getattr(module, attr)


def lazy_module(name: str) -> ModuleType:
    """A stand-in for ``import name`` that imports ``name`` when first used."""
    return _LazyModule(name)
