"""The only modules that touch files: canonical HDF5/NPZ, the PtychoPINN NPZ layout, Ptychodus."""
