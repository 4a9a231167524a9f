"""Backbone networks (RS3L EdgeConv, later others) and their name registry."""

from jetforge.models.edgeconv import EdgeConvNet
from jetforge.models.normformer import NormformerNet
from jetforge.models.part import ParticleTransformer
from jetforge.models.registry import (
    BACKBONES,
    build_backbone,
    load_backbone,
    register_backbone,
    save_backbone,
)
from jetforge.models.vit import ParticleViT

__all__ = [
    "BACKBONES",
    "EdgeConvNet",
    "NormformerNet",
    "ParticleTransformer",
    "ParticleViT",
    "build_backbone",
    "load_backbone",
    "register_backbone",
    "save_backbone",
]
