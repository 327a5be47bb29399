"""Worker processes that are safe whatever the calling process has loaded."""

from __future__ import annotations

import ctypes
import gc
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor


def tensorflow_loaded() -> bool:
    """Whether TensorFlow is in this process (the checker and some tests load a model before scoring)."""
    return "tensorflow" in sys.modules


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Forked workers (they start in milliseconds), unless TensorFlow is loaded: a forked copy of its state
    crashed a worker (SIGSEGV) when the child's garbage collector freed it, so then the workers start from a
    fresh interpreter (forkserver), about 0.2 s later."""
    import multiprocessing  # here: 10 ms the scorer pays only once it evaluates two frames or more
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("forkserver" if tensorflow_loaded() else "fork")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_start)


def _worker_start() -> None:
    """A worker's collections walk only the objects it makes itself, not its copy of the parent's (numpy's, the
    package's), which they would also copy page by page (copy-on-write); freezing them is O(1). And it
    collects, even if the parent had paused its collections when it forked it."""
    gc.freeze()
    gc.enable()
    keep_freed_memory()


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> None:
    """Buffers of up to 32 MB (an inflated mask, an image's temporaries) come from the heap and go back to it,
    not to the kernel: by default glibc maps each from the kernel afresh and unmaps it when freed, and touching
    the fresh pages costs a fault each (500 for an 8-bit mask's 2 MB: 1.2 ms to inflate it, 0.15 when reused;
    7 ms a frame of OpenCV-written masks). Linux with glibc only; elsewhere nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's largest
        libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        pass
