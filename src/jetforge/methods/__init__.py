"""Self-supervised methods, by config name (``experiments.<exp>.pretrain.method``).

Interface of a method (an ``nn.Module``):

* ``METHODS[name].from_config(backbone, pretrain_cfg)`` builds it from the ``pretrain``
  block of the experiment config; the backbone is kept as ``.backbone``;
* ``sampler`` (class attribute) names the batches it trains on
  (``jetforge.training.pretrain.SAMPLERS``): ``"pairs"`` (``forward(x_a, m_a, x_b, m_b)``
  plus ``embed_pair`` / ``loss_from_embeddings`` for validation), ``"jets"``
  (``forward(x, mask)``; the method makes its own views) or ``"multi_pairs"`` (tracks +
  calorimeter cells, ``forward(batch)``);
* ``forward`` returns a dict of loss terms whose ``loss`` entry is minimised (all logged).

A new method is its module plus one line below (and its test).
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

__all__ = ["METHODS"]


def __getattr__(name: str):  # PEP 562: the classes by their own names, imported on use
    lazy = {"SimCLR": "simclr", "MPM": "mpm", "JBOT": "jbot", "HadforkContrastive":
            "hadfork_contrastive", "AEVICReg": "ae_vicreg", "JPJEPA": "jepa"}  # fmt: skip
    if name == "nt_xent":
        from jetforge.methods.simclr import nt_xent

        return nt_xent
    if name in lazy:
        return METHODS[lazy[name]]
    raise AttributeError(f"module 'jetforge.methods' has no attribute {name!r}")
