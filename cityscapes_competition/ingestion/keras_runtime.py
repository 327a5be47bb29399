"""Keras on the TensorFlow backend, CPU only, imported quietly and only when a model is needed.

Its own module so that the safety checks (model_safety) and the loader (model_loading) both reach
Keras without importing each other.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any


def configure_tensorflow() -> None:
    """Quiet TensorFlow's C++ logs and hide GPUs unless the organiser chose devices; before its import."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def import_keras() -> Any:
    """Keras with the TensorFlow backend on CPU; the start-up chatter TensorFlow prints is swallowed."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    configure_tensorflow()
    with _stderr_swallowed():
        import keras
    return keras


@contextlib.contextmanager
def _stderr_swallowed() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file; show what it caught only if the block fails."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no standard error at all: nothing to swallow
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            sys.stderr.write(caught.read().decode("utf-8", errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
