"""A pre-training that starts from a fine-tuned backbone (``pretrain.init_backbone``).

Rieck et al., arXiv:2503.11632 §5.4, Fig. 8 "AE (gtag)" / "AE (tautag)": "a third model
where the SSL backbone network stems from fully supervised learning, but the compressing
encoder MLP, which maps the pooled transformer output x to the target representation y,
stems from a dedicated autoencoder training including the decompressing MLP that maps y
to z". So the pre-training method (``ae_vicreg``) runs as usual, except that before the
first step the backbone takes the weights of a fine-tuning run's ``model.pt`` (the
classifier file of :func:`jetforge.evaluation.robustness.save_classifier`, whose
``backbone.*`` entries are the backbone) and is frozen; the parts the method names in
``fresh_backbone_parts`` (the compressor x -> y) keep their fresh initialisation and train
with the method's own modules (the decoder).

Why the fresh parts are restored from the freshly built backbone instead of being
re-initialised afterwards: the random stream is then exactly that of a pre-training from
scratch (same seed, same draws), and nothing here draws random numbers, so a killed and
resumed run (the engine's checkpoint holds every weight, frozen ones included) is
bit-exact as any other pre-training.

The workflow passes the file as ``pretrain.init_backbone_path`` (rule ``pretrain``'s
input, :func:`jetforge.workflow.targets.init_backbone_model`); the config check
(:func:`jetforge.config._init_backbone_errors`) has already refused a run that names no
fine-tuning of the grid or a different backbone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from jetforge.training.run_key import file_sha256, to_plain

#: the classifier's state-dict prefix of its backbone (``Classifier.backbone``)
PREFIX = "backbone."


def finetuned_backbone_state(path: str, bb_cfg: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The backbone weights of a fine-tuning's ``model.pt``; refused when its backbone
    config is not ``bb_cfg`` (the one this pre-training builds), since the weights would
    then describe another network than the one the config names."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "state_dict" not in payload or "classifier" not in payload:
        raise ValueError(f"{path} is not a fine-tuning model.pt (needs 'state_dict' and "
                         "'classifier'; see evaluation.robustness.save_classifier)")  # fmt: skip
    theirs, ours = to_plain(payload["backbone_cfg"]), to_plain(dict(bb_cfg))
    if theirs != ours:
        keys = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ValueError(f"pretrain.init_backbone: the backbone of {path} differs from this "
                         f"experiment's in {keys}; make the backbone blocks equal")  # fmt: skip
    state = {k.removeprefix(PREFIX): v for k, v in payload["state_dict"].items()
             if k.startswith(PREFIX)}  # fmt: skip
    if not state:
        raise ValueError(f"{path} holds no {PREFIX}* weights")
    return state


def init_from_finetuned(model: nn.Module, path: str, bb_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Load the fine-tuned backbone of ``path`` into ``model.backbone`` (strict: every
    tensor, input standardisation included), restore the method's fresh parts, freeze the
    rest; returns the run-key entry (the file's hash: a resume never continues a training
    of another backbone)."""
    if not getattr(model, "supports_init_backbone", False):
        raise ValueError(
            f"pretrain.init_backbone: method {type(model).__name__} does not support "
            "starting from a fine-tuned backbone (ae_vicreg does)"
        )
    backbone: nn.Module = model.backbone
    parts = tuple(model.fresh_backbone_parts)
    fresh = {n: {k: v.clone() for k, v in backbone.get_submodule(n).state_dict().items()}
             for n in parts}  # fmt: skip
    try:
        backbone.load_state_dict(finetuned_backbone_state(path, bb_cfg), strict=True)
    except RuntimeError as err:  # e.g. LoRA adapters: not a plain backbone
        raise ValueError(
            f"pretrain.init_backbone: {path} does not fit the backbone: {err}"
        ) from None
    for name, state in fresh.items():
        backbone.get_submodule(name).load_state_dict(state)
    backbone.requires_grad_(False)
    for name in parts:
        backbone.get_submodule(name).requires_grad_(True)
    model.backbone_frozen = True
    model.train()
    return {"init_backbone_sha256": file_sha256(path)}


def init_from_config(model: nn.Module, pcfg: Mapping[str, Any],
                     bb_cfg: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    """:func:`init_from_finetuned` where ``pcfg`` names ``init_backbone`` ({} otherwise)."""
    if not pcfg.get("init_backbone"):
        return {}
    path = pcfg.get("init_backbone_path")
    if not path:
        raise ValueError("pretrain.init_backbone is set but pretrain.init_backbone_path (the "
                         "fine-tuning's model.pt, set by the workflow) is not")  # fmt: skip
    return init_from_finetuned(model, str(path), bb_cfg)
