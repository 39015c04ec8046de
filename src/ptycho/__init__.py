"""ptycho: physics-informed neural network reconstruction of ptychography data.

The core library. It holds no global state and imports nothing heavy at import time;
TensorFlow is imported lazily through :mod:`ptycho._tf`.
"""

__version__ = "0.1.0"
