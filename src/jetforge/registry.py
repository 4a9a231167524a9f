"""Name registries whose entries are imported on first use.

Why lazy: the config schema's enums (methods, backbones) come from these tables, and the
Snakemake driver validates the config without importing torch or any network; a job imports
only the class it runs. A new method or backbone is its module plus one line in a table.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any


class Registry(MutableMapping[str, Any]):
    """``name -> "module:attribute"``; ``registry[name]`` imports and returns the attribute."""

    def __init__(self, kind: str, targets: Mapping[str, str]) -> None:
        self.kind = kind
        self._targets: dict[str, Any] = dict(targets)

    def __getitem__(self, name: str) -> Any:
        if name not in self._targets:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {sorted(self._targets)}")
        target = self._targets[name]
        if isinstance(target, str):
            module, attr = target.split(":")
            target = self._targets[name] = getattr(importlib.import_module(module), attr)
        return target

    def __setitem__(self, name: str, obj: Any) -> None:
        """Plain assignment (tests patch entries); :meth:`register` refuses overrides."""
        self._targets[name] = obj

    def __delitem__(self, name: str) -> None:
        del self._targets[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def register(self, name: str, obj: Any) -> Any:
        """Add ``obj`` under ``name`` (plugins, tests); refuses to replace another entry."""
        old = self._targets.get(name)
        if old is not None and old is not obj and not (isinstance(old, str) and self[name] is obj):
            raise ValueError(f"{self.kind} name {name!r} already registered to {old!r}")
        self._targets[name] = obj
        return obj
