"""Jet clustering, truth matching, per-particle features and substructure observables."""
