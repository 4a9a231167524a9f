"""Robustness of a fine-tuned tagger to missing inputs at test time (JP-JEPA, Letellier et
al., arXiv:2606.14813, §2.3, Fig. 3(a)-(c)), for any experiment and backbone.

Three perturbations of the *test* jets, the trained model untouched:

* **single**: one input variable removed from every particle (Fig. 3(a), "each of the 17
  particle-level input variables ... individually removed");
* **group**: a named group of correlated variables removed together (Fig. 3(b): all PID
  flags, the track displacements, ...), named in the config by feature names;
* **particles**: a random fraction of each jet's particles removed ("defective detector
  cells", Fig. 3(c)); every jet keeps at least one particle.

"Removed" is the stored (standardised) value set to 0: what the paper does with a variable
a dataset lacks ("padding missing variables", §4.1) and what our feature conversion writes
for transfer datasets. A backbone that derives its pairwise inputs from the features (our
ParT builds the four-vectors from ``part_pt_log``, ``part_deta``, ``part_dphi``) sees those
change too; the paper's ParT reads separate four-vectors (a deviation the tables state).

The fine-tuning job stores its classifier next to the predictions (``model.pt``,
:func:`save_classifier`); :func:`load_classifier` rebuilds it without the config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import h5py
    import torch
    from torch import nn
else:  # imported on first use: the config check (driver env, no torch) reads group_errors
    h5py, torch = lazy_module("h5py"), lazy_module("torch")
    nn = lazy_module("torch.nn")

#: feature groups of JP-JEPA Fig. 3(b) in JetClass's names (App. A.1: PID, trajectory
#: displacement, kinematics); configs may name their own
JETCLASS_GROUPS: dict[str, list[str]] = {
    "pid": [
        "part_charge",
        "part_isChargedHadron",
        "part_isNeutralHadron",
        "part_isPhoton",
        "part_isElectron",
        "part_isMuon",
    ],
    "track_displacement": ["part_d0", "part_d0err", "part_dz", "part_dzerr"],
    "kinematic": [
        "part_pt_log",
        "part_e_log",
        "part_logptrel",
        "part_logerel",
        "part_deltaR",
        "part_deta",
        "part_dphi",
    ],
}


@dataclass(frozen=True)
class Perturbation:
    """One test-time removal: ``kind`` single | group | particles | none, its ``name``
    (variable, group or fraction) and what it zeroes (columns) or drops (fraction)."""

    kind: str
    name: str
    columns: tuple[int, ...] = ()
    fraction: float = 0.0


def group_errors(groups: Mapping[str, Sequence[str]], features: Sequence[str]) -> list[str]:
    """What is wrong with ``groups`` for a backbone reading ``features`` (checked before
    any job: a group naming a variable the backbone never reads would silently do nothing)."""
    errs = []
    for name, members in groups.items():
        if not members:
            errs.append(f"groups.{name}: empty; list the feature names it removes")
        missing = [m for m in members if m not in features]
        if missing:
            errs.append(
                f"groups.{name}: {missing} not read by the backbone; it reads {list(features)}"
            )
    return errs


def perturbations(
    features: Sequence[str],
    groups: Mapping[str, Sequence[str]],
    fractions: Sequence[float],
    single: bool = True,
) -> list[Perturbation]:
    """The nominal evaluation first, then every single variable (if ``single``), every
    group and every particle fraction, in that order."""
    errs = group_errors(groups, features)
    bad = [f for f in fractions if not 0.0 < float(f) < 1.0]
    if bad:
        errs.append(f"fractions {bad} must lie in (0, 1)")
    if errs:
        raise ValueError("; ".join(errs))
    out = [Perturbation("none", "none")]
    if single:
        out += [Perturbation("single", f, (i,)) for i, f in enumerate(features)]
    out += [
        Perturbation("group", g, tuple(features.index(m) for m in ms)) for g, ms in groups.items()
    ]
    out += [Perturbation("particles", f"{float(f):g}", fraction=float(f)) for f in fractions]
    return out


def perturb(
    x: np.ndarray, mask: np.ndarray, p: Perturbation, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Copies of ``x [B, N, F]`` and ``mask [B, N]`` with ``p`` applied."""
    x, mask = x.copy(), mask.copy()
    if p.columns:
        x[..., list(p.columns)] = 0.0
    if p.fraction > 0.0:
        drop = (rng.random(mask.shape) < p.fraction) & mask
        # keep each jet's leading (first stored) real particle if all would go
        empty = ~(mask & ~drop).any(axis=1)
        first = mask.argmax(axis=1)
        drop[np.flatnonzero(empty), first[empty]] = False
        mask &= ~drop
        x[~mask] = 0.0
    return x, mask


