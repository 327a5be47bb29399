"""Reading the files a participant sends: only regular files, only inside their folder, never past a cap.

Every file of a submission or a results folder is read through ``read_untrusted``. Whatever its name
and however it was reached (a walk, a path written in a txt line, a name skipped as junk), the path is
first resolved inside the folder the participant sent, component by component as the kernel resolves
it (links followed, ``..`` taken after the link before it), and the resolution stops the moment it
would leave the folder: nothing outside is ever looked at, so no message or outcome depends on what
exists there. (``os.path.realpath`` is not enough: at a link loop it gives up and returns the rest of
the path as text, which a link such as ``loop/../out/FILE`` turns into a path that looks inside.) Then
only a regular file is opened (a FIFO would block the reader forever, a device such as /dev/zero would
be read until memory runs out), the opened file is checked to be the one resolved, and no more than
``limit`` bytes are read.
"""

from __future__ import annotations

import functools
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
MAX_LINKS = 40  # links followed in one path, as the kernel's MAXSYMLINKS


class UntrustedFileError(Exception):
    """Why a file cannot be read; the caller names the file and says what to fix."""


class MissingFileError(UntrustedFileError):
    """Nothing is at the path."""


class OutsideFolderError(UntrustedFileError):
    """The path resolves outside the folder the participant sent."""


@dataclass(frozen=True)
class SentFolder:
    """The folder a participant sent: its path as the programs were given it, and where it really is."""

    given: str  # absolute, as given (paths under it are built from it)
    real: str  # resolved (the organiser's links above it followed)
    label: str = "the results folder"  # for messages


def sent_folder(folder: Path | str, label: str = "the results folder") -> SentFolder:
    return SentFolder(os.path.abspath(os.fspath(folder)), os.path.realpath(os.fspath(folder)), label)


def is_inside(path: str, folder: str) -> bool:
    """Whether the resolved ``path`` is ``folder`` or lies under it (both resolved)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def resolve_inside(path: Path | str, folder: SentFolder) -> str:
    """The real path ``path`` leads to, resolved inside ``folder`` only; OutsideFolderError the moment it
    would leave it, MissingFileError where a part is missing, UntrustedFileError at a link loop."""
    text = os.fspath(path)
    if "\x00" in text:
        raise UntrustedFileError("has a NUL character in its path")
    parts = _parts_under(os.path.abspath(text), folder)
    if not parts:
        return folder.real
    start = _resolved_parent(folder, tuple(parts[:-1]))
    return _resolve(folder, start, parts[-1:])


def _parts_under(lexical: str, folder: SentFolder) -> list[str]:
    for root in (folder.given, folder.real):
        if lexical == root:
            return []
        if lexical.startswith(root.rstrip(os.sep) + os.sep):
            return lexical[len(root.rstrip(os.sep)) + 1 :].split(os.sep)
    raise OutsideFolderError(f"points outside {folder.label}")


@functools.lru_cache(maxsize=4096)
def _resolved_parent(folder: SentFolder, parts: tuple[str, ...]) -> str:
    """A folder's resolution, once per folder: thousands of masks share a few folders, and nothing of the
    participant's runs while they are read, so the folders cannot change under the reader."""
    return _resolve(folder, folder.real, list(parts))


def _resolve(folder: SentFolder, current: str, pending: list[str]) -> str:
    """Follow ``pending`` from ``current`` (resolved, inside) as the kernel would, never stepping outside."""
    pending, links = list(pending), 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if current == folder.real:
                raise OutsideFolderError(f"points outside {folder.label} (through a link or '..')")
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        info = _stat(candidate, follow=False)
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise UntrustedFileError(f"is a link loop (more than {MAX_LINKS} links to follow)")
            target_parts, from_root = _link_parts(candidate, folder)
            pending = target_parts + pending
            if from_root:
                current = folder.real
            continue
        if pending and not stat.S_ISDIR(info.st_mode):
            raise MissingFileError("does not exist (a part of its path is a file, not a folder)")
        current = candidate
    return current


def _link_parts(link: str, folder: SentFolder) -> tuple[list[str], bool]:
    """A link's target as parts to follow, and whether from the folder's root: a relative target goes on from
    the link's folder; an absolute one must name a place in the folder (any other is outside)."""
    try:
        target = os.readlink(link)
    except OSError as exc:
        raise _os_error(exc) from None
    if not os.path.isabs(target):
        return target.split(os.sep), False
    return _parts_under(os.path.normpath(target), folder), True


def read_untrusted(path: Path | str, limit: int, folder: SentFolder | None) -> bytes:
    """The bytes of the regular file at ``path``, which must resolve inside ``folder`` (if given).

    Without ``folder`` (the organiser's own data) links are followed wherever they go.
    """
    handle, size = _open_checked(path, limit, folder)
    try:
        return _read_at_most(handle, limit, size)
    finally:
        os.close(handle)


def open_untrusted(path: Path | str, limit: int, folder: SentFolder | None) -> BinaryIO:
    """The regular file at ``path`` (inside ``folder``, if given, and at most ``limit`` bytes), open for reading."""
    handle, _ = _open_checked(path, limit, folder)
    return os.fdopen(handle, "rb")


def _open_checked(path: Path | str, limit: int, folder: SentFolder | None) -> tuple[int, int]:
    """The open descriptor of the regular file at ``path`` (checked as ``open_untrusted`` says), and its size."""
    target = resolve_inside(path, folder) if folder is not None else os.fspath(path)
    if "\x00" in target:
        raise UntrustedFileError("has a NUL character in its path")
    _check_regular(_stat(target, follow=folder is None), limit)  # before opening: opening a device can act
    flags = _OPEN_FLAGS if folder is not None else _OPEN_FLAGS & ~getattr(os, "O_NOFOLLOW", 0)
    try:
        handle = os.open(target, flags)
    except OSError as exc:
        raise _os_error(exc) from None
    try:
        info = os.fstat(handle)
        _check_regular(info, limit)  # the file opened is the one checked
        if folder is not None:
            _check_opened_inside(handle, folder)
    except BaseException:
        os.close(handle)
        raise
    return handle, info.st_size


def _check_opened_inside(handle: int, folder: SentFolder) -> None:
    """Where the kernel says the opened file is (Linux): inside, or the resolution above was wrong."""
    try:
        opened = os.readlink(f"/proc/self/fd/{handle}")
    except OSError:
        return  # no /proc: the resolution above stands alone
    if not is_inside(opened, folder.real):
        raise OutsideFolderError(f"points outside {folder.label}")


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


def _read_at_most(handle: int, limit: int, size: int) -> bytes:
    """At most ``limit`` bytes of a regular file of ``size`` bytes (as it was checked): one read when it has not
    grown since (a regular file reads short only at its end), more if it has, until it ends or passes the limit."""
    chunks, total = [], 0
    while total <= limit:
        left = size + 1 - total if total <= size else limit + 1 - total  # to its end, as checked, then the limit
        wanted = min(limit + 1 - total, left, 16 * 1024 * 1024)
        try:
            chunk = os.read(handle, wanted)
        except OSError as exc:
            raise _os_error(exc) from None
        chunks.append(chunk)
        total += len(chunk)
        if len(chunk) < wanted:  # the file's end
            break
    if total > limit:  # the file grew after it was checked
        raise UntrustedFileError(f"is more than the {limit} bytes allowed")
    return b"".join(chunks)  # of one chunk: that chunk, not a copy


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
