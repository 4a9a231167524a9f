"""Dataset builders: from hard events to jet datasets in the HDF5 data contract."""
