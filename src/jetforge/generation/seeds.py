"""Deterministic seeds from event-provenance ids.

Every random stream in jetforge (Pythia, detector smearing, data shuffling) is seeded from
a tuple of ids such as ``(dataset, process, split, chunk, variant)``, hashed with SHA-256.
The same config therefore reproduces byte-identical files, and two chunks can only share a
stream by a hash collision. Pythia accepts seeds in [1, 900_000_000]
(``Random:seed``), so seeds are mapped into that range.
"""

from __future__ import annotations

import hashlib

PYTHIA_SEED_MAX = 900_000_000


def derive_seed(*ids: object, base: int = 0, modulus: int = PYTHIA_SEED_MAX) -> int:
    """Seed in [1, modulus] from the ids (order matters) and the global ``base`` seed."""
    key = "\x1f".join([str(base), *map(str, ids)]).encode()
    digest = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
    return 1 + digest % modulus
