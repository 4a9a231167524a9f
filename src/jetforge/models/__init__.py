"""Backbone networks (RS3L EdgeConv, later others) and their name registry."""

from jetforge.models.edgeconv import EdgeConvNet
from jetforge.models.registry import (
    BACKBONES,
    build_backbone,
    load_backbone,
    register_backbone,
    save_backbone,
)

__all__ = [
    "BACKBONES",
    "EdgeConvNet",
    "build_backbone",
    "load_backbone",
    "register_backbone",
    "save_backbone",
]
