"""Self-supervised methods (RS3L SimCLR; later papers add theirs to ``METHODS``).

Interface of a method (an ``nn.Module``):

* ``METHODS[name].from_config(backbone, pretrain_cfg)`` builds it from the ``pretrain``
  block of the experiment config; the backbone is kept as ``.backbone``;
* ``forward(x_a, m_a, x_b, m_b)`` maps a pair batch to a dict of loss terms whose
  ``loss`` entry is minimised (all terms are logged);
* ``embed_pair(...)`` and ``loss_from_embeddings(z_a, z_b)`` let validation compute the
  loss and the embedding diagnostics from one backbone pass.
"""

from jetforge.methods.simclr import SimCLR, nt_xent

METHODS = {
    "simclr": SimCLR,  # RS3L §II A, eq. (2)
}

__all__ = ["METHODS", "SimCLR", "nt_xent"]
