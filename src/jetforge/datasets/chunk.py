"""What every chunk builder shares: seeds, truth tables, the contract's columns and attrs.

The three builders (RS3L re-simulation, single shower, hadronization fork) differ in how
they make jets, not in how a chunk is identified, seeded, labelled and described: those
parts live here once, so a change to the data contract (docs/data-contract.md, format 4)
or to the seeding is made in one place and every dataset kind follows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from jetforge import __version__
from jetforge.generation.hard import NoTaggedObject, tagged_objects
from jetforge.generation.processes import get_process
from jetforge.generation.seeds import derive_seed
from jetforge.io.lhe import LHEEvent


@dataclass(frozen=True)
class ChunkId:
    """Provenance of one chunk; every random stream of the chunk is seeded from it.

    Why one object: the seed of a stream is the hash of (dataset, process, split, chunk,
    *tags) and the base seed (:func:`jetforge.generation.seeds.derive_seed`), so the
    same config reproduces byte-identical chunks and no two streams share a seed.
    """

    dataset: str
    process: str
    split: str
    chunk: int
    base_seed: int

    def seed(self, *tags: object) -> int:
        """The seed of the stream named by ``tags`` (e.g. ``"detector", variant``)."""
        ids = (self.dataset, self.process, self.split, self.chunk)
        return derive_seed(*ids, *tags, base=self.base_seed)

    def rng(self, *tags: object) -> np.random.Generator:
        """A numpy generator on :meth:`seed` of ``tags``."""
        return np.random.default_rng(self.seed(*tags))


def class_names(ds_cfg: Mapping[str, Any]) -> list[str]:
    """Class labels of a dataset, in the order its processes are listed (deduplicated)."""
    out: list[str] = []
    for name in ds_cfg["processes"]:
        label = get_process(name).label
        if label not in out:
            out.append(label)
    return out


def truth_table(
    events: Sequence[LHEEvent], process_name: str, lhe_path: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(η [n, k], φ [n, k], |PDG id| of the tagged object [n]) of each hard event.

    The tagged object is the hard parton (QCD; its flavour labels quark/gluon jets) or the
    resonance (then followed by its visible final decay products). Errors name the file
    and the event: an LHE file of another process must not silently give empty chunks.
    """
    process = get_process(process_name)
    truth = []
    for i, ev in enumerate(events):
        try:
            truth.append(tagged_objects(ev, process))
        except (NoTaggedObject, ValueError) as err:
            raise ValueError(
                f"{lhe_path}: event {i} does not contain what process {process_name!r} tags "
                f"({err}); the file does not hold {process_name} events"
            ) from None
    lengths = {len(t) for t in truth}
    if len(lengths) > 1:
        raise ValueError(f"{lhe_path}: events tag different numbers of objects {sorted(lengths)}")
    n = len(events)
    eta = np.array([[o.eta for o in t] for t in truth], dtype=np.float64).reshape(n, -1)
    phi = np.array([[o.phi for o in t] for t in truth], dtype=np.float64).reshape(n, -1)
    pid = np.array([abs(t[0].pid) for t in truth], dtype=np.int32)
    return eta, phi, pid


def interleave(per_variant: Sequence[Mapping[str, np.ndarray]], key: str) -> np.ndarray:
    """Rows of every variant interleaved: row i·V + v is variant v of pair i (contract 4)."""
    stacked = np.stack([cols[key] for cols in per_variant], axis=1)
    return stacked.reshape(stacked.shape[0] * stacked.shape[1], *stacked.shape[2:])


def pair_columns(
    n_pairs: int,
    n_var: int,
    chunk: int,
    process_index: int,
    label: int | np.ndarray,
    pair_id: np.ndarray,
    event: np.ndarray,
    parton_pid: int | np.ndarray,
) -> dict[str, np.ndarray]:
    """The contract's bookkeeping columns for ``n_pairs`` × ``n_var`` interleaved rows.

    ``label`` and ``parton_pid`` are one value for the chunk or one per pair; ``pair_id``
    and ``event`` one per pair. Every value is repeated over the pair's V rows.
    """

    def per_row(value: int | np.ndarray) -> np.ndarray:
        if np.ndim(value) == 0:
            return np.full(n_pairs * n_var, value)
        return np.repeat(value, n_var)

    return {
        "label": per_row(label),
        "process": np.full(n_pairs * n_var, process_index),
        "variant": np.tile(np.arange(n_var), n_pairs),
        "pair_id": np.repeat(pair_id, n_var),
        "chunk": np.full(n_pairs * n_var, chunk),
        "event": np.repeat(event, n_var),
        "parton_pid": per_row(parton_pid),
    }


def chunk_attrs(
    ds_cfg: Mapping[str, Any],
    dataset: str,
    split: str,
    *,
    feature_names: Sequence[str],
    class_names: Sequence[str],
    process_names: Sequence[str],
    variant_names: Sequence[str],
    detector: str,
    detector_sha256: str,
    **extra: Any,
) -> dict[str, Any]:
    """File attributes of a chunk (contract 4), in the order every builder writes them;
    ``extra`` (a builder's own attributes) follow."""
    return {
        "feature_names": list(feature_names),
        "class_names": list(class_names),
        "process_names": list(process_names),
        "variant_names": list(variant_names),
        "dataset": dataset,
        "split": split,
        "detector": detector,
        "detector_sha256": detector_sha256,
        "code_version": __version__,
        "config_json": dict(ds_cfg),
        **extra,
    }


@contextmanager
def timed(
    timing: dict[str, float], key: str, clock: Callable[[], float] = time.perf_counter
) -> Iterator[None]:
    """Add the ``clock`` seconds the block takes to ``timing[key]`` (created at 0).

    Builders report per-phase times in their stats; CPU time (``time.process_time``)
    where the machine is shared, since wall time there measures the neighbours.
    """
    start = clock()
    try:
        yield
    finally:
        timing[key] = timing.get(key, 0.0) + clock() - start
