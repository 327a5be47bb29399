"""Reading the files a participant sends: only regular files, only inside their folder, never past a cap.

Every file of a submission or a results folder is read through ``read_untrusted``. Whatever its name
and however it was reached (a walk, a path written in a txt line, a name skipped as junk), the path is
first resolved (every link followed, as the kernel would) and must stay inside the folder the
participant sent; only then is anything about the file looked at, so that a link cannot make a message
reveal whether some other file of the machine exists. Then only a regular file is opened (a FIFO would
block the reader forever, a device such as /dev/zero would be read until memory runs out), and no
more than ``limit`` bytes are read.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import BinaryIO

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


class UntrustedFileError(Exception):
    """Why a file cannot be read; the caller names the file and says what to fix."""


class MissingFileError(UntrustedFileError):
    """Nothing is at the path."""


class OutsideFolderError(UntrustedFileError):
    """The path resolves outside the folder the participant sent."""


def real_folder(folder: Path | str) -> str:
    """The folder's resolved path, what ``read_untrusted`` contains reads in."""
    return os.path.realpath(os.fspath(folder))


def is_inside(path: str, folder: str) -> bool:
    """Whether the resolved ``path`` is ``folder`` or lies under it (both resolved)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def resolve_inside(path: Path | str, folder: str, label: str = "the results folder") -> str:
    """``path`` with every link followed; OutsideFolderError if that leaves ``folder`` (resolved, called ``label``)."""
    text = os.fspath(path)
    if "\x00" in text:
        raise UntrustedFileError("has a NUL character in its path")
    head, name = os.path.split(os.path.abspath(text))
    resolved = os.path.join(_resolved_folder(head), name)
    if os.path.islink(resolved):
        resolved = os.path.realpath(resolved)
    if not is_inside(resolved, folder):
        raise OutsideFolderError(f"points outside {label} (through a link or '..')")
    return resolved


@functools.lru_cache(maxsize=4096)
def _resolved_folder(folder: str) -> str:
    """A folder's resolved path, once per folder: thousands of masks share a few folders, and nothing of the
    participant's runs while they are read, so the folders cannot change under the reader."""
    return os.path.realpath(folder)


def read_untrusted(path: Path | str, limit: int, folder: str | None, label: str = "the results folder") -> bytes:
    """The bytes of the regular file at ``path``, which must resolve inside ``folder`` (if given).

    Without ``folder`` (the organiser's own data) links are followed wherever they go.
    """
    with open_untrusted(path, limit, folder, label) as stream:
        return _read_at_most(stream.fileno(), limit)


def open_untrusted(path: Path | str, limit: int, folder: str | None, label: str = "the results folder") -> BinaryIO:
    """The regular file at ``path`` (inside ``folder``, if given, and at most ``limit`` bytes), open for reading."""
    target = resolve_inside(path, folder, label) if folder is not None else os.fspath(path)
    if "\x00" in target:
        raise UntrustedFileError("has a NUL character in its path")
    _check_regular(_stat(target, follow=folder is None), limit)  # before opening: opening a device can act
    flags = _OPEN_FLAGS if folder is not None else _OPEN_FLAGS & ~getattr(os, "O_NOFOLLOW", 0)
    try:
        handle = os.open(target, flags)
    except OSError as exc:
        raise _os_error(exc) from None
    try:
        _check_regular(os.fstat(handle), limit)  # the file opened is the one checked
    except BaseException:
        os.close(handle)
        raise
    return os.fdopen(handle, "rb")


def _stat(target: str, follow: bool) -> os.stat_result:
    try:
        return os.stat(target) if follow else os.lstat(target)
    except OSError as exc:
        raise _os_error(exc) from None


def _check_regular(info: os.stat_result, limit: int) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise UntrustedFileError("is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedFileError(f"is not a regular file but a {_kind(info.st_mode)}")
    if info.st_size > limit:
        raise UntrustedFileError(f"is {info.st_size} bytes, more than the {limit} allowed")


def _read_at_most(handle: int, limit: int) -> bytes:
    chunks, total = [], 0
    while total <= limit:
        try:
            chunk = os.read(handle, min(limit + 1 - total, 16 * 1024 * 1024))
        except OSError as exc:
            raise _os_error(exc) from None
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:  # the file grew after it was checked
        raise UntrustedFileError(f"is more than the {limit} bytes allowed")
    return b"".join(chunks)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return "special file"


def _os_error(exc: OSError) -> UntrustedFileError:
    if isinstance(exc, FileNotFoundError):
        return MissingFileError("does not exist")
    if isinstance(exc, NotADirectoryError):
        return MissingFileError("does not exist (a part of its path is a file, not a folder)")
    if isinstance(exc, IsADirectoryError):
        return UntrustedFileError("is a folder, not a file")
    return UntrustedFileError(f"cannot be read ({exc.strerror or type(exc).__name__})")
