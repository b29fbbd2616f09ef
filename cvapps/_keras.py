"""Import Keras (and with it TensorFlow) without TensorFlow's start-up log lines.

TensorFlow 2.21 writes absl log lines ("oneDNN custom operations are on", "Could not find cuda
drivers") to the process's stderr before ``TF_CPP_MIN_LOG_LEVEL`` is consulted. They are noise
for a command-line user, so the first import runs with file descriptor 2 pointed at a temporary
file; if the import fails, what was written there is put back on stderr with the error.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from types import ModuleType


def import_keras() -> ModuleType:
    """``import keras``, quietly the first time; returns the module."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    # TensorFlow's Python logger (retracing notices and the like) speaks only for errors.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return keras
