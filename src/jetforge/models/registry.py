"""Backbone registry: config name -> network class.

Snakemake rules and training code never import a backbone class directly; they pass the
``experiments.<exp>.backbone`` block of the config to :func:`build_backbone`. A later
paper adds its architecture by registering it here, with no change to the training code.
Saved models store the exact constructor arguments (see :func:`backbone_config`), so a
``model.pt`` can be rebuilt without the config that produced it.

What a backbone's ``forward`` takes is declared by the class attribute ``inputs``, the
format-4 datasets it reads in order, each as (values, mask): absent means
``("particles",)`` = ``forward(x, mask)``; the tracks + cells transformer declares
``("particles", "cells")`` = ``forward(tracks, tracks_mask, cells, cells_mask)``.
:func:`backbone_inputs` reads it; the training and evaluation code feeds exactly that.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from jetforge.models import BACKBONES

BackboneFactory = Callable[..., nn.Module]


def backbone_inputs(backbone: nn.Module | type | Mapping[str, Any]) -> tuple[str, ...]:
    """The datasets a backbone takes (its ``inputs``; default ``("particles",)``), from a
    module, a class or a backbone config (``name`` looked up in :data:`BACKBONES`)."""
    if isinstance(backbone, Mapping):
        backbone = BACKBONES[_name(backbone)]
    return tuple(getattr(backbone, "inputs", ("particles",)))


def _name(cfg: Mapping[str, Any]) -> str:
    if "name" not in cfg:
        raise KeyError(
            f"backbone config needs a 'name' key (one of {sorted(BACKBONES)}), got {dict(cfg)}"
        )
    if cfg["name"] not in BACKBONES:
        raise KeyError(f"unknown backbone {cfg['name']!r}; registered: {sorted(BACKBONES)}")
    return str(cfg["name"])


def eval_chunk(model: nn.Module, chunk: int) -> int:
    """Jets per inference chunk: ``chunk`` capped by the model's ``max_eval_jets``.

    Why: attention over ~10^3 calorimeter cells per jet materialises a
    ``[jets, heads, n, n]`` score tensor on CPU (masked attention cannot use the fused
    kernels): 1024 jets would need ~20 GB. Backbones declare a safe cap; wrappers
    (the fine-tuning classifier) expose their backbone's, as they do its ``inputs``.
    """
    cap = getattr(model, "max_eval_jets", None)
    return max(1, min(int(chunk), int(cap))) if cap else int(chunk)


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator adding a backbone under ``name``; refuses silent overrides."""

    def deco(factory: BackboneFactory) -> BackboneFactory:
        return BACKBONES.register(name, factory)

    return deco


def backbone_config(cfg: Mapping[str, Any], in_dim: int | None = None) -> dict[str, Any]:
    """Plain-data copy of a backbone config (sequences as lists, ``in_dim`` set if given)."""
    out = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in cfg.items()}
    if in_dim is not None:
        out["in_dim"] = int(in_dim)
    return out


def build_backbone(cfg: Mapping[str, Any], in_dim: int | None = None) -> nn.Module:
    """Instantiate ``BACKBONES[cfg['name']]`` with the other keys of ``cfg`` as arguments.

    ``in_dim`` (the number of particle features, known from the dataset) overrides any
    ``in_dim`` in ``cfg``. Unknown keys raise from the constructor with their name.
    """
    name = _name(cfg)
    kwargs = {k: v for k, v in backbone_config(cfg, in_dim).items() if k != "name"}
    try:
        return BACKBONES[name](**kwargs)
    except TypeError as err:
        raise TypeError(f"backbone {name!r} rejected config {kwargs}: {err}") from err


def build_backbone_for(
    bcfg: Mapping[str, Any],
    h5_path: str,
    rows: Any = None,
    norm_jets: int = 20000,
) -> tuple[nn.Module, dict[str, Any]]:
    """The backbone of config ``bcfg`` sized for ``h5_path``, its input preprocessing fixed
    from the file; returns it and its exact constructor config (saved in ``model.pt``).

    The backbone class says what it needs from the data (``config_for_data``, default: the
    file's particle feature count as ``in_dim``) and fits what it must on the training
    jets ``rows`` (sorted; None: all) after construction (``fit_preprocessing``, with at
    most ``norm_jets`` jets). Call ``torch.manual_seed`` first: only the weight
    initialisation draws random numbers.
    """
    cls = BACKBONES[_name(bcfg)]
    adapt = getattr(cls, "config_for_data", None)
    if adapt is not None:
        cfg = backbone_config(adapt(dict(bcfg), h5_path))
    else:
        from jetforge.training.data import DatasetInfo

        cfg = backbone_config(bcfg, in_dim=DatasetInfo.read(h5_path).n_features)
    backbone = build_backbone(cfg)
    fit = getattr(backbone, "fit_preprocessing", None)
    if fit is not None:
        fit(h5_path, rows, int(norm_jets))
    return backbone, cfg


def save_backbone(
    path: str | os.PathLike[str], model: nn.Module, cfg: Mapping[str, Any], **meta: Any
) -> None:
    """Write ``{'state_dict', 'backbone_cfg', **meta}`` atomically (format 5 ``model.pt``);
    the same model and metadata always give the same bytes."""
    from jetforge.io.atomic import write_torch

    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "backbone_cfg": dict(cfg),
        **meta,
    }
    write_torch(path, payload)


def load_backbone(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a backbone from a ``model.pt`` written by :func:`save_backbone`.

    Returns the module (weights loaded, on ``map_location``) and the whole payload so
    callers can read metadata such as ``feature_names``. Loaded with ``weights_only=True``
    (the payload is tensors and plain values): reading a model file cannot run code.
    """
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if (
        not isinstance(payload, dict)
        or "state_dict" not in payload
        or "backbone_cfg" not in payload
    ):
        raise ValueError(
            f"{path} is not a jetforge model.pt (needs 'state_dict' and 'backbone_cfg')"
        )
    model = build_backbone(payload["backbone_cfg"])
    model.load_state_dict(payload["state_dict"])
    return model.to(map_location), payload

