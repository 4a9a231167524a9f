"""Self-supervised methods (RS3L SimCLR; later papers add theirs to ``METHODS``).

Interface of a method (an ``nn.Module``):

* ``METHODS[name].from_config(backbone, pretrain_cfg)`` builds it from the ``pretrain``
  block of the experiment config; the backbone is kept as ``.backbone``;
* ``forward(x_a, m_a, x_b, m_b)`` maps a pair batch to a dict of loss terms whose
  ``loss`` entry is minimised (all terms are logged);
* ``embed_pair(...)`` and ``loss_from_embeddings(z_a, z_b)`` let validation compute the
  loss and the embedding diagnostics from one backbone pass.
* ``sampler = "multi_pairs"`` (tracks + calorimeter cells): ``forward(batch)`` takes a
  whole :class:`~jetforge.training.multi_data.MultiPairBatch` and ``embed_pair(batch)``
  returns both views' embeddings; trained by ``training.pretrain.run_pretrain`` (sampler table).
"""

from jetforge.methods.ae_vicreg import AEVICReg
from jetforge.methods.hadfork_contrastive import HadforkContrastive
from jetforge.methods.jbot import JBOT
from jetforge.methods.jepa import JPJEPA
from jetforge.methods.mpm import MPM
from jetforge.methods.simclr import SimCLR, nt_xent

METHODS = {
    "simclr": SimCLR,  # RS3L §II A, eq. (2)
    "mpm": MPM,  # MPM arXiv:2401.13537 §III A (sampler "jets")
    "jbot": JBOT,  # jBOT (Tsoi & Rankin) §3, eq. (4) (sampler "jets")
    "hadfork_contrastive": HadforkContrastive,  # Rieck et al. §4 eq. (1) (sampler "multi_pairs")
    "ae_vicreg": AEVICReg,  # Rieck et al. §5.4, Fig. 7 (sampler "multi_pairs")
    "jepa": JPJEPA,  # JP-JEPA arXiv:2606.14813 §4.1, eq. (8) (sampler "jets")
}

__all__ = [
    "METHODS", "JBOT", "JPJEPA", "MPM", "AEVICReg", "HadforkContrastive", "SimCLR", "nt_xent",
]  # fmt: skip
