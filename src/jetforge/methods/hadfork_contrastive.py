"""Contrastive pre-training on hadronization-fork pairs (Rieck et al., §4, eq. (1)).

The positive pair is the two hadronizations (``fork_a``, ``fork_b``) of one parton
shower, each with its own detector response (§3, Fig. 1); every other jet of the batch
is a negative. Eq. (1) is the NT-Xent loss of SimCLR on the 8-d representation y with
cosine similarity and τ = 0.1 ("stable, optimal results for τ in [0.05, 0.5]"), so the
loss is :func:`jetforge.methods.simclr.nt_xent` unchanged; no projection head (§6: an
expander was tried and dropped). Eq. (1) orders the 2N views as (2k-1, 2k) pairs; here
they are ``[y_a; y_b]`` with partner ``i <-> i + N``, the same set of terms.

On the paper's backbone (tracks + cells) the method consumes a whole
:class:`~jetforge.training.multi_data.MultiPairBatch` (``"multi_pairs"`` sampler); on a
particles-only backbone (e.g. ParT, issue 16's one-backbone comparison) it trains on
particle pairs like SimCLR (``"pairs"``), the fork variant chosen by the augmentation
set. Either way the objective is SimCLR's, so this class *is* :class:`SimCLR` under the
paper's name (kept as its own method so configs and tables say which pairs it means).
"""

from __future__ import annotations

from jetforge.methods import METHOD_NEEDS
from jetforge.methods.simclr import SimCLR


class HadforkContrastive(SimCLR):
    """Backbone + NT-Xent on (fork_a, fork_b) pairs (tracks + cells, or particles)."""

    needs = METHOD_NEEDS["hadfork_contrastive"]
    method_name = "hadfork_contrastive"
