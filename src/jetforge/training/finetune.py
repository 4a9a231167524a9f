"""Fine-tuning and fully-supervised training (RS3L arXiv:2403.07066, §II D and §III B).

The classifier is the backbone plus "one additional fully-connected layer with 8 input
dimensions and a single sigmoid activation function at the output" (§II D). Modes:

* ``fixed``: RS3L backbone loaded and frozen (eval mode, no gradients); only the head
  trains;
* ``floating``: RS3L backbone loaded as a hot start; everything trains, the backbone
  with its own learning rate ``lr_backbone``;
* ``lora`` (Rieck et al. §4, §6): backbone frozen, every linear layer adapted by a rank
  ``lora_rank`` update (default 1, the paper's) scaled by ``lora_alpha / lora_rank``
  (:mod:`jetforge.models.lora`), trained with the head at ``lr_lora`` (default ``lr``);
* ``supervised``: the same architecture from random initialisation.

All modes train on the nominal jets plus the augmentation variants of the chosen
augmentation set ("a sample comprising the same types of augmentations used for training
the respective RS3L space", §III B), with ``n_train`` jets drawn once per (task, augset,
n_train) from the labelled split, so fixed/floating/supervised and all repeats see the
same labelled jets and differ only in what the comparison is about.

The sigmoid is folded into the loss (``BCEWithLogits`` is the numerically stable form of
sigmoid + BCE); written scores are sigmoid outputs.

Generalisations for later papers (jBOT, Tsoi & Rankin §4.4; defaults keep RS3L's
behaviour exactly):

* **Multi-class tasks.** A task given as ``{classes: [proc_a, proc_b, ...]}`` (instead of
  ``{signal, background}``) trains a softmax head with one logit per class and
  cross-entropy; labels are indices into that list, written scores are the softmax
  probabilities ``[N, C]`` (attr ``classes``).
* **MLP head.** ``head_hidden_mult: [2, 1]`` puts GELU hidden layers of 2 D and D units
  (D = backbone width) with dropout ``head_dropout`` before the output layer (jBOT
  Table 1 "classifier head: two hidden layers 2 d_model, d_model"; the authors' code uses
  dropout 0.2). Empty (default): RS3L's single linear layer.
* **Layer-wise learning-rate decay** (``llrd: <factor>``, jBOT §4.4, BEiT [40]) in
  ``floating`` mode for backbones exposing ``layer_groups()`` (input -> output, e.g. the
  ViT): the head trains at ``lr``, the last backbone group at ``lr * factor``, each
  earlier one a further factor lower (the embedding at ``lr * factor^n_groups``), so the
  pre-trained early layers move least. ``lr_backbone`` is then unused. jBOT scans
  factors 0.6-0.8 and base rates 4e-5-2e-3. (The authors' code gives the last block the
  head's rate; we follow the paper's text, "the classifier head receives the largest
  learning rate".)
* :func:`finetune_vs_scratch` trains ``floating`` (pre-trained) and ``supervised`` (same
  architecture, random init) on the *same* labelled subset (the subset depends on task,
  augset, n_train and seed only, never on the mode) and returns both test metrics.

Any backbone of the registry: the batches and :func:`predict` carry exactly the inputs
the backbone declares (``backbone_inputs``; e.g. tracks + calorimeter cells for the
Rieck et al. ``cells_tracks`` backbone on hadronization-fork files), and the ``supervised``
backbone is built for the training file by
:func:`~jetforge.models.registry.build_backbone_for` (input dimensions, and the input
standardisations a pre-training would fit, from the labelled training jets).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetforge.generation.seeds import derive_seed
from jetforge.io.atomic import atomic_path
from jetforge.models.registry import (
    backbone_inputs,
    build_backbone_for,
    eval_chunk,
    load_backbone,
)
from jetforge.training.data import (
    DatasetInfo,
    JetSampler,
    check_model_features,
    iter_rows,
    read_column,
    resolve_loader_workers,
    select_labelled_rows,
    subsample,
)
from jetforge.training.engine import EngineConfig, TrainState, fit, resolve_device
from jetforge.training.pretrain import augset_variants
from jetforge.training.run_key import LOADER_ONLY_KEYS, file_sha256, to_plain
from jetforge.training.selection import select_class_rows
from jetforge.training.weak import n_signal as weak_n_signal
from jetforge.training.weak import weak_draw

log = logging.getLogger(__name__)

MODES = ("fixed", "floating", "lora", "supervised")
#: jets/* columns copied into predictions.h5 (data contract, format 5)
PREDICTION_COLUMNS = ("variant", "process", "parton_pid", "pair_id", "n2")


class Classifier(nn.Module):
    """Backbone + head returning logits ``[B]`` (``n_out = 1``) or ``[B, n_out]``.

    ``frozen`` = the ``fixed`` mode. ``hidden``: widths of GELU hidden layers (with
    ``dropout``) before the output layer; empty = RS3L's single ``Linear(D -> 1)``.
    ``forward`` takes what the backbone takes (``inputs``, e.g. ``(x, mask)``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        frozen: bool = False,
        n_out: int = 1,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        #: the backbone's inputs (datasets read per jet), forwarded unchanged
        self.inputs = backbone_inputs(backbone)
        #: the backbone's inference chunk cap (registry.eval_chunk), forwarded likewise
        self.max_eval_jets = getattr(backbone, "max_eval_jets", None)
        self.n_out = int(n_out)
        dims = [int(backbone.embed_dim), *(int(h) for h in hidden)]
        if not hidden:
            self.head: nn.Module = nn.Linear(dims[0], self.n_out)
        else:
            layers: list[nn.Module] = []
            for a, b in itertools.pairwise(dims):
                layers += [nn.Linear(a, b), nn.GELU(), nn.Dropout(dropout)]
            self.head = nn.Sequential(*layers, nn.Linear(dims[-1], self.n_out))
        self.frozen = frozen
        if frozen:
            backbone.requires_grad_(False)
            backbone.eval()

    def train(self, mode: bool = True) -> Classifier:
        """Like ``nn.Module.train`` but a frozen backbone always stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, *inputs: Tensor) -> Tensor:
        """Logits of the jets given as the backbone's arguments (``x, mask[, ...]``)."""
        if self.frozen:
            with torch.no_grad():
                z = self.backbone(*inputs)
        else:
            z = self.backbone(*inputs)
        out = self.head(z)
        return out.squeeze(-1) if self.n_out == 1 else out


@torch.no_grad()
def predict(
    model: nn.Module, h5_path: str, rows: np.ndarray, device: torch.device, chunk: int = 1024
) -> np.ndarray:
    """Scores of ``rows`` (sorted): sigmoid ``[N]`` for one logit, softmax ``[N, C]``
    otherwise; computed in float32 (no autocast: outputs are compared across trainings
    and bf16 would add noise at the 1e-3 level). The model gets the inputs it declares
    (``inputs``, default particles + mask)."""
    model.eval()
    n_out = int(getattr(model, "n_out", 1))
    scores = np.empty((rows.size,) if n_out == 1 else (rows.size, n_out), np.float32)
    pos = 0
    with h5py.File(h5_path, "r") as f:
        for r, *inputs in iter_rows(f, rows, eval_chunk(model, chunk), backbone_inputs(model)):
            logits = model(*(t.to(device) for t in inputs)).float()
            p = torch.sigmoid(logits) if n_out == 1 else torch.softmax(logits, dim=-1)
            scores[pos : pos + r.size] = p.cpu().numpy()
            pos += r.size
    return scores


def write_predictions(
    out_path: str | Path,
    test_h5: str,
    rows: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    attrs: Mapping[str, Any],
) -> None:
    """Format-5 predictions file, written atomically (``score`` ``[N]`` for binary tasks,
    ``[N, C]`` class probabilities for multi-class ones; ``label`` int8)."""
    info = DatasetInfo.read(test_h5)
    with h5py.File(test_h5, "r") as f:
        cols = {c: read_column(f, c)[rows] for c in PREDICTION_COLUMNS}
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as g:
        g.create_dataset("score", data=scores.astype(np.float32))
        g.create_dataset("label", data=labels.astype(np.int8))
        for c, v in cols.items():
            g.create_dataset(c, data=v)
        g.attrs["variant_names"] = info.variant_names
        g.attrs["process_names"] = info.process_names
        g.attrs["class_names"] = info.class_names
        for k, v in attrs.items():
            g.attrs[k] = v


def _check_mode(mode: str, pretrained: str | None) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "supervised" and pretrained is not None:
        raise ValueError(
            f"mode 'supervised' trains from scratch but pretrained={pretrained!r} was given"
        )
    if mode != "supervised" and not pretrained:
        raise ValueError(
            f"mode {mode!r} needs a pre-trained model.pt, got pretrained={pretrained!r}"
        )


def _labelled_rows(
    h5: str, classes: list[str] | None, signal: str, background: str,
    variants: Sequence[str] | None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    if classes is None:
        return select_labelled_rows(h5, signal, background, variants)
    return select_class_rows(h5, classes, variants)


def _build_classifier(
    exp_cfg: dict, mode: str, pretrained: str | None, train_h5: str, rows: np.ndarray,
    n_out: int,
) -> tuple[Classifier, dict[str, Any], list[nn.Parameter]]:  # fmt: skip
    """The classifier of ``mode`` (pre-trained or fresh backbone, LoRA adapters, head);
    returns it, the backbone's constructor config and the LoRA parameters."""
    fcfg = exp_cfg["finetune"]
    if pretrained:
        backbone, payload = load_backbone(pretrained)
        bb_cfg = payload["backbone_cfg"]
        check_model_features(payload, train_h5, pretrained)
    else:
        norm_jets = int(exp_cfg.get("pretrain", {}).get("norm_jets", 20000))
        backbone, bb_cfg = build_backbone_for(exp_cfg["backbone"], train_h5, rows, norm_jets)
    D = int(backbone.embed_dim)
    lora_params: list[nn.Parameter] = []
    if mode == "lora":  # Rieck et al. §4: frozen backbone + rank-r updates of every linear layer
        from jetforge.models.lora import apply_lora

        lora_params = apply_lora(
            backbone, int(fcfg.get("lora_rank", 1)), float(fcfg.get("lora_alpha", 1.0))
        )
    model = Classifier(
        backbone,
        frozen=(mode == "fixed"),
        n_out=n_out,
        hidden=[round(float(k) * D) for k in fcfg.get("head_hidden_mult", [])],
        dropout=float(fcfg.get("head_dropout", 0.0)),
    )
    # what evaluation.robustness.save_classifier stores so the classifier can be rebuilt
    model.saved_config = {"backbone_cfg": bb_cfg, "mode": mode, "lora": {
        "rank": int(fcfg.get("lora_rank", 1)), "alpha": float(fcfg.get("lora_alpha", 1.0))}}
    return model, bb_cfg, lora_params


def _param_groups(
    model: Classifier, fcfg: Mapping[str, Any], mode: str, lora_params: list[nn.Parameter]
) -> list[dict[str, Any]]:
    """Optimiser groups of ``mode``: the head at ``lr``; the backbone at ``lr_backbone``
    (floating), with LLRD if ``llrd`` is set, or at ``lr`` (supervised); LoRA adapters at
    ``lr_lora``; nothing more for a fixed backbone."""
    lr = float(fcfg["lr"])
    llrd = fcfg.get("llrd")
    if mode == "floating" and llrd is not None:
        return llrd_param_groups(model, lr, float(llrd))
    groups: list[dict[str, Any]] = [{"params": list(model.head.parameters()), "lr": lr}]
    if mode == "floating":
        groups.append(
            {"params": list(model.backbone.parameters()), "lr": float(fcfg.get("lr_backbone", lr))}
        )
    elif mode == "lora":
        groups.append({"params": lora_params, "lr": float(fcfg.get("lr_lora", lr))})
    elif mode == "supervised":
        groups.append({"params": list(model.backbone.parameters()), "lr": lr})
    return groups


def run_finetune(
    train_h5: str,
    test_h5: str,
    out_path: str,
    exp_cfg: dict,
    task: str,
    mode: str,
    augset: str,
    n_train: int,
    repeat: int,
    seed: int,
    pretrained: str | None,
    device: str = "auto",
    *,
    after_step: Callable[[TrainState], None] | None = None,
) -> None:
    """Train a tagger for ``task`` and write test-split predictions to ``out_path``.

    ``augset`` names the fine-tuning's augmentation set (its variants are trained on next
    to the nominal jets; ``none``: nominal only) and seeds the labelled subset. Side files
    next to ``out_path``: ``checkpoint.pt`` (resume state) and ``history.csv`` (per-epoch
    loss). ``pretrained`` is a ``model.pt`` from
    :func:`jetforge.training.pretrain.run_pretrain` (required for fixed/floating/lora, must
    be None for supervised). ``after_step`` is a test hook.

    The model-selection protocol of the papers that use one (:func:`scan_points`):
    ``val_fraction`` holds out ``round(val_fraction * n_train)`` further labelled jets
    (disjoint from the ``n_train`` trained on) for a per-epoch validation loss;
    ``patience`` stops a training once that many epochs bring no better validation loss
    (MPM §V: 5) and the best epoch's weights are the ones that predict; ``scan`` trains
    once per point of a hyperparameter grid (jBOT §4.4: learning rate x LLRD) and keeps
    the point with the lowest validation loss. Its side files carry a ``_p{i}`` suffix,
    and ``scan.csv`` lists every point's best validation loss and epoch.
    """
    _check_mode(mode, pretrained)
    fcfg = exp_cfg["finetune"]
    tasks = fcfg["tasks"]
    if task not in tasks:
        raise KeyError(f"task {task!r} not in finetune.tasks (have {sorted(tasks)})")
    classes, signal, background = task_classes(tasks[task], task)
    dev = resolve_device(device)
    info = DatasetInfo.read(train_h5)
    variants = list(dict.fromkeys([info.nominal, *augset_variants(exp_cfg, augset)]))
    (rows, labels), val = _labelled_subsets(
        train_h5, classes, signal, background, variants, int(n_train), fcfg,
        lambda *k: derive_seed("finetune", task, augset, n_train, *k, base=seed),
        f"task {task!r} (variants {variants} of {train_h5})", weak_n_signal(tasks[task]),
    )  # fmt: skip
    out = Path(out_path)
    points = scan_points(fcfg)
    results = []
    for i, point in enumerate(points):
        suffix = f"_p{i}" if len(points) > 1 else ""
        run = _TrainSpec(exp_cfg, {**fcfg, **point}, task, mode, augset, int(n_train), repeat,
                         seed, pretrained, train_h5, classes, dev, suffix, out)  # fmt: skip
        results.append(_train_point(run, rows, labels, val, after_step))
    best = min(range(len(results)), key=lambda i: (results[i].val_loss, i))
    if len(points) > 1:
        _write_scan(out.with_name("scan.csv"), points, results, best)
    attrs: dict[str, Any] = {
        "task": task, "mode": mode, "augset": augset, "n_train": int(n_train),
        "repeat": int(repeat), "train_variants": variants,
    }  # fmt: skip
    if val is not None:
        chosen = results[best]
        attrs.update(n_val=int(val[0].size), val_loss=chosen.val_loss,
                     best_epoch=chosen.best_epoch, scan_point=repr(points[best]))  # fmt: skip
    from jetforge.evaluation.robustness import classifier_path, save_classifier

    save_classifier(classifier_path(out), results[best].model, train_h5)  # test-time evals
    _predict_test(results[best].model, test_h5, out, dev, classes, signal, background, attrs)


def scan_points(fcfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The hyperparameter points a fine-tuning job trains: the grid ``scan`` (key -> list of
    values, e.g. ``{lr: [4e-5, 2e-3], llrd: [0.6, 0.8]}``) in key order, or one point (no
    overrides). A scan needs ``val_fraction`` > 0: without validation jets nothing selects."""
    scan = fcfg.get("scan") or {}
    if scan and not float(fcfg.get("val_fraction", 0.0)) > 0:
        raise ValueError("finetune.scan selects on validation jets: set finetune.val_fraction > 0")
    keys = list(scan)
    return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*scan.values())]


def _labelled_subsets(
    h5: str, classes: list[str] | None, signal: str, background: str, variants: list[str],
    n_train: int, fcfg: Mapping[str, Any], seed_of: Callable[..., int], what: str,
    n_signal: int | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:  # fmt: skip
    """The ``n_train`` labelled jets (drawn as without validation, so switching validation
    on never changes them) and the validation jets drawn from the rest. A weak task
    (``n_signal`` set, MPM §V F) gets two mixed samples labelled by membership instead
    (:func:`jetforge.training.weak.weak_subsets`)."""
    if n_signal is not None:
        return weak_draw(h5, signal, background, variants, n_train, n_signal, fcfg, seed_of, what)
    all_rows, all_labels = _labelled_rows(h5, classes, signal, background, variants)
    rows, labels = subsample(all_rows, all_labels, n_train, seed_of("subset"), what=what)
    n_val = round(float(fcfg.get("val_fraction", 0.0)) * n_train)
    if n_val < 1:
        return (rows, labels), None
    rest = ~np.isin(all_rows, rows)
    if n_val > rest.sum():
        raise ValueError(
            f"finetune.val_fraction={fcfg['val_fraction']} asks for {n_val} validation jets beside "
            f"the n_train={n_train} of {what}, but only {int(rest.sum())} are left; lower "
            "val_fraction or n_train, or generate more chunks"
        )
    val = subsample(all_rows[rest], all_labels[rest], n_val, seed_of("val"), what=what)
    return (rows, labels), val


@dataclass(frozen=True)
class _TrainSpec:
    """What one training of a fine-tuning job needs."""

    exp_cfg: dict
    fcfg: dict  # the finetune block with this scan point's overrides
    task: str
    mode: str
    augset: str
    n_train: int
    repeat: int
    seed: int
    pretrained: str | None
    train_h5: str
    classes: list[str] | None
    dev: torch.device
    suffix: str
    out: Path

    def side(self, name: str, ext: str) -> Path:
        return self.out.with_name(f"{name}{self.suffix}.{ext}")


@dataclass(frozen=True)
class _Trained:
    model: Classifier
    val_loss: float
    best_epoch: int


def _train_point(
    t: _TrainSpec, rows: np.ndarray, labels: np.ndarray,
    val: tuple[np.ndarray, np.ndarray] | None, after_step: Callable[[TrainState], None] | None,
) -> _Trained:  # fmt: skip
    """One training at one scan point; with validation jets, the best epoch's weights."""
    seed_of = lambda *k: derive_seed("finetune", t.task, t.mode, t.augset, t.n_train,  # noqa: E731
                                     t.repeat, *k, base=t.seed)  # fmt: skip
    torch.manual_seed(seed_of("init"))
    n_out = 1 if t.classes is None else len(t.classes)
    model, bb_cfg, lora_params = _build_classifier(
        {**t.exp_cfg, "finetune": t.fcfg}, t.mode, t.pretrained, t.train_h5, rows, n_out
    )
    model = model.to(t.dev)
    groups = _param_groups(model, t.fcfg, t.mode, lora_params)
    sampler = JetSampler(
        t.train_h5, rows, labels, int(t.fcfg["batch_size"]), seed_of("data"),
        inputs=model.inputs,
        workers=resolve_loader_workers(t.fcfg.get("loader_workers"), t.dev),
        pin_memory=t.dev.type == "cuda",
    )  # fmt: skip
    binary = t.classes is None

    def loss_fn(m: nn.Module, b: Any) -> dict[str, Tensor]:
        if binary:
            return {"loss": F.binary_cross_entropy_with_logits(m(*b.inputs).float(), b.y)}
        return {"loss": F.cross_entropy(m(*b.inputs).float(), b.y.long())}

    run_key = to_plain({
        "stage": "finetune", "task": t.task, "mode": t.mode, "augset": t.augset,
        "n_train": t.n_train, "repeat": t.repeat, "seed": t.seed, "backbone": bb_cfg,
        "finetune": {k: v for k, v in t.fcfg.items() if k not in LOADER_ONLY_KEYS},
        "pretrained_sha256": file_sha256(t.pretrained) if t.pretrained else None,
    })  # fmt: skip
    watch = None if val is None else _BestEpoch(model, t, val, binary)
    patience = t.fcfg.get("patience")
    try:
        fit(
            model, groups, loss_fn, sampler.epoch, len(sampler), EngineConfig.from_dict(t.fcfg),
            t.dev, t.side("checkpoint", "pt"), t.side("history", "csv"), run_key=run_key,
            after_step=after_step, evaluate=None if watch is None else watch.evaluate,
            stop=None if watch is None or patience is None else watch.stopper(int(patience)),
            desc=f"{t.task}/{t.mode}/{t.augset}/n{t.n_train} r{t.repeat}{t.suffix}",
        )  # fmt: skip
    finally:
        sampler.close()
    if watch is None:
        return _Trained(model, float("nan"), 0)
    return watch.restore()


class _BestEpoch:
    """Per-epoch validation loss and accuracy; keeps the best epoch's weights in a side
    file (``best.pt``: survives a resume, since the engine's history does too)."""

    def __init__(self, model: Classifier, t: _TrainSpec, val: tuple[np.ndarray, np.ndarray],
                 binary: bool) -> None:  # fmt: skip
        self.model, self.t, self.rows, self.labels, self.binary = model, t, *val, binary
        self.path = t.side("best", "pt")

    def evaluate(self, model: nn.Module, epoch: int) -> dict[str, float]:
        p = predict(model, self.t.train_h5, self.rows, self.t.dev).astype(np.float64)
        y = self.labels.astype(np.int64)
        eps = 1e-7
        if self.binary:
            loss = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
            acc = np.mean((p > 0.5) == (y == 1))
        else:
            loss = -np.mean(np.log(p[np.arange(y.size), y] + eps))
            acc = np.mean(p.argmax(axis=1) == y)
        best = self._best()
        if best is None or loss < best[0]:
            from jetforge.io.atomic import write_torch

            write_torch(self.path, {"val_loss": float(loss), "epoch": epoch + 1,
                                    "state": model.state_dict()})  # fmt: skip
        return {"val_loss": float(loss), "val_accuracy": float(acc)}

    def _best(self) -> tuple[float, int] | None:
        if not self.path.exists():
            return None
        d = torch.load(self.path, map_location="cpu", weights_only=True)
        return float(d["val_loss"]), int(d["epoch"])

    def stopper(self, patience: int) -> Callable[[Sequence[Mapping[str, Any]]], bool]:
        def stop(history: Sequence[Mapping[str, Any]]) -> bool:
            losses = [float(r["val_loss"]) for r in history]
            return bool(losses) and len(losses) - 1 - int(np.argmin(losses)) >= patience

        return stop

    def restore(self) -> _Trained:
        d = torch.load(self.path, map_location=self.t.dev, weights_only=True)
        self.model.load_state_dict(d["state"])
        return _Trained(self.model, float(d["val_loss"]), int(d["epoch"]))


def _write_scan(path: Path, points: list[dict[str, Any]], results: list[_Trained],
                best: int) -> None:  # fmt: skip
    import pandas as pd

    from jetforge.io.atomic import write_text

    rows = [{**p, "val_loss": r.val_loss, "best_epoch": r.best_epoch, "selected": i == best}
            for i, (p, r) in enumerate(zip(points, results, strict=True))]  # fmt: skip
    frame = pd.DataFrame(rows)
    write_text(path, frame.to_csv(index=False, lineterminator="\n"))


def _predict_test(
    model: Classifier, test_h5: str, out: Path, dev: torch.device, classes: list[str] | None,
    signal: str, background: str, attrs: dict[str, Any],
) -> None:  # fmt: skip
    """Scores of every jet of the task's classes in the test split (all variants)."""
    test_rows, test_labels = _labelled_rows(test_h5, classes, signal, background, None)
    if test_rows.size == 0:
        what = f"{signal}/{background}" if classes is None else "/".join(classes)
        raise ValueError(f"{test_h5} has no {what} jets to predict")
    scores = predict(model, test_h5, test_rows, dev)
    if classes is None:
        attrs.update(signal=signal, background=background)
    else:
        attrs["classes"] = classes
    write_predictions(out, test_h5, test_rows, scores, test_labels, attrs)
    log.info("wrote %s", out)


def task_classes(
    spec: Mapping[str, Any], task: str = ""
) -> tuple[list[str] | None, str, str | list[str]]:
    """``(classes, signal, background)`` of a ``finetune.tasks`` entry: a binary task has
    ``classes = None`` and a background process or a list of them (pooled as label 0, jBOT
    Table 3's t vs q + g); a multi-class one (``{classes: [...]}``) has empty
    signal/background."""
    if "classes" in spec:
        classes = [str(c) for c in spec["classes"]]
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"task {task!r}: need >= 2 distinct classes, got {classes}")
        return classes, "", ""
    if "signal" not in spec or "background" not in spec:
        raise KeyError(f"task {task!r} needs signal + background or classes, got {dict(spec)}")
    bkg = spec["background"]
    return None, str(spec["signal"]), str(bkg) if isinstance(bkg, str) else [str(b) for b in bkg]


def llrd_param_groups(model: Classifier, lr: float, decay: float) -> list[dict[str, Any]]:
    """Optimiser groups with layer-wise learning-rate decay (jBOT §4.4, BEiT [40]).

    Head: ``lr``; backbone group i of n (``backbone.layer_groups()``, input -> output):
    ``lr * decay ** (n - i)``, so the last group gets ``lr * decay`` and the embedding
    ``lr * decay ** n``. Every backbone parameter must be in exactly one group.
    """
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"llrd decay factor must be in (0, 1], got {decay}")
    layer_groups = getattr(model.backbone, "layer_groups", None)
    if layer_groups is None:
        raise ValueError(
            "llrd needs a backbone with layer_groups() (e.g. 'vit'), "
            f"got {type(model.backbone).__name__}"
        )
    layers = layer_groups()
    seen = [id(p) for g in layers for p in g]
    every = [id(p) for p in model.backbone.parameters()]
    if len(seen) != len(set(seen)) or set(seen) != set(every):
        raise ValueError("backbone.layer_groups() must cover each backbone parameter exactly once")
    n = len(layers)
    groups = [{"params": list(model.head.parameters()), "lr": lr}]
    groups += [{"params": list(g), "lr": lr * decay ** (n - i)} for i, g in enumerate(layers)]
    return groups


def finetune_vs_scratch(
    train_h5: str,
    test_h5: str,
    out_dir: str,
    exp_cfg: dict,
    task: str,
    pretrained: str,
    n_train: int,
    augset: str,
    repeat: int = 0,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, dict[str, float]]:
    """Fine-tune the pre-trained backbone (``floating``, with LLRD if configured) and train
    the same architecture from scratch (``supervised``) on the same ``n_train`` labelled
    jets; predictions go to ``out_dir/{floating,supervised}/predictions.h5``. Returns
    ``{mode: metrics}`` with accuracy and (one-vs-rest) AUCs on the test split
    (:func:`jetforge.evaluation.probes.classification_metrics`)."""
    from jetforge.evaluation.metrics import classification_metrics

    out: dict[str, dict[str, float]] = {}
    for mode, pre in (("floating", pretrained), ("supervised", None)):
        path = Path(out_dir) / mode / "predictions.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        run_finetune(
            train_h5, test_h5, str(path), exp_cfg, task, mode, augset, n_train, repeat, seed,
            pre, device,
        )  # fmt: skip
        with h5py.File(path, "r") as f:
            names = [str(c) for c in f.attrs["classes"]] if "classes" in f.attrs else None
            out[mode] = classification_metrics(f["score"][:], f["label"][:], names)
    return out
