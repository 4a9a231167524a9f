"""File formats and safe writing (atomic outputs, HDF5 data contract, Les Houches events)."""
