"""The errors the engine raises to its callers (CLI, desktop): all derive from MailroomError."""

from __future__ import annotations


class MailroomError(Exception):
    """Base of every error the engine raises on purpose."""


class ValidationError(MailroomError):
    """Input refused; `field` names the offending input, `message` says why.

    Nothing has been written when this is raised.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DataFolderError(MailroomError):
    """A file of the data folder cannot be used as it is; the message names it and says
    what to do. Nothing has been changed."""


class RateLimited(MailroomError):
    """Too many requests of one kind for one user; `retry_after_seconds` says when to try again."""

    def __init__(self, message: str, retry_after_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_seconds = retry_after_seconds
