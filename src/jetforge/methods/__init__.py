"""Self-supervised methods, by config name (``experiments.<exp>.pretrain.method``).

Interface of a method (an ``nn.Module``):

* ``METHODS[name].from_config(backbone, pretrain_cfg)`` builds it from the ``pretrain``
  block of the experiment config; the backbone is kept as ``.backbone``;
* ``sampler`` (class attribute) names the batches it trains on
  (``jetforge.training.pretrain.SAMPLERS``): ``"pairs"`` (``forward(x_a, m_a, x_b, m_b)``
  plus ``embed_pair`` / ``loss_from_embeddings`` for validation), ``"jets"``
  (``forward(x, mask)``; the method makes its own views) or ``"multi_pairs"`` (tracks +
  calorimeter cells, ``forward(batch)``);
* ``forward`` returns a dict of loss terms whose ``loss`` entry is minimised (all logged);
* ``needs`` (class attribute, its entry of :data:`METHOD_NEEDS`): the backbone
  capabilities it uses (:mod:`jetforge.models.interface`), checked by
  ``interface.require`` when it is built and by the config check before any job. Methods
  never ask for a backbone class, so any backbone with the capabilities serves (every
  method runs on ParT). A pair method's ``sampler`` may be ``("pairs", "multi_pairs")``:
  particle pairs or tracks + cells pairs, whichever the backbone reads
  (:func:`jetforge.training.pretrain.method_sampler`).

A new method is its module plus one line in each table below (and its test, and its line
in ``tests/test_backbone_interface.py``).
"""

from jetforge.registry import Registry

METHODS = Registry("pre-training method", {
    "simclr": "jetforge.methods.simclr:SimCLR",  # Harris et al. arXiv:2403.07066 §II A, eq. (2)
    "mpm": "jetforge.methods.mpm:MPM",  # Golling et al. arXiv:2401.13537 §III A
    "jbot": "jetforge.methods.jbot:JBOT",  # jBOT (Tsoi & Rankin) §3, eq. (4)
    # Rieck et al. §4 eq. (1)
    "hadfork_contrastive": "jetforge.methods.hadfork_contrastive:HadforkContrastive",
    "ae_vicreg": "jetforge.methods.ae_vicreg:AEVICReg",  # Rieck et al. §5.4, Fig. 7
    "jepa": "jetforge.methods.jepa:JPJEPA",  # JP-JEPA arXiv:2606.14813 §4.1, eq. (8)
})  # fmt: skip

#: backbone capabilities each method needs (:mod:`jetforge.models.interface`), readable
#: without torch (the config check); options may add some (MPM's quantized inputs)
METHOD_NEEDS: dict[str, tuple[str, ...]] = {
    "simclr": ("embedding",),
    "mpm": ("tokens",),
    "jbot": ("tokens", "cls", "token_masking"),
    "hadfork_contrastive": ("embedding",),
    "ae_vicreg": ("embedding",),
    "jepa": ("tokens", "cls", "pair_bias"),
}

#: methods that can train on a backbone taken from a fine-tuning (``pretrain.init_backbone``,
#: Rieck et al. §5.4 hybrids): they keep it frozen and train only their own parts (class
#: attribute ``supports_init_backbone``); torch-free for the config check
INIT_BACKBONE_METHODS = frozenset({"ae_vicreg"})

__all__ = ["INIT_BACKBONE_METHODS", "METHODS", "METHOD_NEEDS"]


def __getattr__(name: str):  # PEP 562: the classes by their own names, imported on use
    lazy = {"SimCLR": "simclr", "MPM": "mpm", "JBOT": "jbot", "HadforkContrastive":
            "hadfork_contrastive", "AEVICReg": "ae_vicreg", "JPJEPA": "jepa"}  # fmt: skip
    if name == "nt_xent":
        from jetforge.methods.simclr import nt_xent

        return nt_xent
    if name in lazy:
        return METHODS[lazy[name]]
    raise AttributeError(f"module 'jetforge.methods' has no attribute {name!r}")
