"""Errors that reach a user as one clear message, never as a traceback.

Messages quote what participants send (file names, values, lines), so every quoted thing is made safe
to show first: ``shown`` cuts a value's repr to a few dozen characters without ever building the
whole repr (a YAML alias bomb has a repr of hundreds of megabytes), and ``printable`` turns what a
terminal, a UTF-8 file or SQLite cannot take (the undecodable bytes of a file name, control
characters) into visible escapes. The rendered message is cut as a last guard.
"""

from __future__ import annotations

import reprlib
import sys
import traceback
from collections.abc import Callable
from os import PathLike
from pathlib import Path

MAX_MESSAGE_CHARS = 2000
MAX_PATH_CHARS = 300

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 2, 4, 6, 6, 6
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 60, 40, 60


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for a message, never longer than ``limit`` and built without the whole repr."""
    text = printable(_REPR.repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with surrogate escapes (bytes of a non-UTF-8 file name) and control characters escaped."""
    if limit is not None and len(text) > limit:
        text = text[: limit // 2 - 2] + "...." + text[-(limit // 2 - 2) :]
    if text.isprintable():
        return text
    return "".join(_escaped(char) for char in text)


def _escaped(char: str) -> str:
    if char.isprintable():
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's escape of an undecodable byte
        return f"\\x{code - 0xDC00:02x}"
    return char.encode("unicode_escape").decode("ascii")


def shown_path(path: str | PathLike[str]) -> str:
    return printable(str(path), MAX_PATH_CHARS)


class UserFacingError(Exception):
    """A problem a participant or organiser can fix; its text is the whole message shown."""

    def __init__(self, message: str, path: Path | str | None = None, fix: str | None = None):
        self.path = Path(path) if path is not None else None
        self.fix = fix
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        detail = printable(" ".join(self.detail.splitlines()))  # one line, whatever was quoted
        text = f"{shown_path(self.path)}: {detail}" if self.path is not None else detail
        if self.fix:
            text = f"{text.rstrip('.')}. {self.fix}"
        return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


class SubmissionError(UserFacingError):
    """The participant's submission (results, model, metadata) is wrong."""


class ReferenceDataError(UserFacingError):
    """The organiser's reference data or configuration is wrong."""


def guarded(run: Callable[[], None], program: str, log_dir: Path | None = None) -> int:
    """Run ``run``; a user mistake becomes one message, an internal failure one line plus a log file."""
    try:
        run()
    except UserFacingError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the message must still be one line for the participant
        log = _write_crash_log(log_dir, program)
        where = f" (details in {log})" if log else ""
        print(f"{program}: internal error: {type(error).__name__}: {error}{where}", file=sys.stderr)
        return 3
    return 0


def _write_crash_log(log_dir: Path | None, program: str) -> Path | None:
    if log_dir is None:
        return None
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / f"{program}_internal_error.log"
        path.write_text(traceback.format_exc(), encoding="utf-8", errors="backslashreplace")  # odd file names
        return path
    except OSError:
        return None
