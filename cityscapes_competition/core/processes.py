"""Worker processes that are safe whatever the calling process has loaded."""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor


def tensorflow_loaded() -> bool:
    """Whether TensorFlow is in this process (the checker and some tests load a model before scoring)."""
    return "tensorflow" in sys.modules


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Forked workers (they start in milliseconds), unless TensorFlow is loaded: a forked copy of its state
    crashed a worker (SIGSEGV) when the child's garbage collector freed it, so then the workers start from a
    fresh interpreter (forkserver), about 0.2 s later."""
    context = multiprocessing.get_context("forkserver" if tensorflow_loaded() else "fork")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)
