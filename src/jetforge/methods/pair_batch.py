"""The two views of a pair batch, whichever sampler made it.

Why: a pair objective (NT-Xent, the autoencoder on both forks) does not care whether its
backbone reads particles only or tracks + calorimeter cells; only the batch layout
differs. The ``"pairs"`` sampler calls ``forward(x_a, m_a, x_b, m_b)``, the
``"multi_pairs"`` sampler ``forward(batch)`` with a
:class:`~jetforge.training.multi_data.MultiPairBatch`. :func:`pair_views` turns either into
the backbone's ``forward`` arguments of view a and view b, so one method class serves both
(``sampler = ("pairs", "multi_pairs")``, matched to the backbone's ``inputs`` by
:func:`jetforge.training.pretrain.method_sampler`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

#: the samplers a pair method trains on: particles-only pairs, tracks + cells pairs
PAIR_SAMPLERS = ("pairs", "multi_pairs")


def pair_views(*batch: Any) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """``(view_a, view_b)``, each the argument tuple of ``backbone(*view)``."""
    if len(batch) == 4:
        return (batch[0], batch[1]), (batch[2], batch[3])
    if len(batch) == 1 and hasattr(batch[0], "view"):
        return tuple(batch[0].view("a")), tuple(batch[0].view("b"))
    raise TypeError(
        "a pair batch is (x_a, m_a, x_b, m_b) ('pairs' sampler) or one MultiPairBatch "
        f"('multi_pairs'), got {len(batch)} arguments of types {[type(b).__name__ for b in batch]}"
    )
