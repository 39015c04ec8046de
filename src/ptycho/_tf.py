"""The one place TensorFlow is imported, lazily, so that light commands never pay for it.

TensorFlow's C++ runtime prints start-up chatter (CUDA probing on a CPU machine, absl notices)
straight to file descriptor 2. Unless ``PTYCHO_TF_LOGS=1``, that chatter is captured while
TensorFlow imports and initialises its devices, and shown only if the import fails.

A multi-worker strategy must be created before TensorFlow's runtime starts (it configures the
collective ops the runtime is built with), so :func:`tf` can also import without starting it, and
:func:`quiet_start` captures the chatter of whatever starts it instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType


@contextlib.contextmanager
def _captured_stderr_fd(replay_on_error: bool = True) -> Iterator[None]:
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
            if replay_on_error:
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def quiet_start(replay_on_error: bool = True) -> contextlib.AbstractContextManager[None]:
    """Capture TensorFlow's chatter on file descriptor 2 for the duration (unless
    ``PTYCHO_TF_LOGS=1``); on an exception it is written out when ``replay_on_error``."""
    if os.environ.get("PTYCHO_TF_LOGS", "") == "1":
        return contextlib.nullcontext()
    return _captured_stderr_fd(replay_on_error)


def tf(*, start: bool = True) -> ModuleType:
    """Return the ``tensorflow`` module, importing it on first use with quiet start-up.

    With ``start=False`` the runtime is not started (devices not initialised) by this call.
    """
    module = sys.modules.get("tensorflow")
    if module is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with quiet_start():
            import tensorflow as module

            if start:
                module.config.list_logical_devices()  # initialise devices while chatter is captured
    return module