def save_classifier(
    path: str | os.PathLike[str], model: nn.Module, trained_on: str | None = None
) -> None:
    """The fine-tuned classifier (backbone + head) as ``model.pt``: weights, the backbone's
    constructor config, the mode (LoRA adapters) and the head's shape, so
    :func:`load_classifier` needs no config. ``model.saved_config`` is set by the
    fine-tuning's classifier builder. With ``trained_on`` (the training file) the input
    columns are recorded too: a classifier scored on another dataset (MPM Fig. 5b, the
    robustness scans) reads columns by position, and a file with the same number of
    columns in another order would be scored silently wrong."""
    from jetforge.io.atomic import write_torch
    from jetforge.training.data import CellsInfo, DatasetInfo

    saved = dict(model.saved_config)
    head = {
        "n_out": int(model.n_out),
        "hidden": [int(m.out_features) for m in _hidden(model)],
        "dropout": float(_dropout(model)),
        "mode": str(saved["mode"]),
        "lora": dict(saved.get("lora") or {}),
    }
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "backbone_cfg": dict(saved["backbone_cfg"]),
        "classifier": head,
    }
    if trained_on is not None:
        payload["feature_names"] = DatasetInfo.read(trained_on).feature_names
        cells = CellsInfo.read(trained_on)
        if cells.present:
            payload["cells_feature_names"] = cells.feature_names
    write_torch(path, payload)


def _hidden(model: nn.Module) -> list[nn.Linear]:
    head = model.head
    return (
        [m for m in head if isinstance(m, nn.Linear)][:-1]
        if isinstance(head, nn.Sequential)
        else []
    )


def _dropout(model: nn.Module) -> float:
    head = model.head
    drops = (
        [m.p for m in head if isinstance(m, nn.Dropout)] if isinstance(head, nn.Sequential) else []
    )
    return drops[0] if drops else 0.0


def load_classifier(path: str | os.PathLike[str], scores: str | None = None) -> nn.Module:
    """Rebuild a classifier saved by :func:`save_classifier` (eval mode, CPU). ``scores``:
    the file it will score, refused if its columns differ from the recorded ones."""
    from jetforge.models.registry import build_backbone
    from jetforge.training.data import check_model_features
    from jetforge.training.finetune import Classifier

    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "classifier" not in payload:
        raise ValueError(f"{path} is not a fine-tuned classifier (no 'classifier' entry)")
    if scores is not None:
        check_model_features(payload, scores, path)
    head = payload["classifier"]
    backbone = build_backbone(payload["backbone_cfg"])
    if head["mode"] == "lora":
        from jetforge.models.lora import apply_lora

        apply_lora(backbone, int(head["lora"]["rank"]), float(head["lora"]["alpha"]))
    model = Classifier(
        backbone,
        frozen=head["mode"] == "fixed",
        n_out=int(head["n_out"]),
        hidden=list(head["hidden"]),
        dropout=float(head["dropout"]),
    )
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def classifier_path(predictions: str | os.PathLike[str]) -> Path:
    """Where the fine-tuning job stores the classifier of a predictions file
    (:func:`jetforge.workflow.targets.classifier_path`, the rule's output)."""
    from jetforge.workflow.targets import classifier_path as path

    return Path(path(str(predictions)))


def evaluate_perturbed(
    model: nn.Module,
    h5_path: str,
    rows: np.ndarray,
    perts: Sequence[Perturbation],
    seed: int,
    chunk: int = 256,
) -> dict[str, np.ndarray]:
    """Scores ``[N]`` / ``[N, C]`` of ``rows`` under each perturbation (keyed
    ``{kind}:{name}``); the particle drops use one generator per perturbation (seeded),
    so every model of a comparison loses the same particles."""
    from jetforge.training.data import iter_rows

    model.eval()
    n_out = int(getattr(model, "n_out", 1))
    out: dict[str, np.ndarray] = {}
    with h5py.File(h5_path, "r") as f:
        batches = [
            (x.numpy(), m.numpy(), rest)
            for _, x, m, *rest in iter_rows(f, rows, chunk, model.inputs)
        ]
    with torch.no_grad():
        for k, p in enumerate(perts):
            rng = np.random.default_rng([int(seed), k])
            parts = []
            for x, m, rest in batches:
                xp, mp = perturb(x, m, p, rng)
                logits = model(torch.from_numpy(xp), torch.from_numpy(mp), *rest).float()
                prob = torch.sigmoid(logits) if n_out == 1 else torch.softmax(logits, dim=-1)
                parts.append(prob.numpy())
            out[f"{p.kind}:{p.name}"] = np.concatenate(parts)
    return out
