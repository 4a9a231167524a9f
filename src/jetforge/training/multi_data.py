"""Tracks + calorimeter cells: fork-pair batches, sampler and diagnostics (Rieck et al., §3-§4).

The hadronization-fork dataset (Rieck et al. §3) is data contract 4 with V = 2 variants
(``fork_a``, ``fork_b``; row ``2*pair + v``) where ``particles``/``mask`` hold the
jet's charged-particle **tracks** and two extra datasets hold its **calorimeter cells**:
``cells`` float32 ``[N, C, F_c]`` (attr ``cells_feature_names``, E, η, φ, layer) and
``cells_mask`` bool ``[N, C]`` (contract §6). Reading them is generic
(:func:`jetforge.training.data.read_inputs` for backbones whose ``inputs`` include
``"cells"``), so probes, fine-tuning and embedding export handle these files through the
ordinary paths. What is specific to pair methods on such files lives here:
:class:`MultiPairSampler` is :class:`~jetforge.training.data.PairSampler` (same pair
selection, validation split and per-(seed, epoch) order) reading tracks *and* cells of
both views into a :class:`MultiPairBatch`, which methods with ``sampler = "multi_pairs"``
take whole (``forward(batch)``); :func:`multi_pair_diagnostics` is their validation.
They are trained by :func:`jetforge.training.pretrain.run_pretrain` like every method.
A file without cells yields one padded, all-masked cell slot per jet, so track-only files
still run (the backbone then sees tracks only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.training.data import (  # noqa: F401  (CellsInfo, DEFAULT_CELL_FEATURES re-exported)
    DEFAULT_CELL_FEATURES,
    CellsInfo,
    PairSampler,
    _Batch,
    read_inputs,
)


@dataclass
class MultiPairBatch(_Batch):
    """B fork pairs: tracks and cells of view a (``fork_a``) and view b (``fork_b``)."""

    tracks_a: Tensor
    tracks_mask_a: Tensor
    cells_a: Tensor
    cells_mask_a: Tensor
    tracks_b: Tensor
    tracks_mask_b: Tensor
    cells_b: Tensor
    cells_mask_b: Tensor
    labels: Tensor

    def view(self, which: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(tracks, tracks_mask, cells, cells_mask)`` of view ``"a"`` or ``"b"``."""
        if which not in ("a", "b"):
            raise ValueError(f"view must be 'a' or 'b', got {which!r}")
        return tuple(  # type: ignore[return-value]
            getattr(self, f"{k}_{which}") for k in ("tracks", "tracks_mask", "cells", "cells_mask")
        )

    def __len__(self) -> int:
        return 2 * self.tracks_a.shape[0]  # jets processed


class MultiPairSampler(PairSampler):
    """:class:`PairSampler` that also reads the cells of both views (same batch order)."""

    inputs = ("particles", "cells")

    def _batch(self, a: list[Tensor], b: list[Tensor], labels: Tensor) -> MultiPairBatch:
        return MultiPairBatch(*a, *b, labels)


# ----------------------------------------------------------------------------- checks, diagnostics


def _frame(name: str) -> str:
    n = name.lower()
    return "relative" if n.startswith(("d", "rel", "delta")) or "rel" in n else "absolute"


def check_same_frame(
    track_names: Sequence[str], cell_names: Sequence[str], track_idx: Sequence[int],
    cell_idx: Sequence[int],
) -> None:
    """Raise if tracks and cells give (η, φ) in different frames (e.g. ``deta`` vs ``eta``).

    The attention edges compare track and cell positions directly; one jet-relative and
    one absolute frame would silently connect the wrong constituents.
    """
    for ti, ci in zip(track_idx, cell_idx, strict=True):
        tn, cn = track_names[ti], cell_names[ci]
        if _frame(tn) != _frame(cn):
            raise ValueError(
                f"track column {tn!r} and cell column {cn!r} look like different frames "
                f"({_frame(tn)} vs {_frame(cn)}); proximity edges need both in one frame"
            )


def rank_column(embeddings: Sequence[Tensor]) -> dict[str, float]:
    """``{"val_effective_rank": r}`` of the validation embeddings (batches, as the method
    outputs them), or ``{}`` for fewer than two. Every pre-training validation reports it
    so that the engine can stop a collapsed run (``collapse_rank``); see
    :func:`~jetforge.evaluation.ssl_metrics.embedding_rank`."""
    from jetforge.evaluation.ssl_metrics import embedding_rank  # lazy: evaluation pulls sklearn

    if sum(z.shape[0] for z in embeddings) < 2:
        return {}
    return {"val_effective_rank": embedding_rank(torch.cat(list(embeddings)).numpy())}


@torch.no_grad()
def multi_pair_diagnostics(
    model: nn.Module,
    sampler: MultiPairSampler,
    class_names: Sequence[str],
    classes: Sequence[int],
    device: torch.device,
) -> dict[str, float]:
    """Validation loss terms (``val_<term>``) and the pair diagnostics of §5.1 / Fig. 4a:
    mean cos(y_a, y_b) of positive pairs per class (``cos_pos_<class>``), mean cosine of
    random (negative) pairs within the batch (``cos_neg``) and the mean cosine between
    class means of the unit-normalised view-a embeddings (``cos_class_means``); and
    ``val_effective_rank`` of the view-a embeddings (:func:`rank_column`)."""
    sums: dict[str, float] = {}
    n_terms = 0
    cos, neg, labels, zs, raw = [], [], [], [], []
    for batch in sampler.epoch(0):
        b = batch.to(device)
        if b.labels.shape[0] >= 2:
            for k, v in model(b).items():
                sums[k] = sums.get(k, 0.0) + float(v) * b.labels.shape[0]
            n_terms += b.labels.shape[0]
        y_a, y_b = (y.float() for y in model.embed_pair(b))
        cos.append(F.cosine_similarity(y_a, y_b, dim=1, eps=1e-8).cpu())
        neg.append(F.cosine_similarity(y_a, y_b.roll(1, 0), dim=1, eps=1e-8).cpu())
        zs.append(F.normalize(y_a, dim=1, eps=1e-8).cpu())
        raw.append(y_a.cpu())
        labels.append(b.labels.cpu())
    out = {f"val_{k}": v / n_terms for k, v in sums.items()} if n_terms else {}
    out.update(rank_column(raw))
    if not cos:
        return out
    c, y, z = torch.cat(cos), torch.cat(labels), torch.cat(zs)
    out["cos_neg"] = float(torch.cat(neg).mean())
    means = {}
    for k in classes:
        sel = y == k
        out[f"cos_pos_{class_names[k]}"] = float(c[sel].mean()) if sel.any() else float("nan")
        if sel.any():
            means[k] = z[sel].mean(0)
    ks = sorted(means)
    pair_cos = [
        float(F.cosine_similarity(means[a], means[b], dim=0, eps=1e-8))
        for i, a in enumerate(ks)
        for b in ks[i + 1 :]
    ]
    if pair_cos:
        out["cos_class_means"] = float(np.mean(pair_cos))
    return out


def normalisation_sample(
    h5_path: str, rows: np.ndarray, n_max: int = 20000
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tracks, track mask, cells, cell mask of the first ``n_max`` of the sorted ``rows``
    (contiguous reads, no randomness): the sample that fixes the input standardisation."""
    with h5py.File(h5_path, "r") as f:
        rows = np.sort(np.asarray(rows, np.int64))[:n_max]
        t, tm, c, cm = read_inputs(f, rows, ("particles", "cells"))
    return t, tm, c, cm
