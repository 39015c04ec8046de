"""The one place TensorFlow is imported, lazily, so that light commands never pay for it."""

from __future__ import annotations

import os
import sys
from types import ModuleType


def tf() -> ModuleType:
    """Return the ``tensorflow`` module, importing it on first use with quiet C++ logging."""
    module = sys.modules.get("tensorflow")
    if module is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as module
    return module
