"""The backbone interface every pre-training method is written against.

Why: the five papers each tie their method to their own network (RS3L: EdgeConv, jBOT:
a ViT, MPM: a NormFormer, JP-JEPA: ParT, Rieck et al.: a tracks + cells transformer).
Comparing the methods on one backbone (issue 16) needs each method to ask for *what it
uses* of a backbone, never for a class. A backbone declares what it offers in its class
attribute ``capabilities`` (names of :data:`CAPABILITIES`; its entry of
``jetforge.models.BACKBONE_CAPABILITIES``); a method declares what it needs in its class
attribute ``needs`` (its entry of ``jetforge.methods.METHOD_NEEDS``) and checks it with
:func:`require` when it is built, so a method on a backbone that cannot serve it fails at
once with both named. The two tables need no torch, so the config check
(:func:`config_errors`) refuses such an experiment before any job.

The capabilities, each a set of attributes with fixed meaning (``x [B, P, F]`` particle
features, ``mask [B, P]`` real particles; ``D = embed_dim``):

* ``embedding`` -- ``forward(*inputs) -> [B, embed_dim]``, the jet representation that
  probes, fine-tuning and the contrastive losses read (every backbone);
* ``tokens`` -- ``tokens(x, mask) -> [B, P, D]`` one token per particle, zero on padded
  slots, same P as the input; ``in_dim`` (features per particle);
* ``cls`` -- ``encode(x, mask) -> (tokens [B, P, D], cls [B, D])`` in one pass, where
  ``cls`` is what ``forward`` returns (a [CLS] token, or what stands for it);
* ``token_masking`` -- ``tokens`` and ``encode`` take ``replace`` (bool ``[B, P]``) and
  ``replacement`` (``[D]`` or ``[B, P, D]``): the embedding of each particle marked
  ``replace`` is replaced by ``replacement`` (a method's learnable [MASK] token) before
  any interaction between particles, and nothing else of that particle's features reaches
  the network (ParT drops its pair features). jBOT masks this way; MPM too where offered;
* ``pair_bias`` -- ``fourvectors(x) -> [B, P, 4]``, ``pair_bias(p4, mask) -> [B, H, P, P]``,
  ``num_heads``, ``feature_names``, ``fourvec_features``: ParT's interaction embedding,
  which JP-JEPA's predictor reuses on a different particle set;
* ``compressor`` -- ``represent(*inputs) -> [B, width]`` a pooled representation, ``head``
  mapping it to the embedding (``forward = head(represent)``) and ``width``: Rieck et al.'s
  x -> y, the autoencoder's reconstruction target;
* ``quantized_inputs`` -- ``quantize_inputs_(tokenizer)``, ``quantize(x, mask)``,
  ``code_dim``: the backbone can read tokenizer code vectors instead of features (MPM
  Table I "quantized" rows).

Where a method feeds from (particles only, or tracks + cells) is not a capability but the
backbone's ``inputs`` (:func:`jetforge.models.registry.backbone_inputs`), matched to the
method's ``sampler`` by :func:`jetforge.training.pretrain.method_sampler`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: capability name -> what a backbone that declares it provides (see module docstring)
CAPABILITIES: dict[str, str] = {
    "embedding": "forward(*inputs) -> jet embedding [B, embed_dim]",
    "tokens": "tokens(x, mask) -> per-particle tokens [B, P, embed_dim]; in_dim",
    "cls": "encode(x, mask) -> (tokens [B, P, D], cls [B, D]) in one pass",
    "token_masking": "tokens/encode(x, mask, replace, replacement): a [MASK] token replaces "
    "the embeddings of the particles marked replace",
    "pair_bias": "fourvectors(x), pair_bias(p4, mask) -> [B, H, P, P], num_heads, "
    "feature_names, fourvec_features",
    "compressor": "represent(*inputs) -> x [B, width], head: x -> embedding, width",
    "quantized_inputs": "quantize_inputs_(tokenizer), quantize(x, mask), code_dim",
}

#: the attributes each capability promises (every registered backbone is checked against
#: its declaration in tests/test_backbone_interface.py)
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "embedding": ("forward", "embed_dim"),
    "tokens": ("tokens", "embed_dim", "in_dim"),
    "cls": ("encode",),
    "token_masking": ("tokens", "encode"),
    "pair_bias": ("fourvectors", "pair_bias", "num_heads", "feature_names", "fourvec_features"),
    "compressor": ("represent", "head", "width"),
    "quantized_inputs": ("quantize_inputs_", "quantize", "code_dim"),
}


class BackboneCapabilityError(TypeError):
    """A method was given a backbone that lacks a capability it needs."""


def capabilities(backbone: Any) -> frozenset[str]:
    """What a backbone (module or class) declares it offers; ``embedding`` at least."""
    declared = frozenset(getattr(backbone, "capabilities", ()))
    unknown = declared - set(CAPABILITIES)
    if unknown:
        raise ValueError(
            f"{_cls(backbone).__name__} declares unknown capabilities {sorted(unknown)}; "
            f"known: {sorted(CAPABILITIES)}"
        )
    return declared | {"embedding"}


def has(backbone: Any, capability: str) -> bool:
    """Whether ``backbone`` declares ``capability`` (a name of :data:`CAPABILITIES`)."""
    if capability not in CAPABILITIES:
        raise KeyError(f"unknown backbone capability {capability!r}; known: {sorted(CAPABILITIES)}")
    return capability in capabilities(backbone)


def require(backbone: Any, needs: Iterable[str], method: str) -> None:
    """Refuse a backbone lacking any of ``needs``, naming the method, the backbone (config
    name and class), each missing capability with what it means, and the backbones that
    have them all."""
    needs = list(needs)
    missing = [c for c in needs if not has(backbone, c)]
    if not missing:
        return
    what = "; ".join(f"{c!r}: {CAPABILITIES[c]}" for c in missing)
    raise BackboneCapabilityError(
        f"method {method!r} needs backbone capabilities {missing} ({what}); backbone "
        f"{_config_name(backbone)!r} ({_cls(backbone).__name__}) offers only "
        f"{sorted(capabilities(backbone))}. Backbones with all of {needs}: "
        f"{_backbones_with(needs)}"
    )


def config_errors(method: str, backbone: str) -> list[str]:
    """What a config's ``pretrain.method`` on ``backbone.name`` lacks, read from the
    torch-free tables (``jetforge.methods.METHOD_NEEDS``,
    ``jetforge.models.BACKBONE_CAPABILITIES``) so the driver refuses it before any job;
    unknown names are left to the schema."""
    from jetforge.methods import METHOD_NEEDS
    from jetforge.models import BACKBONE_CAPABILITIES

    if method not in METHOD_NEEDS or backbone not in BACKBONE_CAPABILITIES:
        return []
    needs = list(METHOD_NEEDS[method])
    missing = [c for c in needs if c not in BACKBONE_CAPABILITIES[backbone] | {"embedding"}]
    if not missing:
        return []
    return [
        f"pretrain.method {method!r} needs backbone capabilities {missing} "
        f"({'; '.join(CAPABILITIES[c] for c in missing)}), which backbone {backbone!r} "
        f"lacks; backbones with all of {needs}: {_backbones_with(needs)}"
    ]


def _cls(backbone: Any) -> type:
    return backbone if isinstance(backbone, type) else type(backbone)


def _config_name(backbone: Any) -> str:
    from jetforge.models import BACKBONES

    cls = _cls(backbone)
    for name in BACKBONES:
        if BACKBONES[name] is cls:
            return name
    return cls.__name__


def _backbones_with(needs: list[str]) -> list[str]:
    from jetforge.models import BACKBONE_CAPABILITIES

    return sorted(n for n, caps in BACKBONE_CAPABILITIES.items() if set(needs) <= caps)
