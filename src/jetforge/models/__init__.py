"""Backbone networks, by config name (``experiments.<exp>.backbone.name``).

A backbone is an ``nn.Module`` whose constructor takes the other keys of the backbone block.
It may declare:

* ``inputs`` (class attribute): the datasets ``forward`` takes, each as (values, mask);
  default ``("particles",)`` = ``forward(x, mask)``;
* ``config_for_data(cfg, h5_path)`` (classmethod): the constructor config completed from
  a dataset file (input dimensions, fixed standardisations); default: ``in_dim`` = the
  file's particle features;
* ``fit_preprocessing(h5_path, rows, norm_jets)``: preprocessing fitted on training jets
  after construction (e.g. the tracks + cells normalisation);
* ``capabilities`` (class attribute): what pre-training methods may use of it (jet
  embedding, per-particle tokens, [CLS] via ``encode``, token masking, pair bias,
  compressor, quantized inputs), the interface of :mod:`jetforge.models.interface`.
  Methods ask for capabilities, never for a class: any backbone that declares
  ``tokens``, ``cls`` and ``token_masking`` (``part``, ``vit``) trains with every method.

``jetforge.models.registry.build_backbone_for`` calls these; no training code knows a
backbone class. A new backbone is its module plus one line in each table below (and its
test).
"""

from jetforge.registry import Registry

BACKBONES = Registry("backbone", {
    "edgeconv": "jetforge.models.edgeconv:EdgeConvNet",  # Harris et al. arXiv:2403.07066 eq. (1)
    "normformer": "jetforge.models.normformer:NormformerNet",  # MPM arXiv:2401.13537 App. A
    "vit": "jetforge.models.vit:ParticleViT",  # jBOT (Tsoi & Rankin) §3, Table 1 (size S | B)
    "cells_tracks": "jetforge.models.cells_tracks:CellsTracksNet",  # Rieck et al. §4, Fig. 3a
    "part": "jetforge.models.part:ParticleTransformer",  # arXiv:2202.03772; JP-JEPA Table 6
})  # fmt: skip

#: what each backbone offers pre-training methods (:mod:`jetforge.models.interface`); the
#: class's ``capabilities`` is its entry, kept here so that the config check refuses a
#: method on a backbone that cannot serve it before any job, without importing torch
BACKBONE_CAPABILITIES: dict[str, frozenset[str]] = {
    "edgeconv": frozenset({"embedding"}),
    "normformer": frozenset({"embedding", "tokens", "quantized_inputs"}),
    "vit": frozenset({"embedding", "tokens", "cls", "token_masking"}),
    "cells_tracks": frozenset({"embedding", "compressor"}),
    "part": frozenset({"embedding", "tokens", "cls", "token_masking", "pair_bias"}),
}

__all__ = ["BACKBONES", "BACKBONE_CAPABILITIES"]
