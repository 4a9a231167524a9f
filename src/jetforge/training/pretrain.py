"""Pre-training driver: one :func:`run_pretrain` for every self-supervised method.

A method (``jetforge.methods.METHODS``) names the batches it trains on with its
``sampler`` attribute; everything else -- seeds, validation split, run key, the engine
call, the outputs ``model.pt`` / ``history.csv`` / ``checkpoint.pt`` and resumption --
is shared here:

* ``"pairs"`` (RS3L, arXiv:2403.07066 §II A): each minibatch holds ``batch_size`` nominal
  jets of the configured processes and, for each, one augmentation drawn uniformly from
  the augmentation set (100 + 100 in RS3L); ``forward(x_a, m_a, x_b, m_b)``. After every
  epoch held-out pairs give the validation loss and the convergence diagnostics of RS3L
  Fig. 2 (:func:`pair_diagnostics`): the mean cosine similarity of positive pairs per
  class and the cosine similarity between the class-mean vectors.
* ``"jets"`` (MPM, jBOT, JP-JEPA): batches of single jets, ``forward(x, mask)``; the
  method makes its own views. Nominal jets only by default; ``pretrain.variants: all``
  adds a resimulated dataset's variants as further jets (the validation split is drawn
  per pair, so no variant of a validation jet is trained on). EMA teachers and other
  per-step state are updated through the method's ``on_step`` hook (called by the engine).
* ``"multi_pairs"`` (Rieck et al., hadronization forks): (``fork_a``, ``fork_b``) pairs of
  tracks + calorimeter cells, ``forward(batch)`` on a whole
  :class:`~jetforge.training.multi_data.MultiPairBatch`; ``pretrain.processes`` (null:
  all) and ``pretrain.augset`` (null: every non-nominal variant) select the pairs.

The backbone is built for the file by :func:`build_backbone_for` (input dimensions from
the file, and input standardisations fitted before the first step); the inputs a method
feeds must be the ones the backbone declares (``backbone_inputs``). With
``pretrain.init_backbone`` it then takes a fine-tuning's weights and is frozen except for
the method's fresh parts (Rieck et al. §5.4 hybrids, :mod:`jetforge.training.init_backbone`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.experiment import DEFAULT_AUGSET, NO_AUGSET
from jetforge.generation.seeds import derive_seed
from jetforge.methods import METHODS
from jetforge.models.registry import backbone_inputs, build_backbone_for, save_backbone
from jetforge.training import distributed as D
from jetforge.training.augment_pairs import (
    PAIR_FAMILIES,
    AugmentPairSampler,
    augment_for,
    nominal_rows,
)
from jetforge.training.data import (
    CellsInfo,
    DatasetInfo,
    JetSampler,
    PairSampler,
    balance_pairs,
    resolve_loader_workers,
    select_pairs,
    split_pairs,
)
from jetforge.training.engine import EngineConfig, TrainState, fit, resolve_device
from jetforge.training.init_backbone import init_from_config
from jetforge.training.multi_data import MultiPairSampler, multi_pair_diagnostics, rank_column
from jetforge.training.run_key import LOADER_ONLY_KEYS, to_plain
from jetforge.training.selection import select_jet_rows, subset_mask, subset_pairs

log = logging.getLogger(__name__)

def augset_variants(exp_cfg: Mapping[str, Any], augset: str | None) -> list[str]:
    """Variant names of augmentation set ``augset`` (``pretrain.augsets`` in the config).

    ``"none"`` is the empty set (fine-tuning on nominal jets only); so is the ``default``
    set of an experiment that declares no ``augsets`` (the method's own pairing: single-jet
    methods make their own views, fork pairs take every non-nominal variant). None and
    ``""`` stand for the default set."""
    sets = exp_cfg["pretrain"].get("augsets") or {}
    if augset in (None, "", NO_AUGSET) or (augset == DEFAULT_AUGSET and not sets):
        return []
    if augset not in sets:
        raise KeyError(f"augset {augset!r} not in pretrain.augsets (have {sorted(sets)})")
    return list(sets[augset])


@torch.no_grad()
def pair_diagnostics(
    model: nn.Module,
    sampler: PairSampler,
    class_names: list[str],
    classes: list[int],
    device: torch.device,
) -> dict[str, float]:
    """Validation loss and RS3L Fig. 2 diagnostics over all pairs of ``sampler``.

    ``val_effective_rank``: :func:`~jetforge.evaluation.ssl_metrics.embedding_rank` of the
    nominal embeddings (the engine's collapse test).
    ``cos_pos_<class>``: mean cos(z_nominal, z_augmented) of the class's pairs.
    ``cos_class_means``: cosine between class means of the unit-normalised nominal
    embeddings (the loss only sees directions, so directions are averaged); with more
    than two classes, the mean over class pairs (each also logged as
    ``cos_means_<a>_<b>``).
    """
    loss_sum, loss_n = 0.0, 0
    cos, labels, zs, raw = [], [], [], []
    for batch in sampler.epoch(0):
        b = batch.to(device)
        z_a, z_b = model.embed_pair(b.x_a, b.m_a, b.x_b, b.m_b)
        z_a, z_b = z_a.float(), z_b.float()
        if z_a.shape[0] >= 2:
            loss_sum += float(model.loss_from_embeddings(z_a, z_b)["loss"]) * z_a.shape[0]
            loss_n += z_a.shape[0]
        cos.append(F.cosine_similarity(z_a, z_b, dim=1, eps=1e-8).cpu())
        zs.append(F.normalize(z_a, dim=1, eps=1e-8).cpu())
        raw.append(z_a.cpu())
        labels.append(b.labels.cpu())
    out: dict[str, float] = {"val_loss": loss_sum / loss_n if loss_n else float("nan")}
    out.update(rank_column(raw))
    if not cos:
        return out
    c, y, z = torch.cat(cos), torch.cat(labels), torch.cat(zs)
    means = {}
    for k in classes:
        sel = y == k
        out[f"cos_pos_{class_names[k]}"] = float(c[sel].mean()) if sel.any() else float("nan")
        means[k] = z[sel].mean(0) if sel.any() else None
    pair_cos = []
    for i, a in enumerate(classes):
        for b_ in classes[i + 1 :]:
            ma, mb = means[a], means[b_]
            v = (
                float(F.cosine_similarity(ma, mb, dim=0, eps=1e-8))
                if ma is not None and mb is not None
                else float("nan")
            )
            pair_cos.append(v)
            if len(classes) > 2:
                out[f"cos_means_{class_names[a]}_{class_names[b_]}"] = v
    if pair_cos:
        out["cos_class_means"] = float(np.mean(pair_cos))
    return out


@torch.no_grad()
def jet_diagnostics(
    model: nn.Module,
    sampler: JetSampler,
    class_names: Sequence[str],
    classes: Sequence[int],
    device: torch.device,
) -> dict[str, float]:
    """Validation of a single-jet method: the jet-weighted mean of each loss term
    (``val_<term>``) over all jets of ``sampler`` and, when the method has a ``backbone``
    (the encoder it trains), the ``val_effective_rank`` of its jet embeddings."""
    totals: dict[str, float] = {}
    n = 0
    backbone = getattr(model, "backbone", None)
    zs = []
    for b in sampler.epoch(0):
        b = b.to(device)
        for k, v in model(b.x, b.mask).items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(b)
        n += len(b)
        if backbone is not None:
            zs.append(backbone(b.x, b.mask).float().cpu())
    return {**{f"val_{k}": v / max(n, 1) for k, v in totals.items()}, **rank_column(zs)}


@dataclass
class _Data:
    """What one sampler kind decides: the training / validation items, how to batch them,
    and its entries of the seeds, run key and ``model.pt``."""

    tag: str  # seeds and progress label: derive_seed("pretrain", tag, repeat, ...)
    unit: str  # "pairs" | "jets", for messages
    processes: list[str] | None
    train: np.ndarray
    val: np.ndarray
    # (items, batch, seed, training, **loader options: workers, pin_memory)
    sampler: Callable[..., Any]
    norm_rows: np.ndarray  # training rows (fit of input standardisations)
    key: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def _subset_meta(pcfg: Mapping[str, Any], train: np.ndarray) -> dict[str, Any]:
    """``model.pt`` entries saying which jets were pre-trained on, so tables can name the
    subset (``pretrain.subset``, JP-JEPA Table 3's 5 %) and the training count it gave."""
    subset = pcfg.get("subset")
    return {"subset": None if subset is None else float(subset), "n_train_items": int(train.size)}


def _pair_rows(pairs: np.ndarray, n_variants: int) -> np.ndarray:
    return (pairs[:, None] * n_variants + np.arange(n_variants)).ravel()


def _pairs(
    h5: str, info: DatasetInfo, exp_cfg: Mapping[str, Any], augset: Any, method: str, seed: int
) -> _Data:
    """RS3L pairs: nominal jet + one variant of ``pretrain.augsets[augset]``; with
    ``pretrain.pairs: augment`` the same nominal jets paired by jBOT's augmentations
    (:mod:`jetforge.training.augment_pairs`)."""
    pcfg = exp_cfg["pretrain"]
    variants = augset_variants(exp_cfg, augset)
    family = pcfg.get("pairs", "variants")
    if family not in PAIR_FAMILIES:
        raise ValueError(f"config key pretrain.pairs: value {family!r} must be one of "
                         f"{list(PAIR_FAMILIES)}")  # fmt: skip
    if family == "variants" and info.n_variants < 2:
        raise ValueError(f"{h5} has no augmentation variants (variant_names={info.variant_names})")
    processes = list(pcfg["processes"])
    pairs = subset_pairs(h5, select_pairs(h5, processes), pcfg.get("subset"))
    if pcfg.get("balance", False):
        pairs = balance_pairs(h5, pairs, derive_seed("pretrain", "balance", base=seed))
    train, val = split_pairs(
        pairs,
        float(pcfg.get("val_fraction", 0.0)),
        derive_seed("pretrain", "val-split", base=seed),
    )
    if family == "augment":
        return _augment_pairs(h5, info, pcfg, augset, processes, train, val)

    def sampler(items: np.ndarray, bs: int, s: int, training: bool, **kw: Any) -> PairSampler:
        return PairSampler(h5, processes, variants, bs, s, pairs=items, drop_last=training, **kw)

    return _Data(
        augset, "pairs", processes, train, val, sampler, _pair_rows(train, info.n_variants),
        key={"augset": augset, "variants": variants, "n_train_pairs": int(train.size)},
        meta={"augset": augset, "variants": variants, **_subset_meta(pcfg, train)},
    )  # fmt: skip


def _augment_pairs(
    h5: str, info: DatasetInfo, pcfg: Mapping[str, Any], augset: Any, processes: list[str],
    train: np.ndarray, val: np.ndarray,
) -> _Data:  # fmt: skip
    """The selected pairs' nominal jets, each batch paired by jBOT's augmentations."""
    augment, views = augment_for(pcfg, info.feature_names)

    def sampler(items: np.ndarray, bs: int, s: int, training: bool, **kw: Any) -> Any:
        rows, labels = nominal_rows(h5, info, items)
        jets = JetSampler(h5, rows, labels, bs, s, shuffle=training, drop_last=training, **kw)
        return AugmentPairSampler(jets, augment, views, s)

    return _Data(
        augset, "pairs", processes, train, val, sampler, train * info.n_variants,
        key={"augset": augset, "pairs": "augment", "augment_views": views,
             "n_train_pairs": int(train.size)},
        meta={"augset": augset, "pairs": "augment", "augment_views": views, "variants": [],
              **_subset_meta(pcfg, train)},
    )  # fmt: skip


def _multi_pairs(
    h5: str, info: DatasetInfo, exp_cfg: Mapping[str, Any], augset: Any, method: str, seed: int
) -> _Data:
    """Fork pairs of tracks + cells: ``fork_a`` + one variant of ``pretrain.augset``."""
    pcfg = exp_cfg["pretrain"]
    if info.n_variants < 2:
        raise ValueError(f"{h5} has no second variant (variant_names={info.variant_names})")
    variants = list(augset_variants(exp_cfg, augset) or info.variant_names[1:])
    processes = list(pcfg.get("processes") or info.process_names)
    train, val = split_pairs(
        subset_pairs(h5, select_pairs(h5, processes), pcfg.get("subset")),
        float(pcfg.get("val_fraction", 0.0)),
        derive_seed("pretrain", "val-split", base=seed),
    )

    def sampler(items: np.ndarray, bs: int, s: int, training: bool, **kw: Any) -> MultiPairSampler:
        return MultiPairSampler(
            h5, processes, variants, bs, s, pairs=items, drop_last=training, **kw
        )

    return _Data(
        method, "pairs", processes, train, val, sampler, _pair_rows(train, info.n_variants),
        key={"method": method, "variants": variants, "n_train_pairs": int(train.size)},
        meta={"variants": variants, **_subset_meta(pcfg, train)},
    )  # fmt: skip


def _jets(
    h5: str, info: DatasetInfo, exp_cfg: Mapping[str, Any], augset: Any, method: str, seed: int
) -> _Data:
    """Single jets of ``pretrain.processes`` (None: all), nominal or all variants."""
    pcfg = exp_cfg["pretrain"]
    which = pcfg.get("variants", "nominal")
    if which not in ("nominal", "all"):
        raise ValueError(f"pretrain.variants must be 'nominal' or 'all', got {which!r}")
    variants = list(info.variant_names[:1] if which == "nominal" else info.variant_names)
    processes = pcfg.get("processes")
    rows, labels = select_jet_rows(h5, processes, variants)
    kept = subset_mask(h5, rows, pcfg.get("subset"))  # the same jets in every run
    rows, labels = rows[kept], labels[kept]
    # one draw per pair, shared by its variants (nominal only: one draw per row)
    pair_of, first = np.unique(rows // info.n_variants, return_inverse=True)
    rng = np.random.default_rng(derive_seed("pretrain", "val-split", base=seed))
    is_val = (rng.random(pair_of.size) < float(pcfg.get("val_fraction", 0.0)))[first]
    train, val = np.flatnonzero(~is_val), np.flatnonzero(is_val)

    def sampler(items: np.ndarray, bs: int, s: int, training: bool, **kw: Any) -> JetSampler:
        if training:
            return JetSampler(h5, rows[items], labels[items], bs, s, drop_last=True, **kw)
        return JetSampler(h5, rows[items], labels[items], bs, s, shuffle=False, **kw)

    return _Data(
        method, "jets", processes, train, val, sampler, rows[train],
        key={"method": method, "n_train": int(train.size)},
        meta={"variants": variants, **_subset_meta(pcfg, train)},
    )  # fmt: skip


def _pair_loss(m: nn.Module, b: Any) -> dict[str, Tensor]:
    """Contrastive loss of a pair batch; under torch.distributed on the embeddings of the
    whole global batch (every rank's negatives), see :mod:`jetforge.training.distributed`."""
    if D.world() == 1:
        return m(b.x_a, b.m_a, b.x_b, b.m_b)
    z_a, z_b = m.embed_pair(b.x_a, b.m_a, b.x_b, b.m_b)
    return m.loss_from_embeddings(D.gather(z_a), D.gather(z_b))


#: method ``sampler`` -> (items and batching, loss of one batch, validation, inputs fed)
SAMPLERS: dict[str, tuple[Callable[..., _Data], Callable[..., Any], Callable[..., Any], tuple]] = {
    "pairs": (_pairs, _pair_loss, pair_diagnostics, ("particles",)),
    "jets": (_jets, lambda m, b: m(b.x, b.mask), jet_diagnostics, ("particles",)),
    "multi_pairs": (
        _multi_pairs, lambda m, b: m(b), multi_pair_diagnostics, ("particles", "cells")
    ),
}  # fmt: skip


def _what(inputs: Sequence[str]) -> str:
    return "tracks + cells" if "cells" in inputs else "particles only"


def method_sampler(method: str, backbone_takes: Sequence[str]) -> str:
    """The sampler a method trains on with a backbone taking ``backbone_takes``.

    A method's ``sampler`` is one name of :data:`SAMPLERS` or a tuple of them (pair
    methods: ``("pairs", "multi_pairs")``, :mod:`jetforge.methods.pair_batch`); the one
    whose fed inputs are the backbone's is chosen, so the same objective trains on
    particle pairs or on tracks + cells pairs, whichever the backbone reads.
    """
    declared = getattr(METHODS[method], "sampler", "pairs")
    kinds = (declared,) if isinstance(declared, str) else tuple(declared)
    unknown = [k for k in kinds if k not in SAMPLERS]
    if unknown:
        raise ValueError(
            f"method {method!r} has unknown sampler {unknown} (have {sorted(SAMPLERS)})"
        )
    takes = tuple(backbone_takes)
    for kind in kinds:
        if SAMPLERS[kind][3] == takes:
            return kind
    fed = [list(SAMPLERS[k][3]) for k in kinds]
    raise ValueError(
        f"method {method!r} feeds {' or '.join(_what(SAMPLERS[k][3]) for k in kinds)} {fed} "
        f"but the backbone takes {_what(takes)} {list(takes)}"
    )


#: the backbone after N epochs (``pretrain.snapshot_epochs``), beside model.pt
SNAPSHOT = "snapshots/epoch{epoch}.pt"


def _snapshotter(
    out: Path, backbone: nn.Module, cfg: Mapping[str, Any], meta: Mapping[str, Any],
    epochs: Sequence[int] | None,
) -> Callable[[int], None]:  # fmt: skip
    """Writes the backbone as a ``model.pt`` (:data:`SNAPSHOT`) after each epoch count in
    ``epochs`` (0: the initialisation), so a figure can embed jets at several stages of a
    pre-training (jBOT, Tsoi & Rankin, arXiv:2601.11719, Fig. 6). Atomic, and written
    before the epoch's checkpoint: a resumed run rewrites the same bytes."""
    wanted = {int(e) for e in epochs or []}

    def snapshot(done: int) -> None:
        if done in wanted and D.rank() == 0:
            save_backbone(out / SNAPSHOT.format(epoch=done), backbone, cfg, **meta)

    return snapshot


def run_pretrain(
    train_h5: str,
    out_dir: str,
    exp_cfg: Mapping[str, Any],
    augset: str | None,
    repeat: int,
    seed: int,
    device: str = "auto",
    *,
    after_step: Callable[[TrainState], None] | None = None,
) -> None:
    """Pre-train a backbone with the configured method; write ``model.pt``, ``history.csv``
    and ``checkpoint.pt`` into ``out_dir`` (data contract, format 5).

    ``exp_cfg`` is one ``experiments.<name>`` block (``backbone`` + ``pretrain``).
    ``augset`` names the augmentation set of ``"pairs"`` methods (unused by the others).
    ``repeat`` and the global ``seed`` give the initialisation and data order; the
    validation split depends on ``seed`` only, so repeats are validated on the same jets.
    Re-running after a kill resumes from ``checkpoint.pt``. ``after_step`` is a test hook.
    """
    pcfg, bcfg = exp_cfg["pretrain"], exp_cfg["backbone"]
    method = pcfg.get("method", "simclr")
    if method not in METHODS:
        raise KeyError(f"unknown pre-training method {method!r}; registered: {sorted(METHODS)}")
    takes = backbone_inputs(bcfg)
    try:
        kind = method_sampler(method, takes)
    except ValueError as err:
        raise ValueError(f"{err} (backbone {bcfg.get('name')!r})") from None
    select, loss_fn, diagnostics, _ = SAMPLERS[kind]
    dev = resolve_device(D.init_from_env(device))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = DatasetInfo.read(train_h5)
    data = select(train_h5, info, exp_cfg, augset, method, seed)
    bs = int(pcfg["batch_size"])  # global: split over the ranks of a multi-GPU run
    if bs % D.world():
        raise ValueError(f"pretrain.batch_size={bs} does not split over {D.world()} GPUs")
    if data.train.size < bs:
        raise ValueError(
            f"only {data.train.size} training {data.unit} of {data.processes or 'all processes'} "
            f"in {train_h5}, fewer than batch_size={bs}"
        )

    torch.manual_seed(derive_seed("pretrain", data.tag, repeat, "init", base=seed))
    backbone, bb_cfg = build_backbone_for(
        bcfg, train_h5, data.norm_rows, int(pcfg.get("norm_jets", 20000))
    )
    model = METHODS[method].from_config(backbone, pcfg)
    # Rieck et al. §5.4 hybrids: a fine-tuned backbone, frozen, under the method's fresh parts
    init_key = init_from_config(model, pcfg, bb_cfg)
    model = model.to(dev)
    # a method may change the backbone it wraps (MPM's quantized inputs): saved config too
    bb_cfg = {**bb_cfg, **getattr(model, "backbone_cfg_updates", {})}

    if D.world() > 1:  # same init on every rank, then each rank its own random views
        torch.manual_seed(derive_seed("pretrain", data.tag, repeat, "rank", D.rank(), base=seed))
    data_seed = derive_seed("pretrain", data.tag, repeat, "data", base=seed)
    # loader worker processes for the training batches (validation: one small pass per
    # epoch, not worth starting processes for); batches are identical for any number
    train = data.sampler(
        data.train, bs, data_seed, True,
        workers=resolve_loader_workers(pcfg.get("loader_workers"), dev),
        pin_memory=dev.type == "cuda",
    )  # fmt: skip
    val = None
    if data.val.size >= 2:
        val = data.sampler(data.val, bs, derive_seed("pretrain", data.tag, "val", base=seed), False)
    present = sorted(
        {int(v) for v in np.unique(train.labels)}
        | ({int(v) for v in np.unique(val.labels)} if val is not None else set())
    )

    def evaluate(m: nn.Module, epoch: int) -> dict[str, float]:
        return diagnostics(m, val, info.class_names, present, dev)

    run_key = to_plain(
        {"stage": "pretrain", **data.key, "repeat": repeat, "seed": seed, "backbone": bb_cfg,
         "pretrain": {k: v for k, v in pcfg.items() if k not in LOADER_ONLY_KEYS}, **init_key}
    )  # fmt: skip
    meta = dict(data.meta)
    if "cells" in takes:
        meta["cells_feature_names"] = CellsInfo.read(train_h5).feature_names
    meta |= {"method": method, "repeat": repeat, "seed": seed,
             "feature_names": info.feature_names, "class_names": info.class_names,
             "processes": data.processes, "pretrain_cfg": to_plain(pcfg)}  # fmt: skip
    snapshot = _snapshotter(out, backbone, bb_cfg, meta, pcfg.get("snapshot_epochs"))
    snapshot(0)  # the initialisation itself, if asked for
    try:
        fit(
            model, [{"params": [p for p in model.parameters() if p.requires_grad]}], loss_fn,
            lambda e, s: D.sharded(train.epoch(e, s)), len(train), EngineConfig.from_dict(pcfg),
            dev, out / "checkpoint.pt",
            out / "history.csv", evaluate=evaluate if val is not None else None,
            run_key=run_key, after_step=after_step, desc=f"pretrain[{data.tag} r{repeat}]",
            epoch_end=snapshot,
        )  # fmt: skip
    finally:
        train.close()
        if val is not None:
            val.close()
    if D.rank() != 0:
        return
    save_backbone(out / "model.pt", backbone, bb_cfg, **meta)
    log.info("wrote %s", out / "model.pt")
