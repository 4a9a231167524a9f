"""Tracks + calorimeter cells: batches, sampler and pre-training driver (seed 001, §3-§4).

The hadronization-fork dataset (Rieck et al. §3) is data contract 4 with V = 2 variants
(``fork_a``, ``fork_b``; row ``2*pair + v``) where ``particles``/``mask`` hold the
jet's charged-particle **tracks** and two extra datasets hold its **calorimeter cells**:
``cells`` float32 ``[N, C, F_c]`` (attr ``cells_feature_names``, E, η, φ, layer) and
``cells_mask`` bool ``[N, C]``. The samplers of :mod:`jetforge.training.data` read
``particles``/``mask`` only; :class:`MultiPairSampler` is the same block-shuffled,
resumable pair sampler (it subclasses :class:`~jetforge.training.data.PairSampler`, so
pair selection, validation split and the per-(seed, epoch) order are identical) that also
delivers the cells of both views. A file without cells yields one padded, all-masked
cell slot per jet, so track-only files still run (the backbone then sees tracks only).

Why the driver is here and not in ``pretrain.py``: ``run_pretrain`` calls pair methods
as ``forward(x_a, m_a, x_b, m_b)``; the two-input backbone needs eight tensors per
batch, so methods with ``sampler = "multi_pairs"`` take the whole
:class:`MultiPairBatch` and are trained by :func:`run_pretrain_multi`, which otherwise
mirrors ``run_pretrain`` (same seeds, split, run key, engine, outputs, format 5).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.generation.seeds import derive_seed
from jetforge.training.data import (
    DatasetInfo,
    PairSampler,
    _Batch,
    _names,
    _trimmed,
    block_shuffle,
    read_rows,
    select_pairs,
    split_pairs,
    stream_batches,
)
from jetforge.training.engine import EngineConfig, TrainState, fit, resolve_device

log = logging.getLogger(__name__)

#: cell columns assumed when a file has no ``cells`` (the contract's order)
DEFAULT_CELL_FEATURES = ["E", "eta", "phi", "layer"]


@dataclass(frozen=True)
class CellsInfo:
    """Whether a file has calorimeter cells, and their shape and column names."""

    present: bool
    n_cells: int
    feature_names: list[str]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @classmethod
    def read(cls, path: str) -> CellsInfo:
        with h5py.File(path, "r") as f:
            if "cells" not in f:
                return cls(False, 0, list(DEFAULT_CELL_FEATURES))
            if "cells_mask" not in f or "cells_feature_names" not in f.attrs:
                raise ValueError(f"{path} has 'cells' but no 'cells_mask' / cells_feature_names")
            n, c, fc = f["cells"].shape
            names = _names(f.attrs["cells_feature_names"])
            if n != f["particles"].shape[0] or f["cells_mask"].shape != (n, c) or len(names) != fc:
                raise ValueError(
                    f"{path}: cells {f['cells'].shape}, cells_mask {f['cells_mask'].shape}, "
                    f"{len(names)} cells_feature_names do not match {n} rows"
                )
        return cls(True, c, names)


def read_multi(
    f: h5py.File, rows: np.ndarray, cells: CellsInfo
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tracks, track mask, cells, cell mask of arbitrary rows (any order, duplicates ok)."""
    uniq, inv = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
    t = read_rows(f["particles"], uniq)[inv]
    tm = read_rows(f["mask"], uniq).astype(bool, copy=False)[inv]
    if cells.present:
        c = read_rows(f["cells"], uniq)[inv]
        cm = read_rows(f["cells_mask"], uniq).astype(bool, copy=False)[inv]
    else:
        c = np.zeros((len(inv), 1, cells.n_features), np.float32)
        cm = np.zeros((len(inv), 1), bool)
    return t, tm, c, cm


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

    def __init__(self, h5_path: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(h5_path, *args, **kwargs)
        self.cells = CellsInfo.read(h5_path)

    def epoch(  # type: ignore[override]
        self, epoch: int, start_batch: int = 0
    ) -> Iterator[MultiPairBatch]:
        """Batches of epoch ``epoch``: the rows of :meth:`PairSampler.epoch`, plus cells."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        n = self._n_items()
        aug = self.aug_variants[rng.integers(self.aug_variants.size, size=n)]
        if self.shuffle:
            buffers = block_shuffle(n, rng, self.block_pairs, self.buffer_blocks)
        else:
            step = self.block_pairs * self.buffer_blocks
            buffers = [np.arange(s, min(s + step, n)) for s in range(0, n, step)]
        V = self.info.n_variants

        def load(items: np.ndarray) -> dict[str, np.ndarray]:
            base = self.pairs[items] * V
            rows = np.concatenate([base + self.nominal_variant, base + aug[items]])
            t, tm, c, cm = read_multi(self.file, rows, self.cells)
            k = items.size
            out = {"labels": self.labels[items]}
            for v, s in (("a", slice(0, k)), ("b", slice(k, None))):
                out |= {f"t_{v}": t[s], f"tm_{v}": tm[s], f"c_{v}": c[s], f"cm_{v}": cm[s]}
            return out

        for d in stream_batches(
            buffers, load, self.batch_size, self.drop_last, start_batch, self.prefetch
        ):
            ta, tma = _trimmed(d["t_a"], d["tm_a"])
            ca, cma = _trimmed(d["c_a"], d["cm_a"])
            tb, tmb = _trimmed(d["t_b"], d["tm_b"])
            cb, cmb = _trimmed(d["c_b"], d["cm_b"])
            labels = torch.from_numpy(d["labels"].astype(np.int64))
            yield MultiPairBatch(ta, tma, ca, cma, tb, tmb, cb, cmb, labels)


def iter_multi_rows(
    f: h5py.File, rows: np.ndarray, cells: CellsInfo, chunk: int = 1024
) -> Iterator[tuple[np.ndarray, Tensor, Tensor, Tensor, Tensor]]:
    """Sequential inference batches over sorted ``rows``: ``(rows, t, tm, c, cm)``."""
    rows = np.sort(np.asarray(rows, np.int64))
    for s in range(0, rows.size, chunk):
        r = rows[s : s + chunk]
        t, tm, c, cm = read_multi(f, r, cells)
        yield (r, *_trimmed(t, tm), *_trimmed(c, cm))


@torch.no_grad()
def embed_rows(
    backbone: nn.Module,
    h5_path: str,
    rows: np.ndarray,
    device: str | torch.device = "cpu",
    chunk: int = 512,
    representation: str = "y",
) -> np.ndarray:
    """Frozen embeddings ``[len(rows), D]`` (float32, eval mode), in the order of ``rows``.

    ``representation``: ``"y"`` = the 8-d output (§5.1-5.2), ``"x"`` = the pooled
    transformer output (the anomaly autoencoder's input, §5.5).
    """
    if representation not in ("x", "y"):
        raise ValueError(f"representation must be 'x' or 'y', got {representation!r}")
    dev = torch.device(device)
    fn = backbone.represent if representation == "x" else backbone
    was_training = backbone.training
    backbone.eval()
    rows = np.asarray(rows, np.int64)
    uniq, inv = np.unique(rows, return_inverse=True)
    out: list[np.ndarray] = []
    with h5py.File(h5_path, "r") as f:
        for _, *tensors in iter_multi_rows(f, uniq, CellsInfo.read(h5_path), chunk):
            out.append(fn(*(x.to(dev) for x in tensors)).float().cpu().numpy())
    backbone.train(was_training)
    dim = backbone.width if representation == "x" else backbone.embed_dim
    z = np.concatenate(out) if out else np.zeros((0, dim), np.float32)
    return z[inv]


# ----------------------------------------------------------------------------- training


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
    class means of the unit-normalised view-a embeddings (``cos_class_means``)."""
    sums: dict[str, float] = {}
    n_terms = 0
    cos, neg, labels, zs = [], [], [], []
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
        labels.append(b.labels.cpu())
    out = {f"val_{k}": v / n_terms for k, v in sums.items()} if n_terms else {}
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
    h5_path: str, rows: np.ndarray, cells: CellsInfo, n_max: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first ``n_max`` of the sorted ``rows`` (contiguous reads, no randomness)."""
    with h5py.File(h5_path, "r") as f:
        return read_multi(f, np.sort(np.asarray(rows, np.int64))[:n_max], cells)


def run_pretrain_multi(
    train_h5: str,
    out_dir: str,
    exp_cfg: Mapping[str, Any],
    repeat: int,
    seed: int,
    device: str = "auto",
    *,
    after_step: Callable[[TrainState], None] | None = None,
) -> None:
    """Pre-train a ``multi_pairs`` method on a tracks + cells pair file; write
    ``model.pt``, ``history.csv``, ``checkpoint.pt`` into ``out_dir`` (contract 5).

    ``exp_cfg`` has ``backbone`` and ``pretrain`` blocks (config/paper/hadfork.yaml).
    ``pretrain.processes`` (null: all) and ``pretrain.augset`` (null: every non-nominal
    variant, i.e. ``fork_b``) select the pairs; ``norm_jets`` training jets fix the
    input standardisation before the first step. Seeds, validation split, run key and
    resume behaviour follow :func:`jetforge.training.pretrain.run_pretrain`.
    """
    from jetforge.methods import METHODS
    from jetforge.models.cells_tracks import CellsTracksNet, fit_normalisation
    from jetforge.models.registry import backbone_config, build_backbone, save_backbone
    from jetforge.training.pretrain import to_plain

    pcfg, bcfg = dict(exp_cfg["pretrain"]), dict(exp_cfg["backbone"])
    method = pcfg.get("method")
    if method not in METHODS:
        raise KeyError(f"unknown pre-training method {method!r}; registered: {sorted(METHODS)}")
    if getattr(METHODS[method], "sampler", "pairs") != "multi_pairs":
        raise ValueError(f"method {method!r} does not take tracks + cells pair batches")
    dev = resolve_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info, cells = DatasetInfo.read(train_h5), CellsInfo.read(train_h5)
    if info.n_variants < 2:
        raise ValueError(f"{train_h5} has no second variant (variant_names={info.variant_names})")
    variants = list(pcfg.get("augset") or info.variant_names[1:])
    processes = list(pcfg.get("processes") or info.process_names)
    pairs = select_pairs(train_h5, processes)
    train_pairs, val_pairs = split_pairs(
        pairs, float(pcfg.get("val_fraction", 0.0)), derive_seed("pretrain", "val-split", base=seed)
    )
    bs = int(pcfg["batch_size"])
    if train_pairs.size < bs:
        raise ValueError(
            f"only {train_pairs.size} training pairs of {processes} in {train_h5}, "
            f"fewer than batch_size={bs}"
        )

    torch.manual_seed(derive_seed("pretrain", method, repeat, "init", base=seed))
    bb_cfg = backbone_config(bcfg)
    bb_cfg.pop("in_dim", None)
    bb_cfg["track_dim"], bb_cfg["cell_dim"] = info.n_features, cells.n_features
    backbone = build_backbone(bb_cfg)
    if isinstance(backbone, CellsTracksNet):
        check_same_frame(
            info.feature_names, cells.feature_names, backbone.track_eta_phi, backbone.cell_eta_phi
        )
        V = info.n_variants
        norm_rows = np.concatenate([train_pairs * V, train_pairs * V + 1])
        n_norm = int(pcfg.get("norm_jets", 20000))
        fit_normalisation(backbone, *normalisation_sample(train_h5, norm_rows, cells, n_norm))
    model = METHODS[method].from_config(backbone, pcfg).to(dev)

    data_seed = derive_seed("pretrain", method, repeat, "data", base=seed)
    train = MultiPairSampler(train_h5, processes, variants, bs, data_seed, pairs=train_pairs)
    val = None
    if val_pairs.size >= 2:
        val = MultiPairSampler(
            train_h5, processes, variants, bs, derive_seed("pretrain", method, "val", base=seed),
            pairs=val_pairs, drop_last=False,
        )
    present = sorted(
        {int(v) for v in np.unique(train.labels)}
        | ({int(v) for v in np.unique(val.labels)} if val else set())
    )

    def loss_fn(m: nn.Module, b: MultiPairBatch) -> Mapping[str, Tensor]:
        return m(b)

    def evaluate(m: nn.Module, epoch: int) -> dict[str, float]:
        assert val is not None
        return multi_pair_diagnostics(m, val, info.class_names, present, dev)

    run_key = to_plain(
        {"stage": "pretrain", "method": method, "variants": variants, "repeat": repeat,
         "seed": seed, "backbone": bb_cfg, "pretrain": pcfg, "n_train_pairs": int(train_pairs.size)}
    )
    try:
        fit(
            model, [{"params": [p for p in model.parameters() if p.requires_grad]}], loss_fn,
            train.epoch, len(train), EngineConfig.from_dict(pcfg), dev, out / "checkpoint.pt",
            out / "history.csv", evaluate=evaluate if val is not None else None,
            run_key=run_key, after_step=after_step, desc=f"pretrain[{method} r{repeat}]",
        )
    finally:
        train.close()
        if val is not None:
            val.close()
    save_backbone(
        out / "model.pt", backbone, bb_cfg, method=method, variants=variants, repeat=repeat,
        seed=seed, feature_names=info.feature_names, cells_feature_names=cells.feature_names,
        class_names=info.class_names, processes=processes, pretrain_cfg=to_plain(pcfg),
    )
    log.info("wrote %s", out / "model.pt")
