"""``ptycho-iterative``: ePIE and rPIE baselines for ``ptycho`` (a garden plugin).

Python API::

    from ptycho_iterative import reconstruct
    result = reconstruct("data.h5", engine="rpie", iterations=50)
    result.object, result.support, result.errors, result.seconds

Command line: ``ptycho iterative DATASET --out object.npz`` (the plugin's entry point).
"""

from ptycho.config.iterative import IterativeConfig
from ptycho.iterative.engines import IterationState, ReconstructionResult, reconstruct, reconstruct_arrays

__version__ = "0.1.0"

__all__ = ["IterationState", "IterativeConfig", "ReconstructionResult", "__version__", "reconstruct", "reconstruct_arrays"]
