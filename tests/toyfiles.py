"""Synthetic jet files in the real data contract (format 4), for tests that need a
dataset file but not Pythia: the rows go through :func:`jetforge.io.h5.write_jet_dataset`,
the writer every dataset job uses, so a test file cannot drift from what the loaders
read. Each test still builds its own particles (how its classes or views differ is what
it tests); only the file layout lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_toy_file(
    path: Path,
    particles: np.ndarray,
    mask: np.ndarray,
    process: np.ndarray,
    process_names: Sequence[str],
    variant_names: Sequence[str] = ("nominal",),
    *,
    jet_value: float = 0.0,
    split: str = "pretrain",
) -> Path:
    """Write ``particles`` (N, P, F, RS3L features) whose rows come in variant order per
    hard event: row i is variant ``i % V`` of event ``i // V`` (so ``pair_id`` groups the
    V views of one event). Jet kinematics (pt, eta, phi, mass, n2) are ``jet_value``."""
    from jetforge.io.h5 import write_jet_dataset
    from jetforge.jets.features import RS3L_FEATURES

    n, v = len(particles), len(variant_names)
    if n % v:
        raise ValueError(f"{n} rows are not a whole number of {v}-variant events")
    event = np.repeat(np.arange(n // v), v)
    fill = np.full(n, jet_value, np.float32)
    jets = {"pt": fill, "eta": fill, "phi": fill, "mass": fill, "n2": fill,
            "label": process, "process": process, "variant": np.tile(np.arange(v), n // v),
            "pair_id": event, "event": event, "chunk": 0 * event,
            "parton_pid": np.full(n, 21)}  # fmt: skip
    attrs = {"feature_names": list(RS3L_FEATURES),
             "class_names": [p.split("_")[0] for p in process_names],
             "process_names": list(process_names), "variant_names": list(variant_names),
             "dataset": "test", "split": split}  # fmt: skip
    write_jet_dataset(path, np.nan_to_num(particles).astype(np.float32), mask, jets, attrs)
    return path
