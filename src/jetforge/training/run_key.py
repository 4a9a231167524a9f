"""Run keys: what a checkpoint was written for, compared before resuming from it."""

from __future__ import annotations

import hashlib
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


def file_sha256(path: str) -> str:
    """Hex digest of a file, read in 1 MB blocks: a run key names the exact weights a run
    starts from (a pre-trained or fine-tuned ``model.pt``), so a resume never continues
    from others."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
