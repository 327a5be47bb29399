"""What the checker prints: one line per finding (ok, FAIL, WARN, skip, note), escaped, and the tally the
summary is made from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from ..core.errors import UserFacingError, printable

# The .keras archive's checks, reused: a member's name (NUL, absolute, '..', link), and its bounded copy.

if TYPE_CHECKING:
    pass
from .layout import T


@dataclass
class CheckLog:
    """What the checker prints, one line per finding, and the tally for the summary."""

    stream: TextIO
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def _print(self, mark: str, text: str) -> None:
        # names from a zip may hold newlines and terminal escapes: one line each, escaped, never forged
        print(f"  {mark:<5} {printable(text)}", file=self.stream, flush=True)

    def ok(self, step: str, text: str) -> None:
        self.passed.append(step)
        self._print("ok", f"{step}: {text}")

    def fail(self, step: str, text: str) -> None:
        self.problems.append(f"{step}: {text}")
        self._print("FAIL", f"{step}: {text}")

    def warn(self, step: str, text: str) -> None:
        self.warnings.append(f"{step}: {text}")
        self._print("WARN", f"{step}: {text}")

    def skip(self, step: str, reason: str) -> None:
        self.skipped.append(step)
        self._print("skip", f"{step}: {reason}")

    def note(self, text: str) -> None:
        self._print("note", text)

    def heading(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


def attempt(log: CheckLog, step: str, action: Callable[[], T]) -> T | None:
    """``action()``, or None after logging its one-line problem."""
    try:
        return action()
    except UserFacingError as error:
        log.fail(step, str(error))
        return None
