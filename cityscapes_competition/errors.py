"""Errors that reach a user as one clear message, never as a traceback."""

from __future__ import annotations

from pathlib import Path


class UserFacingError(Exception):
    """A problem a participant or organiser can fix; its text is the whole message shown."""

    def __init__(self, message: str, path: Path | str | None = None, fix: str | None = None):
        self.path = Path(path) if path is not None else None
        self.fix = fix
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"{self.path}: {self.detail}" if self.path is not None else self.detail
        if self.fix:
            text = f"{text.rstrip('.')}. {self.fix}"
        return text


class SubmissionError(UserFacingError):
    """The participant's submission (results, model, metadata) is wrong."""


class ReferenceDataError(UserFacingError):
    """The organiser's reference data or configuration is wrong."""
