"""Worker processes that are safe whatever the calling process has loaded, and a forked helper process."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor


def tensorflow_loaded() -> bool:
    """Whether TensorFlow is in this process (the checker and some tests load a model before scoring)."""
    return "tensorflow" in sys.modules


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Forked workers (they start in milliseconds), unless TensorFlow is loaded: a forked copy of its state
    crashed a worker (SIGSEGV) when the child's garbage collector freed it, so then the workers start from a
    fresh interpreter (forkserver), about 0.2 s later."""
    import multiprocessing  # not at the top: score.py imports this module before it forks its chart process
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("forkserver" if tensorflow_loaded() else "fork")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_start)


def _worker_start() -> None:
    """A worker's collections walk only the objects it makes itself, not its copy of the parent's (numpy's, the
    package's, and matplotlib's when the parent has it), which they would also copy page by page (copy-on-write);
    freezing them is O(1). And it collects, even if the parent had paused its collections when it forked it."""
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


def fork_is_safe() -> bool:
    """Whether this process may fork a helper: a single thread (a fork copies the locks other threads hold, not
    the threads), no TensorFlow (see ``worker_pool``), and a second core for the helper to run on."""
    return (
        hasattr(os, "fork") and threading.active_count() == 1 and not tensorflow_loaded() and (os.cpu_count() or 1) > 1
    )


class ForkedHelper:
    """A forked child process that starts ``prepare`` at once (imports, say), on a core this process leaves idle
    meanwhile, and then answers one request: ``ask(request)`` returns ``answer(request)``, both sent pickled
    through pipes. ``stop`` ends it if it was never asked."""

    def __init__(self, pid: int, requests: int, answers: int) -> None:
        self.pid: int | None = pid
        self._requests, self._answers = requests, answers

    @classmethod
    def fork(cls, prepare: Callable[[], None], answer: Callable[[Any], Any]) -> ForkedHelper | None:
        """The helper, or None where forking is not safe (``fork_is_safe``)."""
        if not fork_is_safe():
            return None
        request_reader, request_writer = os.pipe()
        answer_reader, answer_writer = os.pipe()
        sys.stdout.flush()  # else the child would write this process's buffered output a second time
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(request_writer)
            os.close(answer_reader)
            _serve(prepare, answer, request_reader, answer_writer)
        os.close(request_reader)
        os.close(answer_writer)
        return cls(pid, request_writer, answer_reader)

    def ask(self, request: Any) -> Any | None:
        """``answer(request)`` from the helper; None if it failed (the caller then does the work itself)."""
        if self.pid is None:
            return None
        with contextlib.suppress(OSError), os.fdopen(self._requests, "wb") as pipe:  # OSError: it has died
            pickle.dump(request, pipe)
        with os.fdopen(self._answers, "rb") as pipe:
            data = pipe.read()
        if self._wait() != 0 or not data:
            return None
        return pickle.loads(data)

    def stop(self) -> None:
        """End the helper if it is still running (it was not asked): SIGTERM, which it ends on as on an
        exception (its clean-ups run: see ``_serve``), SIGKILL if it has not ended within ``_STOP_SECONDS``."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        for descriptor in (self._requests, self._answers):
            with contextlib.suppress(OSError):
                os.close(descriptor)
        deadline = time.monotonic() + _STOP_SECONDS
        while os.waitpid(self.pid, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.002)
        self.pid = None

    def _wait(self) -> int:
        assert self.pid is not None
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        return status


_STOP_SECONDS = 2.0


def _serve(prepare: Callable[[], None], answer: Callable[[Any], Any], requests: int, answers: int) -> NoReturn:
    """The helper's life: prepare, read one request (EOF: none is coming), write the answer, exit. It never
    returns into the caller's code nor runs its exit handlers; a failure is its exit status (the caller then does
    the work itself and reports the error, if it happens there too). SIGTERM (``stop``) raises SystemExit, so that
    what ``prepare`` cleans up on an exception (a temporary folder) is cleaned up then too."""
    status = 1
    try:
        signal.signal(signal.SIGTERM, _exit_on_signal)
        prepare()
        with os.fdopen(requests, "rb") as pipe:
            request = pickle.load(pipe)
        reply = pickle.dumps(answer(request), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(answers, "wb") as pipe:
            pipe.write(reply)
        status = 0
    finally:
        os._exit(status)


def _exit_on_signal(number: int, frame: object) -> NoReturn:
    raise SystemExit(128 + number)
