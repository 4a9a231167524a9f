"""Where the static inputs (detector cards, paper reference numbers) live."""

from __future__ import annotations

import os
from pathlib import Path


def resources_dir() -> Path:
    """``$JETFORGE_RESOURCES`` if set, else the ``resources/`` folder of the checkout."""
    env = os.environ.get("JETFORGE_RESOURCES")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        if (parent / "resources").is_dir() and (parent / "workflow").is_dir():
            return parent / "resources"
    raise FileNotFoundError(
        "cannot find the jetforge resources/ folder; set JETFORGE_RESOURCES to its path"
    )
