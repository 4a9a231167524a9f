"""jBOT's physics augmentations as a pair family for contrastive methods, made on the fly.

``pretrain.pairs: augment`` trains a pairs method (SimCLR's NT-Xent) on views made by the
augmentation chain jBOT uses (Tsoi & Rankin, arXiv:2601.11719 §4.2: rotation about the jet
axis, soft smearing, collinear splitting; :class:`jetforge.methods.jbot_augment.JetAugment`,
configured by the same ``feature_names`` / ``augment`` keys as jBOT), from the jets of any
single-jet or re-simulated dataset: ``augment_views: 2`` gives (aug₁(jet), aug₂(jet)) as in
JetCLR / SimCLR, ``augment_views: 1`` gives (jet, aug(jet)) as RS3L pairs a nominal jet with
its re-simulation. Beside the re-simulated pairs (Harris et al., arXiv:2403.07066) and the
hadronization forks (Rieck et al., arXiv:2503.11632) this is the third pair family on the
same jets.

Reproducibility: the views of batch ``b`` of epoch ``e`` are drawn from torch's CPU
generator seeded with ``derive_seed(seed, e, b)`` inside ``torch.random.fork_rng``, so they
are a pure function of (seed, epoch, batch) -- independent of the loader workers, of the
model's own random draws, and of where a resumed run starts (the engine's bit-exact resume
replays the sampler from its batch index).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import h5py
import numpy as np
import torch

from jetforge.generation.seeds import derive_seed
from jetforge.methods.jbot import augment_from_config
from jetforge.methods.jbot_augment import JetAugment
from jetforge.training.data import DatasetInfo, JetSampler, PairBatch, read_column

#: ``pretrain.pairs`` values: the variants of the file (default), or augmentations
PAIR_FAMILIES = ("variants", "augment")
#: ``pretrain.augment_views``: how many members of a pair are augmented
AUGMENT_VIEWS = (1, 2)


def augment_for(pcfg: Mapping[str, Any], feature_names: list[str]) -> tuple[JetAugment, int]:
    """The augmentation chain and the number of augmented views of a ``pretrain`` block.

    ``feature_names`` (the file's) stand in when the block names none, so any dataset whose
    features the chain knows how to rewrite can be used as it is.
    """
    views = pcfg.get("augment_views", 2)
    if views not in AUGMENT_VIEWS:
        raise ValueError(
            f"config key pretrain.augment_views: value {views!r} must be one of "
            f"{list(AUGMENT_VIEWS)} (2: two augmented views, 1: the jet and one augmented view)"
        )
    cfg = {**pcfg, "feature_names": pcfg.get("feature_names") or list(feature_names)}
    return augment_from_config(cfg)[1], int(views)


def nominal_rows(
    h5_path: str, info: DatasetInfo, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """File rows and class labels of the nominal (first-variant) jets of ``pairs``: the
    jets the variant family pairs too, so both families train on the same jets."""
    rows = np.asarray(pairs, np.int64) * info.n_variants
    with h5py.File(h5_path, "r") as f:
        labels = read_column(f, "label")[rows]
    return rows, labels


class AugmentPairSampler:
    """Pair batches made from a :class:`JetSampler`'s jets by ``augment`` (module docstring).

    Offers what the pre-training driver uses of a pair sampler: ``labels``, ``len``,
    ``epoch(e, start_batch)`` of :class:`~jetforge.training.data.PairBatch` and ``close``.
    """

    def __init__(self, jets: JetSampler, augment: JetAugment, views: int, seed: int) -> None:
        self.jets, self.augment, self.views, self.seed = jets, augment, int(views), int(seed)

    @property
    def labels(self) -> np.ndarray:
        return self.jets.labels

    def __len__(self) -> int:
        return len(self.jets)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[PairBatch]:
        for b, batch in enumerate(self.jets.epoch(epoch, start_batch), start=start_batch):
            yield self.pair(batch.x, batch.mask, batch.y.long(), epoch, b)

    def pair(self, x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, epoch: int,
             b: int) -> PairBatch:  # fmt: skip
        """The pair batch of jets ``x``/``mask`` as batch ``b`` of ``epoch``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed("augment-pairs", self.seed, epoch, b))
            x_a, m_a = self.augment(x, mask) if self.views == 2 else (x, mask.bool())
            x_b, m_b = self.augment(x, mask)
        return PairBatch(x_a, m_a, x_b, m_b, labels)

    def close(self) -> None:
        self.jets.close()
