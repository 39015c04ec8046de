"""The one place TensorFlow is imported, lazily, so that light commands never pay for it.

TensorFlow's C++ runtime prints start-up chatter (CUDA probing on a CPU machine, absl notices)
straight to file descriptor 2. Unless ``PTYCHO_TF_LOGS=1``, that chatter is captured while
TensorFlow imports and initialises its devices, and shown only if the import fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType


@contextlib.contextmanager
def _captured_stderr_fd() -> Iterator[None]:
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. a test runner's capture)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        except BaseException:
            os.dup2(saved, fd)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def tf() -> ModuleType:
    """Return the ``tensorflow`` module, importing it on first use with quiet start-up."""
    module = sys.modules.get("tensorflow")
    if module is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        quiet = os.environ.get("PTYCHO_TF_LOGS", "") != "1"
        with _captured_stderr_fd() if quiet else contextlib.nullcontext():
            import tensorflow as module

            module.config.list_logical_devices()  # initialise devices while chatter is captured
    return module
