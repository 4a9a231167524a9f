"""Run keys: what a checkpoint was written for, compared before resuming from it."""

from __future__ import annotations

import json
from typing import Any

#: config keys that change how batches are read or what is checked, not what is trained
#: (loader processes; the collapse checks; the number of GPUs a pre-training is spread
#: over, which leaves the global batch as it is): left out of run keys, so a checkpoint
#: resumes whatever they are set to (e.g. a collapse check switched off after a false alarm)
LOADER_ONLY_KEYS = ("loader_workers", "collapse_rank", "collapse_patience", "gpus")


def to_plain(obj: Any) -> Any:
    """JSON round trip: tuples -> lists, so run keys compare equal across reloads."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))
