"""jetforge: self-supervised learning for LHC jets, reproduced end to end from open software."""

__version__ = "0.1.0"
