"""Run keys: what a checkpoint was written for, compared before resuming from it."""

from __future__ import annotations

import json
from typing import Any

#: config keys that change how batches are read, not which: left out of run keys, so a
#: checkpoint resumes whatever they are set to
LOADER_ONLY_KEYS = ("loader_workers",)


def to_plain(obj: Any) -> Any:
    """JSON round trip: tuples -> lists, so run keys compare equal across reloads."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))
